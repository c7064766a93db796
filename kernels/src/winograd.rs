//! Winograd F(2x2, 3x3) for the block's forward convolution (Lavin & Gray, 2015).
//!
//! Each 2x2 output tile of F(2x2, 3x3) is exactly one 2x2 pool window, so the block computes only
//! the conv outputs the pool reads, then pools them straight from the output transform. The 16
//! GEMMs of the transformed domain do 16 multiply-adds per tile and channel pair where im2col does
//! 36: 2.25x fewer. The transforms are additions only. Used where the GEMMs have enough input
//! channels to run at speed ([`MIN_CHANNELS`]); thinner blocks stay on im2col.

use gemm::Parallelism;

use crate::matmul::{View, matmul};

/// Input channels from which the 16 narrow GEMMs beat one im2col GEMM. Measured with
/// `block_timings` at batch 100: 64 -> 128 channels at 12 px, 17-23 ms against 23-25 ms; but
/// 16 -> 32 at 48 px, 51 ms against 25 ms and 32 -> 64 at 24 px, 31 ms against 24 ms, where the
/// GEMMs (inner dimension = input channels) are too thin and the 16 outputs too large.
pub const MIN_CHANNELS: usize = 64;

/// The 16 transformed 4x4 weights `G g Gᵀ`, laid out `[16][out][in]`.
pub fn transform_weights(weight: &[f32], out_channels: usize, in_channels: usize) -> Vec<f32> {
    let pairs = out_channels * in_channels;
    let mut transformed = vec![0.0; 16 * pairs];
    for (pair, g) in weight.chunks_exact(9).enumerate() {
        // G g: 4x3, rows g0, (g0+g1+g2)/2, (g0-g1+g2)/2, g2 (per column).
        let mut gg = [[0.0f32; 3]; 4];
        for j in 0..3 {
            let (a, b, c) = (g[j], g[3 + j], g[6 + j]);
            gg[0][j] = a;
            gg[1][j] = (a + b + c) * 0.5;
            gg[2][j] = (a - b + c) * 0.5;
            gg[3][j] = c;
        }
        for (i, row) in gg.iter().enumerate() {
            let (a, b, c) = (row[0], row[1], row[2]);
            let out = [a, (a + b + c) * 0.5, (a - b + c) * 0.5, c];
            for (j, value) in out.into_iter().enumerate() {
                transformed[(i * 4 + j) * pairs + pair] = value;
            }
        }
    }
    transformed
}

/// Geometry of one tile of samples in the Winograd domain.
#[derive(Clone, Copy, Debug)]
pub struct Tiles {
    pub samples: usize,
    pub in_channels: usize,
    pub out_channels: usize,
    pub height: usize,
    pub width: usize,
}

impl Tiles {
    fn pooled(&self) -> (usize, usize) {
        (self.height / 2, self.width / 2)
    }

    /// Output tiles (= pooled values per channel) in this tile of samples.
    pub fn count(&self) -> usize {
        let (ph, pw) = self.pooled();
        self.samples * ph * pw
    }
}

/// `Bᵀ d B` of every 4x4 input patch (stride 2, zero padding 1) into `v` (`[16][in][tiles]`).
pub fn transform_input(x: &[f32], t: Tiles, v: &mut [f32]) {
    let (ph, pw) = t.pooled();
    let (h, w, count) = (t.height as isize, t.width as isize, t.count());
    let at = |plane: &[f32], y: isize, x: isize| {
        if y >= 0 && y < h && x >= 0 && x < w { plane[(y * w + x) as usize] } else { 0.0 }
    };
    for s in 0..t.samples {
        for c in 0..t.in_channels {
            let plane = &x[(s * t.in_channels + c) * t.height * t.width..][..t.height * t.width];
            for ty in 0..ph {
                for tx in 0..pw {
                    let (y0, x0) = (2 * ty as isize - 1, 2 * tx as isize - 1);
                    let mut d = [[0.0f32; 4]; 4];
                    if y0 >= 0 && x0 >= 0 && y0 + 4 <= h && x0 + 4 <= w {
                        // Interior: four plain row slices, no padding checks.
                        for (i, row) in d.iter_mut().enumerate() {
                            let start = (y0 as usize + i) * t.width + x0 as usize;
                            row.copy_from_slice(&plane[start..start + 4]);
                        }
                    } else {
                        for (i, row) in d.iter_mut().enumerate() {
                            for (j, value) in row.iter_mut().enumerate() {
                                *value = at(plane, y0 + i as isize, x0 + j as isize);
                            }
                        }
                    }
                    // Bᵀ d, then (Bᵀ d) B; both are [r0 - r2, r1 + r2, r2 - r1, r1 - r3].
                    let mut bd = [[0.0f32; 4]; 4];
                    for j in 0..4 {
                        bd[0][j] = d[0][j] - d[2][j];
                        bd[1][j] = d[1][j] + d[2][j];
                        bd[2][j] = d[2][j] - d[1][j];
                        bd[3][j] = d[1][j] - d[3][j];
                    }
                    let tile = (s * ph + ty) * pw + tx;
                    for (i, r) in bd.iter().enumerate() {
                        let out = [r[0] - r[2], r[1] + r[2], r[2] - r[1], r[1] - r[3]];
                        for (j, value) in out.into_iter().enumerate() {
                            v[((i * 4 + j) * t.in_channels + c) * count + tile] = value;
                        }
                    }
                }
            }
        }
    }
}

