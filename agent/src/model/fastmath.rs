//! `exp` and exact GELU in straight-line f32 arithmetic (no branches, no calls), so
//! the loops over activations that use them compile to SIMD; libm's `erff` and
//! `expf` are calls with branches, one value at a time.
//!
//! - `exp`: Cephes' `expf` (range reduction by ln 2 in two parts, a degree-7
//!   polynomial, the exponent written into the bits); relative error ~1e-7.
//! - `erf`: Abramowitz & Stegun 7.1.26, absolute error below 1.5e-7, i.e. about one
//!   unit in the last place of `1 + erf`, which is what GELU adds it to.
//!
//! Each is a pure function of its input, so the bits are the same on every run and
//! thread count.
//!
//! The reductions (`sum`, `dot`, `max`) keep [`LANES`] partial results combined in a
//! fixed order at the end: a single running sum is a chain of dependent adds the
//! compiler may not reorder (so it stays scalar, one add per 4 cycles), while lanes
//! compile to SIMD. The order depends only on the length, so the bits are the same
//! on every run and thread count.

const LOG2_E: f32 = std::f32::consts::LOG2_E;
/// ln 2 split so that `n·LN2_HI` is exact for the exponents used.
const LN2_HI: f32 = 0.693_359_4; // parses to 355/512 exactly
const LN2_LO: f32 = -2.121_944_4e-4;
/// Adding and subtracting 1.5·2²³ rounds an f32 of magnitude < 2²² to an integer.
const ROUND: f32 = 12_582_912.0;

/// `e^x`; inputs below −87.3 give 2⁻¹²⁶·e^(…) ≈ 0 and above 88.7 saturate at e^88.7.
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    let x = x.clamp(-87.3, 88.7);
    let n = (x * LOG2_E + ROUND) - ROUND;
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = ((((1.987_569_2e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r
        + 0.166_666_65)
        * r
        + 0.5;
    let e = p * (r * r) + r + 1.0;
    e * f32::from_bits(((n as i32 + 127) as u32) << 23)
}

/// `1 + erf(z)` and `e^(−z²)`, the two things GELU and its gradient need.
#[inline(always)]
fn one_plus_erf(z: f32) -> (f32, f32) {
    let a = z.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let poly = ((((1.061_405_4 * t - 1.453_152) * t + 1.421_413_8) * t - 0.284_496_74) * t
        + 0.254_829_6)
        * t;
    let g = exp(-a * a);
    let erf_abs = 1.0 - poly * g;
    (1.0 + erf_abs.copysign(z), g)
}

/// Exact GELU, `x·Φ(x)` with `Φ(x) = (1 + erf(x/√2))/2`.
#[inline(always)]
pub(crate) fn gelu(x: f32) -> f32 {
    let (c, _) = one_plus_erf(x * std::f32::consts::FRAC_1_SQRT_2);
    0.5 * c * x
}

/// GELU's derivative, `Φ(x) + x·φ(x)`; `φ(x) = e^(−x²/2)/√(2π)` is the `e^(−z²)` that
/// the erf already computed.
#[inline(always)]
pub(crate) fn gelu_grad(x: f32) -> f32 {
    let (c, g) = one_plus_erf(x * std::f32::consts::FRAC_1_SQRT_2);
    const INV_SQRT_2PI: f32 = 0.398_942_3;
    0.5 * c + x * g * INV_SQRT_2PI
}

/// Partial results per reduction: one AVX-512 register, or two AVX2 ones.
pub(crate) const LANES: usize = 16;

/// The lanes added pairwise, halves onto halves.
#[inline(always)]
fn fold(mut acc: [f32; LANES]) -> f32 {
    let mut w = LANES;
    while w > 1 {
        w /= 2;
        for k in 0..w {
            acc[k] += acc[k + w];
        }
    }
    acc[0]
}

/// `Σ f(x)` over the slice.
#[inline(always)]
pub(crate) fn sum_map(x: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut acc = [0f32; LANES];
    let chunks = x.chunks_exact(LANES);
    let tail: f32 = chunks.remainder().iter().map(|&v| f(v)).sum();
    for c in chunks {
        for k in 0..LANES {
            acc[k] += f(c[k]);
        }
    }
    fold(acc) + tail
}

/// `Σ x`.
#[inline(always)]
pub(crate) fn sum(x: &[f32]) -> f32 {
    sum_map(x, |v| v)
}

/// `Σ a·b` over the shorter length.
#[inline(always)]
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0f32; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for k in 0..LANES {
            acc[k] += x[k] * y[k];
        }
    }
    fold(acc) + tail
}

