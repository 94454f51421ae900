//! The robust aggregation rule's arithmetic: a blob's norm read off its quantized form,
//! the round's median, and each blob's clip factor. Pure functions of the blobs' bytes,
//! independent of their order and of the thread count (agent/README.md, "Robust
//! aggregation", states the rule).
//!
//! - Norm: a blob encodes `x_i = q_i · s_b` (integer `q_i`, f32 scale `s_b` of block
//!   `b`). `‖x‖² = Σ_b s_b² · Σ_{i∈b} q_i²`: the inner sum is exact in u64, `s_b²` is
//!   exact in f64 (48 significant bits), their product is rounded once, and the blocks
//!   are added in f64 in block order. The norm is that of the exact values, so it does
//!   not depend on how anyone dequantizes.
//! - Median: the lower median of the round's norms (element `⌊(k−1)/2⌋` sorted): with
//!   two blobs it is the smaller, so one of two providers cannot raise it.
//! - Factor: `w = min(1, c · median / ‖x‖)` in f64, rounded to f32 (`c` the run's
//!   `clip_multiple`); a clipped blob's scales become `fl32(s_b · w)`.

use crowdtrain_kernels::{Bits, QuantizedBlob};

/// `‖x‖₂` of the values `blob` encodes, computed as the module docs state.
pub fn blob_norm(blob: &QuantizedBlob) -> f64 {
    let block = blob.block();
    let (data, len) = (blob.data(), blob.len());
    let mut sum = 0.0f64;
    for (b, &scale) in blob.scales().iter().enumerate() {
        let (start, end) = (b * block, ((b + 1) * block).min(len));
        let squares: u64 = match blob.bits() {
            Bits::Int8 => data[start..end]
                .iter()
                .map(|&byte| (byte as i8 as i64).pow(2) as u64)
                .sum(),
            Bits::Int4 => (start..end)
                .map(|i| {
                    let byte = data[i / 2];
                    let nibble = if i % 2 == 0 { byte << 4 } else { byte & 0xF0 };
                    ((nibble as i8 >> 4) as i64).pow(2) as u64
                })
                .sum(),
        };
        let s = scale as f64;
        sum += s * s * squares as f64;
    }
    sum.sqrt()
}

/// True when every value `blob` can hold stays finite once dequantized: `scale · qmax`
/// is finite for every block (a scale an encoder of finite input never exceeds).
pub fn dequantizes_finite(blob: &QuantizedBlob) -> bool {
    let qmax = blob.bits().qmax();
    blob.scales().iter().all(|s| (s * qmax).is_finite())
}

/// The lower median of `norms` (0 for none); order-independent.
pub fn lower_median(norms: &[f64]) -> f64 {
    if norms.is_empty() {
        return 0.0;
    }
    let mut sorted = norms.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[(sorted.len() - 1) / 2]
}

/// The factor a blob of norm `norm` is scaled by when the limit is `limit`: 1 at or
/// under the limit (and for a zero norm), else `limit / norm`, rounded to f32.
pub fn clip_factor(norm: f64, limit: f64) -> f32 {
    if norm <= limit || norm == 0.0 {
        1.0
    } else {
        (limit / norm) as f32
    }
}

/// The blob with every scale multiplied by `factor` (`fl32(s · factor)`): the same
/// integers, values shrunk. `bytes` are the blob's wire bytes (already checked).
pub fn scaled(
    bytes: &[u8],
    blob: &QuantizedBlob,
    factor: f32,
) -> Result<QuantizedBlob, crowdtrain_kernels::KernelError> {
    let mut out = bytes.to_vec();
    let at = crowdtrain_kernels::blob::HEADER_LEN;
    for (chunk, s) in out[at..at + 4 * blob.scales().len()]
        .chunks_exact_mut(4)
        .zip(blob.scales())
    {
        chunk.copy_from_slice(&(s * factor).to_le_bytes());
    }
    QuantizedBlob::from_bytes(&out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crowdtrain_kernels::{QuantConfig, dequantize, quantize};

    fn f64_norm(v: &[f32]) -> f64 {
        v.iter().map(|&x| (x as f64).powi(2)).sum::<f64>().sqrt()
    }

    #[test]
    fn norm_from_the_quantized_form_matches_the_decoded_values() {
        let x: Vec<f32> = (0..1000)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) * 1e-3)
            .collect();
        for cfg in [QuantConfig::int8(), QuantConfig::int4()] {
            let blob = quantize(&x, cfg, 9).unwrap();
            let decoded = f64_norm(&dequantize(&blob));
            let n = blob_norm(&blob);
            assert!(
                (n - decoded).abs() <= 1e-6 * decoded,
                "{cfg:?}: {n} vs {decoded}"
            );
        }
    }

    #[test]
    fn median_factor_and_scaling_follow_the_rule() {
        assert_eq!(lower_median(&[5.0, 1.0, 3.0]), 3.0);
        assert_eq!(lower_median(&[1e30, 2.0]), 2.0, "the smaller of two");
        assert_eq!(lower_median(&[4.0, 1.0, 3.0, 2.0]), 2.0);
        assert_eq!(clip_factor(3.0, 4.0), 1.0);
        assert_eq!(clip_factor(0.0, 0.0), 1.0);
        assert_eq!(clip_factor(8.0, 4.0), 0.5);

        let blob = quantize(&[1.0, -2.0, 3.0, 4.0], QuantConfig::int8(), 0).unwrap();
        let half = scaled(&blob.to_bytes(), &blob, 0.5).unwrap();
        assert!((blob_norm(&half) - 0.5 * blob_norm(&blob)).abs() < 1e-6);
        assert_eq!(half.data(), blob.data(), "the integers stay");
        let huge = scaled(&blob.to_bytes(), &blob, 1e38).unwrap();
        assert!(dequantizes_finite(&blob) && !dequantizes_finite(&huge));
    }
}
