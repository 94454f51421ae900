//! Fused CPU kernels with their own backward: layer norm, exact GELU and
//! cross-entropy (attention is in `attention.rs`). Built from primitive candle ops these are 5–15 tensors each way;
//! fused they are one pass over the rows, so a small model's step is no longer
//! dominated by allocation and op dispatch.
//!
//! Determinism: rows are independent and each row is computed by one thread in a fixed
//! order, and every reduction across rows (the norm's weight and bias gradients, the
//! loss) adds the rows in order (columns may run in parallel), so the bits do not
//! depend on the thread count.

use super::fastmath;
use crate::simd::multiversion;
use candle_core::{
    CpuStorage, CustomOp1, CustomOp2, CustomOp3, Layout, Shape, Storage, Tensor, WithDType,
};
use rayon::prelude::*;

type CResult<T> = candle_core::Result<T>;

/// Columns per rayon task of the norm's weight and bias gradients.
const NORM_COLUMNS_PER_TASK: usize = 64;

/// Rows per rayon task: enough work per task that scheduling does not dominate.
const MIN_ROWS_PER_TASK: usize = 16;

/// The contiguous values of a CPU storage.
pub(super) fn values<'a, T: WithDType>(
    s: &'a CpuStorage,
    l: &Layout,
    op: &str,
) -> CResult<&'a [T]> {
    let (a, b) = l
        .contiguous_offsets()
        .ok_or_else(|| candle_core::Error::Msg(format!("{op}: input is not contiguous")))?;
    Ok(&s.as_slice::<T>()?[a..b])
}

/// Runs `f` on the values of a CPU tensor (made contiguous first).
pub(super) fn with_values<T: WithDType, R>(t: &Tensor, f: impl FnOnce(&[T]) -> R) -> CResult<R> {
    let t = t.contiguous()?;
    let (storage, layout) = t.storage_and_layout();
    let Storage::Cpu(cpu) = &*storage else {
        candle_core::bail!("fused ops run on the CPU only")
    };
    Ok(f(values(cpu, layout, "fused op")?))
}

/// `out[r] = f(r, in[r])` for every row of width `width`, rows spread over rayon.
fn map_rows(out: &mut [f32], width: usize, f: impl Fn(usize, &mut [f32]) + Sync + Send) {
    out.par_chunks_mut(width)
        .with_min_len(MIN_ROWS_PER_TASK)
        .enumerate()
        .for_each(|(r, row)| f(r, row));
}

/// Mean and 1/std of one row (population variance, as nanoGPT's `F.layer_norm`).
#[inline(always)]
fn moments(x: &[f32], eps: f32) -> (f32, f32) {
    let n = x.len() as f32;
    let mean = fastmath::sum(x) / n;
    let var = fastmath::sum_map(x, |v| (v - mean) * (v - mean)) / n;
    (mean, 1.0 / (var + eps).sqrt())
}

/// `LayerNorm(x) · w + b` over the last dimension of a `[rows, d]` input.
pub struct LayerNorm {
    /// Variance guard.
    pub eps: f32,
}

impl CustomOp3 for LayerNorm {
    fn name(&self) -> &'static str {
        "fused-layer-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> CResult<(CpuStorage, Shape)> {
        let x = values::<f32>(s1, l1, self.name())?;
        let (w, b) = (values::<f32>(s2, l2, "w")?, values::<f32>(s3, l3, "b")?);
        Ok((
            CpuStorage::F32(layer_norm(x, w, b, self.eps)),
            l1.shape().clone(),
        ))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> CResult<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let d = w.elem_count();
        let (dx, dw, db) = with_values::<f32, _>(x, |x| {
            with_values::<f32, _>(w, |w| {
                with_values::<f32, _>(grad, |dy| layer_norm_bwd(x, w, dy, d, self.eps))
            })
        })???;
        let dev = x.device();
        Ok((
            Some(Tensor::from_vec(dx, x.shape(), dev)?),
            Some(Tensor::from_vec(dw, d, dev)?),
            Some(Tensor::from_vec(db, d, dev)?),
        ))
    }
}

/// `LayerNorm(x) · w + b` of each row of `x` (rows as wide as `w`).
pub(super) fn layer_norm(x: &[f32], w: &[f32], b: &[f32], eps: f32) -> Vec<f32> {
    let d = w.len();
    let mut y = vec![0f32; x.len()];
    map_rows(&mut y, d, |r, out| {
        norm_row(out, &x[r * d..(r + 1) * d], w, b, eps)
    });
    y
}

