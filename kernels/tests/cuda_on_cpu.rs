//! The CUDA kernels' source, run on the CPU through a small emulation of the CUDA
//! execution model (`cuda/emulate/host.cpp`), gives the Rust reference's bytes. This
//! checks the kernels' indexing, packing, hashing and rounding where there is no GPU;
//! `cuda.rs` checks the real thing on a GPU host. Needs a C++20 compiler (`c++`).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{awkward_values, lcg_values};
use crowdtrain_kernels::{Bits, QuantConfig, dequantize, dequantize_accumulate, quantize};

/// Builds the emulator, or says why it cannot be built here.
fn build_emulator(dir: &Path) -> Result<PathBuf, String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("cuda/emulate/host.cpp");
    let exe = dir.join("host");
    let cxx = std::env::var("CXX").unwrap_or_else(|_| "c++".into());
    let out = Command::new(&cxx)
        .args([
            "-std=c++20",
            "-O1",
            "-ffp-contract=off",
            "-fno-strict-aliasing",
            "-pthread",
            "-o",
        ])
        .arg(&exe)
        .arg(&src)
        .output()
        .map_err(|e| format!("no C++ compiler `{cxx}` ({e})"))?;
    if !out.status.success() {
        // A compiler that exists but fails on our source is a real failure.
        panic!(
            "{cxx} failed on {}:\n{}",
            src.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(exe)
}

fn write_f32(path: &Path, v: &[f32]) {
    std::fs::write(
        path,
        v.iter().flat_map(|f| f.to_le_bytes()).collect::<Vec<u8>>(),
    )
    .unwrap();
}

fn read_f32(path: &Path) -> Vec<f32> {
    std::fs::read(path)
        .unwrap()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

fn run(exe: &Path, args: &[String]) -> String {
    let out = Command::new(exe).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "emulator {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn cuda_source_on_the_cpu_gives_the_reference_bytes() {
    let dir = std::env::temp_dir().join(format!("crowdtrain-emulate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let exe = match build_emulator(&dir) {
        Ok(exe) => exe,
        Err(why) => {
            eprintln!("skipped the emulated CUDA comparison: {why}");
            return;
        }
    };
    let p = |name: &str| dir.join(name).to_string_lossy().into_owned();
    let configs = [
        QuantConfig::int8(),
        QuantConfig::int4(),
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
        let bits = cfg.bits.width().to_string();
        for n in [1, 2, 31, 33, 257, 1000, 3001] {
            let x = awkward_values(n);
            write_f32(dir.join("x").as_path(), &x);
            let seed = 0xDEAD_BEEF_u64;
            let args = [
                "quantize",
                &bits,
                &cfg.block.to_string(),
                &seed.to_string(),
                &p("x"),
                &p("s"),
                &p("d"),
            ];
            let bad = run(&exe, &args.map(String::from));
            assert_eq!(
                bad.trim(),
                u64::MAX.to_string(),
                "{cfg:?} n={n}: no bad index"
            );
            let blob = quantize(&x, cfg, seed).unwrap();
            let bits_of = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            assert_eq!(
                bits_of(&read_f32(&dir.join("s"))),
                bits_of(blob.scales()),
                "{cfg:?} n={n} scales"
            );
            assert_eq!(
                std::fs::read(dir.join("d")).unwrap(),
                blob.data(),
                "{cfg:?} n={n} values"
            );

            // Grid of 1 block: every thread takes the grid-stride path; 65536: one pass.
            for max_grid in ["1", "65536"] {
                for acc in ["0", "1"] {
                    let start = lcg_values(n, 5, 2.0);
                    write_f32(dir.join("o").as_path(), &start);
                    let args = [
                        "dequantize",
                        &bits,
                        &cfg.block.to_string(),
                        acc,
                        max_grid,
                        &p("s"),
                        &p("d"),
                        &p("o"),
                    ];
                    run(&exe, &args.map(String::from));
                    let want = if acc == "1" {
                        let mut sum = start;
                        dequantize_accumulate(&blob, &mut sum).unwrap();
                        sum
                    } else {
                        dequantize(&blob)
                    };
                    assert_eq!(
                        bits_of(&read_f32(&dir.join("o"))),
                        bits_of(&want),
                        "{cfg:?} n={n} acc={acc}"
                    );
                }
            }
        }
        let mut x = awkward_values(2000);
        x[1500] = f32::INFINITY;
        x[777] = f32::NAN;
        write_f32(dir.join("x").as_path(), &x);
        let args = [
            "quantize",
            &bits,
            &cfg.block.to_string(),
            "0",
            &p("x"),
            &p("s"),
            &p("d"),
        ];
        assert_eq!(
            run(&exe, &args.map(String::from)).trim(),
            "777",
            "{cfg:?}: first non-finite index"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
