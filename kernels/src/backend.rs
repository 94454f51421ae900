//! Choosing where the kernels run: the GPU when one is found, the CPU otherwise.
//! Both give the same bytes, so the choice never changes a blob hash.

#[cfg(feature = "cuda")]
use crate::cuda::CudaQuantizer;
use crate::{KernelError, QuantConfig, QuantizedBlob};

/// Where quantization runs.
#[derive(Debug)]
pub enum Backend {
    /// The CPU reference (all cores through rayon).
    Cpu,
    /// CUDA kernels compiled for the GPU found.
    #[cfg(feature = "cuda")]
    Cuda(CudaQuantizer),
}

impl Backend {
    /// The GPU if one is usable here, else the CPU (the reason is logged).
    pub fn detect() -> Self {
        #[cfg(feature = "cuda")]
        match CudaQuantizer::new() {
            Ok(gpu) => return Backend::Cuda(gpu),
            Err(why) => tracing::info!(%why, "quantizing on the CPU"),
        }
        Backend::Cpu
    }

    /// "cpu" or "cuda".
    pub fn name(&self) -> &'static str {
        match self {
            Backend::Cpu => "cpu",
            #[cfg(feature = "cuda")]
            Backend::Cuda(_) => "cuda",
        }
    }

    /// [`crate::quantize`] on this backend.
    pub fn quantize(
        &self,
        input: &[f32],
        cfg: QuantConfig,
        seed: u64,
    ) -> Result<QuantizedBlob, KernelError> {
        match self {
            Backend::Cpu => crate::quantize(input, cfg, seed),
            #[cfg(feature = "cuda")]
            Backend::Cuda(gpu) => gpu.quantize(input, cfg, seed),
        }
    }

    /// [`crate::dequantize_accumulate`] on this backend.
    pub fn dequantize_accumulate(
        &self,
        blob: &QuantizedBlob,
        acc: &mut [f32],
    ) -> Result<(), KernelError> {
        match self {
            Backend::Cpu => crate::dequantize_accumulate(blob, acc),
            #[cfg(feature = "cuda")]
            Backend::Cuda(gpu) => gpu.dequantize_accumulate(blob, acc),
        }
    }
}
