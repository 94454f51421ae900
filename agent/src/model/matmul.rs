//! Matrix products on f32 slices through the `gemm` crate (the one candle's CPU backend
//! uses), with each operand described by its strides, so transposed and strided views
//! (a head's columns of the fused q|k|v rows, `Wᵀ`, `dyᵀ`) need no copy.
//!
//! Determinism: `gemm` splits the output, never the inner dimension, across threads,
//! so a product has the same bits at every thread count (the determinism tests check
//! this end to end).

use gemm::Parallelism;

/// A read-only `rows × cols` matrix view of a slice: element `(i, j)` is
/// `data[i·row_stride + j·col_stride]`.
#[derive(Clone, Copy)]
pub(super) struct View<'a> {
    pub data: &'a [f32],
    pub rows: usize,
    pub cols: usize,
    pub row_stride: usize,
    pub col_stride: usize,
}

impl<'a> View<'a> {
    /// A row-major matrix starting at `data[0]`, rows `row_stride` apart.
    pub fn rows(data: &'a [f32], rows: usize, cols: usize, row_stride: usize) -> Self {
        Self {
            data,
            rows,
            cols,
            row_stride,
            col_stride: 1,
        }
    }

    /// Rows `r0..r1` and columns `c0..c1` of this view.
    pub fn sub(self, (r0, r1): (usize, usize), (c0, c1): (usize, usize)) -> Self {
        assert!(r0 <= r1 && r1 <= self.rows && c0 <= c1 && c1 <= self.cols);
        let start = (r0 * self.row_stride + c0 * self.col_stride).min(self.data.len());
        Self {
            data: &self.data[start..],
            rows: r1 - r0,
            cols: c1 - c0,
            ..self
        }
    }

    /// The same elements, transposed.
    pub fn t(self) -> Self {
        Self {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
        }
    }

    /// Panics unless every element lies inside the slice (what makes [`gemm`] safe).
    fn check(&self, what: &str) {
        if self.rows == 0 || self.cols == 0 {
            return;
        }
        let last = (self.rows - 1) * self.row_stride + (self.cols - 1) * self.col_stride;
        assert!(
            last < self.data.len(),
            "{what}: a {}×{} view reaches element {last} of {}",
            self.rows,
            self.cols,
            self.data.len()
        );
    }
}

/// How a product uses the threads.
#[derive(Clone, Copy)]
pub(super) enum Threads {
    /// One thread: for products already inside a parallel loop.
    One,
    /// The threads candle uses (`RAYON_NUM_THREADS`, else every core).
    All,
}

/// `(m, k, n)` of `lhs · rhs`; panics unless the inner dimensions agree and both views
/// lie inside their slices.
fn operands(lhs: View, rhs: View) -> (usize, usize, usize) {
    let (m, k, n) = (lhs.rows, lhs.cols, rhs.cols);
    assert_eq!(
        rhs.rows, k,
        "inner dimensions differ: {m}×{k} · {}×{n}",
        rhs.rows
    );
    lhs.check("lhs");
    rhs.check("rhs");
    (m, k, n)
}

/// `dst = scale · lhs · rhs`, or `dst += scale · lhs · rhs` when `accumulate`, with
/// `dst` row-major (`lhs.rows × rhs.cols`, rows `dst_stride` apart).
pub(super) fn gemm(
    dst: &mut [f32],
    dst_stride: usize,
    accumulate: bool,
    lhs: View,
    rhs: View,
    scale: f32,
    threads: Threads,
) {
    let (m, k, n) = operands(lhs, rhs);
    View::rows(dst, m, n, dst_stride).check("dst");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            for r in 0..m {
                dst[r * dst_stride..r * dst_stride + n].fill(0.0);
            }
        }
        return;
    }
    // SAFETY: the three views were checked to lie inside their slices, and `dst` is
    // borrowed mutably, so it cannot alias `lhs` or `rhs`.
    unsafe {
        raw(
            dst.as_mut_ptr(),
            dst_stride,
            accumulate,
            lhs,
            rhs,
            scale,
            threads,
        )
    }
}

/// `scale · lhs · rhs` into a new row-major `lhs.rows × rhs.cols` buffer. The buffer is
/// not zeroed first: the product overwrites every element (a zero fill was a pass over
/// memory, and on fresh pages a page fault, for nothing).
pub(super) fn product(lhs: View, rhs: View, scale: f32, threads: Threads) -> Vec<f32> {
    let (m, k, n) = operands(lhs, rhs);
    if m == 0 || n == 0 || k == 0 {
        return vec![0f32; m * n];
    }
    let mut dst = Vec::<f32>::with_capacity(m * n);
    // SAFETY: the views were checked; `dst` owns room for m·n elements and aliases
    // nothing. With `read_dst` false `gemm` sets its `alpha` to zero and never reads
    // `dst` (gemm-common's `gemm_basic_generic`, and its gemv/gevv paths read only
    // when `alpha` is non-zero): every one of the m·n elements is written, so they are
    // all initialised when the length is set.
    unsafe {
        raw(dst.as_mut_ptr(), n, false, lhs, rhs, scale, threads);
        dst.set_len(m * n);
    }
    dst
}

