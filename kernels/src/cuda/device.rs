//! Running the kernels on a GPU: compile for the device found, upload, launch, download.

use std::sync::Arc;

use cudarc::driver::{
    CudaContext, CudaFunction, CudaSlice, CudaStream, LaunchConfig, PushKernelArg,
};
use cudarc::nvrtc::Ptx;

use crate::{Bits, KernelError, QuantConfig, QuantizedBlob};

/// Threads per CUDA block: 8 warps, each quantizing one block of values.
const THREADS: u32 = 256;

/// Most CUDA blocks a grid-stride dequantize launch uses.
const MAX_GRID: u64 = 1 << 16;

/// The compiled kernels on one GPU, with the stream they run on.
#[derive(Debug)]
pub struct CudaQuantizer {
    stream: Arc<CudaStream>,
    quantize_int8: CudaFunction,
    quantize_int4: CudaFunction,
    dequantize_int8: CudaFunction,
    dequantize_int4: CudaFunction,
}

/// A driver or compiler failure as a `KernelError`.
fn cuda_err(what: &str) -> impl Fn(cudarc::driver::DriverError) -> KernelError + '_ {
    move |e| KernelError::Cuda(format!("{what}: {e}"))
}

/// Refuses a device buffer shorter than a kernel will index.
fn at_least(needed: usize, got: usize) -> Result<(), KernelError> {
    if got < needed {
        return Err(KernelError::LengthMismatch {
            expected: needed,
            got,
        });
    }
    Ok(())
}

impl CudaQuantizer {
    /// Opens GPU 0 and compiles every kernel for its architecture with NVRTC.
    pub fn new() -> Result<Self, KernelError> {
        if let Some(why) = super::unavailable_reason() {
            return Err(KernelError::Cuda(why));
        }
        let ctx = CudaContext::new(0).map_err(cuda_err("opening GPU 0"))?;
        let (major, minor) = ctx
            .compute_capability()
            .map_err(cuda_err("reading the compute capability"))?;
        let arch = format!("{major}{minor}");
        let mut functions = Vec::new();
        for (file, source, kernels) in super::SOURCES {
            let ptx = super::compile_ptx(source, &arch).map_err(|log| {
                KernelError::Cuda(format!("NVRTC failed on {file} for compute_{arch}:\n{log}"))
            })?;
            let module = ctx
                .load_module(Ptx::from_src(ptx))
                .map_err(cuda_err("loading the PTX"))?;
            for name in *kernels {
                functions.push(
                    module
                        .load_function(name)
                        .map_err(cuda_err("finding a kernel"))?,
                );
            }
        }
        tracing::info!(gpu = ?ctx.name().ok(), arch, "CUDA kernels compiled");
        let mut f = functions.into_iter();
        let mut next = || f.next().expect("SOURCES lists four kernels");
        Ok(CudaQuantizer {
            stream: ctx.default_stream(),
            quantize_int8: next(),
            quantize_int4: next(),
            dequantize_int8: next(),
            dequantize_int4: next(),
        })
    }

    /// The GPU's name, as the driver reports it.
    pub fn device_name(&self) -> String {
        self.stream
            .context()
            .name()
            .unwrap_or_else(|e| format!("unknown GPU ({e})"))
    }

    /// Peak memory bandwidth in bytes/s: memory clock × 2 (double data rate) × bus width.
    pub fn peak_memory_bandwidth(&self) -> Result<f64, KernelError> {
        use cudarc::driver::sys::CUdevice_attribute as A;
        let ctx = self.stream.context();
        let clock_khz = ctx
            .attribute(A::CU_DEVICE_ATTRIBUTE_MEMORY_CLOCK_RATE)
            .map_err(cuda_err("memory clock"))?;
        let bus_bits = ctx
            .attribute(A::CU_DEVICE_ATTRIBUTE_GLOBAL_MEMORY_BUS_WIDTH)
            .map_err(cuda_err("bus width"))?;
        Ok(f64::from(clock_khz) * 1e3 * 2.0 * f64::from(bus_bits) / 8.0)
    }

    /// The stream every launch goes to (to allocate device buffers for it).
    pub fn stream(&self) -> &Arc<CudaStream> {
        &self.stream
    }

    /// Same bytes as [`crate::quantize`], computed on the GPU.
    pub fn quantize(
        &self,
        input: &[f32],
        cfg: QuantConfig,
        seed: u64,
    ) -> Result<QuantizedBlob, KernelError> {
        cfg.validate()?;
        if input.is_empty() {
            return crate::quantize(input, cfg, seed);
        }
        let x = self
            .stream
            .clone_htod(input)
            .map_err(cuda_err("uploading the input"))?;
        let (scales, data) = self.quantize_device(&x, cfg, seed)?;
        let scales = self
            .stream
            .clone_dtoh(&scales)
            .map_err(cuda_err("downloading the scales"))?;
        let data = self
            .stream
            .clone_dtoh(&data)
            .map_err(cuda_err("downloading the values"))?;
        Ok(QuantizedBlob::from_parts(cfg, input.len(), scales, data))
    }

