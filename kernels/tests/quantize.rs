//! Behaviour of quantize / dequantize / dequantize_accumulate on the CPU.

mod common;

use common::lcg_values;
use crowdtrain_kernels::{
    Bits, KernelError, QuantConfig, dequantize, dequantize_accumulate, quantize,
};

#[test]
fn int8_error_is_at_most_half_a_quantum() {
    // Values of very different magnitude per block, and a ragged last block.
    let mut x = lcg_values(256 * 7 + 13, 1, 1.0);
    for (i, v) in x.iter_mut().enumerate() {
        *v *= [1e-6, 1e-2, 1.0, 3e3, 1e30][(i / 256) % 5];
    }
    let blob = quantize(&x, QuantConfig::int8(), 0).unwrap();
    let y = dequantize(&blob);
    assert_eq!(y.len(), x.len());
    for (i, (&a, &b)) in x.iter().zip(&y).enumerate() {
        let scale = blob.scales()[i / 256];
        // Half a quantum, plus the division's and the multiply's single roundings.
        assert!(
            (a - b).abs() <= 0.5 * scale * (1.0 + 1e-4),
            "i={i} x={a} y={b} scale={scale}"
        );
    }
}

#[test]
fn int8_uses_the_full_range_and_keeps_the_absmax_exactly_signed() {
    let x = [0.5f32, -2.0, 1.0, 0.0];
    let mut padded = x.to_vec();
    padded.resize(32, 0.0);
    let blob = quantize(
        &padded,
        QuantConfig {
            bits: Bits::Int8,
            block: 32,
        },
        0,
    )
    .unwrap();
    assert_eq!(blob.scales(), &[2.0f32 / 127.0]);
    assert_eq!(&blob.data()[..4], &[32u8, (-127i8) as u8, 64, 0]); // 31.75 → 32, 63.5 → 64 (ties to even)
}

#[test]
fn int8_rounds_half_to_even() {
    // scale = 127/127 = 1, so the quantized value is the rounded input.
    let mut x = vec![0.5f32, 1.5, 2.5, -0.5, -1.5, -2.5, 126.5, 127.0];
    x.resize(32, 0.0);
    let blob = quantize(
        &x,
        QuantConfig {
            bits: Bits::Int8,
            block: 32,
        },
        0,
    )
    .unwrap();
    let q: Vec<i8> = blob.data()[..8].iter().map(|&b| b as i8).collect();
    assert_eq!(q, vec![0, 2, 2, 0, -2, -2, 126, 127]);
}

#[test]
fn int4_is_unbiased_over_many_seeds() {
    let x = lcg_values(64, 7, 1.0);
    let draws = 4000;
    let mut mean = vec![0f64; x.len()];
    let mut scale = 0f32;
    for seed in 0..draws {
        let blob = quantize(&x, QuantConfig::int4(), seed).unwrap();
        scale = blob.scales()[0];
        for (m, y) in mean.iter_mut().zip(dequantize(&blob)) {
            *m += f64::from(y) / draws as f64;
        }
    }
    for (i, (&a, &m)) in x.iter().zip(&mean).enumerate() {
        // One draw is off by less than a quantum, so its deviation has σ ≤ scale/2;
        // 6σ of the mean of `draws` draws.
        let tol = 6.0 * f64::from(scale) * 0.5 / (draws as f64).sqrt();
        assert!(
            (f64::from(a) - m).abs() < tol,
            "i={i} x={a} mean={m} tol={tol}"
        );
    }
}

#[test]
fn int4_rounds_to_one_of_the_two_neighbours() {
    let x = lcg_values(1000, 3, 5.0);
    let blob = quantize(&x, QuantConfig::int4(), 99).unwrap();
    for (i, (&a, &b)) in x.iter().zip(&dequantize(&blob)).enumerate() {
        let scale = blob.scales()[i / 64];
        assert!(
            (a - b).abs() <= scale * (1.0 + 1e-4),
            "i={i} x={a} y={b} scale={scale}"
        );
    }
}

#[test]
fn int4_depends_on_the_seed_and_only_on_the_seed() {
    let x = lcg_values(4096, 5, 1.0);
    let a = quantize(&x, QuantConfig::int4(), 1).unwrap();
    assert_eq!(a, quantize(&x, QuantConfig::int4(), 1).unwrap());
    assert_ne!(
        a.data(),
        quantize(&x, QuantConfig::int4(), 2).unwrap().data()
    );
    let int8 = quantize(&x, QuantConfig::int8(), 1).unwrap();
    assert_eq!(
        int8,
        quantize(&x, QuantConfig::int8(), 2).unwrap(),
        "int8 ignores the seed"
    );
}

