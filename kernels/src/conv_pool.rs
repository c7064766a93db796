//! One CNN block, `max_pool_2x2(relu(conv_KxK_same(x) + bias))`, forward and backward.
//!
//! ReLU and max commute, so the block pools the raw conv output and applies bias and ReLU once
//! per pooled value. The backward pass needs only the block's input and, per pooled value, which
//! of its 4 window positions won (or that ReLU cut it); the conv output is neither kept nor recomputed.

use gemm::Parallelism;
use rayon::prelude::*;

use crate::im2col::{Geometry, col2im_add, im2col};
use crate::matmul::{View, matmul};
use crate::winograd::{self, Tiles};

/// Marks a pooled value whose maximum was <= 0: ReLU passed no gradient through it.
const CUT_BY_RELU: u8 = 4;

/// About this many conv output pixels per tile: enough columns for GEMM to run at speed,
/// few enough that a tile's im2col buffer stays in L2/L3.
const TARGET_TILE_PIXELS: usize = 2048;

/// At least this many tiles per batch where the batch allows, so every core gets work.
const MIN_TILES: usize = 8;

/// The shape of one block: NCHW input, `[out, in, K, K]` weights, `[out]` bias.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockShape {
    pub batch: usize,
    pub in_channels: usize,
    pub out_channels: usize,
    pub height: usize,
    pub width: usize,
    pub kernel: usize,
}

impl BlockShape {
    /// Whether these kernels compute this block: "same" padding is symmetric only for an odd
    /// kernel, the pool needs a 2x2 window, and an empty dimension leaves nothing to tile.
    pub fn is_supported(&self) -> bool {
        let non_empty = self.batch > 0 && self.in_channels > 0 && self.out_channels > 0;
        self.kernel % 2 == 1 && self.height >= 2 && self.width >= 2 && non_empty
    }

    pub fn pooled_height(&self) -> usize {
        self.height / 2
    }

    pub fn pooled_width(&self) -> usize {
        self.width / 2
    }

    pub fn input_len(&self) -> usize {
        self.batch * self.input_geometry().sample_len()
    }

    pub fn weight_len(&self) -> usize {
        self.out_channels * self.input_geometry().patch_len()
    }

    pub fn output_len(&self) -> usize {
        self.batch * self.pooled_sample_len()
    }

    fn pooled_sample_len(&self) -> usize {
        self.out_channels * self.pooled_height() * self.pooled_width()
    }

    fn input_geometry(&self) -> Geometry {
        Geometry { channels: self.in_channels, height: self.height, width: self.width, kernel: self.kernel }
    }

    /// Samples per tile. It depends on the shape only, never on the thread count, so a result
    /// is the same on every machine.
    fn tile_samples(&self) -> usize {
        let for_gemm = TARGET_TILE_PIXELS.div_ceil(self.height * self.width);
        let for_cores = self.batch.div_ceil(MIN_TILES);
        for_gemm.min(for_cores).max(1)
    }

    fn check(&self, x: &[f32], weight: &[f32]) {
        assert!(self.is_supported(), "unsupported conv block {self:?}");
        assert_eq!(x.len(), self.input_len(), "conv block input for {self:?}");
        assert_eq!(weight.len(), self.weight_len(), "conv block weight for {self:?}");
    }
}

/// The pooled output and, per pooled value, its winning window position (for the backward pass).
#[derive(Debug, Clone)]
pub struct PooledBlock {
    pub output: Vec<f32>,
    pub winners: Vec<u8>,
}

#[derive(Debug, Clone)]
pub struct BlockGradients {
    /// `None` when the caller needs no input gradient (the first block: images are constants).
    pub input: Option<Vec<f32>>,
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
}

/// Per-thread buffers, reused across the tiles of one call. (Thread-locals kept across calls
/// measured ~20% slower on blocks 1-3 in `block_timings`; the cause was not pinned down.)
#[derive(Default)]
struct Scratch {
    cols: Vec<f32>,
    conv: Vec<f32>,
    input_cols: Vec<f32>,
}