    /// Quantizes device memory into new device buffers (scales, packed values).
    pub fn quantize_device(
        &self,
        x: &CudaSlice<f32>,
        cfg: QuantConfig,
        seed: u64,
    ) -> Result<(CudaSlice<f32>, CudaSlice<u8>), KernelError> {
        cfg.validate()?;
        let n = x.len();
        let s = &self.stream;
        let mut scales = s
            .alloc_zeros::<f32>(cfg.blocks(n).max(1))
            .map_err(cuda_err("allocating scales"))?;
        let mut data = s
            .alloc_zeros::<u8>(cfg.bits.data_len(n).max(1))
            .map_err(cuda_err("allocating values"))?;
        let mut bad = s
            .clone_htod(&[u64::MAX])
            .map_err(cuda_err("allocating the error flag"))?;
        self.launch_quantize(x, cfg, seed, &mut scales, &mut data, &mut bad)?;
        let bad = s
            .clone_dtoh(&bad)
            .map_err(cuda_err("reading the error flag"))?[0];
        if bad != u64::MAX {
            return Err(KernelError::NonFinite {
                index: bad as usize,
            });
        }
        Ok((scales, data))
    }

    /// Queues quantization of `x` into caller-owned buffers without waiting for it.
    ///
    /// `bad` must hold `u64::MAX`; afterwards it holds the index of the first non-finite
    /// input, if any. Buffers too small for `x` are refused.
    pub fn launch_quantize(
        &self,
        x: &CudaSlice<f32>,
        cfg: QuantConfig,
        seed: u64,
        scales: &mut CudaSlice<f32>,
        data: &mut CudaSlice<u8>,
        bad: &mut CudaSlice<u64>,
    ) -> Result<(), KernelError> {
        cfg.validate()?;
        let n = x.len();
        at_least(cfg.blocks(n), scales.len())?;
        at_least(cfg.bits.data_len(n), data.len())?;
        at_least(1, bad.len())?;
        let warps_per_cta = u64::from(THREADS / 32);
        let grid = (cfg.blocks(n) as u64).div_ceil(warps_per_cta).max(1);
        let launch = LaunchConfig {
            grid_dim: (
                u32::try_from(grid).map_err(|_| KernelError::Cuda("input too large".into()))?,
                1,
                1,
            ),
            block_dim: (THREADS, 1, 1),
            shared_mem_bytes: 0,
        };
        let (n64, block) = (n as u64, cfg.block as u32);
        let mut args = match cfg.bits {
            Bits::Int8 => self.stream.launch_builder(&self.quantize_int8),
            Bits::Int4 => self.stream.launch_builder(&self.quantize_int4),
        };
        args.arg(x).arg(&n64).arg(&block);
        if cfg.bits == Bits::Int4 {
            args.arg(&seed);
        }
        args.arg(scales).arg(data).arg(bad);
        // SAFETY: the argument list matches the kernel's signature in cuda/quantize.cu,
        // and every buffer was checked above to hold what the kernel indexes.
        unsafe { args.launch(launch) }.map_err(cuda_err("launching quantize"))?;
        Ok(())
    }

    /// Same bits as [`crate::dequantize_accumulate`], computed on the GPU.
    pub fn dequantize_accumulate(
        &self,
        blob: &QuantizedBlob,
        acc: &mut [f32],
    ) -> Result<(), KernelError> {
        if acc.len() != blob.len() {
            return Err(KernelError::LengthMismatch {
                expected: blob.len(),
                got: acc.len(),
            });
        }
        if blob.is_empty() {
            return Ok(());
        }
        let s = &self.stream;
        let scales = s
            .clone_htod(blob.scales())
            .map_err(cuda_err("uploading scales"))?;
        let data = s
            .clone_htod(blob.data())
            .map_err(cuda_err("uploading values"))?;
        let mut out = s.clone_htod(acc).map_err(cuda_err("uploading the sum"))?;
        self.dequantize_device(blob.config(), &scales, &data, &mut out, true)?;
        s.memcpy_dtoh(&out, acc)
            .map_err(cuda_err("downloading the sum"))
    }

    /// Dequantizes device buffers into `out` (`acc`: adds to it) on the GPU.
    pub fn dequantize_device(
        &self,
        cfg: QuantConfig,
        scales: &CudaSlice<f32>,
        data: &CudaSlice<u8>,
        out: &mut CudaSlice<f32>,
        acc: bool,
    ) -> Result<(), KernelError> {
        cfg.validate()?;
        at_least(cfg.blocks(out.len()), scales.len())?;
        at_least(cfg.bits.data_len(out.len()), data.len())?;
        let n = out.len() as u64;
        let per_thread = match cfg.bits {
            Bits::Int8 => 4,
            Bits::Int4 => 8,
        };
        let grid = n
            .div_ceil(u64::from(THREADS) * per_thread)
            .clamp(1, MAX_GRID) as u32;
        let launch = LaunchConfig {
            grid_dim: (grid, 1, 1),
            block_dim: (THREADS, 1, 1),
            shared_mem_bytes: 0,
        };
        let (block, acc) = (cfg.block as u32, i32::from(acc));
        let mut args = match cfg.bits {
            Bits::Int8 => self.stream.launch_builder(&self.dequantize_int8),
            Bits::Int4 => self.stream.launch_builder(&self.dequantize_int4),
        };
        args.arg(data)
            .arg(scales)
            .arg(&n)
            .arg(&block)
            .arg(out)
            .arg(&acc);
        // SAFETY: matches cuda/dequantize.cu; the buffers were checked above to hold n values.
        unsafe { args.launch(launch) }.map_err(cuda_err("launching dequantize"))?;
        Ok(())
    }
}
