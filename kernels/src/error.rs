//! The one error type of the crate: every way an input or a blob can be refused.

/// Why a kernel refused its input; never a panic, never a silent zero.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum KernelError {
    /// The input holds NaN or ±Inf; `index` is the first such element.
    #[error("input element {index} is not finite (NaN or Inf)")]
    NonFinite {
        /// Index of the first non-finite element.
        index: usize,
    },
    /// Two buffers that must have the same length do not.
    #[error("length mismatch: expected {expected} values, got {got}")]
    LengthMismatch {
        /// The length required (by the blob or the residual).
        expected: usize,
        /// The length that was passed.
        got: usize,
    },
    /// A wire blob is truncated or inconsistent; the text says what is wrong.
    #[error("malformed quantized blob: {0}")]
    Malformed(String),
    /// A `QuantConfig` that the kernels do not support.
    #[error("invalid quantization config: {0}")]
    InvalidConfig(String),
    /// The CUDA backend is unavailable or a driver call failed; the text says which.
    #[error("CUDA backend: {0}")]
    Cuda(String),
}