/// The 16 products `M_e = U_e V_e` (`[16][out][tiles]`).
pub fn multiply(u: &[f32], v: &[f32], t: Tiles, m: &mut [f32], parallelism: Parallelism) {
    let count = t.count();
    let (u_len, v_len, m_len) = (t.out_channels * t.in_channels, t.in_channels * count, t.out_channels * count);
    for e in 0..16 {
        matmul(
            &mut m[e * m_len..(e + 1) * m_len],
            View::row_major(&u[e * u_len..(e + 1) * u_len], t.out_channels, t.in_channels),
            View::row_major(&v[e * v_len..(e + 1) * v_len], t.in_channels, count),
            false,
            parallelism,
        );
    }
}

/// `Aᵀ M A` of every tile: the 2x2 conv outputs of one pool window, in the order the pool
/// numbers window positions (top-left, top-right, bottom-left, bottom-right).
pub fn output_windows(m: &[f32], t: Tiles, mut visit: impl FnMut(usize, usize, [f32; 4])) {
    let count = t.count();
    for co in 0..t.out_channels {
        for tile in 0..count {
            let e = |i: usize, j: usize| m[((i * 4 + j) * t.out_channels + co) * count + tile];
            // Aᵀ = [[1, 1, 1, 0], [0, 1, -1, -1]] on rows, then on columns.
            let am: [[f32; 4]; 2] = [
                std::array::from_fn(|j| e(0, j) + e(1, j) + e(2, j)),
                std::array::from_fn(|j| e(1, j) - e(2, j) - e(3, j)),
            ];
            let window = [
                am[0][0] + am[0][1] + am[0][2],
                am[0][1] - am[0][2] - am[0][3],
                am[1][0] + am[1][1] + am[1][2],
                am[1][1] - am[1][2] - am[1][3],
            ];
            visit(co, tile, window);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_window_equals_the_direct_convolution() {
        let t = Tiles { samples: 2, in_channels: 3, out_channels: 2, height: 5, width: 6 };
        let x: Vec<f32> = (0..2 * 3 * 30).map(|i| ((i * 37) % 17) as f32 / 8.0 - 1.0).collect();
        let w: Vec<f32> = (0..2 * 3 * 9).map(|i| ((i * 11) % 7) as f32 / 3.0 - 1.0).collect();
        let mut v = vec![0.0; 16 * 3 * t.count()];
        transform_input(&x, t, &mut v);
        let mut m = vec![0.0; 16 * 2 * t.count()];
        multiply(&transform_weights(&w, 2, 3), &v, t, &mut m, Parallelism::None);
        let direct = |s: usize, co: usize, y: usize, xx: usize| {
            let mut sum = 0.0;
            for c in 0..3 {
                for ky in 0..3 {
                    for kx in 0..3 {
                        let (sy, sx) = (y as isize + ky as isize - 1, xx as isize + kx as isize - 1);
                        if (0..5).contains(&sy) && (0..6).contains(&sx) {
                            sum += w[((co * 3 + c) * 3 + ky) * 3 + kx]
                                * x[((s * 3 + c) * 5 + sy as usize) * 6 + sx as usize];
                        }
                    }
                }
            }
            sum
        };
        let mut seen = 0;
        output_windows(&m, t, |co, tile, window| {
            let (s, ty, tx) = (tile / 6, tile % 6 / 3, tile % 3);
            for (i, value) in window.into_iter().enumerate() {
                let want = direct(s, co, 2 * ty + i / 2, 2 * tx + i % 2);
                assert!(
                    (value - want).abs() < 1e-4,
                    "sample {s} channel {co} tile ({ty}, {tx}) #{i}: {value} vs {want}"
                );
            }
            seen += 1;
        });
        assert_eq!(seen, 2 * t.count());
    }
}
