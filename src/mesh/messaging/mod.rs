//! `daa_communication`: durable per-agent mailboxes with routes over the live topology.
//!
//! Delivery is at-least-once: `receive` hands out the oldest unacknowledged messages (in commit
//! order, hence FIFO per sender) and keeps handing them out until the recipient `ack`s them.
//!
//! What the tool takes and returns (its params, actions and outputs) is in `api.rs`, re-exported
//! here; this file is the operation.

mod api;
mod deliveries;
mod inbox;
mod wait;

pub use api::*;
pub use wait::MAX_WAIT_SECS;

use crate::config;
use crate::error::{MeshError, Result};
use crate::ids::{AgentId, MessageId};
use crate::mesh::budget::Budget;
use crate::mesh::call::CallContext;
use crate::mesh::fault::breaker::Admission;
use crate::mesh::model::{encode, AgentRecord, DeliveryRecord, FaultRecord, MessageRecord};
use crate::mesh::{keys, validate, Engine, SwarmView};
use crate::store::{self, Compare, CompareOp, KeyValue, Op, RangeRequest, Txn};

fn required<'a, T>(field: &'static str, value: &'a Option<T>, action: &str) -> Result<&'a T> {
    value.as_ref().ok_or_else(|| MeshError::invalid(field, format!("is required for action {action}")))
}

impl Engine {
    pub async fn daa_communication(&self, p: CommunicationParams, ctx: CallContext) -> Result<CommunicationOutput> {
        match p.action {
            CommAction::Send => self.send(&p).await,
            CommAction::Receive => self.receive(&p).await,
            CommAction::Ack => self.ack(&p).await,
            CommAction::Wait => self.wait(&p, &ctx).await,
        }
    }

    /// Load the swarm of an acting agent and check its token and liveness.
    async fn acting_agent(&self, reference: &str, p: &CommunicationParams) -> Result<(SwarmView, AgentRecord)> {
        let swarm = self.resolve_agent_swarm(reference, p.swarm_id.as_deref()).await?;
        let view = self.load_swarm(&swarm).await?;
        let agent = view.agent(reference).cloned().ok_or_else(|| MeshError::not_found("agent", reference))?;
        view.authorize(&agent, p.agent_token.as_deref())?;
        Ok((view, agent))
    }

    async fn send(&self, p: &CommunicationParams) -> Result<CommunicationOutput> {
        let from = required("from", &p.from, "send")?;
        let to = required("to", &p.to, "send")?;
        let body = serde_json::Value::Object(required("message", &p.message, "send")?.clone());
        let size = body.to_string().len();
        if size > config::MAX_MESSAGE_BYTES {
            return Err(MeshError::TooLarge { what: "message", size, limit: config::MAX_MESSAGE_BYTES });
        }
        let message_type = p.message_type.unwrap_or_default();
        self.with_retry(|| async {
            let (view, sender) = self.acting_agent(from, p).await?;
            let plan = plan_send(&view, &sender, to, &body, message_type)?;
            let mut compares = vec![Compare::version(keys::agent(&view.swarm.id, &sender.id), CompareOp::Greater, 0)];
            compares.extend(plan.breaker_updates.iter().map(|(id, _)| {
                Compare::mod_revision(keys::fault(&view.swarm.id, id), CompareOp::Equal, view.fault_rev(id))
            }));
            let breaker_ops =
                plan.breaker_updates.iter().map(|(id, f)| Op::put(keys::fault(&view.swarm.id, id), encode(f)));
            if let Some(refusal) = plan.refusal {
                // A failed delivery is recorded against the recipient's breaker, then reported.
                if plan.breaker_updates.is_empty() {
                    return Err(refusal);
                }
                let resp = self.store().txn(Txn::new().when(compares).and_then(breaker_ops)).await?;
                return if resp.succeeded { Err(refusal) } else { Ok(None) };
            }
            let mut ops = view.heartbeat_ops(&sender);
            ops.extend(breaker_ops);
            ops.extend(plan.messages.iter().map(|m| Op::put(keys::message(&view.swarm.id, &m.to, &m.id), encode(m))));
            let resp = self.store().txn(Txn::new().when(compares).and_then(ops)).await?;
            if resp.succeeded {
                self.metrics().add(&self.metrics().messages_sent, plan.messages.len() as u64);
            }
            Ok(resp.succeeded.then(|| CommunicationOutput {
                action: CommAction::Send,
                delivered: Some(plan.messages.iter().map(delivery).collect()),
                skipped: (to == "all").then(|| plan.skipped.clone()),
                revision: resp.revision,
                ..Default::default()
            }))
        })
        .await
    }

