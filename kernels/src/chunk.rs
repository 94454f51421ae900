//! One chunk of whole blocks, compiled for several instruction sets and picked at run time.
//!
//! Every variant runs the same element-wise IEEE operations (division, multiply, add,
//! integer max), so AVX-512, AVX2 and baseline x86-64 produce identical bytes; only
//! the vector width differs. Rust never fuses a multiply and an add on its own.

use crate::block::{self, ADD, INF_BITS, Op, STORE, SUBTRACT};
use crate::{Bits, QuantConfig};

/// Quantizes the blocks of one chunk starting at global index `first`; `Err` holds the
/// global index of the chunk's first non-finite value.
#[inline(always)]
fn quantize_generic(
    x: &[f32],
    cfg: QuantConfig,
    seed: u64,
    first: usize,
    scales: &mut [f32],
    data: &mut [u8],
) -> Result<(), usize> {
    let bytes_per_block = cfg.bits.data_len(cfg.block);
    let blocks = x
        .chunks(cfg.block)
        .zip(scales.iter_mut())
        .zip(data.chunks_mut(bytes_per_block));
    for (b, ((xb, s), db)) in blocks.enumerate() {
        let start = first + b * cfg.block;
        let m = block::max_abs_bits(xb);
        if m >= INF_BITS {
            let at = block::first_non_finite(xb).expect("a value with Inf/NaN bits exists");
            return Err(start + at);
        }
        let absmax = f32::from_bits(m);
        *s = match cfg.bits {
            Bits::Int8 => block::quantize_int8(xb, absmax, db),
            Bits::Int4 => block::quantize_int4(xb, absmax, seed, start as u64, db),
        };
    }
    Ok(())
}

/// Applies `op` with the values of one chunk of blocks to `out`.
#[inline(always)]
fn dequantize_generic(
    bits: Bits,
    block: usize,
    scales: &[f32],
    data: &[u8],
    out: &mut [f32],
    op: Op,
) {
    let bytes_per_block = bits.data_len(block);
    let blocks = out
        .chunks_mut(block)
        .zip(scales)
        .zip(data.chunks(bytes_per_block));
    for ((ob, &s), db) in blocks {
        match (bits, op) {
            (Bits::Int8, Op::Store) => block::dequantize_int8::<STORE>(db, s, ob),
            (Bits::Int8, Op::Add) => block::dequantize_int8::<ADD>(db, s, ob),
            (Bits::Int8, Op::Subtract) => block::dequantize_int8::<SUBTRACT>(db, s, ob),
            (Bits::Int4, Op::Store) => block::dequantize_int4::<STORE>(db, s, ob),
            (Bits::Int4, Op::Add) => block::dequantize_int4::<ADD>(db, s, ob),
            (Bits::Int4, Op::Subtract) => block::dequantize_int4::<SUBTRACT>(db, s, ob),
        }
    }
}

