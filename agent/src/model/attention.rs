//! Fused causal self-attention for the CPU: from the `[batch·seq, 3·width]` output of
//! `c_attn` straight to the `[batch·seq, width]` input of `c_proj`, one (sequence, head)
//! pair per task. As candle ops the same math is six large tensors per layer (head
//! copies, scores, probabilities), each of which candle's backward zero-fills and
//! accumulates into; here the probabilities are recomputed in the backward instead.
//!
//! Determinism: each (sequence, head) pair is computed by one task in a fixed order and
//! written to its own slice of the result, so the bits do not depend on the threads.

use super::ops::with_values;
use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor};
use rayon::prelude::*;

type CResult<T> = candle_core::Result<T>;

/// `softmax(q·kᵀ/√d, causal)·v` for every head of every sequence.
pub struct CausalAttention {
    /// Sequences in the batch.
    pub batch: usize,
    /// Tokens per sequence.
    pub seq: usize,
    /// Attention heads.
    pub n_head: usize,
}

/// Where one head's vectors sit in a `[batch·seq, 3·width]` row-major buffer.
#[derive(Clone, Copy)]
struct Head {
    /// Offset of token 0's row.
    row0: usize,
    /// Row stride (3·width).
    stride: usize,
    /// Column of this head's q; k and v are `width` and `2·width` further.
    col: usize,
    width: usize,
    dim: usize,
}

impl Head {
    fn q<'a>(&self, x: &'a [f32], i: usize) -> &'a [f32] {
        let o = self.row0 + i * self.stride + self.col;
        &x[o..o + self.dim]
    }
    fn k<'a>(&self, x: &'a [f32], j: usize) -> &'a [f32] {
        let o = self.row0 + j * self.stride + self.width + self.col;
        &x[o..o + self.dim]
    }
    fn v<'a>(&self, x: &'a [f32], j: usize) -> &'a [f32] {
        let o = self.row0 + j * self.stride + 2 * self.width + self.col;
        &x[o..o + self.dim]
    }
}

/// Lanes of [`dot`]'s partial sums.
const LANES: usize = 8;

/// `Σ a·b`, in [`LANES`] partial sums added in a fixed order at the end: the compiler
/// turns this into SIMD (a single running sum it may not reorder, so it stays scalar),
/// and the bits are the same on every run and thread count.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let (a, b) = (&a[..a.len().min(b.len())], &b[..a.len().min(b.len())]);
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
    let pairs = [
        acc[0] + acc[4],
        acc[1] + acc[5],
        acc[2] + acc[6],
        acc[3] + acc[7],
    ];
    (pairs[0] + pairs[2]) + (pairs[1] + pairs[3]) + tail
}

impl CausalAttention {
    fn heads(&self, width: usize) -> Vec<Head> {
        let dim = width / self.n_head;
        (0..self.batch * self.n_head)
            .map(|p| Head {
                row0: (p / self.n_head) * self.seq * 3 * width,
                stride: 3 * width,
                col: (p % self.n_head) * dim,
                width,
                dim,
            })
            .collect()
    }

    /// Row `i`'s attention probabilities over tokens `0..=i` into `p`.
    fn probabilities(&self, x: &[f32], h: &Head, i: usize, p: &mut Vec<f32>) {
        let scale = 1.0 / (h.dim as f32).sqrt();
        let q = h.q(x, i);
        p.clear();
        p.extend((0..=i).map(|j| dot(q, h.k(x, j)) * scale));
        let max = p.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
        let mut sum = 0f32;
        for v in p.iter_mut() {
            *v = (*v - max).exp();
            sum += *v;
        }
        for v in p.iter_mut() {
            *v /= sum;
        }
    }
}

