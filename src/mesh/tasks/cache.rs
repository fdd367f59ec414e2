//! The decoded tasks of each swarm, kept between operations in this process and brought up to
//! date from the store's change log (an informer, in Kubernetes terms). Reading and decoding
//! every task record on every operation made a task call cost grow with the swarm's history:
//! 200 ms per placement at 2,000 tasks. Now a call reads only what changed since the last one,
//! whoever wrote it (this process, another server on the same file, the CLI).
//!
//! An operation takes a swarm's board out of the cache ([`BoardGuard`]) and works on it; when it
//! is done, the guard undoes the operation's own changes ([`Board::rollback`]: what it committed
//! comes back through the change log like anyone else's write) and puts the board back. Two
//! operations on one swarm at once: the second finds no board and reads the swarm's tasks in
//! full, as every operation used to. A board whose history was compacted away is read again.

use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use super::assign::Board;
use super::load::ResourceReport;
use crate::error::Result;
use crate::ids::{AgentId, SwarmId, TaskId};
use crate::mesh::follow::{caught_up, Kept, PerSwarm};
use crate::mesh::keys;
use crate::mesh::model::decode;
use crate::store::{EventKind, KeyValue, RangeRequest, Revision, Store};

/// Boards at rest, one per swarm.
#[derive(Default)]
pub(crate) struct BoardCache {
    idle: PerSwarm<Board>,
}

impl Kept for Board {
    fn revision(&self) -> Revision {
        self.revision
    }

    fn is_empty(&self) -> bool {
        self.tasks.is_empty() && self.resources.is_empty()
    }
}

impl BoardCache {
    /// The swarm's tasks as of now: the cached board caught up through the change log, else a
    /// full read.
    pub async fn load(self: &Arc<Self>, store: &dyn Store, swarm: &SwarmId) -> Result<BoardGuard> {
        let prefix = keys::tasks(swarm);
        let board =
            caught_up(self.idle.take(swarm), |board| catch_up(store, &prefix, board), || read(store, &prefix)).await?;
        Ok(BoardGuard { board: Some(board), swarm: swarm.clone(), cache: self.clone() })
    }
}

/// A board taken from the cache for one operation; it goes back when dropped.
pub(crate) struct BoardGuard {
    board: Option<Board>,
    swarm: SwarmId,
    cache: Arc<BoardCache>,
}

impl Deref for BoardGuard {
    type Target = Board;
    fn deref(&self) -> &Board {
        self.board.as_ref().expect("a guard holds its board until dropped")
    }
}

impl DerefMut for BoardGuard {
    fn deref_mut(&mut self) -> &mut Board {
        self.board.as_mut().expect("a guard holds its board until dropped")
    }
}

impl Drop for BoardGuard {
    fn drop(&mut self) {
        if let Some(mut board) = self.board.take() {
            board.rollback();
            self.cache.idle.put(&self.swarm, board);
        }
    }
}

/// Every task of the swarm, with one range read.
async fn read(store: &dyn Store, prefix: &str) -> Result<Board> {
    let resp = store.range(RangeRequest::prefix(prefix)).await?;
    let mut board = Board::new();
    for kv in &resp.kvs {
        put(&mut board, prefix, kv)?;
    }
    board.revision = resp.revision;
    Ok(board)
}

async fn catch_up(store: &dyn Store, prefix: &str, mut board: Board) -> Result<Board> {
    let (events, revision) = store.changes(prefix, board.revision).await?;
    for e in &events {
        match e.kind {
            EventKind::Put => put(&mut board, prefix, &e.kv)?,
            EventKind::Delete => {
                let rest = &e.kv.key[prefix.len()..];
                if let Some(agent) = rest.strip_prefix("load/") {
                    board.resources.remove(&AgentId::new(agent));
                } else if let Some(task) = rest.strip_prefix("task/") {
                    board.remove(&TaskId::new(task));
                }
            }
        }
    }
    board.revision = revision;
    Ok(board)
}

