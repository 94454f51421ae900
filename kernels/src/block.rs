//! The numeric definition of one block: the reference every backend matches bit for bit.
//!
//! For a block `x` of up to `block` f32 values (the last block may be shorter):
//! - `absmax = max |x_i|` (exact: a max never rounds).
//! - `scale = absmax / qmax` (one IEEE division, round to nearest even; qmax = 127 or 7).
//! - if `scale == 0` every value is 0; otherwise `v_i = x_i / scale` (IEEE division).
//! - int8: `q_i = clamp(round_half_even(v_i), -127, 127)`.
//! - int4: `q_i = clamp(floor(v_i) + (u_i < v_i - floor(v_i)), -7, 7)` with
//!   `u_i = uniform(seed, global index i)` from [`crate::stochastic`].
//! - dequantize: `q_i as f32 * scale` (one rounding); accumulate: `acc + that`
//!   (a second, separate rounding; never a fused multiply-add).
//!
//! Division rather than multiplication by a reciprocal keeps the int8 error within
//! half a quantum up to one rounding; CUDA uses `__fdiv_rn`, `__fmul_rn`, `__fadd_rn`.

use crate::stochastic::StreamKey;

/// Bit pattern of |x|: for non-negative floats the integer order is the float order,
/// and anything ≥ `INF_BITS` is NaN or Inf, so one integer max finds both.
#[inline(always)]
pub(crate) fn abs_bits(x: f32) -> u32 {
    x.to_bits() & 0x7FFF_FFFF
}

/// Bits of +Inf; abs bits at or above it mean NaN or Inf.
pub(crate) const INF_BITS: u32 = 0x7F80_0000;

/// 1.5 · 2^23: adding it to |v| < 2^22 leaves round_half_even(v) in the low mantissa bits.
const MAGIC: f32 = 12_582_912.0;

/// round_half_even(v) as an integer, for |v| < 2^22, in a way that vectorises on SSE2.
#[inline(always)]
pub(crate) fn round_half_even_i32(v: f32) -> i32 {
    ((v + MAGIC).to_bits() as i32).wrapping_sub(MAGIC.to_bits() as i32)
}

/// Max of abs bits over a slice (0 for an empty slice).
#[inline(always)]
pub(crate) fn max_abs_bits(x: &[f32]) -> u32 {
    x.iter().fold(0u32, |m, &v| m.max(abs_bits(v)))
}

/// Index of the first NaN or Inf in `x`, if any.
pub(crate) fn first_non_finite(x: &[f32]) -> Option<usize> {
    x.iter().position(|v| !v.is_finite())
}

/// Int8 values of one block; returns its scale. `out.len() == x.len()`.
#[inline(always)]
pub(crate) fn quantize_int8(x: &[f32], absmax: f32, out: &mut [u8]) -> f32 {
    let scale = absmax / 127.0;
    if scale == 0.0 {
        out.fill(0);
        return scale;
    }
    for (o, &v) in out.iter_mut().zip(x) {
        let q = round_half_even_i32(v / scale).clamp(-127, 127);
        *o = q as i8 as u8;
    }
    scale
}

/// Int4 values of one block, stochastically rounded; returns its scale.
///
/// `first` is the global index of `x[0]` (even: blocks are multiples of 32), and
/// `out` holds `x.len().div_ceil(2)` bytes, low nibble first.
#[inline(always)]
pub(crate) fn quantize_int4(x: &[f32], absmax: f32, seed: u64, first: u64, out: &mut [u8]) -> f32 {
    let scale = absmax / 7.0;
    if scale == 0.0 {
        out.fill(0);
        return scale;
    }
    // 32 values at a time: whole bytes, and 32 divides 2^32 so a group never
    // straddles two stream segments. Fixed-size arrays let the compiler vectorise.
    let mut groups = x.chunks_exact(32).zip(out.chunks_exact_mut(16));
    let mut start = first;
    for (xs, os) in &mut groups {
        let key = StreamKey::new(seed, (start >> 32) as u32);
        let lo = start as u32;
        let mut q = [0i8; 32];
        for (j, (qj, &v)) in q.iter_mut().zip(xs).enumerate() {
            *qj = stochastic_round(v / scale, key.uniform(lo.wrapping_add(j as u32)));
        }
        for (k, o) in os.iter_mut().enumerate() {
            *o = (q[2 * k] as u8 & 0x0F) | ((q[2 * k + 1] as u8) << 4);
        }
        start += 32;
    }
    let tail = x.len() / 32 * 32;
    if tail < x.len() {
        let key = StreamKey::new(seed, (start >> 32) as u32);
        let q: Vec<i8> = x[tail..]
            .iter()
            .enumerate()
            .map(|(j, &v)| {
                stochastic_round(
                    v / scale,
                    key.uniform((start as u32).wrapping_add(j as u32)),
                )
            })
            .collect();
        pack_nibbles(&q, &mut out[tail / 2..]);
    }
    scale
}

/// What a dequantize kernel does with `v = q · scale` and the old output `o`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    /// `o = v`.
    Store,
    /// `o = o + v` (the receiver's sum).
    Add,
    /// `o = o − v` (the sender's residual under error feedback).
    Subtract,
}

