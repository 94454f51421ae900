//! Finding NVRTC and ptxas from the PyPI wheels (`nvidia-cuda-nvrtc-cu12`,
//! `nvidia-cuda-nvcc-cu12`) that `make test` installs under `target/cuda-wheels`.

use std::path::{Path, PathBuf};

/// Environment variable that overrides where the wheels were installed (`pip --target`).
pub const WHEELS_ENV: &str = "CROWDTRAIN_CUDA_WHEELS";

/// NVRTC's shared library and the `ptxas` binary inside an installed wheel directory.
#[derive(Clone, Debug)]
pub struct CudaWheels {
    /// `.../nvidia/cuda_nvrtc/lib/libnvrtc.so.12`.
    pub nvrtc: PathBuf,
    /// `.../nvidia/cuda_nvcc/bin/ptxas`.
    pub ptxas: PathBuf,
}

impl CudaWheels {
    /// Looks in `$CROWDTRAIN_CUDA_WHEELS`, else in `default_dir`; says what is missing.
    pub fn locate(default_dir: &Path) -> Result<Self, String> {
        let dir = std::env::var_os(WHEELS_ENV)
            .map(PathBuf::from)
            .unwrap_or_else(|| default_dir.to_path_buf());
        let wheels = CudaWheels {
            nvrtc: dir.join("nvidia/cuda_nvrtc/lib/libnvrtc.so.12"),
            ptxas: dir.join("nvidia/cuda_nvcc/bin/ptxas"),
        };
        for file in [&wheels.nvrtc, &wheels.ptxas] {
            if !file.is_file() {
                return Err(format!(
                    "{} is missing: install the CUDA wheels with `make kernels-cuda-wheels` (or set {WHEELS_ENV})",
                    file.display()
                ));
            }
        }
        Ok(wheels)
    }

    /// Loads NVRTC by its full path and keeps it loaded, so that cudarc's lookup by
    /// name (`libnvrtc.so.12`) finds it without `LD_LIBRARY_PATH`.
    pub fn load_nvrtc(&self) -> Result<(), String> {
        // SAFETY: loading NVRTC runs only its initialisers, which have no preconditions.
        let lib = unsafe { libloading::Library::new(&self.nvrtc) }
            .map_err(|e| format!("loading {}: {e}", self.nvrtc.display()))?;
        std::mem::forget(lib); // must outlive every later NVRTC call
        Ok(())
    }
}
