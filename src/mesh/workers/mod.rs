//! Workers (issue 16): the processes agents run, as the store keeps them. Whoever may spawn an
//! agent asks for its worker ([`WorkerSpec`]); supervisors claim what is asked for, each claim
//! attached to the claiming supervisor's lease, so that a supervisor that dies lets go of its
//! workers when its lease runs out and another adopts them. The claim's create revision is its
//! fence: every report and every token a supervisor issues for the worker compares it, so a
//! supervisor that lost its claim can change nothing, and no two supervisors ever both run a
//! worker with a valid identity.

pub mod budget;
pub(crate) mod index;
pub mod record;

pub use budget::*;
pub use record::*;

use std::collections::BTreeMap;

use crate::error::{MeshError, Result};
use crate::ids::{AgentId, SwarmId};
use crate::mesh::model::{decode, encode, AgentRecord};
use crate::mesh::{keys, Engine};
use crate::secret;
use crate::store::{Compare, CompareOp, CompareTarget, LeaseId, Op, RangeRequest, Txn};

/// A supervisor's hold on one worker; `fence` proves it is still the holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub swarm: SwarmId,
    pub agent: AgentId,
    pub fence: i64,
    /// The place it holds under the swarm's maxWorkers, if the swarm has one.
    pub slot: Option<u32>,
}

/// What came of trying to claim a worker.
#[derive(Debug)]
pub enum Claimed {
    Held(Claim),
    /// Another supervisor holds it, or it is no longer asked for.
    Taken,
    /// The swarm runs maxWorkers workers already, or its spend cap is reached (why).
    OverBudget(String),
}

/// A worker the store asks for, and whether a supervisor holds it.
#[derive(Debug, Clone)]
pub struct Wanted {
    pub swarm: SwarmId,
    pub agent: AgentId,
    pub spec: WorkerSpec,
    pub claimed: bool,
}

impl Claim {
    /// The compare that holds while this claim is the current one.
    fn holds(&self) -> Compare {
        Compare {
            key: keys::worker_claim(&self.swarm, &self.agent),
            op: CompareOp::Equal,
            target: CompareTarget::CreateRevision(self.fence),
        }
    }

    fn lost(&self) -> MeshError {
        MeshError::conflict("worker", &self.agent, format!("is no longer held under fence {}", self.fence))
    }
}

impl Engine {
    /// Ask for a worker for `agent` (replacing any earlier request for it).
    pub async fn worker_request(&self, swarm: &SwarmId, agent: &AgentId, spec: &WorkerSpec) -> Result<()> {
        let put = Op::put(keys::worker_spec(swarm, agent), encode(spec));
        self.store().txn(Txn::new().and_then([put])).await?;
        Ok(())
    }

    /// Ask the worker of `agent` to stop. False when it has none.
    pub async fn worker_stop(&self, swarm: &SwarmId, agent: &AgentId) -> Result<bool> {
        let key = keys::worker_spec(swarm, agent);
        self.with_retry(|| async {
            let Some(kv) = crate::store::get(&**self.store(), &key).await? else { return Ok(Some(false)) };
            let spec = WorkerSpec { stop: true, ..decode(&kv)? };
            let txn = Txn::new()
                .when([Compare::mod_revision(key.clone(), CompareOp::Equal, kv.mod_revision)])
                .and_then([Op::put(key.clone(), encode(&spec))]);
            Ok(self.store().txn(txn).await?.succeeded.then_some(true))
        })
        .await
    }

    /// Every worker asked for, in every swarm, oldest request first.
    pub async fn workers_wanted(&self) -> Result<Vec<Wanted>> {
        let kvs = self.store().range(RangeRequest::prefix(keys::ALL_WORKERS)).await?.kvs;
        let mut claimed = std::collections::HashSet::new();
        let mut specs = Vec::new();
        for kv in &kvs {
            let parts: Vec<&str> = kv.key.splitn(4, '/').collect();
            let [_, swarm, kind, agent] = parts[..] else { continue };
            match kind {
                "claim" => {
                    claimed.insert((swarm.to_string(), agent.to_string()));
                }
                "spec" => specs.push((SwarmId::new(swarm), AgentId::new(agent), decode::<WorkerSpec>(kv)?)),
                _ => {}
            }
        }
        let mut wanted: Vec<Wanted> = specs
            .into_iter()
            .map(|(swarm, agent, spec)| {
                let claimed = claimed.contains(&(swarm.to_string(), agent.to_string()));
                Wanted { swarm, agent, spec, claimed }
            })
            .collect();
        wanted.sort_by_key(|w| w.spec.requested_ms);
        Ok(wanted)
    }