/// GEMM threads: one per tile when there are enough tiles to share the cores, otherwise (a batch
/// of one at inference) each GEMM splits its own columns across the cores.
fn gemm_threads(tiles: usize) -> Parallelism {
    if tiles < rayon::current_num_threads() { Parallelism::Rayon(0) } else { Parallelism::None }
}

fn resized(buffer: &mut Vec<f32>, len: usize) -> &mut [f32] {
    buffer.resize(len, 0.0);
    &mut buffer[..len]
}

pub fn forward(shape: BlockShape, x: &[f32], weight: &[f32], bias: &[f32]) -> PooledBlock {
    shape.check(x, weight);
    assert_eq!(bias.len(), shape.out_channels, "conv block bias for {shape:?}");
    let geometry = shape.input_geometry();
    let per_tile = shape.tile_samples();
    let threads = gemm_threads(shape.batch.div_ceil(per_tile));
    let winograd_weights = (shape.kernel == 3 && shape.in_channels >= winograd::MIN_CHANNELS)
        .then(|| winograd::transform_weights(weight, shape.out_channels, shape.in_channels));
    let mut output = vec![0.0; shape.output_len()];
    let mut winners = vec![0; shape.output_len()];
    output
        .par_chunks_mut(per_tile * shape.pooled_sample_len())
        .zip(winners.par_chunks_mut(per_tile * shape.pooled_sample_len()))
        .zip(x.par_chunks(per_tile * geometry.sample_len()))
        .for_each_init(Scratch::default, |scratch, ((out, won), x_tile)| {
            let samples = x_tile.len() / geometry.sample_len();
            if let Some(u) = &winograd_weights {
                let tiles = Tiles {
                    samples,
                    in_channels: shape.in_channels,
                    out_channels: shape.out_channels,
                    height: shape.height,
                    width: shape.width,
                };
                let v = resized(&mut scratch.cols, 16 * shape.in_channels * tiles.count());
                winograd::transform_input(x_tile, tiles, v);
                let m = resized(&mut scratch.conv, 16 * shape.out_channels * tiles.count());
                winograd::multiply(u, v, tiles, m, threads);
                let per_sample = shape.pooled_height() * shape.pooled_width();
                winograd::output_windows(m, tiles, |c, tile, window| {
                    let at = ((tile / per_sample) * shape.out_channels + c) * per_sample + tile % per_sample;
                    (out[at], won[at]) = pool_window(window, bias[c]);
                });
                return;
            }
            let columns = samples * geometry.pixels();
            let cols = resized(&mut scratch.cols, geometry.patch_len() * columns);
            im2col(x_tile, samples, geometry, cols);
            let conv = resized(&mut scratch.conv, shape.out_channels * columns);
            let weights = View::row_major(weight, shape.out_channels, geometry.patch_len());
            matmul(conv, weights, View::row_major(cols, geometry.patch_len(), columns), false, threads);
            pool_relu(shape, samples, conv, bias, out, won);
        });
    PooledBlock { output, winners }
}

/// `relu(max(window) + bias)` and which window position won (first of equals), or
/// [`CUT_BY_RELU`].
fn pool_window(window: [f32; 4], bias: f32) -> (f32, u8) {
    let (mut best, mut value) = (0, window[0]);
    for (i, &v) in window.iter().enumerate().skip(1) {
        if v > value {
            (best, value) = (i, v);
        }
    }
    let value = value + bias;
    if value > 0.0 { (value, best as u8) } else { (0.0, CUT_BY_RELU) }
}