impl CustomOp1 for CausalAttention {
    fn name(&self) -> &'static str {
        "fused-causal-attention"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> CResult<(CpuStorage, Shape)> {
        let (a, b) = l
            .contiguous_offsets()
            .ok_or_else(|| candle_core::Error::Msg("attention input is not contiguous".into()))?;
        let x = &s.as_slice::<f32>()?[a..b];
        let width = l.dims()[1] / 3;
        let t = self.seq;
        let per_head: Vec<Vec<f32>> = self
            .heads(width)
            .par_iter()
            .map(|h| {
                let mut y = vec![0f32; t * h.dim];
                let mut p = Vec::with_capacity(t);
                for i in 0..t {
                    self.probabilities(x, h, i, &mut p);
                    let yi = &mut y[i * h.dim..(i + 1) * h.dim];
                    for (j, &pj) in p.iter().enumerate() {
                        for (o, &v) in yi.iter_mut().zip(h.v(x, j)) {
                            *o += pj * v;
                        }
                    }
                }
                y
            })
            .collect();
        let mut out = vec![0f32; self.batch * t * width];
        for (h, y) in self.heads(width).iter().zip(&per_head) {
            let seq = h.row0 / h.stride;
            for i in 0..t {
                let o = (seq + i) * width + h.col;
                out[o..o + h.dim].copy_from_slice(&y[i * h.dim..(i + 1) * h.dim]);
            }
        }
        Ok((CpuStorage::F32(out), Shape::from((self.batch * t, width))))
    }

    fn bwd(&self, qkv: &Tensor, _y: &Tensor, grad: &Tensor) -> CResult<Option<Tensor>> {
        let width = qkv.dim(1)? / 3;
        let t = self.seq;
        let dx = with_values::<f32, _>(qkv, |x| {
            with_values::<f32, _>(grad, |dy| {
                let heads = self.heads(width);
                let per_head: Vec<[Vec<f32>; 3]> = heads
                    .par_iter()
                    .map(|h| {
                        let d = h.dim;
                        let scale = 1.0 / (d as f32).sqrt();
                        let seq = h.row0 / h.stride;
                        let (mut dq, mut dk, mut dv) =
                            (vec![0f32; t * d], vec![0f32; t * d], vec![0f32; t * d]);
                        let (mut p, mut ds) = (Vec::with_capacity(t), Vec::with_capacity(t));
                        for i in 0..t {
                            self.probabilities(x, h, i, &mut p);
                            let o = (seq + i) * width + h.col;
                            let g = &dy[o..o + d];
                            // dP = dy·vᵀ, dV += Pᵀ·dy, dS = P ∘ (dP − Σ P·dP).
                            ds.clear();
                            for (j, &pj) in p.iter().enumerate() {
                                ds.push(dot(g, h.v(x, j)));
                                for (a, &b) in dv[j * d..(j + 1) * d].iter_mut().zip(g) {
                                    *a += pj * b;
                                }
                            }
                            let s = dot(&p, &ds);
                            let q = h.q(x, i);
                            for (j, (&pj, dsj)) in p.iter().zip(ds.iter_mut()).enumerate() {
                                *dsj = pj * (*dsj - s) * scale;
                                let k = h.k(x, j);
                                for (a, &b) in dq[i * d..(i + 1) * d].iter_mut().zip(k) {
                                    *a += *dsj * b;
                                }
                                for (a, &b) in dk[j * d..(j + 1) * d].iter_mut().zip(q) {
                                    *a += *dsj * b;
                                }
                            }
                        }
                        [dq, dk, dv]
                    })
                    .collect();
                let mut dx = vec![0f32; x.len()];
                for (h, parts) in heads.iter().zip(&per_head) {
                    for (which, part) in parts.iter().enumerate() {
                        for i in 0..t {
                            let o = h.row0 + i * h.stride + which * width + h.col;
                            dx[o..o + h.dim].copy_from_slice(&part[i * h.dim..(i + 1) * h.dim]);
                        }
                    }
                }
                dx
            })
        })??;
        Ok(Some(Tensor::from_vec(dx, qkv.shape(), qkv.device())?))
    }
}

#[cfg(test)]
mod tests {
    use super::dot;

    #[test]
    fn the_lane_wise_dot_product_is_the_dot_product_at_every_length() {
        for n in 0..40 {
            let a: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
            let b: Vec<f32> = (0..n).map(|i| (i as f32 * 0.11).cos() - 0.2).collect();
            let exact: f64 = a.iter().zip(&b).map(|(x, y)| *x as f64 * *y as f64).sum();
            let got = dot(&a, &b);
            assert!(
                (got as f64 - exact).abs() < 1e-5,
                "n = {n}: {got} vs {exact}"
            );
            assert_eq!(got.to_bits(), dot(&a, &b).to_bits());
        }
    }
}
