//! Fused causal self-attention for the CPU: from the `[batch·seq, 3·width]` output of
//! `c_attn` straight to the `[batch·seq, width]` input of `c_proj`, one (sequence, head)
//! pair per task. As candle ops the same math is six large tensors per layer (head
//! copies, scores, probabilities), each of which candle's backward zero-fills and
//! accumulates into; here the probabilities are recomputed in the backward instead.
//! Each head's products are small GEMMs on strided views of the fused rows: the
//! scores `q·kᵀ` and `P·v` forward, `dP`, `dv`, `dq` and `dk` backward.
//!
//! Determinism: each (sequence, head) pair is computed by one task in a fixed order and
//! written to its own slice of the result, so the bits do not depend on the threads.

use super::fastmath;
use super::matmul::{Threads, View, gemm};
use super::ops::with_values;
use crate::simd::multiversion;
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

/// Query rows per block of the causal products: each block multiplies only against
/// the keys its rows can see, which skips most of the masked half.
const BLOCK_ROWS: usize = 32;

/// `(start, end)` of each block of [`BLOCK_ROWS`] rows in `0..t`.
fn blocks(t: usize) -> impl Iterator<Item = (usize, usize)> {
    (0..t)
        .step_by(BLOCK_ROWS)
        .map(move |i0| (i0, (i0 + BLOCK_ROWS).min(t)))
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

    /// `[batch·seq, width]`: every head's `softmax(q·kᵀ/√d, causal)·v` of the fused
    /// `[batch·seq, 3·width]` rows `x`.
    pub(super) fn forward(&self, x: &[f32], width: usize) -> Vec<f32> {
        self.forward_keeping(x, width).0
    }

    /// [`Self::forward`] and each head's probabilities, which [`Self::backward`] can
    /// take instead of computing them again (4 bytes × seq² per head of memory, for
    /// one softmax of the keys less per step).
    pub(super) fn forward_keeping(&self, x: &[f32], width: usize) -> (Vec<f32>, Vec<Vec<f32>>) {
        let t = self.seq;
        let per_head: Vec<(Vec<f32>, Vec<f32>)> = self
            .heads(width)
            .par_iter()
            .map(|h| {
                let [q, k, v] = self.qkv(x, h);
                let p = self.probabilities(q, k, h.dim);
                // y = P·v, block by block of rows over the keys they see.
                let mut y = vec![0f32; t * h.dim];
                let p_view = View::rows(&p, t, t, t);
                for (i0, i1) in blocks(t) {
                    gemm(
                        &mut y[i0 * h.dim..],
                        h.dim,
                        false,
                        p_view.sub((i0, i1), (0, i1)),
                        v.sub((0, i1), (0, h.dim)),
                        1.0,
                        Threads::One,
                    );
                }
                (y, p)
            })
            .collect();
        // Each output row gathers its token's slice of every head, rows in parallel.
        let (heads, dim) = (self.n_head, width / self.n_head);
        let mut out = vec![0f32; self.batch * t * width];
        out.par_chunks_mut(width).enumerate().for_each(|(r, row)| {
            let (seq, i) = (r / t, r % t);
            for (head, dst) in row.chunks_exact_mut(dim).enumerate() {
                dst.copy_from_slice(&per_head[seq * heads + head].0[i * dim..(i + 1) * dim]);
            }
        });
        (out, per_head.into_iter().map(|(_, p)| p).collect())
    }

    /// The gradient of the fused rows `x`, given the output's gradient `dy` and, if
    /// kept, the forward's probabilities (else they are computed again).
    pub(super) fn backward(
        &self,
        x: &[f32],
        kept: Option<&[Vec<f32>]>,
        dy: &[f32],
        width: usize,
    ) -> Vec<f32> {
        let t = self.seq;
        let heads = self.heads(width);
        if let Some(kept) = kept {
            assert_eq!(kept.len(), heads.len(), "probabilities of another shape");
        }
        let per_head: Vec<[Vec<f32>; 3]> = heads
            .par_iter()
            .enumerate()
            .map(|(index, h)| {
                let d = h.dim;
                let scale = 1.0 / (d as f32).sqrt();
                let [q, k, v] = self.qkv(x, h);
                let computed;
                let p: &[f32] = match kept {
                    Some(kept) => &kept[index],
                    None => {
                        computed = self.probabilities(q, k, d);
                        &computed
                    }
                };
                let p_view = View::rows(p, t, t, t);
                let seq = h.row0 / h.stride;
                let g = View::rows(&dy[seq * width + h.col..], t, d, width);
                // dP = dy·vᵀ (the causal part) and dv = Pᵀ·dy (key j is seen by rows ≥ j).
                let mut ds = vec![0f32; t * t];
                let mut dv = vec![0f32; t * d];
                for (i0, i1) in blocks(t) {
                    let rows = g.sub((i0, i1), (0, d));
                    let keys = v.sub((0, i1), (0, d)).t();
                    gemm(&mut ds[i0 * t..], t, false, rows, keys, 1.0, Threads::One);
                    let seen_by = p_view.sub((i0, t), (i0, i1)).t();
                    let grads = g.sub((i0, t), (0, d));
                    gemm(
                        &mut dv[i0 * d..],
                        d,
                        false,
                        seen_by,
                        grads,
                        1.0,
                        Threads::One,
                    );
                }
                // dS = P ∘ (dP − Σ P·dP) / √d, in place of dP (zero above the diagonal).
                causal_softmax_bwd(&mut ds, p, t, scale);
                // dq = dS·k and dk = dSᵀ·q, over the causal part only.
                let ds_view = View::rows(&ds, t, t, t);
                let mut dq = vec![0f32; t * d];
                let mut dk = vec![0f32; t * d];
                for (i0, i1) in blocks(t) {
                    let (rows, keys) = (ds_view.sub((i0, i1), (0, i1)), k.sub((0, i1), (0, d)));
                    gemm(&mut dq[i0 * d..], d, false, rows, keys, 1.0, Threads::One);
                    let seen_by = ds_view.sub((i0, t), (i0, i1)).t();
                    let queries = q.sub((i0, t), (0, d));
                    gemm(
                        &mut dk[i0 * d..],
                        d,
                        false,
                        seen_by,
                        queries,
                        1.0,
                        Threads::One,
                    );
                }
                [dq, dk, dv]
            })
            .collect();
        // Each row of the fused gradient gathers its token's q, k and v slices of every
        // head, rows in parallel.
        let (n_head, dim) = (self.n_head, width / self.n_head);
        let mut dx = vec![0f32; x.len()];
        dx.par_chunks_mut(3 * width)
            .enumerate()
            .for_each(|(r, row)| {
                let (seq, i) = (r / t, r % t);
                for (which, third) in row.chunks_exact_mut(width).enumerate() {
                    for (head, dst) in third.chunks_exact_mut(dim).enumerate() {
                        let part = &per_head[seq * n_head + head][which];
                        dst.copy_from_slice(&part[i * dim..(i + 1) * dim]);
                    }
                }
            });
        dx
    }

    /// The head's q, k and v as `[seq, dim]` views of the fused rows.
    fn qkv<'a>(&self, x: &'a [f32], h: &Head) -> [View<'a>; 3] {
        let at = |col: usize| View::rows(&x[h.row0 + col..], self.seq, h.dim, h.stride);
        [at(h.col), at(h.width + h.col), at(2 * h.width + h.col)]
    }

    /// The head's `[seq, seq]` attention probabilities, zero above the diagonal:
    /// `q·kᵀ/√d` as one GEMM, then a softmax over each row's causal prefix.
    fn probabilities(&self, q: View, k: View, dim: usize) -> Vec<f32> {
        let t = self.seq;
        let mut p = vec![0f32; t * t];
        let scale = 1.0 / (dim as f32).sqrt();
        for (i0, i1) in blocks(t) {
            let (rows, keys) = (q.sub((i0, i1), (0, dim)), k.sub((0, i1), (0, dim)).t());
            gemm(&mut p[i0 * t..], t, false, rows, keys, scale, Threads::One);
        }
        causal_softmax(&mut p, t);
        p
    }
}

