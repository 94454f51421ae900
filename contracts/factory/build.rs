//! Finds the run contract's wasm for the factory to deploy: `$CROWDTRAIN_RUN_WASM`,
//! else `target/contracts/crowdtrain_run.wasm` as `make contracts` leaves it. When
//! neither exists (a fresh clone before `make contracts`) the factory is built with
//! an empty placeholder and a warning; `create_run` then refuses with a clear message.

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-env-changed=CROWDTRAIN_RUN_WASM");
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let path = std::env::var_os("CROWDTRAIN_RUN_WASM")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest.join("../../target/contracts/crowdtrain_run.wasm"));
    println!("cargo:rerun-if-changed={}", path.display());
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets it")).join("run.wasm");
    let bytes = std::fs::read(&path).unwrap_or_else(|_| {
        println!(
            "cargo:warning=no run wasm at {}: the factory is built without it; run `make contracts`",
            path.display()
        );
        Vec::new()
    });
    std::fs::write(&out, bytes).expect("write OUT_DIR/run.wasm");
}