multiversion! {
    /// One row of [`layer_norm`].
    fn norm_row / norm_row_portable(out: &mut [f32], row: &[f32], w: &[f32], b: &[f32], eps: f32) {
        let (mean, rstd) = moments(row, eps);
        for (((o, &x), &w), &b) in out.iter_mut().zip(row).zip(w).zip(b) {
            *o = (x - mean) * rstd * w + b;
        }
    }
}

multiversion! {
    /// [`moments`] of one row.
    fn row_moments / row_moments_portable(row: &[f32], eps: f32) -> (f32, f32) {
        moments(row, eps)
    }
}

multiversion! {
    /// One row of the norm's input gradient, given the row's moments.
    fn norm_bwd_row / norm_bwd_row_portable(
        out: &mut [f32],
        row: &[f32],
        g: &[f32],
        w: &[f32],
        mean: f32,
        rstd: f32,
    ) {
        let d = row.len() as f32;
        let (sum_g, sum_gx) = norm_row_sums(row, g, w, mean, rstd);
        let (mean_g, mean_gx) = (sum_g / d, sum_gx / d);
        for (((o, &x), &g), &w) in out.iter_mut().zip(row).zip(g).zip(w) {
            let xhat = (x - mean) * rstd;
            *o = rstd * (g * w - mean_g - xhat * mean_gx);
        }
    }
}

multiversion! {
    /// Columns `c0..c0 + dw.len()` of the norm's weight and bias gradients: each
    /// column's rows added in order.
    fn norm_param_columns / norm_param_columns_portable(
        dw: &mut [f32],
        db: &mut [f32],
        x: &[f32],
        dy: &[f32],
        stats: &[(f32, f32)],
        d: usize,
        c0: usize,
    ) {
        let c1 = c0 + dw.len();
        let rows = x.chunks_exact(d).zip(dy.chunks_exact(d)).zip(stats);
        for ((row, g), &(mean, rstd)) in rows {
            let (row, g) = (&row[c0..c1], &g[c0..c1]);
            for (((dw, db), &x), &g) in dw.iter_mut().zip(db.iter_mut()).zip(row).zip(g) {
                *dw += g * (x - mean) * rstd;
                *db += g;
            }
        }
    }
}

/// `(Σ g·w, Σ g·w·x̂)` of one row, in lanes (see `fastmath`'s reductions).
#[inline(always)]
fn norm_row_sums(x: &[f32], g: &[f32], w: &[f32], mean: f32, rstd: f32) -> (f32, f32) {
    const L: usize = fastmath::LANES;
    let (mut a, mut b) = ([0f32; L], [0f32; L]);
    let (cx, cg, cw) = (x.chunks_exact(L), g.chunks_exact(L), w.chunks_exact(L));
    let (mut ta, mut tb) = (0f32, 0f32);
    for ((&x, &g), &w) in cx
        .remainder()
        .iter()
        .zip(cg.remainder())
        .zip(cw.remainder())
    {
        ta += g * w;
        tb += g * w * (x - mean) * rstd;
    }
    for ((x, g), w) in cx.zip(cg).zip(cw) {
        for k in 0..L {
            let gw = g[k] * w[k];
            a[k] += gw;
            b[k] += gw * (x[k] - mean) * rstd;
        }
    }
    (fastmath::sum(&a) + ta, fastmath::sum(&b) + tb)
}

/// The three gradients of a layer norm: input (per row, parallel), weight and bias
/// (summed over rows in order).
pub(super) fn layer_norm_bwd(
    x: &[f32],
    w: &[f32],
    dy: &[f32],
    d: usize,
    eps: f32,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    // Each row's moments, computed once for both halves below.
    let stats: Vec<(f32, f32)> = x.par_chunks(d).map(|row| row_moments(row, eps)).collect();
    let mut dx = vec![0f32; x.len()];
    map_rows(&mut dx, d, |r, out| {
        let (mean, rstd) = stats[r];
        let rows = r * d..(r + 1) * d;
        norm_bwd_row(out, &x[rows.clone()], &dy[rows], w, mean, rstd);
    });
    // Weight and bias: each column's rows added in order, columns in parallel blocks.
    let (mut dw, mut db) = (vec![0f32; d], vec![0f32; d]);
    dw.par_chunks_mut(NORM_COLUMNS_PER_TASK)
        .zip(db.par_chunks_mut(NORM_COLUMNS_PER_TASK))
        .enumerate()
        .for_each(|(c, (dw, db))| {
            norm_param_columns(dw, db, x, dy, &stats, d, c * NORM_COLUMNS_PER_TASK)
        });
    (dx, dw, db)
}

