//! The CNN's repeated block, `max_pool_2x2(relu(conv(x)))`, as one operation.
//!
//! On the flex backend (with or without autodiff) the block runs the fused im2col + GEMM kernels
//! of `facetrain-kernels`, registered with burn's autodiff as a custom backward step: a backend
//! extension, written here until burn's own conv/pool paths catch up. Every other backend, and
//! any block shape the kernels do not cover, runs burn's three ops, with the same result.

use std::sync::Arc;

use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2d;
use burn::nn::pool::MaxPool2d;
use burn::tensor::activation::relu;
use burn::tensor::{DType, Tensor};
use burn_autodiff::Autodiff;
use burn_autodiff::checkpoint::base::Checkpointer;
use burn_autodiff::checkpoint::strategy::NoCheckpointing;
use burn_autodiff::grads::Gradients;
use burn_autodiff::ops::{Backward, Ops, OpsKind};
use burn_backend::{Shape, TensorData};
use burn_flex::{Flex, FlexTensor};
use facetrain_kernels::BlockShape;

/// Which implementation computed a block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockPath {
    /// The fused kernels (flex, with or without autodiff).
    Fused,
    /// burn's conv, ReLU and max-pool ops.
    BurnOps,
}

/// `pool(relu(conv(x)))`, fused where the kernels apply.
pub fn conv_relu_pool(x: Tensor<4>, conv: &Conv2d, pool: &MaxPool2d) -> Tensor<4> {
    conv_relu_pool_via(x, conv, pool).0
}

/// [`conv_relu_pool`], also saying which path ran (tests and benchmarks check it).
pub fn conv_relu_pool_via(x: Tensor<4>, conv: &Conv2d, pool: &MaxPool2d) -> (Tensor<4>, BlockPath) {
    match fused_shape(&x, conv, pool) {
        Some(shape) => fused(x, conv, pool, shape),
        None => (unfused(x, conv, pool), BlockPath::BurnOps),
    }
}

/// The kernels' shape for this block, if they compute exactly what burn's ops would.
fn fused_shape(x: &Tensor<4>, conv: &Conv2d, pool: &MaxPool2d) -> Option<BlockShape> {
    let [batch, in_channels, height, width] = x.dims();
    let [out_channels, _, kernel, kernel_w] = conv.weight.dims();
    let plain_conv = conv.stride == [1, 1] && conv.dilation == [1, 1] && conv.groups == 1;
    let same = matches!(conv.padding, PaddingConfig2d::Same) && kernel == kernel_w;
    let pool_2x2 = pool.kernel_size == [2, 2]
        && pool.stride == [2, 2]
        && pool.dilation == [1, 1]
        && !pool.ceil_mode
        && matches!(pool.padding, PaddingConfig2d::Valid);
    let shape = BlockShape { batch, in_channels, out_channels, height, width, kernel };
    let f32_only = x.dtype() == DType::F32
        && conv.weight.val().dtype() == DType::F32
        && conv.bias.as_ref().is_some_and(|bias| bias.val().dtype() == DType::F32);
    (plain_conv && same && pool_2x2 && f32_only && shape.is_supported()).then_some(shape)
}

fn fused(x: Tensor<4>, conv: &Conv2d, pool: &MaxPool2d, shape: BlockShape) -> (Tensor<4>, BlockPath) {
    let weight = conv.weight.val();
    let Some(bias) = conv.bias.as_ref().map(|b| b.val()) else {
        return (unfused(x, conv, pool), BlockPath::BurnOps);
    };
    if let (Ok(x), Ok(weight), Ok(bias)) = (
        x.clone().try_into_primitive::<Autodiff<Flex>>(),
        weight.clone().try_into_primitive::<Autodiff<Flex>>(),
        bias.clone().try_into_primitive::<Autodiff<Flex>>(),
    ) {
        return (Tensor::from_primitive::<Autodiff<Flex>>(tracked(shape, x, weight, bias)), BlockPath::Fused);
    }
    if let (Ok(x), Ok(weight), Ok(bias)) =
        (x.clone().try_into_primitive::<Flex>(), weight.try_into_primitive::<Flex>(), bias.try_into_primitive::<Flex>())
    {
        let pooled = facetrain_kernels::forward(shape, &f32s(&x), &f32s(&weight), &f32s(&bias));
        return (Tensor::from_primitive::<Flex>(flex_tensor(pooled.output, output_dims(shape))), BlockPath::Fused);
    }
    // Another backend, or inputs on mixed backends: burn's own ops decide what that means.
    (unfused(x, conv, pool), BlockPath::BurnOps)
}

