//! The GPU half of the table: the same kernels on device-resident data, as GB/s of f32
//! input and as the fraction of the GPU's peak memory bandwidth the bytes moved reach.

use std::path::Path;
use std::time::Instant;

use crowdtrain_kernels::cuda::{self, CudaQuantizer, CudaWheels};
use crowdtrain_kernels::{Bits, QuantConfig};

use crate::{BYTES, REPS};

/// Launches back to back per timing, so launch latency is amortised as in real use.
const LAUNCHES: usize = 10;

/// Prints the GPU table, or why there is none.
pub fn run(x: &[f32]) {
    if !cuda::nvrtc_present() {
        let default = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/cuda-wheels");
        if let Ok(w) = CudaWheels::locate(&default) {
            let _ = w.load_nvrtc();
        }
    }
    let gpu = match CudaQuantizer::new() {
        Ok(g) => g,
        Err(why) => {
            println!("\nNo GPU table: {why}");
            return;
        }
    };
    if let Err(e) = table(&gpu, x) {
        println!("\nGPU benchmark failed: {e}");
    }
}

fn table(gpu: &CudaQuantizer, x: &[f32]) -> Result<(), Box<dyn std::error::Error>> {
    let peak = gpu.peak_memory_bandwidth()?;
    let s = gpu.stream();
    let n = x.len();
    let dx = s.clone_htod(x)?;
    let mut dy = s.alloc_zeros::<f32>(n)?;
    let mut bad = s.clone_htod(&[u64::MAX])?;
    println!(
        "\nGPU: {} (peak memory bandwidth {:.0} GB/s)\n",
        gpu.device_name(),
        peak / 1e9
    );
    println!("| kernel | GB/s of f32 input | bytes moved / peak bandwidth |");
    println!("|---|---:|---:|");
    // Seconds per launch: best of REPS timings of LAUNCHES launches.
    let time = |f: &mut dyn FnMut() -> Result<(), Box<dyn std::error::Error>>| {
        f()?;
        s.synchronize()?;
        let mut best = f64::INFINITY;
        for _ in 0..REPS {
            let t = Instant::now();
            for _ in 0..LAUNCHES {
                f()?;
            }
            s.synchronize()?;
            best = best.min(t.elapsed().as_secs_f64() / LAUNCHES as f64);
        }
        Ok::<f64, Box<dyn std::error::Error>>(best)
    };
    let row = |name: &str, secs: f64, moved: usize| {
        println!(
            "| {name} | {:.1} | {:.0}% |",
            BYTES as f64 / secs / 1e9,
            100.0 * moved as f64 / secs / peak
        );
    };
    let t = time(&mut || Ok(s.memcpy_dtod(&dx, &mut dy)?))?;
    row("device memcpy", t, 2 * BYTES);
    for cfg in [QuantConfig::int8(), QuantConfig::int4()] {
        let label = if cfg.bits == Bits::Int8 {
            "int8"
        } else {
            "int4"
        };
        let mut scales = s.alloc_zeros::<f32>(cfg.blocks(n))?;
        let mut data = s.alloc_zeros::<u8>(cfg.bits.data_len(n))?;
        let packed = cfg.bits.data_len(n) + 4 * cfg.blocks(n);
        let t = time(&mut || {
            Ok(gpu.launch_quantize(&dx, cfg, 1, &mut scales, &mut data, &mut bad)?)
        })?;
        row(&format!("{label} quantize"), t, BYTES + packed);
        let t = time(&mut || Ok(gpu.dequantize_device(cfg, &scales, &data, &mut dy, true)?))?;
        row(
            &format!("{label} dequantize-accumulate"),
            t,
            2 * BYTES + packed,
        );
    }
    Ok(())
}