#[test]
fn all_zero_blocks_have_zero_scale_and_decode_to_zero() {
    for cfg in [QuantConfig::int8(), QuantConfig::int4()] {
        let mut x = vec![0f32; cfg.block * 3];
        x[cfg.block + 5] = 1.5; // only the middle block is nonzero
        let blob = quantize(&x, cfg, 4).unwrap();
        assert_eq!(blob.scales()[0], 0.0);
        assert_eq!(blob.scales()[2], 0.0);
        assert!(blob.scales()[1] > 0.0);
        let y = dequantize(&blob);
        assert!(
            y[..cfg.block]
                .iter()
                .chain(&y[2 * cfg.block..])
                .all(|&v| v == 0.0 && v.is_sign_positive())
        );
        assert_eq!(y[cfg.block + 5], 1.5, "the absmax itself is exact");
    }
}

#[test]
fn ragged_lengths_round_trip_their_length() {
    for cfg in [
        QuantConfig::int8(),
        QuantConfig::int4(),
        QuantConfig {
            bits: Bits::Int4,
            block: 32,
        },
    ] {
        for n in [1, 2, 31, 63, 65, 255, 257, 1000, 1001] {
            let x = lcg_values(n, n as u64, 2.0);
            let blob = quantize(&x, cfg, 0).unwrap();
            assert_eq!(blob.len(), n);
            assert_eq!(blob.scales().len(), n.div_ceil(cfg.block));
            assert_eq!(blob.data().len(), cfg.bits.data_len(n));
            let y = dequantize(&blob);
            assert_eq!(y.len(), n);
            let tol = if cfg.bits == Bits::Int8 { 0.5 } else { 1.0 } * 1.0001;
            for (i, (a, b)) in x.iter().zip(&y).enumerate() {
                assert!(
                    (a - b).abs() <= tol * blob.scales()[i / cfg.block],
                    "{cfg:?} n={n} i={i}"
                );
            }
        }
    }
}

#[test]
fn empty_input_gives_an_empty_blob() {
    for cfg in [QuantConfig::int8(), QuantConfig::int4()] {
        let blob = quantize(&[], cfg, 0).unwrap();
        assert!(blob.is_empty());
        assert_eq!(blob.len(), 0);
        assert!(dequantize(&blob).is_empty());
        dequantize_accumulate(&blob, &mut []).unwrap();
    }
}

#[test]
fn non_finite_input_names_the_first_bad_index() {
    for cfg in [QuantConfig::int8(), QuantConfig::int4()] {
        let mut x = lcg_values(1 << 19, 1, 1.0); // large enough for the parallel path
        x[500_000] = f32::INFINITY;
        x[300_001] = f32::NAN;
        x[400_000] = f32::NEG_INFINITY;
        assert_eq!(
            quantize(&x, cfg, 0),
            Err(KernelError::NonFinite { index: 300_001 })
        );
        let err = quantize(&x[..10], cfg, 0).map(|_| ());
        assert_eq!(err, Ok(()));
        assert_eq!(
            quantize(&[1.0, f32::NEG_INFINITY], cfg, 0),
            Err(KernelError::NonFinite { index: 1 })
        );
    }
}

#[test]
fn accumulate_adds_each_blob_in_order() {
    let x1 = lcg_values(1000, 1, 1.0);
    let x2 = lcg_values(1000, 2, 3.0);
    let b1 = quantize(&x1, QuantConfig::int8(), 0).unwrap();
    let b2 = quantize(&x2, QuantConfig::int4(), 9).unwrap();
    let mut acc = vec![0.25f32; 1000];
    dequantize_accumulate(&b1, &mut acc).unwrap();
    dequantize_accumulate(&b2, &mut acc).unwrap();
    let (y1, y2) = (dequantize(&b1), dequantize(&b2));
    for i in 0..1000 {
        assert_eq!(acc[i].to_bits(), ((0.25 + y1[i]) + y2[i]).to_bits());
    }
    let err = dequantize_accumulate(&b1, &mut acc[..999]);
    assert_eq!(
        err,
        Err(KernelError::LengthMismatch {
            expected: 1000,
            got: 999
        })
    );
}

#[test]
fn bad_block_sizes_are_refused() {
    for block in [0, 16, 33, 100, 1 << 17] {
        let err = quantize(
            &[1.0],
            QuantConfig {
                bits: Bits::Int8,
                block,
            },
            0,
        );
        assert!(
            matches!(err, Err(KernelError::InvalidConfig(_))),
            "block {block}"
        );
    }
}