/// The largest element (−∞ for an empty slice; NaNs are ignored, as by `f32::max`).
#[inline(always)]
pub(crate) fn max(x: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; LANES];
    let chunks = x.chunks_exact(LANES);
    let tail = chunks
        .remainder()
        .iter()
        .fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    for c in chunks {
        for k in 0..LANES {
            acc[k] = acc[k].max(c[k]);
        }
    }
    acc.iter().fold(tail, |m, &v| m.max(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lane_wise_reductions_are_the_reductions_at_every_length() {
        for n in 0..70 {
            let a: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
            let b: Vec<f32> = (0..n).map(|i| (i as f32 * 0.11).cos() - 0.2).collect();
            let exact_dot: f64 = a.iter().zip(&b).map(|(x, y)| *x as f64 * *y as f64).sum();
            let exact_sum: f64 = a.iter().map(|&x| x as f64).sum();
            let exact_sq: f64 = a.iter().map(|&x| x as f64 * x as f64).sum();
            let exact_max = a.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
            assert!(
                (dot(&a, &b) as f64 - exact_dot).abs() < 1e-5,
                "dot, n = {n}"
            );
            assert!((sum(&a) as f64 - exact_sum).abs() < 1e-5, "sum, n = {n}");
            assert!((sum_map(&a, |v| v * v) as f64 - exact_sq).abs() < 1e-5);
            assert_eq!(max(&a), exact_max, "max, n = {n}");
            assert_eq!(dot(&a, &b).to_bits(), dot(&a, &b).to_bits());
        }
        // The shorter length counts; NaN is skipped by the maximum.
        assert_eq!(dot(&[1.0, 2.0, 3.0], &[4.0, 5.0]), 14.0);
        assert_eq!(max(&[f32::NAN, -3.0, 2.0]), 2.0);
    }

    /// Every value in [−range, range] at steps of `step`.
    fn grid(range: f64, step: f64) -> impl Iterator<Item = f32> {
        let n = (2.0 * range / step) as i64;
        (0..=n).map(move |i| (-range + i as f64 * step) as f32)
    }

    #[test]
    fn exp_is_within_a_few_ulps_of_libm() {
        for x in grid(87.0, 0.0137) {
            let (got, want) = (exp(x) as f64, (x as f64).exp());
            assert!(
                ((got - want) / want).abs() < 4e-7,
                "exp({x}) = {got}, libm {want}"
            );
        }
        assert_eq!(exp(0.0), 1.0);
        assert!(exp(-200.0) < 1e-37 && exp(-200.0) >= 0.0);
        assert!(exp(f32::NEG_INFINITY) < 1e-37);
    }

    /// GELU and its derivative in f64 from libm's erf.
    fn reference(x: f64) -> (f64, f64) {
        let cdf = 0.5 * (1.0 + candle_core::cpu::erf::erf_f64(x / std::f64::consts::SQRT_2));
        let pdf = (-0.5 * x * x).exp() / (2.0 * std::f64::consts::PI).sqrt();
        (x * cdf, cdf + x * pdf)
    }

    #[test]
    fn gelu_and_its_gradient_are_exact_to_float_precision() {
        for x in grid(12.0, 0.00113).chain([0.0, 1e-30, -1e-30, 40.0, -40.0]) {
            let (y, dy) = reference(x as f64);
            let scale = (x as f64).abs().max(1.0);
            assert!(
                (gelu(x) as f64 - y).abs() <= 3e-7 * scale,
                "gelu({x}) = {}, reference {y}",
                gelu(x)
            );
            assert!(
                (gelu_grad(x) as f64 - dy).abs() <= 3e-7 * scale,
                "gelu'({x}) = {}, reference {dy}",
                gelu_grad(x)
            );
        }
    }
}