/// Pools `conv` (`[out_channels, samples * pixels]`) into NCHW `out`, adding bias and ReLU.
fn pool_relu(shape: BlockShape, samples: usize, conv: &[f32], bias: &[f32], out: &mut [f32], won: &mut [u8]) {
    let (w, pixels) = (shape.width, shape.height * shape.width);
    let (ph, pw) = (shape.pooled_height(), shape.pooled_width());
    for s in 0..samples {
        for (c, &b) in bias.iter().enumerate() {
            let plane = &conv[c * samples * pixels + s * pixels..][..pixels];
            let at = (s * shape.out_channels + c) * ph * pw;
            for py in 0..ph {
                let top = &plane[2 * py * w..][..w];
                let bottom = &plane[(2 * py + 1) * w..][..w];
                let out_row = &mut out[at + py * pw..][..pw];
                let won_row = &mut won[at + py * pw..][..pw];
                for px in 0..pw {
                    let window = [top[2 * px], top[2 * px + 1], bottom[2 * px], bottom[2 * px + 1]];
                    (out_row[px], won_row[px]) = pool_window(window, b);
                }
            }
        }
    }
}

/// Gradients of the block for `grad_output` (same shape as the forward output).
pub fn backward(
    shape: BlockShape,
    x: &[f32],
    weight: &[f32],
    winners: &[u8],
    grad_output: &[f32],
    need_input_grad: bool,
) -> BlockGradients {
    shape.check(x, weight);
    assert_eq!(winners.len(), shape.output_len(), "conv block winners for {shape:?}");
    assert_eq!(grad_output.len(), shape.output_len(), "conv block output gradient for {shape:?}");
    let geometry = shape.input_geometry();
    let per_tile = shape.tile_samples();
    let (in_tile, out_tile) = (per_tile * geometry.sample_len(), per_tile * shape.pooled_sample_len());
    let threads = gemm_threads(shape.batch.div_ceil(per_tile));
    let mut input = need_input_grad.then(|| vec![0.0; x.len()]);
    let input_tiles: Vec<Option<&mut [f32]>> = match input.as_mut() {
        Some(dx) => dx.chunks_mut(in_tile).map(Some).collect(),
        None => x.chunks(in_tile).map(|_| None).collect(),
    };
    let partials: Vec<(Vec<f32>, Vec<f32>)> = input_tiles
        .into_par_iter()
        .zip(x.par_chunks(in_tile))
        .zip(grad_output.par_chunks(out_tile).zip(winners.par_chunks(out_tile)))
        .map_init(Scratch::default, |scratch, ((dx_tile, x_tile), (grad_tile, won_tile))| {
            let samples = x_tile.len() / geometry.sample_len();
            let columns = samples * geometry.pixels();
            let cols = resized(&mut scratch.cols, geometry.patch_len() * columns);
            im2col(x_tile, samples, geometry, cols);
            let Some(dx_tile) = dx_tile else {
                let rows = resized(&mut scratch.input_cols, geometry.patch_len() * columns);
                return sparse_weight_grad(shape, samples, cols, rows, grad_tile, won_tile);
            };
            let grad_conv = resized(&mut scratch.conv, shape.out_channels * columns);
            let bias_grad = unpool(shape, samples, grad_tile, won_tile, grad_conv);
            let grad_conv = View::row_major(grad_conv, shape.out_channels, columns);
            let mut weight_grad = vec![0.0; shape.weight_len()];
            matmul(
                &mut weight_grad,
                grad_conv,
                View::row_major(cols, geometry.patch_len(), columns).t(),
                false,
                threads,
            );

            let input_cols = resized(&mut scratch.input_cols, geometry.patch_len() * columns);
            let weights_t = View::row_major(weight, shape.out_channels, geometry.patch_len()).t();
            matmul(input_cols, weights_t, grad_conv, false, threads);
            col2im_add(input_cols, samples, geometry, dx_tile);
            (weight_grad, bias_grad)
        })
        .collect();
    // Summed in tile order, so the result does not depend on which thread ran which tile.
    let mut weight = vec![0.0; shape.weight_len()];
    let mut bias = vec![0.0; shape.out_channels];
    for (weight_part, bias_part) in &partials {
        weight.iter_mut().zip(weight_part).for_each(|(acc, g)| *acc += g);
        bias.iter_mut().zip(bias_part).for_each(|(acc, g)| *acc += g);
    }
    BlockGradients { input, weight, bias }
}

