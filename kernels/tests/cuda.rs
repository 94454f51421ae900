//! The GPU gives the CPU's bytes exactly. Needs a GPU: elsewhere it says why it skipped,
//! and `ptx.rs` still checks that every kernel compiles and uses exact arithmetic.
#![cfg(feature = "cuda")]

mod common;

use std::path::Path;

use common::{awkward_values as input, lcg_values};
use crowdtrain_kernels::cuda::{self, CudaQuantizer, CudaWheels};
use crowdtrain_kernels::{Bits, KernelError, QuantConfig, dequantize_accumulate, quantize};

/// The GPU kernels, or why they cannot run here.
fn gpu() -> Result<CudaQuantizer, String> {
    if !cuda::nvrtc_present() {
        // No NVRTC on the library path: fall back to the wheel `make test` installs.
        let default = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/cuda-wheels");
        if let Ok(w) = CudaWheels::locate(&default) {
            w.load_nvrtc()?;
        }
    }
    if let Some(why) = cuda::unavailable_reason() {
        return Err(why);
    }
    // A GPU is here: failing to compile or load the kernels is a failure, not a skip.
    Ok(CudaQuantizer::new().unwrap_or_else(|e| panic!("a GPU is present but {e}")))
}

#[test]
fn gpu_bytes_equal_cpu_bytes() {
    let gpu = match gpu() {
        Ok(g) => g,
        Err(why) => {
            eprintln!("skipped the CPU/GPU comparison: {why}");
            return;
        }
    };
    let configs = [
        QuantConfig::int8(),
        QuantConfig::int4(),
        QuantConfig {
            bits: Bits::Int8,
            block: 32,
        },
        QuantConfig {
            bits: Bits::Int8,
            block: 160,
        }, // not a multiple of 128: no wide loads
        QuantConfig {
            bits: Bits::Int4,
            block: 96,
        },
    ];
    for cfg in configs {
        for n in [1, 2, 31, 33, 255, 256, 257, 1000, 4099, (1 << 20) + 3] {
            let x = input(n);
            for seed in [0, 0xDEAD_BEEF] {
                let cpu = quantize(&x, cfg, seed).unwrap();
                let dev = gpu.quantize(&x, cfg, seed).unwrap();
                assert_eq!(dev.to_bytes(), cpu.to_bytes(), "{cfg:?} n={n} seed={seed}");
            }
            let blob = quantize(&x, cfg, 7).unwrap();
            let mut acc_cpu = lcg_values(n, 99, 3.0);
            let mut acc_gpu = acc_cpu.clone();
            dequantize_accumulate(&blob, &mut acc_cpu).unwrap();
            gpu.dequantize_accumulate(&blob, &mut acc_gpu).unwrap();
            let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&acc_gpu), bits(&acc_cpu), "{cfg:?} n={n}");
        }
        let mut x = input(10_000);
        x[7777] = f32::INFINITY;
        x[4321] = f32::NAN;
        assert_eq!(
            gpu.quantize(&x, cfg, 0),
            Err(KernelError::NonFinite { index: 4321 })
        );
    }
}
