//! The one place that calls gemm's raw-pointer API: a safe, bounds-checked strided matmul.

use gemm::{Parallelism, gemm};

/// A read-only strided matrix view over a slice.
#[derive(Clone, Copy, Debug)]
pub struct View<'a> {
    pub data: &'a [f32],
    pub rows: usize,
    pub cols: usize,
    pub row_stride: usize,
    pub col_stride: usize,
}

impl<'a> View<'a> {
    /// A row-major `rows x cols` matrix.
    pub fn row_major(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Self { data, rows, cols, row_stride: cols, col_stride: 1 }
    }

    /// The transpose, without moving data.
    pub fn t(self) -> Self {
        Self { rows: self.cols, cols: self.rows, row_stride: self.col_stride, col_stride: self.row_stride, ..self }
    }

    fn assert_in_bounds(&self, what: &str) {
        if self.rows == 0 || self.cols == 0 {
            return;
        }
        let last = (self.rows - 1) * self.row_stride + (self.cols - 1) * self.col_stride;
        assert!(
            last < self.data.len(),
            "{what}: view {}x{} reaches index {last} of {}",
            self.rows,
            self.cols,
            self.data.len()
        );
    }
}

/// `dst (row-major m x n) = [dst +] lhs (m x k) * rhs (k x n)`. Callers usually run one per
/// tile in parallel with `Parallelism::None`; gemm's own threads split columns, never the sum
/// over k, so the result is the same either way.
pub fn matmul(dst: &mut [f32], lhs: View<'_>, rhs: View<'_>, accumulate: bool, parallelism: Parallelism) {
    let (m, k, n) = (lhs.rows, lhs.cols, rhs.cols);
    assert_eq!(rhs.rows, k, "matmul: inner dimensions differ");
    assert!(dst.len() >= m * n, "matmul: destination holds {} of {m}x{n}", dst.len());
    lhs.assert_in_bounds("lhs");
    rhs.assert_in_bounds("rhs");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            dst[..m * n].fill(0.0);
        }
        return;
    }
    // SAFETY: every index gemm touches is `r * rs + c * cs` for r < rows, c < cols of a view
    // whose last such index was checked against its slice above; `dst` is exclusively borrowed
    // and holds the m x n row-major result; the three buffers are distinct borrows.
    #[allow(unsafe_code)]
    unsafe {
        gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            lhs.data.as_ptr(),
            lhs.col_stride as isize,
            lhs.row_stride as isize,
            rhs.data.as_ptr(),
            rhs.col_stride as isize,
            rhs.row_stride as isize,
            1.0,
            1.0,
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

    #[test]
    fn matches_the_definition_with_transposed_views() {
        let a: Vec<f32> = (0..6).map(|v| v as f32).collect(); // 2x3
        let b: Vec<f32> = (0..12).map(|v| v as f32 * 0.5).collect(); // 3x4
        let mut out = vec![1.0; 8];
        matmul(&mut out, View::row_major(&a, 2, 3), View::row_major(&b, 3, 4), true, Parallelism::None);
        for i in 0..2 {
            for j in 0..4 {
                let want: f32 = 1.0 + (0..3).map(|p| a[i * 3 + p] * b[p * 4 + j]).sum::<f32>();
                assert_eq!(out[i * 4 + j], want);
            }
        }
        // (b^T)^T = b: the same product through a transposed view of a transposed copy.
        let bt: Vec<f32> = (0..12).map(|i| b[(i % 3) * 4 + i / 3]).collect(); // 4x3
        let mut again = vec![0.0; 8];
        matmul(&mut again, View::row_major(&a, 2, 3), View::row_major(&bt, 4, 3).t(), false, Parallelism::Rayon(2));
        for (x, y) in again.iter().zip(&out) {
            assert_eq!(x + 1.0, *y);
        }
    }

    #[test]
    #[should_panic(expected = "reaches index")]
    fn refuses_a_view_past_its_slice() {
        let a = vec![0.0; 5];
        let mut out = vec![0.0; 4];
        matmul(&mut out, View::row_major(&a, 2, 3), View::row_major(&a, 3, 2), false, Parallelism::None);
    }
}
