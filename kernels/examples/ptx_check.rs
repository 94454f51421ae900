//! `make test`'s CHECKS step: compiles every CUDA kernel with NVRTC and assembles it with
//! ptxas for sm_80 and sm_90, failing on a compile error, inexact arithmetic or a spill.
//! Unlike the cargo test of the same name it never skips: the wheels must be there.
//!
//! Usage: `ptx_check [--dump DIR]` (DIR receives the PTX for reading).

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use crowdtrain_kernels::cuda::{self, CudaWheels, ptxas};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let default = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/cuda-wheels");
    let wheels = CudaWheels::locate(&default).map_err(anyhow::Error::msg)?;
    wheels.load_nvrtc().map_err(anyhow::Error::msg)?;
    if let [flag, dir] = args.as_slice() {
        if flag != "--dump" {
            bail!("usage: ptx_check [--dump DIR]");
        }
        let dir = PathBuf::from(dir);
        std::fs::create_dir_all(&dir)?;
        for (file, source, _) in cuda::SOURCES {
            for arch in ["80", "90"] {
                let ptx = cuda::compile_ptx(source, arch).map_err(anyhow::Error::msg)?;
                std::fs::write(dir.join(format!("{file}.sm{arch}.ptx")), ptx)
                    .context("writing PTX")?;
            }
        }
    }
    let report = ptxas::check_all(&wheels.ptxas, &["80", "90"]).map_err(anyhow::Error::msg)?;
    println!("| kernel | file | arch | registers | spills |");
    println!("|---|---|---|---:|---:|");
    for r in report {
        println!(
            "| {} | {} | sm_{} | {} | {} |",
            r.usage.name, r.file, r.arch, r.usage.registers, r.usage.spill_bytes
        );
    }
    Ok(())
}
