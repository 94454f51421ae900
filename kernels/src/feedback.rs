//! Error feedback: what quantization dropped this round is sent in a later one.

use rayon::prelude::*;

use crate::block::Op;
use crate::{Backend, KernelError, QuantConfig, QuantizedBlob, cpu};

/// Error feedback kept by a sender between rounds: the residual not yet sent.
///
/// Over many rounds the sum of what was sent stays within one quantum of the sum of
/// the inputs, instead of drifting by each round's rounding error.
#[derive(Clone, Debug, PartialEq)]
pub struct ErrorFeedback {
    residual: Vec<f32>,
}

impl ErrorFeedback {
    /// A zero residual for tensors of `len` values.
    pub fn new(len: usize) -> Self {
        ErrorFeedback {
            residual: vec![0.0; len],
        }
    }

    /// Restores a saved residual.
    pub fn from_residual(residual: Vec<f32>) -> Self {
        ErrorFeedback { residual }
    }

    /// Quantizes delta + residual, keeps (delta + residual) − dequantized as the new residual.
    ///
    /// On error the residual is unchanged.
    pub fn compress(
        &mut self,
        delta: &[f32],
        cfg: QuantConfig,
        seed: u64,
    ) -> Result<QuantizedBlob, KernelError> {
        self.compress_on(&Backend::Cpu, delta, cfg, seed)
    }

    /// [`Self::compress`] with the quantization on `backend` (a GPU's kernels give the
    /// CPU's bytes, so the blob and the residual are the same on either).
    pub fn compress_on(
        &mut self,
        backend: &Backend,
        delta: &[f32],
        cfg: QuantConfig,
        seed: u64,
    ) -> Result<QuantizedBlob, KernelError> {
        if delta.len() != self.residual.len() {
            return Err(KernelError::LengthMismatch {
                expected: self.residual.len(),
                got: delta.len(),
            });
        }
        let mut input = vec![0f32; delta.len()];
        let sum = |((x, d), r): ((&mut f32, &f32), &f32)| *x = d + r;
        if delta.len() < cpu::PARALLEL_MIN {
            input
                .iter_mut()
                .zip(delta)
                .zip(&self.residual)
                .for_each(sum);
        } else {
            input
                .par_iter_mut()
                .zip(delta)
                .zip(&self.residual)
                .for_each(sum);
        }
        let blob = backend.quantize(&input, cfg, seed)?;
        // What was not sent: input − q·scale, rounded once, in place.
        cpu::for_each_chunk(&blob, &mut input, Op::Subtract);
        self.residual = input;
        Ok(blob)
    }

    /// What has been dropped so far and not yet sent.
    pub fn residual(&self) -> &[f32] {
        &self.residual
    }

    /// The residual, to save it.
    pub fn into_residual(self) -> Vec<f32> {
        self.residual
    }
}
