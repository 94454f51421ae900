//! `make bench`: GB/s of f32 input for each kernel on 64 MiB, at 1 and 2 threads,
//! beside memcpy of the same bytes (the memory-bandwidth limit) and a plain scalar loop.

use std::hint::black_box;
use std::time::Instant;

use crowdtrain_kernels::{
    QuantConfig, dequantize_accumulate, dequantize_accumulate_all, quantize, quantize_into,
};
use rayon::prelude::*;

#[cfg(feature = "cuda")]
mod gpu;

/// 64 MiB of f32 input per run.
const BYTES: usize = 64 << 20;
/// Blobs a receiver adds per round in the multi-peer rows.
const PEERS: usize = 8;
/// Timings per kernel; the best is reported.
const REPS: usize = 7;

/// Best wall time of `REPS` runs, as GB/s of `BYTES`.
fn gbps(mut f: impl FnMut()) -> f64 {
    f(); // warm-up: page faults, thread start
    let best = (0..REPS)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min);
    BYTES as f64 / best / 1e9
}

/// The obvious per-element int8 quantizer: what the kernels are measured against.
fn scalar_int8(x: &[f32], out: &mut [i8], scales: &mut [f32]) {
    for ((xb, ob), s) in x.chunks(256).zip(out.chunks_mut(256)).zip(scales) {
        let absmax = xb.iter().fold(0f32, |m, v| m.max(v.abs()));
        *s = absmax / 127.0;
        for (o, v) in ob.iter_mut().zip(xb) {
            *o = if *s == 0.0 {
                0
            } else {
                (v / *s).round_ties_even() as i8
            };
        }
    }
}

fn main() {
    let n = BYTES / 4;
    let x: Vec<f32> = (0..n)
        .map(|i| ((i * 7919 % 10007) as f32 - 5003.0) * 1e-4)
        .collect();
    let int8 = QuantConfig::int8();
    let int4 = QuantConfig::int4();
    let b8 = quantize(&x, int8, 1).expect("finite input");
    let b4 = quantize(&x, int4, 1).expect("finite input");
    let (mut r8, mut r4) = (b8.clone(), b4.clone());
    let peers = vec![b8.clone(); PEERS];
    let mut acc = vec![0f32; n];
    let mut dst = vec![0f32; n];
    let mut q = vec![0i8; n];
    let mut s = vec![0f32; n / 256];

    println!("64 MiB of f32 input; GB/s = input bytes / best of {REPS} runs\n");
    println!("| kernel | 1 thread GB/s | 2 threads GB/s | 1 thread / memcpy |");
    println!("|---|---:|---:|---:|");
    let mut rows: Vec<(&str, [f64; 2])> = Vec::new();
    for (t, threads) in [1usize, 2].into_iter().enumerate() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("thread pool");
        pool.install(|| {
            let mut measure =
                |name: &'static str, g: f64| match rows.iter_mut().find(|r| r.0 == name) {
                    Some(r) => r.1[t] = g,
                    None => rows.push((
                        name,
                        [if t == 0 { g } else { 0.0 }, if t == 1 { g } else { 0.0 }],
                    )),
                };
            let chunk = n.div_ceil(threads);
            measure(
                "memcpy (bandwidth limit)",
                gbps(|| {
                    dst.par_chunks_mut(chunk)
                        .zip(x.par_chunks(chunk))
                        .for_each(|(d, s)| d.copy_from_slice(s))
                }),
            );
            measure(
                "scalar loop int8 quantize",
                gbps(|| scalar_int8(black_box(&x), &mut q, &mut s)),
            );
            measure(
                "int8 quantize (fresh blob)",
                gbps(|| drop(black_box(quantize(&x, int8, 1)))),
            );
            measure(
                "int8 quantize_into (reused blob)",
                gbps(|| quantize_into(&x, int8, 1, &mut r8).expect("finite input")),
            );
            measure(
                "int4 quantize (fresh blob)",
                gbps(|| drop(black_box(quantize(&x, int4, 1)))),
            );
            measure(
                "int4 quantize_into (reused blob)",
                gbps(|| quantize_into(&x, int4, 1, &mut r4).expect("finite input")),
            );
            measure(
                "int8 dequantize-accumulate",
                gbps(|| dequantize_accumulate(&b8, &mut acc).expect("len")),
            );
            measure(
                "int4 dequantize-accumulate",
                gbps(|| dequantize_accumulate(&b4, &mut acc).expect("len")),
            );
            // A receiver's round: PEERS blobs into one sum (GB/s of all their f32 input).
            measure(
                "int8 × 8 peers, one dequantize_accumulate each",
                PEERS as f64
                    * gbps(|| {
                        for b in &peers {
                            dequantize_accumulate(b, &mut acc).expect("len");
                        }
                    }),
            );
            measure(
                "int8 × 8 peers, dequantize_accumulate_all",
                PEERS as f64 * gbps(|| dequantize_accumulate_all(&peers, &mut acc).expect("len")),
            );
        });
    }
    let memcpy = rows[0].1[0];
    for (name, [one, two]) in rows {
        println!(
            "| {name} | {one:.2} | {two:.2} | {:.0}% |",
            100.0 * one / memcpy
        );
    }
    #[cfg(feature = "cuda")]
    gpu::run(&x);
}
