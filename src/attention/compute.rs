//! What a process computes with: the embedder chosen at start-up (`--embedding-model DIR`, else
//! the built-in lexical one) and the device attention runs on (`--device`).

use std::path::PathBuf;
use std::sync::Arc;

use super::{ComputeDevice, Embedder, HashedNgramEmbedder, MiniLmEmbedder};
use crate::error::Result;

/// Start-up choices, from the command line or the environment.
#[derive(Debug, Clone, Default)]
pub struct ComputeOptions {
    /// A directory holding a sentence-embedding model (safetensors, config, tokenizer).
    pub embedding_model: Option<PathBuf>,
    pub device: ComputeDevice,
}

/// The embedder and device every embedding-dependent tool of one process uses.
#[derive(Clone)]
pub struct Compute {
    pub embedder: Arc<dyn Embedder>,
    pub device: ComputeDevice,
}

impl Default for Compute {
    /// The offline default: the lexical hashed embedder on the CPU.
    fn default() -> Self {
        Self { embedder: Arc::new(HashedNgramEmbedder::new()), device: ComputeDevice::Cpu }
    }
}

impl Compute {
    /// Load what `opts` asks for. A model that cannot be loaded is an error, never a silent
    /// fallback to the lexical embedder.
    pub fn load(opts: &ComputeOptions) -> Result<Self> {
        let embedder: Arc<dyn Embedder> = match &opts.embedding_model {
            None => Arc::new(HashedNgramEmbedder::new()),
            Some(dir) => {
                let started = std::time::Instant::now();
                let model = MiniLmEmbedder::load(dir, opts.device)?;
                tracing::info!(
                    embedder = model.name(),
                    dim = model.dim(),
                    device = %opts.device,
                    load_ms = started.elapsed().as_secs_f64() * 1e3,
                    "loaded the sentence-embedding model from {}",
                    dir.display()
                );
                Arc::new(model)
            }
        };
        Ok(Self { embedder, device: opts.device })
    }
}
