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
