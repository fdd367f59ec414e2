//! The decision log: every decision appended under the next sequence, in the same transaction
//! as the proposal update, with a compare on the sequence key so that deciders in several
//! processes never reuse a sequence.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::proposal::Protocol;
use super::vote::{Outcome, VoteValue};
use crate::error::Result;
use crate::ids::SwarmId;
use crate::mesh::model::{decode, encode};
use crate::mesh::{keys, Engine};
use crate::store::{self, Compare, CompareOp, KeyValue, Op, RangeRequest, Revision};

/// One decision, as the log keeps it.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LogEntry {
    pub sequence: i64,
    pub proposal_id: String,
    pub proposal: Value,
    pub protocol: Protocol,
    pub outcome: Outcome,
    /// Each voter's counted vote (Byzantine voters' votes are discarded).
    pub votes: BTreeMap<String, VoteValue>,
    pub reason: String,
    pub decided_at_ms: i64,
}

/// The last sequence and the revision of the key holding it.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogHead {
    pub last: i64,
    pub rev: Revision,
    /// The revision that created the sequence key: which log of the swarm's id this is.
    pub created: Revision,
}

impl LogHead {
    /// The compare and writes that append `entry` (whose sequence must be `last + 1`).
    pub fn append(&self, swarm: &SwarmId, entry: &LogEntry) -> (Compare, [Op; 2]) {
        debug_assert_eq!(entry.sequence, self.last + 1);
        (
            Compare::mod_revision(keys::decision_seq(swarm), CompareOp::Equal, self.rev),
            [
                Op::put(keys::decision(swarm, entry.sequence), encode(entry)),
                Op::put(keys::decision_seq(swarm), encode(&entry.sequence)),
            ],
        )
    }
}

impl Engine {
    pub(crate) async fn log_head(&self, swarm: &SwarmId) -> Result<LogHead> {
        Ok(match store::get(&**self.store(), &keys::decision_seq(swarm)).await? {
            Some(kv) => LogHead { last: decode(&kv)?, rev: kv.mod_revision, created: kv.create_revision },
            None => LogHead::default(),
        })
    }

    /// The sequence of the first decision committed after store revision `since` (`head.last +
    /// 1` when none was). Entries are appended in sequence order, so their revisions grow with
    /// it: a search reads about log2(n) entries, not the log.
    pub(crate) async fn first_decision_after(&self, swarm: &SwarmId, since: Revision, head: &LogHead) -> Result<i64> {
        let (mut low, mut high) = (1, head.last + 1);
        while low < high {
            let mid = low + (high - low) / 2;
            match store::get(&**self.store(), &keys::decision(swarm, mid)).await? {
                Some(kv) if kv.mod_revision > since => high = mid,
                _ => low = mid + 1,
            }
        }
        Ok(low)
    }

    /// Decisions with sequence in `(after, upto]`, oldest first.
    pub(crate) async fn decisions_between(&self, swarm: &SwarmId, after: i64, upto: i64) -> Result<Vec<LogEntry>> {
        self.decision_kvs_between(swarm, after, upto).await?.iter().map(decode).collect()
    }

    /// The records of the decisions with sequence in `(after, upto]`, oldest first.
    pub(crate) async fn decision_kvs_between(&self, swarm: &SwarmId, after: i64, upto: i64) -> Result<Vec<KeyValue>> {
        if upto <= after {
            return Ok(Vec::new());
        }
        let end = keys::decision(swarm, upto).to_string() + "\0";
        let req = RangeRequest { start: keys::decision(swarm, after + 1), end: Some(end), ..Default::default() };
        Ok(self.store().range(req).await?.kvs)
    }

    /// The newest `limit` decisions, newest first.
    /// The newest `limit` decisions, newest first; with `before`, the newest of those older than it.
    pub(crate) async fn recent_decisions(
        &self,
        swarm: &SwarmId,
        limit: usize,
        before: Option<i64>,
    ) -> Result<Vec<LogEntry>> {
        let head = self.log_head(swarm).await?;
        let upto = before.map_or(head.last, |b| (b - 1).min(head.last));
        let mut entries = self.decisions_between(swarm, (upto - limit as i64).max(0), upto).await?;
        entries.reverse();
        Ok(entries)
    }
}
