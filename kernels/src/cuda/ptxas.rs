//! Assembling PTX with `ptxas` (from the nvidia-cuda-nvcc wheel) to catch compile
//! errors and register spills on a machine without a GPU.

use std::path::Path;
use std::process::Command;

/// What `ptxas -v` said about one kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelUsage {
    /// Kernel (entry) name.
    pub name: String,
    /// Registers per thread.
    pub registers: u32,
    /// Bytes of spill stores plus spill loads (must be 0).
    pub spill_bytes: u32,
}

/// Runs `ptxas -arch=sm_<arch> -v` on `ptx` and reports each kernel's usage.
pub fn assemble(ptxas: &Path, ptx: &str, arch: &str) -> Result<Vec<KernelUsage>, String> {
    let dir = std::env::temp_dir().join(format!("crowdtrain-ptxas-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("temp dir {}: {e}", dir.display()))?;
    let input = dir.join(format!("kernel_sm{arch}.ptx"));
    std::fs::write(&input, ptx).map_err(|e| format!("writing {}: {e}", input.display()))?;
    let output = Command::new(ptxas)
        .arg(format!("-arch=sm_{arch}"))
        .arg("-v")
        .arg(&input)
        .arg("-o")
        .arg(dir.join(format!("kernel_sm{arch}.cubin")))
        .output()
        .map_err(|e| format!("running {}: {e}", ptxas.display()))?;
    let log = String::from_utf8_lossy(&output.stderr).into_owned()
        + &String::from_utf8_lossy(&output.stdout);
    let _ = std::fs::remove_dir_all(&dir);
    if !output.status.success() {
        return Err(format!("ptxas -arch=sm_{arch} failed:\n{log}"));
    }
    Ok(parse_verbose(&log))
}

/// Reads `ptxas -v` output: a "Compiling entry function 'NAME'" line, then lines with
/// "N bytes spill stores, M bytes spill loads" and "Used R registers".
pub fn parse_verbose(log: &str) -> Vec<KernelUsage> {
    let mut out: Vec<KernelUsage> = Vec::new();
    for line in log.lines() {
        if let Some(rest) = line.split("Compiling entry function '").nth(1) {
            let name = rest.split('\'').next().unwrap_or_default().to_string();
            out.push(KernelUsage {
                name,
                registers: 0,
                spill_bytes: 0,
            });
            continue;
        }
        let Some(current) = out.last_mut() else {
            continue;
        };
        if line.contains("spill stores") {
            current.spill_bytes += number_before(line, "bytes spill stores")
                + number_before(line, "bytes spill loads");
        }
        if line.contains("Used") && line.contains("registers") {
            current.registers = number_before(line, "registers");
        }
    }
    out
}

/// The integer just before `marker` in `line`, or 0.
fn number_before(line: &str, marker: &str) -> u32 {
    line.split(marker)
        .next()
        .and_then(|head| head.split_whitespace().last())
        .and_then(|n| n.parse().ok())
        .filter(|_| line.contains(marker))
        .unwrap_or(0)
}

/// One kernel assembled for one architecture.
#[derive(Clone, Debug)]
pub struct ArchUsage {
    /// The source file.
    pub file: &'static str,
    /// `sm_<arch>`.
    pub arch: &'static str,
    /// What ptxas reported.
    pub usage: KernelUsage,
}

/// PTX instructions that would break bit-equality with the CPU: fused multiply-add,
/// approximate division, flush-to-zero.
const INEXACT: &[&str] = &[
    "fma.",
    "mad.f32",
    "mad.rn.f32",
    "div.approx",
    "div.full",
    ".ftz",
];

/// Fails if `ptx` contains an instruction from [`INEXACT`].
pub fn check_exact_arithmetic(ptx: &str) -> Result<(), String> {
    for line in ptx.lines().map(str::trim).filter(|l| !l.starts_with("//")) {
        if let Some(bad) = INEXACT.iter().find(|bad| line.contains(*bad)) {
            return Err(format!(
                "PTX uses `{bad}` (not bit-identical to the CPU): {line}"
            ));
        }
    }
    Ok(())
}

/// Compiles every kernel with NVRTC for each of `archs` and assembles it with ptxas;
/// fails on a compile error, a missing kernel or any register spill.
pub fn check_all(ptxas: &Path, archs: &[&'static str]) -> Result<Vec<ArchUsage>, String> {
    let mut report = Vec::new();
    for (file, source, kernels) in super::SOURCES {
        for &arch in archs {
            let ptx = super::compile_ptx(source, arch)
                .map_err(|log| format!("NVRTC, {file}, compute_{arch}:\n{log}"))?;
            check_exact_arithmetic(&ptx).map_err(|e| format!("{file}, compute_{arch}: {e}"))?;
            let usage = assemble(ptxas, &ptx, arch).map_err(|e| format!("{file}: {e}"))?;
            for kernel in *kernels {
                let Some(u) = usage.iter().find(|u| u.name == *kernel) else {
                    return Err(format!(
                        "{file}: ptxas did not report kernel {kernel} for sm_{arch}"
                    ));
                };
                if u.spill_bytes > 0 {
                    return Err(format!(
                        "{file}: {kernel} spills {} bytes on sm_{arch}",
                        u.spill_bytes
                    ));
                }
                report.push(ArchUsage {
                    file,
                    arch,
                    usage: u.clone(),
                });
            }
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_registers_and_spills() {
        let log = "ptxas info    : 0 bytes gmem\n\
            ptxas info    : Compiling entry function 'quantize_int8' for 'sm_90'\n\
            ptxas info    : Function properties for quantize_int8\n\
            \x20   0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads\n\
            ptxas info    : Used 18 registers, used 0 barriers, 400 bytes cmem[0]\n\
            ptxas info    : Compiling entry function 'big' for 'sm_90'\n\
            \x20   8 bytes stack frame, 8 bytes spill stores, 12 bytes spill loads\n\
            ptxas info    : Used 255 registers\n";
        let k = parse_verbose(log);
        assert_eq!(k.len(), 2);
        assert_eq!(
            k[0],
            KernelUsage {
                name: "quantize_int8".into(),
                registers: 18,
                spill_bytes: 0
            }
        );
        assert_eq!(
            k[1],
            KernelUsage {
                name: "big".into(),
                registers: 255,
                spill_bytes: 20
            }
        );
    }

    #[test]
    fn refuses_fused_or_approximate_arithmetic() {
        assert!(
            check_exact_arithmetic("\tmul.rn.f32 %f3, %f1, %f2;\n\tadd.rn.f32 %f4, %f3, %f0;")
                .is_ok()
        );
        assert!(check_exact_arithmetic("\tfma.rn.f32 %f4, %f1, %f2, %f0;").is_err());
        assert!(check_exact_arithmetic("\tdiv.approx.f32 %f3, %f1, %f2;").is_err());
        assert!(check_exact_arithmetic("\tadd.ftz.f32 %f3, %f1, %f2;").is_err());
        assert!(check_exact_arithmetic("// fma.rn.f32 in a comment").is_ok());
    }
}