/// Exact (erf) GELU, as nanoGPT's `nn.GELU()` and candle's `gelu_erf`, with the erf of
/// [`fastmath`].
pub struct Gelu;

/// Elements per rayon task of the elementwise ops.
const ELEMENTWISE_CHUNK: usize = 4096;

/// GELU of every element.
pub(super) fn gelu_forward(x: &[f32]) -> Vec<f32> {
    let mut y = vec![0f32; x.len()];
    y.par_chunks_mut(ELEMENTWISE_CHUNK)
        .zip(x.par_chunks(ELEMENTWISE_CHUNK))
        .for_each(|(o, i)| gelu_chunk(o, i));
    y
}

multiversion! {
    /// `o = GELU(x)` elementwise.
    fn gelu_chunk / gelu_chunk_portable(o: &mut [f32], x: &[f32]) {
        for (o, &v) in o.iter_mut().zip(x) {
            *o = fastmath::gelu(v);
        }
    }
}

multiversion! {
    /// `o = g · GELU'(x)` elementwise.
    fn gelu_grad_chunk / gelu_grad_chunk_portable(o: &mut [f32], x: &[f32], g: &[f32]) {
        for ((o, &x), &g) in o.iter_mut().zip(x).zip(g) {
            *o = g * fastmath::gelu_grad(x);
        }
    }
}

/// The input's gradient: `g · GELU'(x)` elementwise.
pub(super) fn gelu_backward(x: &[f32], g: &[f32]) -> Vec<f32> {
    let mut dx = vec![0f32; x.len()];
    dx.par_chunks_mut(ELEMENTWISE_CHUNK)
        .zip(x.par_chunks(ELEMENTWISE_CHUNK))
        .zip(g.par_chunks(ELEMENTWISE_CHUNK))
        .for_each(|((o, x), g)| gelu_grad_chunk(o, x, g));
    dx
}

