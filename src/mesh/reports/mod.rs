//! What the mesh reports about itself, read-only: `performance_report` ([`performance`]),
//! `swarm_monitor` ([`monitor`]), the figures both compute from state ([`stats`], over [`crate::mesh::history`]), and the reads
//! behind the MCP resources ([`listing`]) and the dashboard ([`activity`]). What they take and
//! return is in [`api`]. Nothing here writes, so reading never wakes a live view.

pub mod activity;
pub mod api;
pub mod listing;
pub mod me;
pub mod monitor;
pub mod performance;
pub mod stats;

pub use api::*;
