//! The CUDA backend: kernels in `kernels/cuda/*.cu`, compiled at run time by NVRTC and
//! launched through cudarc with dynamic loading, so binaries build and run without
//! CUDA and take this path only when a GPU is found.

mod device;
pub mod ptxas;
mod wheels;

pub use device::CudaQuantizer;
pub use wheels::{CudaWheels, WHEELS_ENV};

use cudarc::nvrtc::{CompileOptions, compile_ptx_with_opts};

/// Prepended to every kernel: NVRTC cannot `#include` files at run time.
const COMMON: &str = include_str!("../../cuda/common.cuh");

/// Every kernel source: (file name, CUDA C text, the kernels it defines).
pub const SOURCES: &[(&str, &str, &[&str])] = &[
    (
        "quantize.cu",
        include_str!("../../cuda/quantize.cu"),
        &["quantize_int8", "quantize_int4"],
    ),
    (
        "dequantize.cu",
        include_str!("../../cuda/dequantize.cu"),
        &["dequantize_int8", "dequantize_int4"],
    ),
];

/// Why the CUDA path cannot be used here, or `None` when a GPU and NVRTC are present.
pub fn unavailable_reason() -> Option<String> {
    if !loads(&["libcuda.so.1", "libcuda.so"]) {
        return Some("no CUDA driver library (libcuda.so) on this machine".into());
    }
    if !nvrtc_present() {
        return Some("no NVRTC library (libnvrtc.so.12) on the library path".into());
    }
    match cudarc::driver::CudaContext::device_count() {
        Ok(0) => Some("the CUDA driver reports no GPU".into()),
        Ok(_) => None,
        Err(e) => Some(format!("the CUDA driver failed to start: {e}")),
    }
}

/// True when libnvrtc can be loaded.
pub fn nvrtc_present() -> bool {
    loads(&["libnvrtc.so.12", "libnvrtc.so.13", "libnvrtc.so"])
}

/// True when one of these libraries can be opened. Asked of the dynamic loader, not
/// of cudarc: cudarc's own probe exists only with its dynamic-loading feature, and a
/// build with candle's CUDA backend links cudarc dynamically instead.
fn loads(names: &[&str]) -> bool {
    names.iter().any(|name| {
        // SAFETY: opening a system CUDA library runs only its initialisers, which is
        // what cudarc does before any call into it.
        unsafe { libloading::Library::new(*name) }.is_ok()
    })
}

/// Compiles one kernel source to PTX for `compute_<arch>` (e.g. "80") with the options
/// that keep the arithmetic bit-identical to the CPU: IEEE division, no FMA
/// contraction, no flush-to-zero, no fast-math.
pub fn compile_ptx(source: &str, arch: &str) -> Result<String, String> {
    let opts = CompileOptions {
        ftz: Some(false),
        prec_div: Some(true),
        prec_sqrt: Some(true),
        fmad: Some(false),
        options: vec![
            format!("--gpu-architecture=compute_{arch}"),
            "--std=c++17".into(),
        ],
        ..Default::default()
    };
    let text = format!("{COMMON}\n{source}");
    match compile_ptx_with_opts(text, opts) {
        Ok(ptx) => Ok(ptx.to_src()),
        Err(cudarc::nvrtc::CompileError::CompileError { log, .. }) => {
            Err(log.to_string_lossy().into_owned())
        }
        Err(e) => Err(e.to_string()),
    }
}