    /// The mailbox in delivery order: commit order of the sends.
    /// The agent's `limit` oldest messages (ids sort in send order: [`MessageId::at`]) and how
    /// many it holds, counted up to [`config::MAX_COUNTED`]: one bounded read, whatever waits.
    pub(crate) async fn mailbox(&self, agent: &AgentRecord, limit: usize) -> Result<Mailbox> {
        let mut req = RangeRequest::prefix(keys::mailbox(&agent.swarm_id, &agent.id));
        (req.limit, req.count_cap) = (limit, config::MAX_COUNTED);
        let resp = self.store().range(req).await?;
        let mut page = resp.kvs;
        // Within a page, commit order breaks ties of one millisecond.
        page.sort_by(|a, b| a.create_revision.cmp(&b.create_revision).then_with(|| a.key.cmp(&b.key)));
        Ok(Mailbox { page, count: resp.count })
    }

    async fn receive(&self, p: &CommunicationParams) -> Result<CommunicationOutput> {
        let owner = required("agentId", &p.agent_id, "receive")?;
        let limit = validate::limit("limit", p.limit, config::DEFAULT_RECEIVE_LIMIT)?;
        let (view, agent) = self.acting_agent(owner, p).await?;
        self.with_retry(|| async {
            let mailbox = self.mailbox(&agent, limit).await?;
            let deliveries = self.deliveries(&keys::mailbox(&agent.swarm_id, &agent.id), &mailbox.page, false).await?;
            let now = self.now_ms();
            let mut compares = Vec::new();
            let mut ops = view.heartbeat_ops(&agent);
            let mut acked_breaker = breaker_success(&view, &agent.id);
            if let Some(f) = acked_breaker.take() {
                compares.push(Compare::mod_revision(
                    keys::fault(&view.swarm.id, &agent.id),
                    CompareOp::Equal,
                    view.fault_rev(&agent.id),
                ));
                ops.push(Op::put(keys::fault(&view.swarm.id, &agent.id), encode(&f)));
            }
            let mut messages = Vec::new();
            let mut budget = Budget::default();
            for kv in &mailbox.page {
                let mut m = deliveries.message(kv)?;
                m.deliveries += 1;
                let first_ms = *m.first_delivered_at_ms.get_or_insert(now);
                let received = ReceivedMessage::of(&m);
                if !budget.admit(&received) {
                    break;
                }
                // The message must still be there; only its small delivery record is written.
                compares.push(Compare::mod_revision(kv.key.clone(), CompareOp::Equal, kv.mod_revision));
                compares.push(deliveries.unchanged(&kv.key));
                let record = DeliveryRecord { count: m.deliveries, first_ms };
                ops.push(Op::put(keys::delivery(&kv.key), encode(&record)));
                messages.push(received);
            }
            let resp = self.store().txn(Txn::new().when(compares).and_then(ops)).await?;
            if resp.succeeded {
                // Delivered = handed out for the first time; redeliveries are not new deliveries.
                let m = self.metrics();
                for first in messages.iter().filter(|m| m.deliveries == 1) {
                    m.add(&m.messages_delivered, 1);
                    m.observe(&m.delivery_latency, (now - first.sent_at_ms).max(0) as f64);
                }
            }
            Ok(resp.succeeded.then(|| CommunicationOutput {
                action: CommAction::Receive,
                remaining: Some(mailbox.count.saturating_sub(messages.len())),
                remaining_at_least: mailbox.capped(),
                messages: Some(messages),
                truncated: budget.truncated(),
                revision: resp.revision,
                ..Default::default()
            }))
        })
        .await
    }

