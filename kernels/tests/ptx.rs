//! Every CUDA kernel compiles with NVRTC and assembles for sm_80 and sm_90 without a
//! register spill. Runs wherever the CUDA wheels are installed (`make test` installs
//! them); no GPU needed.
#![cfg(feature = "cuda")]

use std::path::Path;

use crowdtrain_kernels::cuda::{CudaWheels, ptxas};

#[test]
fn kernels_assemble_for_sm80_and_sm90_without_spills() {
    let default = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/cuda-wheels");
    let wheels = match CudaWheels::locate(&default) {
        Ok(w) => w,
        Err(why) => {
            eprintln!("skipped the PTX check: {why}");
            return;
        }
    };
    wheels.load_nvrtc().unwrap();
    let report = ptxas::check_all(&wheels.ptxas, &["80", "90"]).unwrap_or_else(|e| panic!("{e}"));
    for r in &report {
        eprintln!(
            "{} sm_{}: {} uses {} registers",
            r.file, r.arch, r.usage.name, r.usage.registers
        );
    }
    assert_eq!(report.len(), 8, "4 kernels × 2 architectures");
}