multiversion! {
    /// Row `i` of the `t × t` scores becomes the softmax of its first `i + 1` entries,
    /// and zero after them.
    fn causal_softmax / causal_softmax_portable(p: &mut [f32], t: usize) {
        for (i, row) in p.chunks_exact_mut(t).enumerate() {
            let (seen, future) = row.split_at_mut(i + 1);
            let max = fastmath::max(seen);
            // Exponentials first (a loop that vectorises), then their sum.
            for v in seen.iter_mut() {
                *v = fastmath::exp(*v - max);
            }
            let inv = 1.0 / fastmath::sum(seen);
            for v in seen.iter_mut() {
                *v *= inv;
            }
            future.fill(0.0);
        }
    }
}

multiversion! {
    /// `dS = P ∘ (dP − Σ P·dP) · scale` row by row, in place of `dP`, over each row's
    /// causal prefix (zero after it).
    fn causal_softmax_bwd / causal_softmax_bwd_portable(
        ds: &mut [f32],
        p: &[f32],
        t: usize,
        scale: f32,
    ) {
        for (i, (dsr, pr)) in ds.chunks_exact_mut(t).zip(p.chunks_exact(t)).enumerate() {
            let s = fastmath::dot(&pr[..=i], &dsr[..=i]);
            for (a, &pj) in dsr[..=i].iter_mut().zip(&pr[..=i]) {
                *a = pj * (*a - s) * scale;
            }
            dsr[i + 1..].fill(0.0);
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
        let out = self.forward(x, width);
        Ok((
            CpuStorage::F32(out),
            Shape::from((self.batch * self.seq, width)),
        ))
    }

    fn bwd(&self, qkv: &Tensor, _y: &Tensor, grad: &Tensor) -> CResult<Option<Tensor>> {
        let width = qkv.dim(1)? / 3;
        let dx = with_values::<f32, _>(qkv, |x| {
            with_values::<f32, _>(grad, |dy| self.backward(x, None, dy, width))
        })??;
        Ok(Some(Tensor::from_vec(dx, qkv.shape(), qkv.device())?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simd::tests::{bits, values};

    /// The softmax and its backward, built for this CPU's widest vectors, write the
    /// bits of their portable builds (37 rows: prefixes of every length mod 16).
    #[test]
    fn the_vectorised_softmax_writes_the_portable_bits() {
        let t = 37;
        let (mut a, mut c) = (values(t * t, 5), values(t * t, 5));
        causal_softmax(&mut a, t);
        causal_softmax_portable(&mut c, t);
        assert_eq!(bits(&a), bits(&c));
        let (mut da, mut dc) = (values(t * t, 6), values(t * t, 6));
        causal_softmax_bwd(&mut da, &a, t, 0.25);
        causal_softmax_bwd_portable(&mut dc, &c, t, 0.25);
        assert_eq!(bits(&da), bits(&dc));
    }
}
