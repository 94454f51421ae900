//! The linear layer `x·Wᵀ + b` as one fused CPU op with its own backward. As candle
//! ops it is a transposed matmul and a broadcast add: the backward then builds `Wᵀ`'s
//! gradient and transposes it back, sums the bias gradient through a broadcast, and
//! allocates and accumulates each. Here the forward is one GEMM into rows that start
//! as the bias, and the backward two GEMMs (`dx = dy·W`, `dW = dyᵀ·x`) reading the
//! operands in place, plus one pass for the bias.
//!
//! Determinism: GEMMs split only the output across threads (see `matmul`), and the
//! bias gradient sums rows in order within each column block.

use super::matmul::{Threads, View, gemm, product};
use super::ops::{values, with_values};
use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Shape, Tensor};
use rayon::prelude::*;

type CResult<T> = candle_core::Result<T>;

/// Columns of the bias gradient per rayon task.
const BIAS_COLUMNS_PER_TASK: usize = 64;

/// `x·Wᵀ + b` for `x: [rows, in]`, `W: [out, in]`, `b: [out]`.
pub struct Linear;

/// `x·Wᵀ` (no bias): the head tied to the token embedding.
pub struct MatmulT;

/// `[rows, out]` = `x·Wᵀ`, starting from `init` (each row a copy of it) or zero.
pub(super) fn forward(
    x: &[f32],
    w: &[f32],
    init: Option<&[f32]>,
    dims: (usize, usize, usize),
) -> Vec<f32> {
    let (rows, inp, out) = dims;
    let (x, wt) = (
        View::rows(x, rows, inp, inp),
        View::rows(w, out, inp, inp).t(),
    );
    let Some(b) = init else {
        return product(x, wt, 1.0, Threads::All);
    };
    assert_eq!(b.len(), out, "a bias of {} for {out} outputs", b.len());
    if rows * out == 0 {
        return Vec::new();
    }
    // Each row starts as the bias (written once, rows in parallel, no zero fill first),
    // then x·Wᵀ is added.
    let mut y = Vec::with_capacity(rows * out);
    y.spare_capacity_mut()[..rows * out]
        .par_chunks_mut(out)
        .for_each(|row| {
            for (o, &v) in row.iter_mut().zip(b) {
                o.write(v);
            }
        });
    // SAFETY: the loop above wrote all rows·out elements: each row is `out` wide and
    // `b` has `out` values (asserted above).
    unsafe { y.set_len(rows * out) };
    gemm(&mut y, out, true, x, wt, 1.0, Threads::All);
    y
}

/// `(dx, dW)` of `y = x·Wᵀ`: `dy·W` and `dyᵀ·x`, side by side (two independent
/// products: a thread waiting at one's inner synchronisation can take the other's work).
pub(super) fn backward(
    x: &[f32],
    w: &[f32],
    dy: &[f32],
    dims: (usize, usize, usize),
) -> (Vec<f32>, Vec<f32>) {
    let (rows, inp, out) = dims;
    let dy_view = View::rows(dy, rows, out, out);
    rayon::join(
        || product(dy_view, View::rows(w, out, inp, inp), 1.0, Threads::All),
        || {
            product(
                dy_view.t(),
                View::rows(x, rows, inp, inp),
                1.0,
                Threads::All,
            )
        },
    )
}

/// Column sums of `dy: [rows, out]`, each column's rows added in order.
pub(super) fn bias_grad(dy: &[f32], out: usize) -> Vec<f32> {
    let mut db = vec![0f32; out];
    db.par_chunks_mut(BIAS_COLUMNS_PER_TASK)
        .enumerate()
        .for_each(|(c, block)| column_sums(block, dy, out, c * BIAS_COLUMNS_PER_TASK));
    db
}

crate::simd::multiversion! {
    /// `acc[j] += Σ_rows dy[row][c0 + j]`, rows in order.
    fn column_sums / column_sums_portable(acc: &mut [f32], dy: &[f32], out: usize, c0: usize) {
        let c1 = c0 + acc.len();
        for row in dy.chunks_exact(out) {
            for (acc, &g) in acc.iter_mut().zip(&row[c0..c1]) {
                *acc += g;
            }
        }
    }
}

/// `(rows, in, out)` of a product `x·Wᵀ`, or why the shapes do not fit.
fn dims(x: &Layout, w: &Layout) -> CResult<(usize, usize, usize)> {
    let (xd, wd) = (x.dims(), w.dims());
    match (xd, wd) {
        ([rows, inp], [out, win]) if inp == win => Ok((*rows, *inp, *out)),
        _ => candle_core::bail!("linear: input {xd:?} does not fit weight {wd:?}"),
    }
}

