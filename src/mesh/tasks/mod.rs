//! Task distribution: `task_orchestrate`, `task_status` and `task_results`. Tasks form a DAG
//! (a task is ready once every dependency completed) and a ready task goes to exactly one live,
//! capable agent, by capability suitability, consistent hashing, or per-agent queues with work
//! stealing. A claim returns a fencing token (the store revision of the claim), and a stale
//! owner's `complete` or `fail` is refused. Failover hands a failed agent's tasks to live ones.
//!
//! Pure cores: [`dag`], [`score`], [`dht`]. [`assign`] places tasks on a working copy of the
//! swarm's tasks, which `cache` keeps between operations; `lifecycle` and `release` are the
//! engine operations, each one compare-and-swap transaction. Tasks live under `tasks/<swarm>/`.
//! What the tools take and return is in [`api`].

pub mod api;
pub mod assign;
mod cache;
pub mod dag;
pub mod dht;
mod lifecycle;
pub mod load;
pub mod record;
mod release;
pub mod score;

pub use api::*;
pub(crate) use cache::BoardCache;
pub use record::{Assignment, Attempt, AuctionView, BidView, Priority, TaskState, TaskView};