impl CustomOp1 for Gelu {
    fn name(&self) -> &'static str {
        "fused-gelu"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> CResult<(CpuStorage, Shape)> {
        let x = values::<f32>(s, l, self.name())?;
        Ok((CpuStorage::F32(gelu_forward(x)), l.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, _y: &Tensor, grad: &Tensor) -> CResult<Option<Tensor>> {
        let dx =
            with_values::<f32, _>(x, |x| with_values::<f32, _>(grad, |g| gelu_backward(x, g)))??;
        Ok(Some(Tensor::from_vec(dx, x.shape(), x.device())?))
    }
}

/// Mean cross-entropy of `[n, vocab]` logits against `[n]` u32 targets, a scalar.
pub struct CrossEntropy;

/// `log Σ exp(row)` computed stably.
fn log_sum_exp(row: &[f32]) -> f32 {
    let max = fastmath::max(row);
    max + fastmath::sum_map(row, |v| fastmath::exp(v - max)).ln()
}

/// Mean over rows of `log Σ exp(row) − row[target]`, for rows `v` wide.
pub(super) fn cross_entropy(logits: &[f32], targets: &[u32], v: usize) -> f32 {
    let mut per_row = vec![0f32; targets.len()];
    per_row
        .par_iter_mut()
        .with_min_len(MIN_ROWS_PER_TASK)
        .enumerate()
        .for_each(|(r, out)| {
            let row = &logits[r * v..(r + 1) * v];
            *out = log_sum_exp(row) - row[targets[r] as usize];
        });
    per_row.iter().sum::<f32>() / per_row.len() as f32
}

/// The logits' gradient of `g ·` a summed cross-entropy: `g·(softmax(row) − onehot)`.
pub(super) fn cross_entropy_grad(logits: &[f32], targets: &[u32], v: usize, g: f32) -> Vec<f32> {
    cross_entropy_and_grad(logits, targets, v, g).1
}

/// [`cross_entropy`] and [`cross_entropy_grad`] in one pass over the logits: each row's
/// exponentials are computed once, into the gradient.
pub(super) fn cross_entropy_and_grad(
    logits: &[f32],
    targets: &[u32],
    v: usize,
    g: f32,
) -> (f32, Vec<f32>) {
    let mut dl = vec![0f32; logits.len()];
    let mut per_row = vec![0f32; targets.len()];
    dl.par_chunks_mut(v)
        .zip(per_row.par_iter_mut())
        .with_min_len(MIN_ROWS_PER_TASK)
        .enumerate()
        .for_each(|(r, (out, loss))| {
            let row = &logits[r * v..(r + 1) * v];
            *loss = cross_entropy_row(out, row, targets[r] as usize, g);
        });
    (per_row.iter().sum::<f32>() / per_row.len() as f32, dl)
}

multiversion! {
    /// One row of [`cross_entropy_and_grad`]: writes `g·(softmax(row) − onehot)` to
    /// `out` and returns the row's loss.
    fn cross_entropy_row / cross_entropy_row_portable(
        out: &mut [f32],
        row: &[f32],
        target: usize,
        g: f32,
    ) -> f32 {
        let max = fastmath::max(row);
        for (o, &z) in out.iter_mut().zip(row) {
            *o = fastmath::exp(z - max);
        }
        let sum = fastmath::sum(out);
        let loss = max + sum.ln() - row[target];
        let scale = g / sum;
        for o in out.iter_mut() {
            *o *= scale;
        }
        out[target] -= g;
        loss
    }
}

impl CustomOp2 for CrossEntropy {
    fn name(&self) -> &'static str {
        "fused-cross-entropy"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> CResult<(CpuStorage, Shape)> {
        let logits = values::<f32>(s1, l1, self.name())?;
        let targets = values::<u32>(s2, l2, "targets")?;
        let mean = cross_entropy(logits, targets, l1.dims()[1]);
        Ok((CpuStorage::F32(vec![mean]), Shape::from(())))
    }

    fn bwd(
        &self,
        logits: &Tensor,
        targets: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> CResult<(Option<Tensor>, Option<Tensor>)> {
        let (n, v) = logits.dims2()?;
        let g = grad.to_scalar::<f32>()? / n as f32;
        let dl = with_values::<f32, _>(logits, |x| {
            with_values::<u32, _>(targets, |tg| cross_entropy_grad(x, tg, v, g))
        })??;
        Ok((Some(Tensor::from_vec(dl, (n, v), logits.device())?), None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simd::tests::{bits, values};

    /// Each kernel built for this CPU's widest vectors writes the bits of its portable
    /// (SSE2) build: rows of 200 leave a tail after the 16-lane chunks, and the inputs
    /// include values large enough to saturate `exp` and GELU.
    #[test]
    fn every_vectorised_kernel_writes_the_portable_bits() {
        let (rows, d, eps) = (7, 200, 1e-5);
        let (x, g) = (values(rows * d, 1), values(rows * d, 2));
        let (w, b) = (values(d, 3), values(d, 4));
        let (mut a, mut c) = (vec![0f32; d], vec![0f32; d]);
        for r in 0..rows {
            let (row, gr) = (&x[r * d..(r + 1) * d], &g[r * d..(r + 1) * d]);
            norm_row(&mut a, row, &w, &b, eps);
            norm_row_portable(&mut c, row, &w, &b, eps);
            assert_eq!(bits(&a), bits(&c), "norm row {r}");
            let (mean, rstd) = row_moments(row, eps);
            let portable = row_moments_portable(row, eps);
            assert_eq!(bits(&[mean, rstd]), bits(&[portable.0, portable.1]));
            norm_bwd_row(&mut a, row, gr, &w, mean, rstd);
            norm_bwd_row_portable(&mut c, row, gr, &w, mean, rstd);
            assert_eq!(bits(&a), bits(&c), "norm backward row {r}");
            let target = r * 37 % d;
            let la = cross_entropy_row(&mut a, row, target, 0.01);
            let lc = cross_entropy_row_portable(&mut c, row, target, 0.01);
            assert_eq!(bits(&a), bits(&c), "cross-entropy row {r}");
            assert_eq!(la.to_bits(), lc.to_bits());
        }
        let stats: Vec<(f32, f32)> = x.chunks(d).map(|r| moments(r, eps)).collect();
        let (mut dw, mut db, mut dw2, mut db2) = (
            vec![0.5f32; 70],
            vec![0f32; 70],
            vec![0.5f32; 70],
            vec![0f32; 70],
        );
        norm_param_columns(&mut dw, &mut db, &x, &g, &stats, d, 64);
        norm_param_columns_portable(&mut dw2, &mut db2, &x, &g, &stats, d, 64);
        assert_eq!((bits(&dw), bits(&db)), (bits(&dw2), bits(&db2)));
        let (mut a, mut c) = (vec![0f32; x.len()], vec![0f32; x.len()]);
        gelu_chunk(&mut a, &x);
        gelu_chunk_portable(&mut c, &x);
        assert_eq!(bits(&a), bits(&c), "GELU");
        gelu_grad_chunk(&mut a, &x, &g);
        gelu_grad_chunk_portable(&mut c, &x, &g);
        assert_eq!(bits(&a), bits(&c), "GELU gradient");
    }
}
