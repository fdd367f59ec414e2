//! Workers (issue 16): the processes agents run, as the store keeps them. Whoever may spawn an
//! agent asks for its worker ([`WorkerSpec`]); supervisors claim what is asked for, each claim
//! attached to the claiming supervisor's lease, so that a supervisor that dies lets go of its
//! workers when its lease runs out and another adopts them. The claim's create revision is its
//! fence: every report and every token a supervisor issues for the worker compares it, so a
//! supervisor that lost its claim can change nothing, and no two supervisors ever both run a
//! worker with a valid identity.

pub mod record;

pub use record::*;

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

    /// Every worker (of `swarm`, or of all) by its last reported state, `requested` while no
    /// supervisor has reported.
    pub async fn workers_by_state(&self, swarm: Option<&SwarmId>) -> Result<std::collections::BTreeMap<String, u64>> {
        let prefix = swarm.map_or(keys::ALL_WORKERS.to_string(), keys::workers);
        let kvs = self.store().range(RangeRequest::prefix(prefix)).await?.kvs;
        let mut by = std::collections::BTreeMap::new();
        let mut reported = std::collections::HashSet::new();
        for kv in kvs.iter().filter(|kv| kv.key.contains("/status/")) {
            let status: WorkerStatus = decode(kv)?;
            *by.entry(status.state.as_str().to_string()).or_default() += 1;
            reported.insert(kv.key.replacen("/status/", "/spec/", 1));
        }
        let waiting = kvs.iter().filter(|kv| kv.key.contains("/spec/") && !reported.contains(&kv.key)).count();
        if waiting > 0 {
            by.insert("requested".to_string(), waiting as u64);
        }
        Ok(by)
    }

    /// Claim the worker of `agent` under `lease` (the supervisor's), if it is asked for and
    /// nobody holds it.
    pub async fn worker_claim(
        &self,
        swarm: &SwarmId,
        agent: &AgentId,
        holder: &WorkerClaim,
        lease: LeaseId,
    ) -> Result<Option<Claim>> {
        let claim = keys::worker_claim(swarm, agent);
        let txn = Txn::new()
            .when([
                Compare::version(keys::worker_spec(swarm, agent), CompareOp::Greater, 0),
                Compare::absent(claim.clone()),
            ])
            .and_then([Op::put_with_lease(claim, encode(holder), lease)]);
        let resp = self.store().txn(txn).await?;
        Ok(resp.succeeded.then(|| Claim { swarm: swarm.clone(), agent: agent.clone(), fence: resp.revision }))
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

    /// Record what the supervisor sees of its worker; refused once the claim is lost.
    pub async fn worker_report(&self, claim: &Claim, status: &WorkerStatus) -> Result<()> {
        let put = Op::put(keys::worker_status(&claim.swarm, &claim.agent), encode(status));
        if self.store().txn(Txn::new().when([claim.holds()]).and_then([put])).await?.succeeded {
            return Ok(());
        }
        Err(claim.lost())
    }

    /// Let go of a worker; with `done`, its request too (it was stopped, or is not to run again).
    pub async fn worker_release(&self, claim: &Claim, done: bool) -> Result<()> {
        let mut ops = vec![Op::delete(keys::worker_claim(&claim.swarm, &claim.agent))];
        if done {
            ops.push(Op::delete(keys::worker_spec(&claim.swarm, &claim.agent)));
        }
        if self.store().txn(Txn::new().when([claim.holds()]).and_then(ops)).await?.succeeded {
            return Ok(());
        }
        Err(claim.lost())
    }

    /// The worker of `agent` as views show it: asked for, or last reported.
    pub async fn worker_view(&self, swarm: &SwarmId, agent: &AgentId) -> Result<Option<WorkerView>> {
        let spec: Option<WorkerSpec> = self.worker_record(keys::worker_spec(swarm, agent)).await?;
        let status: Option<WorkerStatus> = self.worker_record(keys::worker_status(swarm, agent)).await?;
        Ok(WorkerView::of(spec.as_ref(), status.as_ref()))
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

    /// The worker failed to start `maxRetryAttempts` times in its window: its agent is failed
    /// now (its lease ends, the sweep records the failure and its tasks go to live agents).
    pub async fn worker_gave_up(&self, claim: &Claim, exit: &ExitRecord) -> Result<()> {
        self.still_held(claim).await?;
        let view = self.load_swarm(&claim.swarm).await?;
        tracing::warn!(agent = %claim.agent, ?exit, "the worker kept failing; its agent is failed");
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

        let first = a.worker_claim(&swarm, &agent, &holder("A"), lease_a).await.unwrap().expect("A claims");
        assert!(b.worker_claim(&swarm, &agent, &holder("B"), lease_b).await.unwrap().is_none(), "held by A");
        assert!(b.workers_wanted().await.unwrap()[0].claimed);
        let token = a.worker_token(&first).await.unwrap();
        assert!(a.agent_by_token(&token, Some("s")).await.is_ok(), "the issued token is the agent's");

        a.store().lease_revoke(lease_a).await.unwrap();
        let second = b.worker_claim(&swarm, &agent, &holder("B"), lease_b).await.unwrap().expect("B adopts");
        assert!(second.fence > first.fence);
        let status = WorkerStatus {
            profile: "command".into(),
            state: WorkerState::Running,
            supervisor: "A".into(),
            host: "h".into(),
            pid: Some(1),
            started_ms: Some(0),
            restarts: 0,
            last_exit: None,
            spend: Default::default(),
            fence: first.fence,
            reported_ms: 0,
        };
        assert!(a.worker_report(&first, &status).await.is_err(), "A's fence is stale");
        assert!(a.worker_token(&first).await.is_err(), "A can issue no identity");
        assert!(a.agent_by_token(&token, Some("s")).await.is_ok(), "nothing changed");
        let fresh = b.worker_token(&second).await.unwrap();
        assert!(b.agent_by_token(&token, Some("s")).await.is_err(), "A's copy of the identity is dead");
        assert!(b.agent_by_token(&fresh, Some("s")).await.is_ok());
        b.worker_report(&second, &WorkerStatus { supervisor: "B".into(), fence: second.fence, ..status })
            .await
            .unwrap();

        assert!(a.worker_stop(&swarm, &agent).await.unwrap());
        assert!(b.worker_spec(&second).await.unwrap().unwrap().stop);
        b.worker_release(&second, true).await.unwrap();
        assert!(b.workers_wanted().await.unwrap().is_empty());
    }
}
