//! The learning half of crowdtrain: a nanoGPT-style model in candle, trained in
//! DiLoCo rounds (inner AdamW, compressed pseudo-gradients, outer Nesterov step) with
//! canonical, hash-addressed checkpoints, plus a simulator that compares it with
//! synchronous data-parallel training over the same tokens.

pub mod adamw;
pub mod assignment;
pub mod audit;
pub mod chain;
pub mod checkpoint;
pub mod clip;
pub mod config;
pub mod data;
pub mod model;
pub mod outer;
pub mod provider;
pub mod replay;
pub mod report;
pub mod round;
pub mod seeds;
mod simd;
pub mod simulate;
pub mod spec;
pub mod swarm;
pub mod train;

pub use config::{InnerConfig, ModelConfig, OuterConfig, RunConfig};
pub use model::Gpt;
pub use spec::RunSpec;

/// Everything that can go wrong in the agent library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A tensor operation failed.
    #[error("tensor: {0}")]
    Candle(#[from] candle_core::Error),
    /// A safetensors file could not be written or read.
    #[error("safetensors: {0}")]
    Safetensors(#[from] safetensors::SafeTensorError),
    /// Compression failed.
    #[error("compression: {0}")]
    Kernel(#[from] crowdtrain_kernels::KernelError),
    /// Sizes disagree (model vs vector, sequence vs block size, ...).
    #[error("shape: {0}")]
    Shape(String),
    /// The corpus could not be loaded.
    #[error("corpus: {0}")]
    Corpus(String),
    /// A checkpoint's bytes do not hash to what was asked for.
    #[error("checkpoint hash mismatch: expected {expected}, file hashes to {actual}")]
    CheckpointHash {
        /// The hash that was asked for.
        expected: crowdtrain_protocol::Hash32,
        /// The hash of the bytes found.
        actual: crowdtrain_protocol::Hash32,
    },
    /// A checkpoint file is malformed.
    #[error("checkpoint: {0}")]
    Checkpoint(String),
    /// No usable blob arrived for a round.
    #[error("round {round}: no valid pseudo-gradient to aggregate")]
    NoBlobs {
        /// The round.
        round: u64,
    },
    /// The round's arithmetic left the finite range: the round is refused, never saved.
    #[error("round {round}: {what} is not finite; the round is refused")]
    NonFinite {
        /// The round.
        round: u64,
        /// Which value, e.g. "parameter 17 of the new checkpoint".
        what: String,
    },
    /// The loss plot could not be drawn.
    #[error("plot: {0}")]
    Plot(String),
    /// The requested device cannot be used.
    #[error("device: {0}")]
    Device(String),
    /// Reading or writing a file failed.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

/// The library's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
