//! `mesh-mcp budget`: read or change a swarm's worker budget (issue 16) as the operator, who
//! holds the database; prints the limits, what the workers spent and whether the cap is reached.

use std::process::ExitCode;

use super::{Finished, Global};
use crate::ids::SwarmId;
use crate::mesh::workers::BudgetLimits;

#[derive(clap::Args)]
pub struct BudgetArgs {
    /// The swarm.
    pub swarm: String,
    /// Workers of the swarm that may run at once.
    #[arg(long)]
    pub max_workers: Option<u32>,
    /// Restarts of one worker over its life; past them its agent is failed.
    #[arg(long)]
    pub max_restarts: Option<u32>,
    /// Seconds one worker may run, over all its runs.
    #[arg(long)]
    pub max_wall_seconds: Option<f64>,
    /// US dollars the swarm's workers may spend (as their programs report it).
    #[arg(long)]
    pub spend_cap_usd: Option<f64>,
}

pub fn run(global: &Global, args: BudgetArgs) -> anyhow::Result<Finished> {
    super::runtime(false)?.block_on(async {
        let engine = global.open_engine()?;
        let swarm = SwarmId::new(args.swarm.as_str());
        let limits = BudgetLimits {
            max_workers: args.max_workers,
            max_restarts: args.max_restarts,
            max_wall_seconds: args.max_wall_seconds,
            spend_cap_usd: args.spend_cap_usd,
        };
        let changed = match limits.is_empty() {
            true => engine.swarm_settings(&swarm).await.map(|_| ()),
            false => engine.worker_budget_set(&swarm, limits).await.map(|_| ()),
        };
        if let Err(e) = changed {
            eprintln!("mesh-mcp budget: {e}");
            return Ok(ExitCode::from(2).into());
        }
        let view = engine.worker_budget_view(&swarm).await?;
        Ok(Finished::with_output(ExitCode::SUCCESS, serde_json::to_string_pretty(&view)?))
    })
}