/// Weight and bias gradients of a tile straight from the pooled gradient, for a block whose input
/// gradient nobody needs (the first: images are constants). Each pooled value reaches exactly
/// one conv output, so this does a quarter of the dense product's multiply-adds and never builds
/// the mostly-zero conv gradient. `cols` is the tile's im2col; `rows` receives its transpose, so
/// each conv output's patch is contiguous.
fn sparse_weight_grad(
    shape: BlockShape,
    samples: usize,
    cols: &[f32],
    rows: &mut [f32],
    grad: &[f32],
    won: &[u8],
) -> (Vec<f32>, Vec<f32>) {
    let patch = shape.in_channels * shape.kernel * shape.kernel;
    let (w, pixels) = (shape.width, shape.height * shape.width);
    let columns = samples * pixels;
    // Transposed in blocks of 16 columns, so the block being written and the cache lines being
    // read stay in L1 (block 1's backward: 24-26 ms against 27 ms column by column).
    for first in (0..columns).step_by(16) {
        let last = (first + 16).min(columns);
        for (i, col_row) in cols.chunks_exact(columns).enumerate() {
            for (p, &value) in (first..last).zip(&col_row[first..last]) {
                rows[p * patch + i] = value;
            }
        }
    }
    let (ph, pw) = (shape.pooled_height(), shape.pooled_width());
    let mut weight_grad = vec![0.0; shape.weight_len()];
    let mut bias_grad = vec![0.0; shape.out_channels];
    for s in 0..samples {
        for (c, (weights, bias)) in weight_grad.chunks_exact_mut(patch).zip(&mut bias_grad).enumerate() {
            let at = (s * shape.out_channels + c) * ph * pw;
            for py in 0..ph {
                for px in 0..pw {
                    let winner = won[at + py * pw + px];
                    if winner == CUT_BY_RELU {
                        continue;
                    }
                    let g = grad[at + py * pw + px];
                    let (dy, dx) = (usize::from(winner / 2), usize::from(winner % 2));
                    let p = s * pixels + (2 * py + dy) * w + 2 * px + dx;
                    for (acc, &v) in weights.iter_mut().zip(&rows[p * patch..(p + 1) * patch]) {
                        *acc += g * v;
                    }
                    *bias += g;
                }
            }
        }
    }
    (weight_grad, bias_grad)
}

/// Routes each pooled gradient to its window's winner in `grad_conv` (`[out, samples * pixels]`)
/// and returns the bias gradient of the tile.
fn unpool(shape: BlockShape, samples: usize, grad: &[f32], won: &[u8], grad_conv: &mut [f32]) -> Vec<f32> {
    let (w, pixels) = (shape.width, shape.height * shape.width);
    let (ph, pw) = (shape.pooled_height(), shape.pooled_width());
    grad_conv.fill(0.0);
    let mut bias_grad = vec![0.0; shape.out_channels];
    for s in 0..samples {
        for (c, bias_acc) in bias_grad.iter_mut().enumerate() {
            let plane = &mut grad_conv[c * samples * pixels + s * pixels..][..pixels];
            let at = (s * shape.out_channels + c) * ph * pw;
            for py in 0..ph {
                for px in 0..pw {
                    let winner = won[at + py * pw + px];
                    if winner == CUT_BY_RELU {
                        continue;
                    }
                    let g = grad[at + py * pw + px];
                    let (dy, dx) = (usize::from(winner / 2), usize::from(winner % 2));
                    plane[(2 * py + dy) * w + 2 * px + dx] = g;
                    *bias_acc += g;
                }
            }
        }
    }
    bias_grad
}