/// Defines `$name` calling `$generic` through the widest instruction set this CPU has.
macro_rules! dispatch {
    (
        $(#[$doc:meta])* $name:ident [$avx512:ident, $avx2:ident]
        => $generic:ident ($($arg:ident: $ty:ty),*) -> $ret:ty
    ) => {
        /// The AVX-512 build of the generic kernel.
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx2")]
        fn $avx512($($arg: $ty),*) -> $ret {
            $generic($($arg),*)
        }

        /// The AVX2 build of the generic kernel.
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2")]
        fn $avx2($($arg: $ty),*) -> $ret {
            $generic($($arg),*)
        }

        $(#[$doc])*
        pub(crate) fn $name($($arg: $ty),*) -> $ret {
            #[cfg(target_arch = "x86_64")]
            {
                if std::arch::is_x86_feature_detected!("avx512bw")
                    && std::arch::is_x86_feature_detected!("avx512vl")
                    && std::arch::is_x86_feature_detected!("avx512dq")
                {
                    // SAFETY: the CPU has just been checked to support these features.
                    return unsafe { $avx512($($arg),*) };
                }
                if std::arch::is_x86_feature_detected!("avx2") {
                    // SAFETY: as above.
                    return unsafe { $avx2($($arg),*) };
                }
            }
            $generic($($arg),*)
        }
    };
}

dispatch! {
    /// Quantizes one chunk of blocks (see `quantize_generic`).
    quantize [quantize_avx512, quantize_avx2] => quantize_generic(
        x: &[f32], cfg: QuantConfig, seed: u64, first: usize, scales: &mut [f32], data: &mut [u8]
    ) -> Result<(), usize>
}

dispatch! {
    /// Dequantizes (or accumulates) one chunk of blocks (see `dequantize_generic`).
    dequantize [dequantize_avx512, dequantize_avx2] => dequantize_generic(
        bits: Bits, block: usize, scales: &[f32], data: &[u8], out: &mut [f32], op: Op
    ) -> ()
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    //! The dispatcher picks one variant per machine; here all of them must agree.
    use super::*;

    type QuantizeFn =
        fn(&[f32], QuantConfig, u64, usize, &mut [f32], &mut [u8]) -> Result<(), usize>;
    type DequantizeFn = fn(Bits, usize, &[f32], &[u8], &mut [f32], Op);

    fn input(n: usize) -> Vec<f32> {
        let mut s = 17u64;
        (0..n)
            .map(|i| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 40) as f32 / 8_388_608.0 - 1.0) * [1e-3, 1.0, 1e4][i / 256 % 3]
            })
            .collect()
    }

    #[test]
    fn every_instruction_set_gives_the_same_bytes() {
        let has_avx512 = std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512vl")
            && std::arch::is_x86_feature_detected!("avx512dq");
        let has_avx2 = std::arch::is_x86_feature_detected!("avx2");
        if !has_avx2 {
            eprintln!("skipped the AVX2/AVX-512 comparison: this CPU has no AVX2");
            return;
        }
        if !has_avx512 {
            eprintln!("comparing AVX2 only: this CPU has no AVX-512");
        }
        for cfg in [
            QuantConfig::int8(),
            QuantConfig::int4(),
            QuantConfig {
                bits: Bits::Int4,
                block: 96,
            },
        ] {
            for n in [0, 1, 31, 33, 300, 4099] {
                let x = input(n);
                let quant = |f: QuantizeFn| {
                    let mut s = vec![0f32; cfg.blocks(n)];
                    let mut d = vec![0u8; cfg.bits.data_len(n)];
                    // Starting just below 2^32 also crosses a stream-key segment.
                    f(&x, cfg, 3, (1usize << 32) - 96, &mut s, &mut d).unwrap();
                    (s, d)
                };
                let base = quant(quantize_generic);
                // SAFETY (all unsafe calls below): the features were detected above.
                assert_eq!(
                    quant(|a, b, c, d, e, f| unsafe { quantize_avx2(a, b, c, d, e, f) }),
                    base
                );
                if has_avx512 {
                    assert_eq!(
                        quant(|a, b, c, d, e, f| unsafe { quantize_avx512(a, b, c, d, e, f) }),
                        base
                    );
                }
                let (s, d) = base;
                for op in [Op::Store, Op::Add, Op::Subtract] {
                    let deq = |f: DequantizeFn| {
                        let mut out = x.clone();
                        f(cfg.bits, cfg.block, &s, &d, &mut out, op);
                        out.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
                    };
                    let base = deq(dequantize_generic);
                    assert_eq!(
                        deq(|a, b, c, d, e, f| unsafe { dequantize_avx2(a, b, c, d, e, f) }),
                        base
                    );
                    if has_avx512 {
                        assert_eq!(
                            deq(|a, b, c, d, e, f| unsafe { dequantize_avx512(a, b, c, d, e, f) }),
                            base
                        );
                    }
                }
            }
        }
    }
}
