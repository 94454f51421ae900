//! The hot CPU loops compiled three times, for AVX-512, for AVX2 with FMA and for the
//! x86-64 baseline (SSE2), and picked at run time by what the CPU has.
//!
//! A binary built for any x86-64 would otherwise run every elementwise loop (GELU,
//! softmax, layer norm, AdamW) four lanes at a time, on a CPU that does sixteen. The
//! choice is made per call from std's cached feature detection; the function bodies
//! are one source, inlined into each version.
//!
//! Bits: the versions compute the same bits. Each loop's order of operations is fixed
//! by its source (the reductions keep lanes combined in a fixed order, see `fastmath`),
//! a vector lane does what the scalar loop does to the same element, and Rust never
//! turns `a·b + c` into a fused multiply-add by itself, so enabling FMA changes no
//! result. Tests compare each version's bits with the baseline's.

/// Defines `$name`, which runs the body in the widest version the CPU supports, and
/// `$portable`, the body itself (inlined into each version; tests call it directly).
macro_rules! multiversion {
    (
        $(#[$attr:meta])*
        $vis:vis fn $name:ident / $portable:ident ( $($arg:ident : $ty:ty),* $(,)? ) $(-> $ret:ty)?
        $body:block
    ) => {
        $(#[$attr])*
        #[inline(always)]
        #[allow(clippy::too_many_arguments)]
        $vis fn $portable($($arg: $ty),*) $(-> $ret)? $body

        $(#[$attr])*
        #[allow(clippy::too_many_arguments)]
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                if std::arch::is_x86_feature_detected!("avx512f")
                    && std::arch::is_x86_feature_detected!("avx512vl")
                    && std::arch::is_x86_feature_detected!("avx512dq")
                    && std::arch::is_x86_feature_detected!("fma")
                {
                    #[target_feature(enable = "avx512f,avx512vl,avx512dq,avx2,fma")]
                    #[allow(clippy::too_many_arguments)]
                    unsafe fn wide($($arg: $ty),*) $(-> $ret)? {
                        $portable($($arg),*)
                    }
                    // SAFETY: the CPU has every feature `wide` is compiled for.
                    return unsafe { wide($($arg),*) };
                }
                if std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                {
                    #[target_feature(enable = "avx2,fma")]
                    #[allow(clippy::too_many_arguments)]
                    unsafe fn avx2($($arg: $ty),*) $(-> $ret)? {
                        $portable($($arg),*)
                    }
                    // SAFETY: the CPU has every feature `avx2` is compiled for.
                    return unsafe { avx2($($arg),*) };
                }
            }
            $portable($($arg),*)
        }
    };
}

pub(crate) use multiversion;

#[cfg(test)]
pub(crate) mod tests {
    /// Deterministic values in about [−4, 4], with a few large ones.
    pub(crate) fn values(n: usize, seed: u32) -> Vec<f32> {
        (0..n as u32)
            .map(|i| {
                let h = (i ^ seed).wrapping_mul(2_654_435_761).rotate_left(13) ^ seed;
                let v = (h % 20_000) as f32 / 2_500.0 - 4.0;
                if h.is_multiple_of(97) { v * 10.0 } else { v }
            })
            .collect()
    }

    /// The bits of each element, for comparisons that treat NaN like any other value.
    pub(crate) fn bits(x: &[f32]) -> Vec<u32> {
        x.iter().map(|v| v.to_bits()).collect()
    }

    multiversion! {
        /// A loop with a division, a square root and a lane-wise sum.
        fn probe / probe_portable(out: &mut [f32], x: &[f32]) -> f32 {
            for (o, &v) in out.iter_mut().zip(x) {
                *o = v.abs().sqrt() / (1.0 + v * v) + v * 0.5;
            }
            crate::model::fastmath::sum(out)
        }
    }

    #[test]
    fn the_dispatched_version_computes_the_baselines_bits() {
        let x = values(1000, 7);
        let (mut a, mut b) = (vec![0f32; x.len()], vec![0f32; x.len()]);
        let (sa, sb) = (probe(&mut a, &x), probe_portable(&mut b, &x));
        assert_eq!(bits(&a), bits(&b));
        assert_eq!(sa.to_bits(), sb.to_bits());
        #[cfg(target_arch = "x86_64")]
        println!(
            "simd: this CPU runs the {} version",
            if std::arch::is_x86_feature_detected!("avx512f") {
                "AVX-512"
            } else if std::arch::is_x86_feature_detected!("avx2") {
                "AVX2"
            } else {
                "baseline"
            }
        );
    }
}
