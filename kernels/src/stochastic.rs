//! The counter-based random numbers behind int4 stochastic rounding.
//!
//! A draw depends only on (seed, element index), never on which thread or GPU
//! block computes it, so every backend and every thread count gives the same bytes.
//! `kernels/cuda/quantize.cu` implements the same three functions; keep them equal.

/// splitmix64's finaliser over `x + golden`: turns a seed into a well-mixed key.
pub(crate) fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// MurmurHash3's 32-bit finaliser: a bijection with full avalanche.
#[inline(always)]
pub(crate) fn fmix32(mut h: u32) -> u32 {
    h ^= h >> 16;
    h = h.wrapping_mul(0x85EB_CA6B);
    h ^= h >> 13;
    h = h.wrapping_mul(0xC2B2_AE35);
    h ^ (h >> 16)
}

/// The two 32-bit keys for the elements whose index has high word `hi`.
///
/// Keys are per 2^32-element segment so that the per-element work is 32-bit only
/// (vectorises on CPUs, native on GPUs) yet indices past 2^32 never repeat a stream.
#[derive(Clone, Copy, Debug)]
pub(crate) struct StreamKey {
    pub(crate) k0: u32,
    pub(crate) k1: u32,
}

impl StreamKey {
    /// Key of segment `hi` (= element index >> 32) under `seed`.
    pub(crate) fn new(seed: u64, hi: u32) -> Self {
        let z = splitmix64(seed ^ u64::from(hi).wrapping_mul(0xD1B5_4A32_D192_ED03));
        StreamKey {
            k0: z as u32,
            k1: (z >> 32) as u32,
        }
    }

    /// A uniform draw in [0, 1) with 24 random bits (exact in f32) for element `lo`.
    #[inline(always)]
    pub(crate) fn uniform(self, lo: u32) -> f32 {
        let h = fmix32(fmix32(lo ^ self.k0) ^ self.k1);
        (h >> 8) as f32 * (1.0 / 16_777_216.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniform_draws_cover_the_unit_interval_evenly() {
        let key = StreamKey::new(42, 0);
        let n = 1 << 16;
        let mut buckets = [0u32; 16];
        let mut sum = 0.0f64;
        for i in 0..n {
            let u = key.uniform(i);
            assert!((0.0..1.0).contains(&u));
            buckets[(u * 16.0) as usize] += 1;
            sum += f64::from(u);
        }
        let expect = n as f64 / 16.0;
        for b in buckets {
            // 6 standard deviations of a binomial(n, 1/16) bucket count.
            assert!(
                (f64::from(b) - expect).abs() < 6.0 * (expect * 15.0 / 16.0).sqrt(),
                "{buckets:?}"
            );
        }
        assert!((sum / n as f64 - 0.5).abs() < 0.01);
    }

    #[test]
    fn seeds_and_segments_give_different_streams() {
        let a = StreamKey::new(1, 0);
        let b = StreamKey::new(2, 0);
        let c = StreamKey::new(1, 1);
        let same_ab = (0..1000).filter(|&i| a.uniform(i) == b.uniform(i)).count();
        let same_ac = (0..1000).filter(|&i| a.uniform(i) == c.uniform(i)).count();
        assert!(same_ab < 5 && same_ac < 5);
    }
}