/// One key under the swarm's task prefix: a task, or an agent's resource report.
fn put(board: &mut Board, prefix: &str, kv: &KeyValue) -> Result<()> {
    if let Some(agent) = kv.key[prefix.len()..].strip_prefix("load/") {
        let r: ResourceReport = decode(kv)?;
        board.resources.insert(AgentId::new(agent), r.utilization);
    } else {
        board.insert(decode(kv)?, kv.mod_revision, kv.create_revision);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::{json, Value};

    use super::*;
    use crate::mesh::testing::{params, two_processes};
    use crate::mesh::Engine;

    /// What a fresh read of the swarm's tasks gives, to compare the cached board with.
    async fn fresh(engine: &Engine, swarm: &SwarmId) -> Value {
        Arc::new(BoardCache::default()).load(&**engine.store(), swarm).await.unwrap().fingerprint()
    }

    /// Two engines on one SQLite file stand in for two server processes: each keeps its own
    /// cache, and each one's board follows the other's writes, deletions and its own failed
    /// (rolled back) operations.
    #[tokio::test]
    async fn a_cached_board_always_equals_a_fresh_read() {
        let (_dir, _clock, a, b) = two_processes();
        a.swarm_init(params(json!({"topology": "mesh", "swarmId": "s", "membership": "open"}))).await.unwrap();
        let swarm = SwarmId::new("s");
        let mut agents = Vec::new();
        for i in 0..3 {
            agents.push(
                a.agent_spawn(params(json!({"type": "coder", "name": format!("a{i}"), "capabilities": ["rust"]})))
                    .await
                    .unwrap(),
            );
        }
        let first = a
            .task_orchestrate(params(json!({"task": "one", "taskId": "t1", "requiredCapabilities": ["rust"]})))
            .await
            .unwrap();
        assert_eq!(a.load_board(&swarm).await.unwrap().fingerprint(), fresh(&a, &swarm).await);
        // The other process writes: a task, a claim, a resource report.
        b.task_orchestrate(params(json!({"task": "two", "taskId": "t2", "dependencies": ["t1"]}))).await.unwrap();
        let owner = first.assigned[0].agent_id.clone();
        let token = &agents.iter().find(|x| x.agent_id == owner).unwrap().agent_token;
        b.task_orchestrate(params(json!({"action": "claim", "taskId": "t1", "agentId": owner, "agentToken": token})))
            .await
            .unwrap();
        b.task_orchestrate(params(
            json!({"action": "report", "agentId": owner, "agentToken": token, "resourceUtilization": 0.5}),
        ))
        .await
        .unwrap();
        let cached = a.load_board(&swarm).await.unwrap().fingerprint();
        assert_eq!(cached, fresh(&a, &swarm).await);
        assert_eq!(cached["tasks"].as_array().unwrap().len(), 2, "{cached}");
        assert_eq!(cached["resources"][&owner], 0.5);
        // An operation that fails after changing its board leaves the cache as the store is.
        {
            let mut board = a.load_board(&swarm).await.unwrap();
            let mut t = board.tasks[&TaskId::new("t1")].clone();
            t.assignee = None;
            board.set(t);
        }
        let wrong = a
            .task_orchestrate(params(
                json!({"action": "complete", "taskId": "t1", "agentId": owner, "agentToken": token, "fencingToken": 1}),
            ))
            .await;
        assert!(wrong.is_err(), "a stale fencing token is refused");
        assert_eq!(a.load_board(&swarm).await.unwrap().fingerprint(), fresh(&a, &swarm).await);
        // Completing t1 makes t2 ready and places it: both through the change log for `b`.
        let claimed = b.task_orchestrate(params(json!({"action": "status", "taskId": "t1"}))).await.unwrap();
        a.task_orchestrate(params(json!({"action": "complete", "taskId": "t1", "agentId": owner, "agentToken": token, "fencingToken": claimed.revision, "result": 1})))
            .await
            .unwrap();
        let seen_by_b = b.load_board(&swarm).await.unwrap().fingerprint();
        assert_eq!(seen_by_b, fresh(&b, &swarm).await);
        assert_eq!(seen_by_b["tasks"][1]["state"], "assigned", "{seen_by_b}");
        // Deleting the swarm's tasks empties the cached board.
        a.store()
            .txn(crate::store::Txn::new().and_then([crate::store::Op::delete_prefix(keys::tasks(&swarm))]))
            .await
            .unwrap();
        let emptied = b.load_board(&swarm).await.unwrap().fingerprint();
        assert_eq!(emptied, fresh(&b, &swarm).await);
        assert_eq!(emptied["tasks"], json!([]));
        assert_eq!(emptied["active"], json!({}));
    }
}