impl CustomOp3 for Linear {
    fn name(&self) -> &'static str {
        "fused-linear"
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
        let d = dims(l1, l2)?;
        let (x, w) = (values(s1, l1, "x")?, values(s2, l2, "w")?);
        let b = values::<f32>(s3, l3, "b")?;
        if b.len() != d.2 {
            candle_core::bail!("linear: bias of {} for {} outputs", b.len(), d.2);
        }
        let y = forward(x, w, Some(b), d);
        Ok((CpuStorage::F32(y), Shape::from((d.0, d.2))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> CResult<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let d = dims(x.layout(), w.layout())?;
        let (dx, dw, db) = with_values::<f32, _>(x, |xs| {
            with_values::<f32, _>(w, |ws| {
                with_values::<f32, _>(grad, |dy| {
                    let (dx, dw) = backward(xs, ws, dy, d);
                    (dx, dw, bias_grad(dy, d.2))
                })
            })
        })???;
        let dev = x.device();
        Ok((
            Some(Tensor::from_vec(dx, x.shape(), dev)?),
            Some(Tensor::from_vec(dw, w.shape(), dev)?),
            Some(Tensor::from_vec(db, b.shape(), dev)?),
        ))
    }
}

impl CustomOp2 for MatmulT {
    fn name(&self) -> &'static str {
        "fused-matmul-t"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> CResult<(CpuStorage, Shape)> {
        let d = dims(l1, l2)?;
        let y = forward(values(s1, l1, "x")?, values(s2, l2, "w")?, None, d);
        Ok((CpuStorage::F32(y), Shape::from((d.0, d.2))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> CResult<(Option<Tensor>, Option<Tensor>)> {
        let d = dims(x.layout(), w.layout())?;
        let (dx, dw) = with_values::<f32, _>(x, |xs| {
            with_values::<f32, _>(w, |ws| {
                with_values::<f32, _>(grad, |dy| backward(xs, ws, dy, d))
            })
        })???;
        let dev = x.device();
        Ok((
            Some(Tensor::from_vec(dx, x.shape(), dev)?),
            Some(Tensor::from_vec(dw, w.shape(), dev)?),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// The column sums built for this CPU's widest vectors write the portable bits.
    #[test]
    fn the_vectorised_column_sums_write_the_portable_bits() {
        use crate::simd::tests::{bits, values};
        let (rows, out) = (23, 150);
        let dy = values(rows * out, 13);
        let (mut a, mut c) = (vec![0.25f32; 70], vec![0.25f32; 70]);
        column_sums(&mut a, &dy, out, 64);
        column_sums_portable(&mut c, &dy, out, 64);
        assert_eq!(bits(&a), bits(&c));
    }

    #[test]
    fn the_bias_gradient_sums_every_row_of_every_column() {
        let (rows, out) = (37, 150);
        let dy: Vec<f32> = (0..rows * out).map(|i| (i % 23) as f32 - 11.0).collect();
        let db = bias_grad(&dy, out);
        for (c, got) in db.iter().enumerate() {
            let want: f32 = (0..rows).map(|r| dy[r * out + c]).sum();
            assert_eq!(*got, want, "column {c}");
        }
    }

    #[test]
    fn a_linear_layer_and_its_gradients_match_candles_own_ops() {
        let dev = Device::Cpu;
        let t = |n: usize, shape: &[usize], k: usize| {
            let v: Vec<f32> = (0..n)
                .map(|i| ((i * k % 29) as f32 - 14.0) / 20.0)
                .collect();
            candle_core::Var::from_vec(v, shape, &dev).unwrap()
        };
        let (x, w, b) = (t(6 * 5, &[6, 5], 7), t(4 * 5, &[4, 5], 11), t(4, &[4], 3));
        let g = t(6 * 4, &[6, 4], 13);
        let fused = x.apply_op3(&w, &b, Linear).unwrap();
        let plain = x
            .matmul(&w.t().unwrap())
            .unwrap()
            .broadcast_add(&b)
            .unwrap();
        let head = x.apply_op2(&w, MatmulT).unwrap();
        let close = |a: &Tensor, b: &Tensor| {
            let d = (a - b).unwrap().abs().unwrap().max_all().unwrap();
            d.to_scalar::<f32>().unwrap() < 1e-5
        };
        assert!(close(&fused, &plain));
        assert!(close(&head, &x.matmul(&w.t().unwrap()).unwrap()));
        let gf = (fused * g.as_tensor())
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let gp = (plain * g.as_tensor())
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        for v in [&x, &w, &b] {
            let (a, c) = (
                gf.get(v.as_tensor()).unwrap(),
                gp.get(v.as_tensor()).unwrap(),
            );
            assert!(close(a, c), "{a} vs {c}");
        }
    }
}