    /// Every worker of every swarm by its last reported state, `requested` while no supervisor
    /// has reported (one swarm's: [`Self::worker_figures`]).
    pub async fn workers_by_state(&self) -> Result<BTreeMap<String, u64>> {
        let kvs = self.store().range(RangeRequest::prefix(keys::ALL_WORKERS)).await?.kvs;
        let mut states = Vec::new();
        let mut reported = std::collections::HashSet::new();
        for kv in kvs.iter().filter(|kv| kv.key.contains("/status/")) {
            states.push(decode::<WorkerStatus>(kv)?.state);
            reported.insert(kv.key.replacen("/status/", "/spec/", 1));
        }
        let requested = kvs.iter().filter(|kv| kv.key.contains("/spec/") && !reported.contains(&kv.key)).count();
        Ok(index::by_state(states, requested))
    }

    /// Claim the worker of `agent` under `lease` (the supervisor's), if it is asked for, nobody
    /// holds it and the swarm's budget lets one more run: under maxWorkers the claim takes a free
    /// slot in the same transaction, so no two supervisors can pass the cap together.
    pub async fn worker_claim(
        &self,
        swarm: &SwarmId,
        agent: &AgentId,
        holder: &WorkerClaim,
        lease: LeaseId,
    ) -> Result<Claimed> {
        let claim_key = keys::worker_claim(swarm, agent);
        self.with_retry(|| async {
            let budget = self.worker_budget(swarm).await?;
            if let Some(why) = budget.exhausted() {
                return Ok(Some(Claimed::OverBudget(why)));
            }
            let mut compares = vec![
                Compare::version(keys::worker_spec(swarm, agent), CompareOp::Greater, 0),
                Compare::absent(claim_key.clone()),
            ];
            let mut ops = vec![Op::put_with_lease(claim_key.clone(), encode(holder), lease)];
            let slot = match budget.limits.max_workers {
                None => None,
                Some(max) => {
                    let Some(free) = self.free_slot(swarm, max).await? else {
                        return Ok(Some(Claimed::OverBudget(format!("the swarm runs its maxWorkers ({max}) already"))));
                    };
                    compares.push(Compare::absent(keys::worker_slot(swarm, free)));
                    ops.push(Op::put_with_lease(keys::worker_slot(swarm, free), agent.to_string().into_bytes(), lease));
                    Some(free)
                }
            };
            let resp = self.store().txn(Txn::new().when(compares).and_then(ops)).await?;
            if resp.succeeded {
                let claim = Claim { swarm: swarm.clone(), agent: agent.clone(), fence: resp.revision, slot };
                return Ok(Some(Claimed::Held(claim)));
            }
            // Lost to another claim of this worker, or only of the slot: then try another slot.
            let taken = crate::store::get(&**self.store(), &claim_key).await?.is_some();
            Ok(taken.then_some(Claimed::Taken))
        })
        .await
    }

    /// The lowest slot under `max` that nobody holds, unless `max` are held already.
    async fn free_slot(&self, swarm: &SwarmId, max: u32) -> Result<Option<u32>> {
        let prefix = keys::worker_slots(swarm);
        let held = self.store().range(RangeRequest::prefix(prefix.clone())).await?.kvs;
        if held.len() >= max as usize {
            return Ok(None);
        }
        let taken: std::collections::HashSet<u32> =
            held.iter().filter_map(|kv| kv.key.strip_prefix(&prefix)?.parse().ok()).collect();
        Ok((0..max).find(|n| !taken.contains(n)))
    }

    /// The swarm's worker budget: its limits and what its workers spent (none of either when
    /// nobody set a limit and nothing was spent).
    pub async fn worker_budget(&self, swarm: &SwarmId) -> Result<BudgetRecord> {
        Ok(self.worker_record(keys::worker_budget(swarm)).await?.unwrap_or_default())
    }