/// The [`Op`] as a const generic (enums cannot be const parameters on stable).
pub(crate) const STORE: u8 = 0;
/// See [`STORE`].
pub(crate) const ADD: u8 = 1;
/// See [`STORE`].
pub(crate) const SUBTRACT: u8 = 2;

/// `o` updated with `v` by the operation `OP`: a separate rounding, never fused.
#[inline(always)]
fn apply<const OP: u8>(o: f32, v: f32) -> f32 {
    match OP {
        ADD => o + v,
        SUBTRACT => o - v,
        _ => v,
    }
}

/// Applies `OP` with `q · scale` for the int8 values of one block.
#[inline(always)]
pub(crate) fn dequantize_int8<const OP: u8>(data: &[u8], scale: f32, out: &mut [f32]) {
    for (o, &b) in out.iter_mut().zip(data) {
        let v = f32::from(b as i8) * scale;
        *o = apply::<OP>(*o, v);
    }
}

/// Applies `OP` with `q · scale` for the int4 values of one block.
#[inline(always)]
pub(crate) fn dequantize_int4<const OP: u8>(data: &[u8], scale: f32, out: &mut [f32]) {
    let mut groups = out.chunks_exact_mut(32).zip(data.chunks_exact(16));
    for (os, ds) in &mut groups {
        let mut q = [0f32; 32];
        for (k, &b) in ds.iter().enumerate() {
            q[2 * k] = f32::from(low_nibble(b));
            q[2 * k + 1] = f32::from(high_nibble(b));
        }
        for (o, q) in os.iter_mut().zip(q) {
            let v = q * scale;
            *o = apply::<OP>(*o, v);
        }
    }
    let tail = out.len() / 32 * 32;
    for (j, o) in out[tail..].iter_mut().enumerate() {
        let b = data[(tail + j) / 2];
        let q = if j % 2 == 0 {
            low_nibble(b)
        } else {
            high_nibble(b)
        };
        let v = f32::from(q) * scale;
        *o = apply::<OP>(*o, v);
    }
}

/// floor(v) + (u < frac(v)), clamped to [-7, 7]; |v| ≤ 7 (up to one rounding).
#[inline(always)]
pub(crate) fn stochastic_round(v: f32, u: f32) -> i8 {
    let r = round_half_even_i32(v);
    // floor(v) from the nearest integer, exact for |v| < 2^22 (no libm call on SSE2).
    let fl = r - i32::from((r as f32) > v);
    let frac = v - fl as f32; // exact: v and fl share their integer part
    (fl + i32::from(u < frac)).clamp(-7, 7) as i8
}

/// Two's-complement nibbles, element 2k in the low half of byte k.
#[inline(always)]
pub(crate) fn pack_nibbles(q: &[i8], out: &mut [u8]) {
    let mut pairs = q.chunks_exact(2);
    for (o, p) in out.iter_mut().zip(&mut pairs) {
        *o = (p[0] as u8 & 0x0F) | ((p[1] as u8) << 4);
    }
    if let [last] = pairs.remainder() {
        out[q.len() / 2] = *last as u8 & 0x0F;
    }
}

/// The signed value in the low nibble of `b`.
#[inline(always)]
pub(crate) fn low_nibble(b: u8) -> i8 {
    ((b << 4) as i8) >> 4
}

/// The signed value in the high nibble of `b`.
#[inline(always)]
pub(crate) fn high_nibble(b: u8) -> i8 {
    (b as i8) >> 4
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic_rounding_is_round_half_even() {
        for k in -4000..=4000 {
            let v = k as f32 * 0.25;
            assert_eq!(round_half_even_i32(v), v.round_ties_even() as i32, "{v}");
        }
        assert_eq!(round_half_even_i32(2.5), 2);
        assert_eq!(round_half_even_i32(-2.5), -2);
        assert_eq!(round_half_even_i32(3.5), 4);
        assert_eq!(round_half_even_i32(126.99999), 127);
    }

    #[test]
    fn stochastic_round_brackets_the_value() {
        assert_eq!(stochastic_round(2.25, 0.2), 3);
        assert_eq!(stochastic_round(2.25, 0.3), 2);
        assert_eq!(stochastic_round(-2.25, 0.7), -2);
        assert_eq!(stochastic_round(-2.25, 0.8), -3);
        assert_eq!(stochastic_round(3.0, 0.0), 3);
        assert_eq!(stochastic_round(7.000_001, 0.0), 7);
        assert_eq!(stochastic_round(-7.000_001, 0.9), -7);
    }

    #[test]
    fn nibbles_round_trip() {
        let q: Vec<i8> = (-7..=7).collect();
        let mut out = vec![0u8; q.len().div_ceil(2)];
        pack_nibbles(&q, &mut out);
        let back: Vec<i8> = (0..q.len())
            .map(|i| {
                if i % 2 == 0 {
                    low_nibble(out[i / 2])
                } else {
                    high_nibble(out[i / 2])
                }
            })
            .collect();
        assert_eq!(q, back);
        assert_eq!(
            out[7] >> 4,
            0,
            "odd length leaves the last high nibble zero"
        );
    }
}
