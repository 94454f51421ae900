//! The CPU backend: the canonical path, blocks split across rayon's threads.
//!
//! Work is cut into chunks of whole blocks and every block is computed on its own, so
//! the bytes never depend on the number of threads. The inner loops are plain loops
//! over slices that the compiler vectorises.

use rayon::prelude::*;

use crate::block::{self, INF_BITS};
use crate::{Bits, KernelError, QuantConfig, QuantizedBlob};

/// Below this many values one thread does all the work (rayon's overhead would dominate).
const PARALLEL_MIN: usize = 1 << 18;

/// Values per parallel task: 256 KiB of f32, large enough to amortise scheduling.
const CHUNK_VALUES: usize = 1 << 16;

/// One parallel task of `quantize`: (chunk number, ((input, scales), packed data)).
type QuantizeTask<'a> = (usize, ((&'a [f32], &'a mut [f32]), &'a mut [u8]));

/// Quantizes `input` blockwise; `seed` drives int4 stochastic rounding (ignored by int8).
pub fn quantize(input: &[f32], cfg: QuantConfig, seed: u64) -> Result<QuantizedBlob, KernelError> {
    cfg.validate()?;
    let n = input.len();
    let mut scales = vec![0f32; cfg.blocks(n)];
    let mut data = vec![0u8; cfg.bits.data_len(n)];
    let chunk_blocks = (CHUNK_VALUES / cfg.block).max(1);
    let chunk_values = chunk_blocks * cfg.block;
    let chunk_bytes = cfg.bits.data_len(chunk_values);
    let run =
        |(c, ((x, s), d)): QuantizeTask<'_>| quantize_chunk(x, cfg, seed, c * chunk_values, s, d);
    let first_bad = if n < PARALLEL_MIN {
        let chunks = input
            .chunks(chunk_values)
            .zip(scales.chunks_mut(chunk_blocks));
        chunks
            .zip(data.chunks_mut(chunk_bytes))
            .enumerate()
            .map(run)
            .find_map(Result::err)
    } else {
        let chunks = input
            .par_chunks(chunk_values)
            .zip(scales.par_chunks_mut(chunk_blocks));
        // min, not the first error found: which chunk fails first is up to the scheduler.
        chunks
            .zip(data.par_chunks_mut(chunk_bytes))
            .enumerate()
            .map(run)
            .filter_map(Result::err)
            .min()
    };
    if let Some(index) = first_bad {
        return Err(KernelError::NonFinite { index });
    }
    Ok(QuantizedBlob::from_parts(cfg, n, scales, data))
}

/// Quantizes the blocks of one chunk starting at global index `first`; `Err` holds the
/// global index of the chunk's first non-finite value.
fn quantize_chunk(
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

/// The values a blob encodes.
pub fn dequantize(blob: &QuantizedBlob) -> Vec<f32> {
    let mut out = vec![0f32; blob.len()];
    for_each_chunk(blob, &mut out, |q, s, o| {
        for (o, q) in o.iter_mut().zip(q) {
            *o = q * s;
        }
    });
    out
}

/// `acc[i] = acc[i] + value[i]`: a multiply then a separate add, never a fused one.
pub fn dequantize_accumulate(blob: &QuantizedBlob, acc: &mut [f32]) -> Result<(), KernelError> {
    if acc.len() != blob.len() {
        return Err(KernelError::LengthMismatch {
            expected: blob.len(),
            got: acc.len(),
        });
    }
    for_each_chunk(blob, acc, |q, s, o| {
        for (o, q) in o.iter_mut().zip(q) {
            *o += q * s;
        }
    });
    Ok(())
}

/// Runs `f(quantized values as f32, scale, out)` on each block, chunks in parallel
/// when large. `out.len() == blob.len()`.
fn for_each_chunk(
    blob: &QuantizedBlob,
    out: &mut [f32],
    f: impl Fn(&[f32], f32, &mut [f32]) + Sync,
) {
    let block = blob.block();
    let chunk_blocks = (CHUNK_VALUES / block).max(1);
    let chunk_values = chunk_blocks * block;
    let chunk_bytes = blob.bits().data_len(chunk_values);
    let bits = blob.bits();
    let run = |((o, s), d): ((&mut [f32], &[f32]), &[u8])| {
        let mut q = vec![0f32; block];
        let bytes_per_block = bits.data_len(block);
        for ((ob, &sb), db) in o.chunks_mut(block).zip(s).zip(d.chunks(bytes_per_block)) {
            let q = &mut q[..ob.len()];
            unpack(bits, db, q);
            f(q, sb, ob);
        }
    };
    let (scales, data) = (blob.scales(), blob.data());
    if out.len() < PARALLEL_MIN {
        let chunks = out
            .chunks_mut(chunk_values)
            .zip(scales.chunks(chunk_blocks));
        chunks.zip(data.chunks(chunk_bytes)).for_each(run);
    } else {
        let chunks = out
            .par_chunks_mut(chunk_values)
            .zip(scales.par_chunks(chunk_blocks));
        chunks.zip(data.par_chunks(chunk_bytes)).for_each(run);
    }
}

/// Quantized values of one block as f32 (exact: |q| ≤ 127).
fn unpack(bits: Bits, data: &[u8], q: &mut [f32]) {
    match bits {
        Bits::Int8 => {
            for (q, &b) in q.iter_mut().zip(data) {
                *q = f32::from(b as i8);
            }
        }
        Bits::Int4 => {
            for (k, q) in q.iter_mut().enumerate() {
                let b = data[k / 2];
                let v = if k % 2 == 0 {
                    block::low_nibble(b)
                } else {
                    block::high_nibble(b)
                };
                *q = f32::from(v);
            }
        }
    }
}
