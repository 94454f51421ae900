//! Compressing pseudo-gradients: blockwise int8 / int4 quantization with a deterministic
//! CPU reference, a versioned wire format with its sha256, and error feedback.
//!
//! The bytes are a pure function of (input, config, seed): the same on every machine,
//! every thread count and every backend. The exact arithmetic is written down in
//! [`block`]'s module docs; the wire layout in [`blob`]'s.

#![warn(missing_docs)]

mod backend;
pub mod blob;
pub mod block;
mod chunk;
mod config;
mod cpu;
#[cfg(feature = "cuda")]
pub mod cuda;
mod error;
mod feedback;
mod stochastic;

pub use backend::Backend;
pub use blob::QuantizedBlob;
pub use config::{BLOCK_ALIGN, Bits, MAX_BLOCK, QuantConfig};
pub use cpu::{
    dequantize, dequantize_accumulate, dequantize_accumulate_all, quantize, quantize_into,
};
pub use error::KernelError;
pub use feedback::ErrorFeedback;