    /// Change the swarm's limits: each limit given replaces the one set before. The swarm must
    /// exist; supervisors act on the change at once (a lower maxWorkers stops nothing running).
    pub async fn worker_budget_set(&self, swarm: &SwarmId, limits: BudgetLimits) -> Result<BudgetRecord> {
        limits.validate()?;
        self.load_swarm(swarm).await?;
        let key = keys::worker_budget(swarm);
        self.with_retry(|| async {
            let kv = crate::store::get(&**self.store(), &key).await?;
            let old: BudgetRecord = kv.as_ref().map(decode).transpose()?.unwrap_or_default();
            let new = BudgetRecord { limits: old.limits.merged(limits), ..old };
            let txn = Txn::new()
                .when([Compare::mod_revision(key.clone(), CompareOp::Equal, kv.map_or(0, |kv| kv.mod_revision))])
                .and_then([Op::put(key.clone(), encode(&new))]);
            Ok(self.store().txn(txn).await?.succeeded.then_some(new))
        })
        .await
    }

    /// The swarm's budget as `swarm_status` shows it; `None` when there is nothing to show.
    pub async fn worker_budget_view(&self, swarm: &SwarmId) -> Result<Option<BudgetView>> {
        let budget = self.worker_index.with(&**self.store(), swarm, |w| w.budget()).await?;
        self.budget_view(swarm, budget).await
    }

    /// The swarm's workers by state and its budget, as `swarm_status` shows them: one catch-up
    /// of the index.
    pub async fn worker_figures(&self, swarm: &SwarmId) -> Result<(BTreeMap<String, u64>, Option<BudgetView>)> {
        let (by_state, budget) = self.worker_index.with(&**self.store(), swarm, |w| (w.by_state(), w.budget())).await?;
        Ok((by_state, self.budget_view(swarm, budget).await?))
    }

    async fn budget_view(&self, swarm: &SwarmId, budget: BudgetRecord) -> Result<Option<BudgetView>> {
        if budget == BudgetRecord::default() {
            return Ok(None);
        }
        let claims = self.store().range(RangeRequest::prefix(keys::worker_claims(swarm))).await?;
        let workers_held = claims.count as u64;
        Ok(Some(BudgetView { exhausted: budget.exhausted(), limits: budget.limits, spent: budget.spent, workers_held }))
    }

    /// The spec of a claimed worker now; `None` once it is no longer asked for (the request or
    /// the swarm was removed).
    pub async fn worker_spec(&self, claim: &Claim) -> Result<Option<WorkerSpec>> {
        self.worker_record(keys::worker_spec(&claim.swarm, &claim.agent)).await
    }

    /// The record at `key`, decoded, if there is one.
    async fn worker_record<T: serde::de::DeserializeOwned>(&self, key: String) -> Result<Option<T>> {
        crate::store::get(&**self.store(), &key).await?.map(|kv| decode(&kv)).transpose()
    }

    /// A fresh token for the claimed worker's agent, for its next start: the agent's earlier
    /// token (a previous start's, or a lost supervisor's copy) stops working.
    pub async fn worker_token(&self, claim: &Claim) -> Result<String> {
        let token = secret::new_token();
        let key = keys::agent(&claim.swarm, &claim.agent);
        self.with_retry(|| async {
            let kv = crate::store::get(&**self.store(), &key)
                .await?
                .ok_or_else(|| MeshError::not_found("agent", claim.agent.to_string()))?;
            let record = AgentRecord { token_digest: secret::digest(&token), ..decode(&kv)? };
            let txn = Txn::new()
                .when([claim.holds(), Compare::mod_revision(key.clone(), CompareOp::Equal, kv.mod_revision)])
                .and_then([Op::put(key.clone(), encode(&record))]);
            if self.store().txn(txn).await?.succeeded {
                return Ok(Some(token.clone()));
            }
            self.still_held(claim).await.map(|()| None)
        })
        .await
    }

