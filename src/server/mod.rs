//! The MCP edge: the rmcp handler, the tool table, resources and their subscriptions, error
//! mapping and the transports.

pub mod binding;
pub mod catalogue;
mod channel;
pub mod errors;
pub mod frames;
pub mod handler;
pub mod http;
mod join;
pub(crate) mod lenient;
mod listing;
pub mod owners;
pub mod profile;
pub mod resources;
pub mod schema;
pub mod session;
pub mod stdio;
pub mod subscriptions;
pub mod tools;

pub use handler::MeshServer;
