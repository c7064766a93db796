//! The fused conv block computes what burn's conv + ReLU + max-pool compute: same output and
//! same gradients for the input, weights and bias, with and without autodiff.

use burn::nn::PaddingConfig2d;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Distribution, Tensor};
use facetrain_worker::conv_block::{BlockPath, conv_relu_pool_via};

fn block(device: &Device, in_channels: usize, out_channels: usize, kernel: usize) -> (Conv2d, MaxPool2d) {
    let conv = Conv2dConfig::new([in_channels, out_channels], [kernel, kernel])
        .with_padding(PaddingConfig2d::Same)
        .init(device);
    (conv, MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init())
}

fn burn_ops(x: Tensor<4>, conv: &Conv2d, pool: &MaxPool2d) -> Tensor<4> {
    pool.forward(relu(conv.forward(x)))
}

fn max_difference<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> f32 {
    (a - b).abs().max().into_scalar()
}

#[test]
fn forward_matches_burns_ops_without_autodiff() {
    let device = Device::flex();
    let (conv, pool) = block(&device, 3, 8, 3);
    let x = Tensor::<4>::random([4, 3, 18, 14], Distribution::Default, &device);
    let (fused, path) = conv_relu_pool_via(x.clone(), &conv, &pool);
    assert_eq!(path, BlockPath::Fused);
    assert_eq!(fused.dims(), [4, 8, 9, 7]);
    assert!(max_difference(fused, burn_ops(x, &conv, &pool)) < 1e-5);
}

#[test]
fn output_and_every_gradient_match_burns_ops() {
    let device = Device::flex().autodiff();
    let (conv, pool) = block(&device, 5, 6, 3);
    // Odd sides: the pool drops the last row and column, as burn's does.
    let x = Tensor::<4>::random([3, 5, 11, 10], Distribution::Normal(0.0, 1.0), &device).require_grad();
    let upstream = Tensor::<4>::random([3, 6, 5, 5], Distribution::Normal(0.0, 1.0), &device);

    let run = |fused: bool| {
        let out = if fused {
            let (out, path) = conv_relu_pool_via(x.clone(), &conv, &pool);
            assert_eq!(path, BlockPath::Fused);
            out
        } else {
            burn_ops(x.clone(), &conv, &pool)
        };
        let grads = (out.clone() * upstream.clone()).sum().backward();
        let bias = conv.bias.as_ref().unwrap();
        (
            out.inner(),
            x.grad(&grads).unwrap(),
            conv.weight.val().grad(&grads).unwrap(),
            bias.val().grad(&grads).unwrap(),
        )
    };
    let (out_a, x_a, w_a, b_a) = run(true);
    let (out_b, x_b, w_b, b_b) = run(false);
    assert!(max_difference(out_a, out_b) < 1e-5);
    assert!(max_difference(x_a, x_b) < 1e-4);
    assert!(max_difference(w_a, w_b) < 1e-4);
    assert!(max_difference(b_a, b_b) < 1e-4);
}

#[test]
fn a_block_the_kernels_do_not_cover_still_runs_burns_ops() {
    let device = Device::flex().autodiff();
    // An even kernel: "same" padding is asymmetric, which the kernels leave to burn.
    let (conv, pool) = block(&device, 2, 3, 2);
    let x = Tensor::<4>::random([2, 2, 8, 8], Distribution::Default, &device).require_grad();
    let (fused, path) = conv_relu_pool_via(x.clone(), &conv, &pool);
    assert_eq!(path, BlockPath::BurnOps);
    assert!(max_difference(fused, burn_ops(x, &conv, &pool)) < 1e-6);
}

#[test]
fn a_first_block_over_constant_images_gets_the_same_weight_gradients() {
    // No input gradient is wanted, so the kernels take their sparse weight-gradient route.
    let device = Device::flex().autodiff();
    let (conv, pool) = block(&device, 3, 4, 3);
    let images = Tensor::<4>::random([5, 3, 12, 12], Distribution::Default, &device);
    let upstream = Tensor::<4>::random([5, 4, 6, 6], Distribution::Normal(0.0, 1.0), &device);
    let bias = conv.bias.as_ref().unwrap();
    let gradients = |out: Tensor<4>| {
        let grads = (out * upstream.clone()).sum().backward();
        (conv.weight.val().grad(&grads).unwrap(), bias.val().grad(&grads).unwrap())
    };
    let (fused, path) = conv_relu_pool_via(images.clone(), &conv, &pool);
    assert_eq!(path, BlockPath::Fused);
    let (weight_a, bias_a) = gradients(fused);
    let (weight_b, bias_b) = gradients(burn_ops(images, &conv, &pool));
    assert!(max_difference(weight_a, weight_b) < 1e-4);
    assert!(max_difference(bias_a, bias_b) < 1e-4);
}