    /// Record what the supervisor sees of its worker, and add what its last run spent (`added`)
    /// to the swarm's budget in the same transaction; refused once the claim is lost.
    pub async fn worker_report(&self, claim: &Claim, status: &WorkerStatus, added: Spend) -> Result<()> {
        let put = Op::put(keys::worker_status(&claim.swarm, &claim.agent), encode(status));
        let budget_key = keys::worker_budget(&claim.swarm);
        self.with_retry(|| async {
            let mut txn = Txn::new().when([claim.holds()]).and_then([put.clone()]);
            if added != Spend::default() {
                let kv = crate::store::get(&**self.store(), &budget_key).await?;
                let mut budget: BudgetRecord = kv.as_ref().map(decode).transpose()?.unwrap_or_default();
                budget.spent.add(added);
                let rev = kv.map_or(0, |kv| kv.mod_revision);
                txn = Txn::new()
                    .when([claim.holds(), Compare::mod_revision(budget_key.clone(), CompareOp::Equal, rev)])
                    .and_then([put.clone(), Op::put(budget_key.clone(), encode(&budget))]);
            }
            if self.store().txn(txn).await?.succeeded {
                return Ok(Some(()));
            }
            self.still_held(claim).await.map(|()| None)
        })
        .await
    }

    /// What was last reported of the claimed worker, by this or an earlier supervisor.
    pub async fn worker_last_status(&self, claim: &Claim) -> Result<Option<WorkerStatus>> {
        self.worker_record(keys::worker_status(&claim.swarm, &claim.agent)).await
    }

    /// Let go of a worker (and of its slot); with `done`, its request too (it was stopped, or
    /// is not to run again).
    pub async fn worker_release(&self, claim: &Claim, done: bool) -> Result<()> {
        let mut ops = vec![Op::delete(keys::worker_claim(&claim.swarm, &claim.agent))];
        ops.extend(claim.slot.map(|n| Op::delete(keys::worker_slot(&claim.swarm, n))));
        if done {
            ops.push(Op::delete(keys::worker_spec(&claim.swarm, &claim.agent)));
        }
        if self.store().txn(Txn::new().when([claim.holds()]).and_then(ops)).await?.succeeded {
            return Ok(());
        }
        Err(claim.lost())
    }

    /// The worker of each of `agents` as views show it: asked for, or last reported.
    pub async fn worker_views(&self, swarm: &SwarmId, agents: &[&AgentId]) -> Result<Vec<Option<WorkerView>>> {
        self.worker_index.with(&**self.store(), swarm, |w| agents.iter().map(|a| w.view(a)).collect()).await
    }

    /// The worker of `agent` with the end of its output; an agent without one is refused.
    pub async fn worker_log(&self, swarm: &SwarmId, agent: &AgentId) -> Result<WorkerLog> {
        let spec: Option<WorkerSpec> = self.worker_record(keys::worker_spec(swarm, agent)).await?;
        let status: Option<WorkerStatus> = self.worker_record(keys::worker_status(swarm, agent)).await?;
        let worker = WorkerView::of(spec.as_ref(), status.as_ref())
            .ok_or_else(|| MeshError::not_found("worker of agent", agent.to_string()))?;
        let log_tail = status.map(|s| s.log_tail).unwrap_or_default();
        Ok(WorkerLog { agent_id: agent.to_string(), worker, log_tail })
    }

    /// The swarm's workers with the ends of their outputs, at most `max`, by agent id; and how
    /// many were left out.
    pub async fn worker_logs(&self, swarm: &SwarmId, max: usize) -> Result<(Vec<WorkerLog>, usize)> {
        let kvs = self.store().range(RangeRequest::prefix(keys::workers(swarm))).await?.kvs;
        let mut by_agent: BTreeMap<&str, (Option<WorkerSpec>, Option<WorkerStatus>)> = Default::default();
        for kv in &kvs {
            let Some((kind, agent)) = kv.key.strip_prefix(&keys::workers(swarm)).and_then(|r| r.split_once('/')) else {
                continue;
            };
            match kind {
                "spec" => by_agent.entry(agent).or_default().0 = Some(decode(kv)?),
                "status" => by_agent.entry(agent).or_default().1 = Some(decode(kv)?),
                _ => {}
            }
        }
        let total = by_agent.len();
        let logs = by_agent
            .into_iter()
            .take(max)
            .filter_map(|(agent, (spec, status))| {
                let worker = WorkerView::of(spec.as_ref(), status.as_ref())?;
                let log_tail = status.map(|s| s.log_tail).unwrap_or_default();
                Some(WorkerLog { agent_id: agent.to_string(), worker, log_tail })
            })
            .collect::<Vec<_>>();
        Ok((logs, total.saturating_sub(max)))
    }