    async fn ack(&self, p: &CommunicationParams) -> Result<CommunicationOutput> {
        let owner = required("agentId", &p.agent_id, "ack")?;
        let ids = required("messageIds", &p.message_ids, "ack")?;
        if ids.is_empty() {
            return Err(MeshError::invalid("messageIds", "must name at least one message"));
        }
        let (view, agent) = self.acting_agent(owner, p).await?;
        let mailbox = self.mailbox(&agent, 0).await?;
        let mut ops = view.heartbeat_ops(&agent);
        let mut compares = Vec::new();
        let mut unique: Vec<&String> = ids.iter().collect();
        unique.sort();
        unique.dedup();
        for id in &unique {
            validate::name("messageIds", id)?;
            let key = keys::message(&agent.swarm_id, &agent.id, &MessageId::new(id.as_str()));
            if store::get(&**self.store(), &key).await?.is_none() {
                return Err(MeshError::not_found("message", format!("{id} (in the mailbox of `{}`)", agent.name)));
            }
            compares.push(Compare::version(key.clone(), CompareOp::Greater, 0));
            ops.push(Op::delete(keys::delivery(&key)));
            ops.push(Op::delete(key));
        }
        let resp = self.store().txn(Txn::new().when(compares).and_then(ops)).await?;
        if !resp.succeeded {
            return Err(MeshError::conflict(
                "mailbox",
                &agent.name,
                "had some of these messages acknowledged concurrently; nothing was changed",
            ));
        }
        self.metrics().add(&self.metrics().messages_acknowledged, unique.len() as u64);
        Ok(CommunicationOutput {
            action: CommAction::Ack,
            acknowledged: Some(unique.len()),
            remaining: Some(mailbox.count.saturating_sub(unique.len())),
            remaining_at_least: mailbox.capped(),
            revision: resp.revision,
            ..Default::default()
        })
    }
}

/// What a send will do, decided from one view.
struct SendPlan {
    messages: Vec<MessageRecord>,
    skipped: Vec<Skipped>,
    /// Recipients whose circuit breaker changes, with the new record.
    breaker_updates: Vec<(AgentId, FaultRecord)>,
    /// Set when a direct send cannot be delivered.
    refusal: Option<MeshError>,
}

fn delivery(m: &MessageRecord) -> Delivery {
    Delivery {
        to: m.to.to_string(),
        message_id: m.id.to_string(),
        hops: m.route.len() - 1,
        route: m.route.iter().map(|a| a.to_string()).collect(),
    }
}

/// The recipient's fault record after a successful delivery or acknowledgement, when that
/// changes its breaker.
fn breaker_success(view: &SwarmView, id: &AgentId) -> Option<FaultRecord> {
    let f = view.fault(id)?;
    if f.breaker.failures == 0 && f.breaker.opened_at_ms.is_none() {
        return None;
    }
    let mut f = f.clone();
    f.breaker.on_success();
    Some(f)
}

