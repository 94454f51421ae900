//! The CPU backend: the canonical path, blocks split across rayon's threads.
//!
//! Work is cut into chunks of whole blocks and every block is computed on its own, so
//! the bytes never depend on the number of threads. The inner loops are plain loops
//! over slices that the compiler vectorises.

use std::borrow::Borrow;

use rayon::prelude::*;

use crate::block::Op;
use crate::{KernelError, QuantConfig, QuantizedBlob, chunk};

/// Below this many values one thread does all the work (rayon's overhead would dominate).
pub(crate) const PARALLEL_MIN: usize = 1 << 18;

/// Values per parallel task: 256 KiB of f32, large enough to amortise scheduling.
const CHUNK_VALUES: usize = 1 << 16;

/// One parallel task of `quantize`: (chunk number, ((input, scales), packed data)).
type QuantizeTask<'a> = (usize, ((&'a [f32], &'a mut [f32]), &'a mut [u8]));

/// Quantizes `input` blockwise; `seed` drives int4 stochastic rounding (ignored by int8).
pub fn quantize(input: &[f32], cfg: QuantConfig, seed: u64) -> Result<QuantizedBlob, KernelError> {
    cfg.validate()?;
    let mut blob = QuantizedBlob::from_parts(cfg, 0, Vec::new(), Vec::new());
    quantize_into(input, cfg, seed, &mut blob)?;
    Ok(blob)
}

/// [`quantize`] into an existing blob, reusing its memory: a sender that quantizes every
/// round skips allocating (and page-faulting) fresh buffers. On a non-finite input
/// `out` is left empty; on an invalid config it is left unchanged.
pub fn quantize_into(
    input: &[f32],
    cfg: QuantConfig,
    seed: u64,
    out: &mut QuantizedBlob,
) -> Result<(), KernelError> {
    cfg.validate()?;
    let n = input.len();
    let (scales, data) = out.buffers_mut();
    // Every scale and every byte is overwritten below, so stale contents do not matter.
    scales.resize(cfg.blocks(n), 0.0);
    data.resize(cfg.bits.data_len(n), 0);
    let chunk_blocks = (CHUNK_VALUES / cfg.block).max(1);
    let chunk_values = chunk_blocks * cfg.block;
    let chunk_bytes = cfg.bits.data_len(chunk_values);
    let run =
        |(c, ((x, s), d)): QuantizeTask<'_>| chunk::quantize(x, cfg, seed, c * chunk_values, s, d);
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
        let (scales, data) = out.buffers_mut();
        scales.clear();
        data.clear();
        out.set_header(cfg, 0);
        return Err(KernelError::NonFinite { index });
    }
    out.set_header(cfg, n);
    Ok(())
}

/// The values a blob encodes.
pub fn dequantize(blob: &QuantizedBlob) -> Vec<f32> {
    let mut out = vec![0f32; blob.len()];
    for_each_chunk(blob, &mut out, Op::Store);
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
    for_each_chunk(blob, acc, Op::Add);
    Ok(())
}

/// Largest piece [`dequantize_accumulate_all`] works on (values).
const PIECE_MAX: usize = 1 << 16;

/// Adds every blob to `acc` in the order given: the same bits as one
/// [`dequantize_accumulate`] per blob, but `acc` crosses memory once instead of once per
/// blob (each piece of it stays in cache while every blob is added to it).
///
/// All lengths are checked first, so on error `acc` is unchanged.
pub fn dequantize_accumulate_all<B: Borrow<QuantizedBlob> + Sync>(
    blobs: &[B],
    acc: &mut [f32],
) -> Result<(), KernelError> {
    if let Some(b) = blobs
        .iter()
        .map(Borrow::borrow)
        .find(|b| b.len() != acc.len())
    {
        return Err(KernelError::LengthMismatch {
            expected: b.len(),
            got: acc.len(),
        });
    }
    // A piece must hold whole blocks of every blob.
    let lcm = blobs.iter().fold(1, |l, b| lcm(l, b.borrow().block()));
    if lcm > PIECE_MAX {
        for b in blobs {
            for_each_chunk(b.borrow(), acc, Op::Add);
        }
        return Ok(());
    }
    let piece = lcm * (PIECE_MAX / 4 / lcm).max(1);
    let run = |(p, out): (usize, &mut [f32])| {
        let start = p * piece;
        for b in blobs.iter().map(Borrow::borrow) {
            let (bits, block) = (b.bits(), b.block());
            let first = start / block;
            let scales = &b.scales()[first..first + out.len().div_ceil(block)];
            let at = bits.data_len(start); // start is a multiple of the (even) block
            let data = &b.data()[at..at + bits.data_len(out.len())];
            chunk::dequantize(bits, block, scales, data, out, Op::Add);
        }
    };
    if acc.len() < PARALLEL_MIN {
        acc.chunks_mut(piece).enumerate().for_each(run);
    } else {
        acc.par_chunks_mut(piece).enumerate().for_each(run);
    }
    Ok(())
}

/// Least common multiple (inputs are block sizes: nonzero).
fn lcm(a: usize, b: usize) -> usize {
    let gcd = |mut a: usize, mut b: usize| {
        while b != 0 {
            (a, b) = (b, a % b);
        }
        a
    };
    a / gcd(a, b) * b
}

/// Applies `op` with the blob's values to `out`, chunks in parallel when large.
pub(crate) fn for_each_chunk(blob: &QuantizedBlob, out: &mut [f32], op: Op) {
    let (bits, block) = (blob.bits(), blob.block());
    let chunk_blocks = (CHUNK_VALUES / block).max(1);
    let chunk_values = chunk_blocks * block;
    let chunk_bytes = bits.data_len(chunk_values);
    let run =
        |((o, s), d): ((&mut [f32], &[f32]), &[u8])| chunk::dequantize(bits, block, s, d, o, op);
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