/// The `gemm` call. Safety: `lhs` and `rhs` were checked, `m, n, k > 0`, and `dst`
/// points to a row-major `lhs.rows × rhs.cols` region (rows `dst_stride` apart) that
/// aliases neither operand and is initialised wherever `accumulate` reads it.
unsafe fn raw(
    dst: *mut f32,
    dst_stride: usize,
    accumulate: bool,
    lhs: View,
    rhs: View,
    scale: f32,
    threads: Threads,
) {
    let parallelism = match threads {
        Threads::All if candle_core::utils::get_num_threads() > 1 => {
            Parallelism::Rayon(candle_core::utils::get_num_threads())
        }
        _ => Parallelism::None,
    };
    // SAFETY: the caller's contract above.
    unsafe {
        gemm::gemm(
            lhs.rows,
            rhs.cols,
            lhs.cols,
            dst,
            1,
            dst_stride as isize,
            accumulate,
            lhs.data.as_ptr(),
            lhs.col_stride as isize,
            lhs.row_stride as isize,
            rhs.data.as_ptr(),
            rhs.col_stride as isize,
            rhs.row_stride as isize,
            1.0,
            scale,
            false,
            false,
            false,
            parallelism,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The textbook triple loop in f64.
    fn naive(lhs: View, rhs: View) -> Vec<f64> {
        let mut out = vec![0f64; lhs.rows * rhs.cols];
        for i in 0..lhs.rows {
            for j in 0..rhs.cols {
                for k in 0..lhs.cols {
                    out[i * rhs.cols + j] += lhs.data[i * lhs.row_stride + k * lhs.col_stride]
                        as f64
                        * rhs.data[k * rhs.row_stride + j * rhs.col_stride] as f64;
                }
            }
        }
        out
    }

    #[test]
    fn strided_and_transposed_views_multiply_like_the_textbook() {
        let a: Vec<f32> = (0..7 * 12)
            .map(|i| ((i * 37 % 17) as f32 - 8.0) / 8.0)
            .collect();
        let b: Vec<f32> = (0..5 * 9)
            .map(|i| ((i * 11 % 13) as f32 - 6.0) / 6.0)
            .collect();
        // lhs: 7×5 columns 2.. of a 7×12 matrix; rhs: (5×9 stored as 9×5)ᵀ.
        let lhs = View::rows(&a[2..], 7, 5, 12);
        let rhs = View::rows(&b, 9, 5, 5).t();
        let want = naive(lhs, rhs);
        for threads in [Threads::One, Threads::All] {
            let mut dst = vec![1f32; 7 * 9];
            gemm(&mut dst, 9, false, lhs, rhs, 1.0, threads);
            for (g, w) in dst.iter().zip(&want) {
                assert!((*g as f64 - w).abs() < 1e-5, "{g} vs {w}");
            }
            gemm(&mut dst, 9, true, lhs, rhs, -0.5, threads);
            for (g, w) in dst.iter().zip(&want) {
                assert!((*g as f64 - 0.5 * w).abs() < 1e-5, "{g} vs {}", 0.5 * w);
            }
        }
    }

    /// `product` leaves its buffer unzeroed because `gemm` does not read `dst` when it
    /// overwrites it: a NaN-filled destination would poison the result if it did. The
    /// shapes take gemm's general path, its matrix-vector paths (one row or column)
    /// and several blocks of the inner dimension, on one thread and on all.
    #[test]
    fn an_overwriting_product_never_reads_its_destination() {
        for (m, k, n) in [
            (37, 19, 23),
            (1, 40, 9),
            (9, 40, 1),
            (1, 7, 1),
            (64, 1500, 70),
        ] {
            let a: Vec<f32> = (0..m * k)
                .map(|i| ((i * 7 % 13) as f32 - 6.0) / 9.0)
                .collect();
            let b: Vec<f32> = (0..k * n)
                .map(|i| ((i * 5 % 11) as f32 - 5.0) / 7.0)
                .collect();
            let (lhs, rhs) = (View::rows(&a, m, k, k), View::rows(&b, k, n, n));
            let want = naive(lhs, rhs);
            for threads in [Threads::One, Threads::All] {
                let mut dst = vec![f32::NAN; m * n];
                gemm(&mut dst, n, false, lhs, rhs, 1.0, threads);
                let fresh = product(lhs, rhs, 1.0, threads);
                for ((g, f), w) in dst.iter().zip(&fresh).zip(&want) {
                    assert!(
                        (*g as f64 - w).abs() < 1e-3 * (1.0 + w.abs()),
                        "{m}×{k}×{n}: {g} vs {w}"
                    );
                    assert_eq!(g.to_bits(), f.to_bits());
                }
            }
        }
    }

    #[test]
    #[should_panic(expected = "reaches element")]
    fn a_view_past_its_slice_is_refused() {
        let a = vec![0f32; 10];
        let mut dst = vec![0f32; 4];
        gemm(
            &mut dst,
            2,
            false,
            View::rows(&a, 2, 3, 5),
            View::rows(&a, 3, 2, 5),
            1.0,
            Threads::One,
        );
    }
}
