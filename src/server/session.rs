//! The agent one MCP session acts as, over the session's life (issue 15). A session is bound at
//! most once: when it starts (a stdio process started with `MESH_AGENT_TOKEN`, an HTTP session
//! whose `initialize` carries the `Mesh-Agent-Token` header) or later by `agent_spawn` with
//! `join`. From then on the session holds the agent's presence ([`Binding::keep_alive`]), and
//! when the session ends the agent goes offline, unless its client vanished first (an HTTP
//! session left to be reaped): then its lease runs out and it fails, as a killed process does.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rmcp::{Peer, RoleServer};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::binding::Binding;
use super::channel;
use super::http::attendance::Attendance;
use crate::error::{MeshError, Result};
use crate::mesh::Engine;

/// What a transport gives the sessions it serves for holding presence: where the presence
/// tasks run (so shutdown can wait for agents to go offline) and, for HTTP, whether a session's
/// client is still there.
#[derive(Clone, Default)]
pub struct Presence {
    tasks: TaskTracker,
    attendance: Option<Arc<Attendance>>,
}

impl Presence {
    /// Presence for HTTP sessions, held while `attendance` sees their clients.
    pub fn http(attendance: Arc<Attendance>) -> Self {
        Self { tasks: TaskTracker::new(), attendance: Some(attendance) }
    }

    pub fn attendance(&self) -> Option<Arc<Attendance>> {
        self.attendance.clone()
    }

    /// Wait, at most `grace`, for every ended session's agent to go offline.
    pub async fn drain(&self, grace: Duration) {
        self.tasks.close();
        if tokio::time::timeout(grace, self.tasks.wait()).await.is_err() {
            tracing::warn!("agents of ended sessions still going offline after {grace:?}; exiting anyway");
        }
    }
}

/// Whether the client of one session is still there, for its presence task.
#[derive(Clone)]
pub struct Watch {
    attendance: Option<Arc<Attendance>>,
    session: Arc<OnceLock<String>>,
}

impl Watch {
    /// A process's one session is there while the process runs; an HTTP session while its
    /// client shows life within `window`.
    pub fn attended(&self, window: Duration) -> bool {
        self.attendance.as_ref().is_none_or(|a| a.attended(self.session.get().map(String::as_str), window))
    }

    /// Whether the session ended as its client asked (HTTP `DELETE`), or while attended.
    pub fn ended_cleanly(&self, window: Duration) -> bool {
        let id = self.session.get().map(String::as_str);
        self.attendance.as_ref().is_none_or(|a| a.deleted(id) || a.attended(id, window))
    }

    pub fn forget(&self) {
        if let (Some(attendance), Some(id)) = (&self.attendance, self.session.get()) {
            attendance.forget(id);
        }
    }
}

/// The agent one session acts as, if any, and the presence it holds.
pub struct SessionAgent {
    engine: Engine,
    presence: Presence,
    bound: OnceLock<Arc<Binding>>,
    /// The HTTP session id, learned from the first request that carries it.
    session: Arc<OnceLock<String>>,
    /// The client, once the session is initialized (for channel pushes).
    peer: OnceLock<Peer<RoleServer>>,
    pushing: AtomicBool,
    stop: CancellationToken,
}

impl SessionAgent {
    pub fn new(engine: Engine, presence: Presence) -> Self {
        Self {
            engine,
            presence,
            bound: OnceLock::new(),
            session: Arc::default(),
            peer: OnceLock::new(),
            pushing: AtomicBool::new(false),
            stop: CancellationToken::new(),
        }
    }

    fn watch(&self) -> Watch {
        Watch { attendance: self.presence.attendance.clone(), session: self.session.clone() }
    }

    pub fn binding(&self) -> Option<&Arc<Binding>> {
        self.bound.get()
    }

    /// Note the HTTP session id of this session (the first one seen wins).
    pub fn learn_session(&self, id: &str) {
        let _ = self.session.set(id.to_string());
    }

    /// Bind this session to `binding`'s agent and hold its presence from now on. A session
    /// already bound stays as it is.
    pub fn bind(&self, binding: Binding) -> Result<Arc<Binding>> {
        let binding = Arc::new(binding);
        if self.bound.set(binding.clone()).is_err() {
            let held = self.bound.get().map_or("", |b| b.name.as_str());
            return Err(MeshError::conflict("session", "this", format!("already acts as agent `{held}`")));
        }
        let watch = self.watch();
        let (engine, stop, held) = (self.engine.clone(), self.stop.clone(), binding.clone());
        self.presence.tasks.spawn(async move { held.keep_alive(engine, stop, watch).await });
        self.start_pushing();
        Ok(binding)
    }

    /// Note the session's client, once it is initialized.
    pub fn attach_peer(&self, peer: Peer<RoleServer>) {
        let _ = self.peer.set(peer);
        self.start_pushing();
    }

    /// Once the session is both bound and initialized, push its agent's arrivals to a client
    /// that reads channels (see [`channel`]).
    fn start_pushing(&self) {
        let (Some(binding), Some(peer)) = (self.bound.get(), self.peer.get()) else { return };
        if !channel::reads_channels(peer) || self.pushing.swap(true, Ordering::SeqCst) {
            return;
        }
        let push = channel::push(self.engine.clone(), binding.clone(), peer.clone(), self.stop.clone());
        self.presence.tasks.spawn(push);
    }

    /// End this session's presence now and wait until its agent is offline (a process that is
    /// about to exit; HTTP sessions end on drop and are waited for by [`Presence::drain`]).
    pub async fn close(&self) {
        self.stop.cancel();
        self.presence.drain(Duration::from_secs(10)).await;
    }
}

impl Drop for SessionAgent {
    fn drop(&mut self) {
        self.stop.cancel();
        // A bound session's presence task forgets its attendance when it is done with it.
        if self.bound.get().is_none() {
            self.watch().forget();
        }
    }
}
