//! Deterministic test inputs built from integer arithmetic only (no libm), so they
//! are the same on every machine.

/// `n` values in roughly [-scale, scale) from a 64-bit LCG.
pub fn lcg_values(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            // 24 high bits: exact in f32.
            ((s >> 40) as f32 / 8_388_608.0 - 1.0) * scale
        })
        .collect()
}

/// Inputs that exercise every branch of the kernels: magnitudes from 1e-30 to 1e30,
/// exact ties, all-zero blocks, subnormals.
#[allow(dead_code)] // not every test file uses it
pub fn awkward_values(n: usize) -> Vec<f32> {
    let mut x = lcg_values(n, n as u64, 1.0);
    for (i, v) in x.iter_mut().enumerate() {
        match (i / 64) % 7 {
            0 => *v = 0.0,
            1 => *v *= 1e-30,
            2 => *v *= 1e30,
            3 => *v = (i % 255) as f32 - 127.0 + 0.5, // ties at scale 1
            4 => *v *= 1e-40,                         // subnormal
            _ => {}
        }
    }
    x
}
