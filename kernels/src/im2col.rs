//! im2col and its adjoint for a KxK "same" convolution (stride 1, zero padding K/2) over a tile
//! of consecutive NCHW samples.
//!
//! `cols` is row-major `[channels * K * K, samples * height * width]`: row `(c, ky, kx)` holds,
//! for every output pixel of every sample in the tile, the input pixel that kernel tap sees.

/// Channels and spatial size of one sample, and the (odd) kernel side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub kernel: usize,
}

impl Geometry {
    pub fn pixels(&self) -> usize {
        self.height * self.width
    }

    pub fn sample_len(&self) -> usize {
        self.channels * self.pixels()
    }

    pub fn patch_len(&self) -> usize {
        self.channels * self.kernel * self.kernel
    }

    /// Source range of one output row for a horizontal tap offset `dx`: output columns
    /// `lo..hi` read input columns `lo + dx .. hi + dx`; the rest read padding.
    fn valid_columns(&self, dx: isize) -> (usize, usize) {
        let w = self.width as isize;
        let lo = (-dx).clamp(0, w);
        let hi = (w - dx).clamp(lo, w);
        (lo as usize, hi as usize)
    }

    /// Visits every (cols row, sample, output row) with the matching input row, if any, and the
    /// valid column range. Both directions of the transform walk the same pattern.
    fn for_each_row(&self, samples: usize, mut visit: impl FnMut(usize, Option<usize>, isize, (usize, usize))) {
        let pad = (self.kernel / 2) as isize;
        let (h, w) = (self.height as isize, self.width);
        let row_len = samples * self.pixels();
        for c in 0..self.channels {
            for ky in 0..self.kernel {
                for kx in 0..self.kernel {
                    let row = (c * self.kernel + ky) * self.kernel + kx;
                    let (dy, dx) = (ky as isize - pad, kx as isize - pad);
                    let columns = self.valid_columns(dx);
                    for s in 0..samples {
                        for y in 0..self.height {
                            let sy = y as isize + dy;
                            let source =
                                (0..h).contains(&sy).then(|| ((s * self.channels + c) * self.height + sy as usize) * w);
                            let target = row * row_len + s * self.pixels() + y * w;
                            visit(target, source, dx, columns);
                        }
                    }
                }
            }
        }
    }
}

/// Fills `cols` (`patch_len x samples * pixels`) from `samples` consecutive samples of `x`.
pub fn im2col(x: &[f32], samples: usize, geometry: Geometry, cols: &mut [f32]) {
    let w = geometry.width;
    debug_assert_eq!(x.len(), samples * geometry.sample_len());
    debug_assert!(cols.len() >= geometry.patch_len() * samples * geometry.pixels());
    geometry.for_each_row(samples, |target, source, dx, (lo, hi)| {
        let out = &mut cols[target..target + w];
        match source {
            None => out.fill(0.0),
            Some(source) => {
                out[..lo].fill(0.0);
                let from = (source as isize + lo as isize + dx) as usize;
                out[lo..hi].copy_from_slice(&x[from..from + (hi - lo)]);
                out[hi..].fill(0.0);
            }
        }
    });
}

/// The adjoint of [`im2col`]: adds every entry of `cols` back onto the input pixel it came from.
pub fn col2im_add(cols: &[f32], samples: usize, geometry: Geometry, dx_out: &mut [f32]) {
    debug_assert_eq!(dx_out.len(), samples * geometry.sample_len());
    geometry.for_each_row(samples, |target, source, dx, (lo, hi)| {
        if let Some(source) = source {
            let from = (source as isize + lo as isize + dx) as usize;
            let gathered = &cols[target + lo..target + hi];
            for (acc, g) in dx_out[from..from + (hi - lo)].iter_mut().zip(gathered) {
                *acc += g;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tap_reads_the_shifted_pixel_or_padding() {
        let g = Geometry { channels: 2, height: 3, width: 4, kernel: 3 };
        let samples = 2;
        let x: Vec<f32> = (0..samples * g.sample_len()).map(|v| v as f32 + 1.0).collect();
        let mut cols = vec![f32::NAN; g.patch_len() * samples * g.pixels()];
        im2col(&x, samples, g, &mut cols);
        for c in 0..2 {
            for ky in 0..3 {
                for kx in 0..3 {
                    for s in 0..samples {
                        for y in 0..3 {
                            for xx in 0..4 {
                                let (sy, sx) = (y as isize + ky as isize - 1, xx as isize + kx as isize - 1);
                                let want = if (0..3).contains(&sy) && (0..4).contains(&sx) {
                                    x[((s * 2 + c) * 3 + sy as usize) * 4 + sx as usize]
                                } else {
                                    0.0
                                };
                                let row = (c * 3 + ky) * 3 + kx;
                                assert_eq!(cols[row * samples * 12 + s * 12 + y * 4 + xx], want);
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn col2im_is_the_adjoint_of_im2col() {
        // <im2col(x), c> == <x, col2im(c)> for any x and c.
        let g = Geometry { channels: 3, height: 5, width: 6, kernel: 5 };
        let samples = 2;
        let x: Vec<f32> = (0..samples * g.sample_len()).map(|v| ((v * 7919) % 13) as f32 - 6.0).collect();
        let c: Vec<f32> = (0..g.patch_len() * samples * g.pixels()).map(|v| ((v * 104729) % 11) as f32 - 5.0).collect();
        let mut cols = vec![0.0; c.len()];
        im2col(&x, samples, g, &mut cols);
        let lhs: f64 = cols.iter().zip(&c).map(|(a, b)| f64::from(a * b)).sum();
        let mut back = vec![0.0; x.len()];
        col2im_add(&c, samples, g, &mut back);
        let rhs: f64 = x.iter().zip(&back).map(|(a, b)| f64::from(a * b)).sum();
        assert_eq!(lhs, rhs);
    }
}
