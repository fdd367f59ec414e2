//! `mesh-mcp simulate`: run a protocol on the deterministic simulated network of [`crate::sim`]
//! and print its report; exit 1 if a safety property fails, 2 if the settings are impossible.

use std::process::ExitCode;

use super::Finished;
use crate::sim;

/// Shown after the options in `mesh-mcp simulate --help`.
pub const EXAMPLES: &str = "Examples:\n  mesh-mcp simulate --protocol pbft --nodes 10 --faulty 3 --seed 7\n  \
    mesh-mcp simulate --protocol election --nodes 5 --faulty 2 --drop 0.1 --partition 0-1|2-4@500..3000\n  \
    mesh-mcp simulate --protocol gossip --nodes 10000 --faulty 100 --json";

#[derive(clap::Args)]
pub struct SimulateArgs {
    /// pbft, election or gossip.
    #[arg(long, value_parser = ["pbft", "election", "gossip"])]
    pub protocol: String,
    /// Number of nodes.
    #[arg(long, default_value_t = 7)]
    pub nodes: u32,
    /// Faulty nodes, chosen by the seed. pbft: Byzantine agents that rush, refuse or
    /// equivocate (at most (n-1)/3); election: agents that crash and restart again and again
    /// (at most (n-1)/2); gossip: nodes that crash for good in the first 10 rounds.
    #[arg(long, default_value_t = 0)]
    pub faulty: u32,
    /// Probability that a message is lost (until --gst).
    #[arg(long, default_value_t = 0.0)]
    pub drop: f64,
    /// Per-message delay in simulated ms: MIN..MAX (uniform) or a fixed D.
    #[arg(long, default_value = "1..10", value_parser = sim::config::parse_delay)]
    pub delay: (u64, u64),
    /// A partition, repeatable: groups of ids separated by `|`, each a comma-separated list of
    /// ids and ranges LO-HI, then an optional window @START..END in simulated ms (END
    /// exclusive; none: the whole run). Unlisted nodes form one more group. Messages between
    /// groups are lost while it holds. E.g. `0-49|50-99@100..2000`.
    #[arg(long, value_name = "GROUPS[@START..END]")]
    pub partition: Vec<sim::Partition>,
    /// Global stabilization time (ms): from then on nothing is dropped and no partition holds.
    #[arg(long, value_name = "MS")]
    pub gst: Option<u64>,
    /// pbft: client requests to decide; election: fenced writes to get accepted; gossip: keys
    /// written by random live nodes
    /// (default 20, gossip 4).
    #[arg(long)]
    pub requests: Option<u32>,
    /// gossip: peers contacted per round (3 to 5 is usual).
    #[arg(long, default_value_t = 3)]
    pub fanout: u32,
    /// Stop after this much simulated time (ms) even without convergence or all decisions.
    #[arg(long, value_name = "MS", default_value_t = sim::config::DEFAULT_MAX_TIME_MS)]
    pub max_time: u64,
    /// Seed of every random choice: the same seed gives the same run.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Print the report as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

impl SimulateArgs {
    fn config(self) -> anyhow::Result<sim::SimConfig> {
        let protocol: sim::Protocol = self.protocol.parse()?;
        let cfg = sim::SimConfig::new(protocol, self.nodes, self.seed);
        Ok(sim::SimConfig {
            requests: self.requests.unwrap_or(cfg.requests),
            faulty: self.faulty,
            drop: self.drop,
            delay: self.delay,
            partitions: self.partition,
            gst: self.gst,
            fanout: self.fanout,
            max_time: self.max_time,
            ..cfg
        })
    }
}

pub fn run(args: SimulateArgs) -> anyhow::Result<Finished> {
    let json = args.json;
    let cfg = args.config()?;
    let report = match sim::run(&cfg) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("mesh-mcp simulate: {e}");
            return Ok(ExitCode::from(2).into());
        }
    };
    let code = if report.safe() { ExitCode::SUCCESS } else { ExitCode::from(1) };
    Ok(Finished::with_output(code, if json { report.json() } else { report.table() }))
}
