//! The caller's side of a long operation: a cancellation token and, when the caller wants it, a
//! sink for progress. The MCP handler fills it from the request (`_meta.progressToken`,
//! `notifications/cancelled`); the CLI passes [`CallContext::default`] (never cancelled, no
//! progress). The engine knows nothing of MCP: it reports through [`ProgressSink`].

use std::sync::Arc;

use futures::future::BoxFuture;
use tokio_util::sync::CancellationToken;

/// Where progress goes. `progress` grows with every report; `total` is known for bounded work.
pub trait ProgressSink: Send + Sync {
    fn report(&self, progress: f64, total: Option<f64>, message: String) -> BoxFuture<'_, ()>;
}

#[derive(Clone, Default)]
pub struct CallContext {
    /// Cancelled when the caller gives up (the client cancels the request or the session ends).
    pub cancel: CancellationToken,
    pub progress: Option<Arc<dyn ProgressSink>>,
}

impl CallContext {
    pub async fn report(&self, progress: f64, total: Option<f64>, message: impl Into<String>) {
        if let Some(sink) = &self.progress {
            sink.report(progress, total, message.into()).await;
        }
    }
}
