//! Task distribution (issue 4): tasks in a DAG, placed on live, capable agents.
pub mod dag;
pub mod dht;
pub mod score;