fn unfused(x: Tensor<4>, conv: &Conv2d, pool: &MaxPool2d) -> Tensor<4> {
    pool.forward(relu(conv.forward(x)))
}

type FlexAutodiffTensor = burn_backend::tensor::FloatTensor<Autodiff<Flex>>;

fn tracked(
    shape: BlockShape,
    x: FlexAutodiffTensor,
    weight: FlexAutodiffTensor,
    bias: FlexAutodiffTensor,
) -> FlexAutodiffTensor {
    let (x_flex, weight_flex) = (x.primitive().clone(), weight.primitive().clone());
    let pooled = facetrain_kernels::forward(shape, &f32s(&x_flex), &f32s(&weight_flex), &f32s(bias.primitive()));
    let output = flex_tensor(pooled.output, output_dims(shape));
    match ConvBlockBackward
        .prepare::<NoCheckpointing>([x.node(), weight.node(), bias.node()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            let state = BlockState { shape, x: x_flex, weight: weight_flex, winners: Arc::new(pooled.winners) };
            prep.finish(state, output)
        }
        OpsKind::UnTracked(prep) => prep.finish(output),
    }
}

/// What the backward step needs: the block's input and weights, and which window value won.
#[derive(Clone, Debug)]
struct BlockState {
    shape: BlockShape,
    x: FlexTensor,
    weight: FlexTensor,
    winners: Arc<Vec<u8>>,
}

#[derive(Debug)]
struct ConvBlockBackward;

impl Backward<Flex, 3> for ConvBlockBackward {
    type State = BlockState;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let [node_x, node_weight, node_bias] = ops.parents;
        let grad_output = grads.consume::<Flex>(&ops.node);
        let BlockState { shape, x, weight, winners } = ops.state;
        let gradients = facetrain_kernels::backward(
            shape,
            &f32s(&x),
            &f32s(&weight),
            &winners,
            &f32s(&grad_output),
            node_x.is_some(),
        );
        if let (Some(node), Some(input)) = (node_x, gradients.input) {
            grads.register::<Flex>(
                node.id,
                flex_tensor(input, vec![shape.batch, shape.in_channels, shape.height, shape.width]),
            );
        }
        if let Some(node) = node_weight {
            let dims = vec![shape.out_channels, shape.in_channels, shape.kernel, shape.kernel];
            grads.register::<Flex>(node.id, flex_tensor(gradients.weight, dims));
        }
        if let Some(node) = node_bias {
            grads.register::<Flex>(node.id, flex_tensor(gradients.bias, vec![shape.out_channels]));
        }
    }
}

fn output_dims(shape: BlockShape) -> Vec<usize> {
    vec![shape.batch, shape.out_channels, shape.pooled_height(), shape.pooled_width()]
}

/// The tensor's values in row-major order, borrowed when already laid out that way.
fn f32s(tensor: &FlexTensor) -> std::borrow::Cow<'_, [f32]> {
    match tensor.as_slice::<f32>() {
        Some(values) => values.into(),
        None => tensor.clone().into_data().iter::<f32>().collect::<Vec<_>>().into(),
    }
}

fn flex_tensor(values: Vec<f32>, dims: Vec<usize>) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, Shape::from(dims)))
}
