//! What the mesh reports about itself, read-only: `performance_report` ([`performance`]),
//! `swarm_monitor` ([`monitor`]), the figures both compute from state ([`stats`]), and the reads
//! behind the MCP resources ([`listing`]) and the dashboard ([`activity`]). Nothing here writes,
//! so reading never wakes a live view.

pub mod activity;
pub mod listing;
pub mod monitor;
pub mod performance;
pub mod stats;