fn plan_send(
    view: &SwarmView,
    sender: &AgentRecord,
    to: &str,
    body: &serde_json::Value,
    message_type: MessageType,
) -> Result<SendPlan> {
    let broadcast = to == "all";
    let recipients: Vec<&AgentRecord> = if broadcast {
        view.agents.iter().filter(|a| a.id != sender.id).collect()
    } else {
        let r = view.agent(to).ok_or_else(|| MeshError::not_found("agent", to))?;
        if r.id == sender.id {
            return Err(MeshError::invalid("to", "an agent cannot message itself"));
        }
        vec![r]
    };
    let settings = &view.swarm.settings;
    // The sender has just proven it is alive, whatever its stored heartbeat says.
    let live = view.live();
    let usable = |id: &AgentId| *id == sender.id || live(id);
    let mut plan = SendPlan { messages: Vec::new(), skipped: Vec::new(), breaker_updates: Vec::new(), refusal: None };
    for r in recipients {
        let mut fault = view.fault(&r.id).cloned().unwrap_or_default();
        let before = fault.breaker.clone();
        let admission = fault.breaker.admit(view.now_ms, settings.recovery_ms());
        if let Admission::Reject { until_ms } = admission {
            let why = format!(
                "the circuit breaker of `{}` is open after {} consecutive failed deliveries; it half-opens for one probe in {} ms",
                r.name,
                fault.breaker.failures,
                (until_ms - view.now_ms).max(0)
            );
            if !broadcast {
                plan.refusal = Some(MeshError::CircuitOpen(why));
                return Ok(plan);
            }
            plan.skipped.push(Skipped { to: r.id.to_string(), reason: why });
            continue;
        }
        let Some(route) = view.graph.shortest_path(&sender.id, &r.id, usable) else {
            let why = if live(&r.id) {
                "every path crosses a failed agent or a missing link"
            } else {
                "the recipient is failed"
            };
            fault.breaker.on_failure(view.now_ms, settings.circuit_breaker_threshold);
            plan.breaker_updates.push((r.id.clone(), fault));
            if !broadcast {
                plan.refusal =
                    Some(MeshError::NoRoute { from: sender.name.clone(), to: r.name.clone(), why: why.into() });
                return Ok(plan);
            }
            plan.skipped.push(Skipped { to: r.id.to_string(), reason: format!("no live route: {why}") });
            continue;
        };
        if admission == Admission::Probe || before.failures > 0 {
            fault.breaker.on_success();
            plan.breaker_updates.push((r.id.clone(), fault));
        }
        plan.messages.push(MessageRecord {
            id: MessageId::at(view.now_ms),
            from: sender.id.clone(),
            to: r.id.clone(),
            message_type: message_type.as_str().to_string(),
            payload: body.clone(),
            route,
            sent_at_ms: view.now_ms,
            deliveries: 0,
            first_delivered_at_ms: None,
            broadcast,
        });
    }
    // A broadcast into an otherwise empty swarm reaches nobody, and says so with an empty
    // `delivered`; one whose recipients exist but are all cut off is an error.
    if plan.messages.is_empty() && !plan.skipped.is_empty() {
        plan.refusal = Some(MeshError::NoRoute {
            from: sender.name.clone(),
            to: to.to_string(),
            why: "no other agent is reachable over live links".into(),
        });
    }
    Ok(plan)
}

/// The oldest messages of a mailbox and its size, counted up to [`config::MAX_COUNTED`].
pub(crate) struct Mailbox {
    pub page: Vec<KeyValue>,
    pub count: usize,
}

impl Mailbox {
    /// `Some(true)` when the count reached the cap: the mailbox holds at least that many.
    pub fn capped(&self) -> Option<bool> {
        (self.count >= config::MAX_COUNTED).then_some(true)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use crate::mesh::testing::call;
    use crate::mesh::Engine;
    use crate::store::{memory::MemoryStore, ManualClock};

    /// Messages sent within one millisecond are received in the order they were sent, across
    /// pages: a page is the mailbox's first keys, so ids must sort in send order.
    #[tokio::test]
    async fn one_millisecond_of_messages_is_received_in_send_order_page_by_page() {
        let clock = Arc::new(ManualClock::new(1_000_000));
        let engine = Engine::new(Arc::new(MemoryStore::new(clock.clone())), clock);
        let agents = crate::mesh::testing::swarm_of(&engine, 3600, &["from", "to"]).await;
        let (from, to) = (&agents[0], &agents[1]);
        for n in 0..40 {
            let send = json!({"from": "from", "to": "to", "message": {"n": n}, "agentToken": from["agentToken"]});
            call(&engine, "daa_communication", send).await;
        }
        let mut got = Vec::new();
        for _ in 0..4 {
            let receive = json!({"action": "receive", "agentId": "to", "agentToken": to["agentToken"], "limit": 10});
            let page = call(&engine, "daa_communication", receive).await["messages"].clone();
            let page = page.as_array().unwrap();
            got.extend(page.iter().map(|m| m["message"]["n"].as_i64().unwrap()));
            let ids: Vec<_> = page.iter().map(|m| m["messageId"].clone()).collect();
            let ack = json!({"action": "ack", "agentId": "to", "agentToken": to["agentToken"], "messageIds": ids});
            call(&engine, "daa_communication", ack).await;
        }
        assert_eq!(got, (0..40).collect::<Vec<_>>());
    }
}