    /// Whether `claim` is still the current hold on its worker.
    pub async fn worker_holds(&self, claim: &Claim) -> Result<bool> {
        let key = keys::worker_claim(&claim.swarm, &claim.agent);
        Ok(crate::store::get(&**self.store(), &key).await?.is_some_and(|kv| kv.create_revision == claim.fence))
    }

    async fn still_held(&self, claim: &Claim) -> Result<()> {
        match self.worker_holds(claim).await? {
            true => Ok(()),
            false => Err(claim.lost()),
        }
    }

    /// The worker failed to start `maxRetryAttempts` times in its window, or spent its restarts:
    /// its agent is failed now (its lease ends, the sweep records the failure and its tasks go to live agents).
    pub async fn worker_gave_up(&self, claim: &Claim, why: &str) -> Result<()> {
        self.still_held(claim).await?;
        let view = self.load_swarm(&claim.swarm).await?;
        tracing::warn!(agent = %claim.agent, %why, "the worker is given up; its agent is failed");
        if let Some(live) = view.liveness.get(&claim.agent) {
            match self.store().lease_revoke(live.lease).await {
                Ok(()) | Err(crate::store::StoreError::LeaseNotFound(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        self.reconcile(&claim.swarm).await.map(|_| ())
    }

    /// A swarm's settings.
    pub async fn swarm_settings(&self, swarm: &SwarmId) -> Result<crate::mesh::model::SwarmSettings> {
        Ok(self.load_swarm(swarm).await?.swarm.settings.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mesh::testing::{params, two_processes};

    fn spec() -> WorkerSpec {
        WorkerSpec {
            profile: "command".into(),
            prompt: "work".into(),
            arguments: Vec::new(),
            cwd: None,
            restart: RestartPolicy::OnFailure,
            requested_ms: 1,
            stop: false,
        }
    }

    fn held(claimed: Claimed) -> Claim {
        match claimed {
            Claimed::Held(claim) => claim,
            other => panic!("not claimed: {other:?}"),
        }
    }

    fn holder(name: &str) -> WorkerClaim {
        WorkerClaim { supervisor: name.into(), host: "h".into(), claimed_ms: 0 }
    }

    /// Two supervisors (two processes) race for one worker: one holds it, and once its lease
    /// is gone the other adopts it, after which the first can neither report nor issue a token.
    #[tokio::test]
    async fn one_supervisor_holds_a_worker_and_a_lost_claim_changes_nothing() {
        let (_dir, _clock, a, b) = two_processes();
        a.swarm_init(params(serde_json::json!({"topology": "mesh", "swarmId": "s", "membership": "open"})))
            .await
            .unwrap();
        let spawned =
            a.agent_spawn(params(serde_json::json!({"type": "coder", "name": "w", "swarmId": "s"}))).await.unwrap();
        let (swarm, agent) = (SwarmId::new("s"), AgentId::new(&spawned.agent_id));
        a.worker_request(&swarm, &agent, &spec()).await.unwrap();
        let (lease_a, lease_b) =
            (a.store().lease_grant(60_000).await.unwrap(), b.store().lease_grant(60_000).await.unwrap());

        let first = held(a.worker_claim(&swarm, &agent, &holder("A"), lease_a).await.unwrap());
        let taken = b.worker_claim(&swarm, &agent, &holder("B"), lease_b).await.unwrap();
        assert!(matches!(taken, Claimed::Taken), "held by A: {taken:?}");
        assert!(b.workers_wanted().await.unwrap()[0].claimed);
        let token = a.worker_token(&first).await.unwrap();
        assert!(a.agent_by_token(&token, Some("s")).await.is_ok(), "the issued token is the agent's");

        a.store().lease_revoke(lease_a).await.unwrap();
        let second = held(b.worker_claim(&swarm, &agent, &holder("B"), lease_b).await.unwrap());
        assert!(second.fence > first.fence);
        let status = WorkerStatus {
            profile: "command".into(),
            state: WorkerState::Running,
            pid: Some(1),
            started_ms: Some(0),
            ..WorkerStatus::fresh("A", "h", first.fence, 0)
        };
        assert!(a.worker_report(&first, &status, Spend::default()).await.is_err(), "A's fence is stale");
        assert!(a.worker_token(&first).await.is_err(), "A can issue no identity");
        assert!(a.agent_by_token(&token, Some("s")).await.is_ok(), "nothing changed");
        let fresh = b.worker_token(&second).await.unwrap();
        assert!(b.agent_by_token(&token, Some("s")).await.is_err(), "A's copy of the identity is dead");
        assert!(b.agent_by_token(&fresh, Some("s")).await.is_ok());
        b.worker_report(
            &second,
            &WorkerStatus { supervisor: "B".into(), fence: second.fence, ..status },
            Spend::default(),
        )
        .await
        .unwrap();

        assert!(a.worker_stop(&swarm, &agent).await.unwrap());
        assert!(b.worker_spec(&second).await.unwrap().unwrap().stop);
        b.worker_release(&second, true).await.unwrap();
        assert!(b.workers_wanted().await.unwrap().is_empty());
    }

    /// One process's views of workers (`agent_list`, `mesh://self`, `swarm_status`) come from
    /// what it keeps of the log: they follow another process's requests, reports, stops, budget
    /// and releases, and agree with a process that reads them afresh.
    #[tokio::test]
    async fn worker_views_follow_another_process() {
        let (dir, clock, a, b) = two_processes();
        let agents = crate::mesh::testing::swarm_of(&a, 3600, &["w0", "w1", "w2"]).await;
        let (swarm, ids) = (SwarmId::new("s"), agents.iter().map(|v| AgentId::new(v["agentId"].as_str().unwrap())));
        let ids: Vec<AgentId> = ids.collect();
        let refs: Vec<&AgentId> = ids.iter().collect();
        let fresh = || {
            let store = crate::store::sqlite::SqliteStore::open(&dir.path().join("mesh.db"), clock.clone()).unwrap();
            Engine::new(std::sync::Arc::new(store), clock.clone())
        };
        // What b shows: each agent's worker state and whether it is stopping, the count by
        // state and the workers held under the budget; checked against a fresh reader.
        let shown = |e: &Engine| {
            let (swarm, refs) = (swarm.clone(), refs.clone());
            let e = e.clone();
            async move {
                let views = e.worker_views(&swarm, &refs).await.unwrap();
                let views: Vec<_> = views.iter().map(|v| v.as_ref().map(|v| (v.state, v.stopping))).collect();
                let (by_state, budget) = e.worker_figures(&swarm).await.unwrap();
                (views, by_state, budget.map(|b| b.workers_held))
            }
        };
        assert_eq!(shown(&b).await, (vec![None, None, None], Default::default(), None));

        a.worker_request(&swarm, &ids[0], &spec()).await.unwrap();
        a.worker_request(&swarm, &ids[1], &spec()).await.unwrap();
        a.worker_budget_set(&swarm, BudgetLimits { max_workers: Some(2), ..Default::default() }).await.unwrap();
        let lease = a.store().lease_grant(60_000).await.unwrap();
        let claim = held(a.worker_claim(&swarm, &ids[0], &holder("A"), lease).await.unwrap());
        let status = WorkerStatus {
            profile: "command".into(),
            state: WorkerState::Running,
            log_tail: "working\n".into(),
            ..WorkerStatus::fresh("A", "h", claim.fence, 0)
        };
        a.worker_report(&claim, &status, Spend::default()).await.unwrap();
        assert!(a.worker_stop(&swarm, &ids[1]).await.unwrap());
        let now = shown(&b).await;
        let by_state = [("requested".to_string(), 1), ("running".to_string(), 1)].into_iter().collect();
        assert_eq!(now, (vec![Some((Some(WorkerState::Running), false)), Some((None, true)), None], by_state, Some(1)));
        assert_eq!(now, shown(&fresh()).await);

        a.worker_release(&claim, true).await.unwrap();
        let now = shown(&b).await;
        assert_eq!(now.0[0], Some((Some(WorkerState::Running), false)), "its last report stays");
        assert_eq!(now.2, Some(0), "released");
        assert_eq!(now, shown(&fresh()).await);
    }

    /// maxWorkers holds across supervisors (each claim takes a slot in its transaction), a
    /// released claim frees its slot, and a spent budget lets nothing more be claimed.
    #[tokio::test]
    async fn claims_stay_within_the_swarms_budget() {
        let (_dir, _clock, a, b) = two_processes();
        a.swarm_init(params(serde_json::json!({"topology": "mesh", "swarmId": "s", "membership": "open"})))
            .await
            .unwrap();
        let swarm = SwarmId::new("s");
        let mut agents = Vec::new();
        for n in 0..4 {
            let name = format!("w{n}");
            let spawned = a
                .agent_spawn(params(serde_json::json!({"type": "coder", "name": name, "swarmId": "s"})))
                .await
                .unwrap();
            let agent = AgentId::new(&spawned.agent_id);
            a.worker_request(&swarm, &agent, &spec()).await.unwrap();
            agents.push(agent);
        }
        let limits = BudgetLimits { max_workers: Some(2), spend_cap_usd: Some(1.0), ..Default::default() };
        a.worker_budget_set(&swarm, limits).await.unwrap();
        let (lease_a, lease_b) =
            (a.store().lease_grant(60_000).await.unwrap(), b.store().lease_grant(60_000).await.unwrap());

        let first = held(a.worker_claim(&swarm, &agents[0], &holder("A"), lease_a).await.unwrap());
        let second = held(b.worker_claim(&swarm, &agents[1], &holder("B"), lease_b).await.unwrap());
        assert_ne!(first.slot, second.slot);
        let over = a.worker_claim(&swarm, &agents[2], &holder("A"), lease_a).await.unwrap();
        assert!(matches!(&over, Claimed::OverBudget(why) if why.contains("maxWorkers (2)")), "{over:?}");
        assert_eq!(b.worker_budget_view(&swarm).await.unwrap().unwrap().workers_held, 2);

        b.worker_release(&second, true).await.unwrap();
        let third = held(a.worker_claim(&swarm, &agents[2], &holder("A"), lease_a).await.unwrap());
        assert_eq!(third.slot, second.slot, "the freed slot is taken again");

        let status = WorkerStatus {
            profile: "command".into(),
            state: WorkerState::Exited,
            started_ms: Some(0),
            spend: Spend { cost_usd: 1.25, input_tokens: 10, output_tokens: 2 },
            ran_ms: 5,
            log_tail: "done\n".into(),
            ..WorkerStatus::fresh("A", "h", first.fence, 0)
        };
        a.worker_report(&first, &status, status.spend).await.unwrap();
        a.worker_release(&first, true).await.unwrap();
        let budget = b.worker_budget(&swarm).await.unwrap();
        assert_eq!(budget.spent.cost_usd, 1.25);
        assert_eq!(b.worker_log(&swarm, &agents[0]).await.unwrap().log_tail, "done\n");
        assert!(b.worker_log(&swarm, &AgentId::new("nobody")).await.is_err());
        let over = b.worker_claim(&swarm, &agents[3], &holder("B"), lease_b).await.unwrap();
        assert!(matches!(&over, Claimed::OverBudget(why) if why.contains("spend cap")), "{over:?}");
        let view = a.worker_budget_view(&swarm).await.unwrap().unwrap();
        assert!(view.exhausted.is_some());
        assert_eq!(view.workers_held, 1);

        // Raising the cap lets work go on; the other limits stay as they were.
        let raised = a.worker_budget_set(&swarm, BudgetLimits { spend_cap_usd: Some(5.0), ..Default::default() });
        assert_eq!(raised.await.unwrap().limits.max_workers, Some(2));
        held(b.worker_claim(&swarm, &agents[3], &holder("B"), lease_b).await.unwrap());
        assert!(a.worker_budget_set(&SwarmId::new("nope"), limits).await.is_err(), "no such swarm");
    }
}
