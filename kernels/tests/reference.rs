//! The fused block against a direct, loop-by-loop transcription of its definition, in f64:
//! `max_pool_2x2(relu(conv_same(x, w) + b))` and the gradients of `sum(output * upstream)`.

use facetrain_kernels::{BlockShape, backward, forward};
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

struct Reference {
    output: Vec<f64>,
    input_grad: Vec<f64>,
    weight_grad: Vec<f64>,
    bias_grad: Vec<f64>,
}

fn reference(s: BlockShape, x: &[f32], w: &[f32], b: &[f32], upstream: &[f32]) -> Reference {
    let (n, ci, co, h, wd, k) = (s.batch, s.in_channels, s.out_channels, s.height, s.width, s.kernel);
    let pad = (k / 2) as isize;
    let xi = |n_: usize, c: usize, y: isize, x_: isize| -> f64 {
        if y < 0 || x_ < 0 || y >= h as isize || x_ >= wd as isize {
            0.0
        } else {
            f64::from(x[((n_ * ci + c) * h + y as usize) * wd + x_ as usize])
        }
    };
    let widx = |o: usize, c: usize, ky: usize, kx: usize| ((o * ci + c) * k + ky) * k + kx;
    let mut conv = vec![0.0; n * co * h * wd];
    for n_ in 0..n {
        for o in 0..co {
            for y in 0..h {
                for x_ in 0..wd {
                    let mut acc = f64::from(b[o]);
                    for c in 0..ci {
                        for ky in 0..k {
                            for kx in 0..k {
                                let v = xi(n_, c, y as isize + ky as isize - pad, x_ as isize + kx as isize - pad);
                                acc += v * f64::from(w[widx(o, c, ky, kx)]);
                            }
                        }
                    }
                    conv[((n_ * co + o) * h + y) * wd + x_] = acc;
                }
            }
        }
    }
    let (ph, pw) = (h / 2, wd / 2);
    let mut output = vec![0.0; n * co * ph * pw];
    let mut grad_conv = vec![0.0; conv.len()];
    for n_ in 0..n {
        for o in 0..co {
            for py in 0..ph {
                for px in 0..pw {
                    let at = |dy: usize, dx: usize| ((n_ * co + o) * h + 2 * py + dy) * wd + 2 * px + dx;
                    let mut best = at(0, 0);
                    for (dy, dx) in [(0, 1), (1, 0), (1, 1)] {
                        if conv[at(dy, dx)] > conv[best] {
                            best = at(dy, dx);
                        }
                    }
                    let out = ((n_ * co + o) * ph + py) * pw + px;
                    if conv[best] > 0.0 {
                        output[out] = conv[best];
                        grad_conv[best] = f64::from(upstream[out]);
                    }
                }
            }
        }
    }
    let mut input_grad = vec![0.0; x.len()];
    let mut weight_grad = vec![0.0; w.len()];
    let mut bias_grad = vec![0.0; co];
    for n_ in 0..n {
        for o in 0..co {
            for y in 0..h {
                for x_ in 0..wd {
                    let g = grad_conv[((n_ * co + o) * h + y) * wd + x_];
                    bias_grad[o] += g;
                    for c in 0..ci {
                        for ky in 0..k {
                            for kx in 0..k {
                                let (sy, sx) = (y as isize + ky as isize - pad, x_ as isize + kx as isize - pad);
                                weight_grad[widx(o, c, ky, kx)] += g * xi(n_, c, sy, sx);
                                if sy >= 0 && sx >= 0 && sy < h as isize && sx < wd as isize {
                                    input_grad[((n_ * ci + c) * h + sy as usize) * wd + sx as usize] +=
                                        g * f64::from(w[widx(o, c, ky, kx)]);
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    Reference { output, input_grad, weight_grad, bias_grad }
}

fn assert_close(what: &str, got: &[f32], want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = want.iter().fold(1.0f64, |m, v| m.max(v.abs()));
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((f64::from(*g) - w).abs() <= 1e-4 * scale, "{what}[{i}]: got {g}, want {w} (scale {scale})");
    }
}

fn random(rng: &mut ChaCha8Rng, len: usize) -> Vec<f32> {
    (0..len).map(|_| rng.random_range(-1.0..1.0)).collect()
}

fn check(shape: BlockShape, seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let x = random(&mut rng, shape.input_len());
    let w = random(&mut rng, shape.weight_len());
    let b = random(&mut rng, shape.out_channels);
    let upstream = random(&mut rng, shape.output_len());
    let want = reference(shape, &x, &w, &b, &upstream);

    let pooled = forward(shape, &x, &w, &b);
    assert_close("output", &pooled.output, &want.output);
    let grads = backward(shape, &x, &w, &pooled.winners, &upstream, true);
    assert_close("input grad", grads.input.as_deref().unwrap(), &want.input_grad);
    assert_close("weight grad", &grads.weight, &want.weight_grad);
    assert_close("bias grad", &grads.bias, &want.bias_grad);

    // Without the input gradient the weights take the sparse path: same values, other route.
    let without_input = backward(shape, &x, &w, &pooled.winners, &upstream, false);
    assert!(without_input.input.is_none());
    assert_close("weight grad, no input grad", &without_input.weight, &want.weight_grad);
    assert_close("bias grad, no input grad", &without_input.bias, &want.bias_grad);
}

#[test]
fn the_models_first_block_at_a_small_batch() {
    check(BlockShape { batch: 3, in_channels: 3, out_channels: 16, height: 24, width: 24, kernel: 3 }, 1);
}

#[test]
fn blocks_with_64_or_more_input_channels_take_winograd_and_still_match() {
    // F(2x2, 3x3) forward from 64 input channels; odd and even sides (the pool drops an odd edge).
    check(BlockShape { batch: 3, in_channels: 64, out_channels: 8, height: 10, width: 9, kernel: 3 }, 4);
    check(BlockShape { batch: 2, in_channels: 70, out_channels: 5, height: 7, width: 12, kernel: 3 }, 5);
    check(BlockShape { batch: 9, in_channels: 64, out_channels: 24, height: 6, width: 6, kernel: 3 }, 6);
}

#[test]
fn many_tiles_and_a_short_last_tile() {
    // 4x4 pixels => many samples per tile; a batch of 37 leaves a partial last tile.
    check(BlockShape { batch: 37, in_channels: 5, out_channels: 7, height: 4, width: 4, kernel: 3 }, 2);
}

#[test]
fn results_do_not_depend_on_the_thread_count() {
    let shape = BlockShape { batch: 20, in_channels: 4, out_channels: 8, height: 12, width: 12, kernel: 3 };
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let (x, w, b) = (random(&mut rng, shape.input_len()), random(&mut rng, shape.weight_len()), random(&mut rng, 8));
    let upstream = random(&mut rng, shape.output_len());
    let run = |threads| {
        rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap().install(|| {
            let pooled = forward(shape, &x, &w, &b);
            let grads = backward(shape, &x, &w, &pooled.winners, &upstream, true);
            let sparse = backward(shape, &x, &w, &pooled.winners, &upstream, false);
            (pooled.output, grads.input, grads.weight, grads.bias, sparse.weight, sparse.bias)
        })
    };
    assert_eq!(run(1), run(3));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]
    #[test]
    fn any_small_block_matches_its_definition(
        batch in 1usize..5,
        in_channels in 1usize..5,
        out_channels in 1usize..6,
        height in 2usize..9,
        width in 2usize..9,
        kernel in prop::sample::select(vec![1usize, 3, 5]),
        seed in any::<u64>(),
    ) {
        check(BlockShape { batch, in_channels, out_channels, height, width, kernel }, seed);
    }
}