#[test]
fn bytes_do_not_depend_on_the_thread_count() {
    let x = lcg_values((1 << 20) + 77, 11, 1.0);
    for cfg in [QuantConfig::int8(), QuantConfig::int4()] {
        let run = |threads| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                let blob = quantize(&x, cfg, 5).unwrap();
                let mut acc = x.clone();
                dequantize_accumulate(&blob, &mut acc).unwrap();
                (blob.hash(), acc, dequantize(&blob))
            })
        };
        let (h1, a1, d1) = run(1);
        let (h2, a2, d2) = run(2);
        let (h3, a3, d3) = run(3);
        assert!(h1 == h2 && h2 == h3);
        assert!(a1 == a2 && a2 == a3);
        assert!(d1 == d2 && d2 == d3);
    }
}

#[test]
fn quantize_into_reuses_a_blob_and_matches_quantize() {
    use crowdtrain_kernels::quantize_into;
    let mut blob = quantize(&lcg_values(5000, 1, 1.0), QuantConfig::int8(), 0).unwrap();
    for (n, cfg) in [
        (300, QuantConfig::int4()),
        (7000, QuantConfig::int8()),
        (0, QuantConfig::int8()),
    ] {
        let x = lcg_values(n, n as u64, 2.0);
        quantize_into(&x, cfg, 3, &mut blob).unwrap();
        assert_eq!(blob, quantize(&x, cfg, 3).unwrap());
    }
    let bad_cfg = QuantConfig {
        bits: Bits::Int8,
        block: 7,
    };
    assert!(quantize_into(&[1.0], bad_cfg, 0, &mut blob).is_err());
    assert_eq!(
        blob,
        quantize(&[], QuantConfig::int8(), 0).unwrap(),
        "unchanged by a bad config"
    );
    let x = lcg_values(100, 1, 1.0);
    quantize_into(&x, QuantConfig::int8(), 0, &mut blob).unwrap();
    let err = quantize_into(&[1.0, f32::NAN], QuantConfig::int4(), 0, &mut blob);
    assert_eq!(err, Err(KernelError::NonFinite { index: 1 }));
    assert!(blob.is_empty() && blob.scales().is_empty() && blob.data().is_empty());
    assert_eq!(blob.to_bytes().len(), blob.wire_len());
}

#[test]
fn accumulating_all_blobs_at_once_gives_the_sequential_bits() {
    use crowdtrain_kernels::dequantize_accumulate_all;
    let configs = [
        QuantConfig::int8(),
        QuantConfig::int4(),
        QuantConfig {
            bits: Bits::Int8,
            block: 32,
        },
        QuantConfig {
            bits: Bits::Int4,
            block: 96,
        },
    ];
    // Small and ragged, large enough for the parallel path, and block sizes whose
    // least common multiple is too large for one piece (the fallback).
    let huge_lcm = [
        QuantConfig {
            bits: Bits::Int8,
            block: 65536,
        },
        QuantConfig {
            bits: Bits::Int4,
            block: 65504,
        },
    ];
    for (n, cfgs) in [
        (1001, &configs[..]),
        ((1 << 19) + 5, &configs[..]),
        (70_001, &huge_lcm[..]),
    ] {
        let blobs: Vec<_> = cfgs
            .iter()
            .enumerate()
            .map(|(k, &cfg)| {
                quantize(&lcg_values(n, k as u64, 1.0 + k as f32), cfg, k as u64).unwrap()
            })
            .collect();
        let start = lcg_values(n, 99, 0.5);
        let mut one_by_one = start.clone();
        for b in &blobs {
            dequantize_accumulate(b, &mut one_by_one).unwrap();
        }
        let mut all = start.clone();
        dequantize_accumulate_all(&blobs, &mut all).unwrap();
        let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&all), bits(&one_by_one), "n={n}");
    }
    let blobs = [
        quantize(&[1.0; 10], QuantConfig::int8(), 0).unwrap(),
        quantize(&[1.0; 9], QuantConfig::int8(), 0).unwrap(),
    ];
    let mut acc = vec![0.5f32; 10];
    assert_eq!(
        dequantize_accumulate_all(&blobs, &mut acc),
        Err(KernelError::LengthMismatch {
            expected: 9,
            got: 10
        })
    );
    assert_eq!(acc, vec![0.5; 10], "unchanged on error");
}
