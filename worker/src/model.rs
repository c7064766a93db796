//! The tutorial's face CNN: N x (conv KxK SAME + ReLU + 2x2 max-pool), then fully connected
//! ReLU layers, dropout after the last hidden layer, and a linear layer to class logits.
//!
//! Dropout takes its mask from the caller ([`crate::train::dropout`]) rather than burn's global
//! RNG, so a run is reproducible from its seed, resumes exactly from a checkpoint, and gives the
//! same mask to a sample whichever worker trains it.

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};

use crate::conv_block::conv_relu_pool;
use crate::job::ModelSpec;

#[derive(Module, Debug)]
pub struct FaceCnn {
    convs: Vec<Conv2d>,
    pool: MaxPool2d,
    hidden: Vec<Linear>,
    output: Linear,
}

/// The shapes a [`FaceCnn`] is built from: the model section of the job plus the class count.
#[derive(Debug, Clone, PartialEq)]
pub struct Architecture {
    pub spec: ModelSpec,
    pub num_classes: usize,
}

impl Architecture {
    pub fn new(spec: ModelSpec, num_classes: usize) -> Self {
        Self { spec, num_classes }
    }

    /// Side of the feature map after every conv block has halved it.
    pub fn final_side(&self) -> usize {
        self.spec.conv_channels.iter().fold(self.spec.image_size, |side, _| side / 2)
    }

    pub fn flat_features(&self) -> usize {
        // Without conv layers (refused by the job's validation) the image's 3 channels go in flat.
        let channels = self.spec.conv_channels.last().copied().unwrap_or(3);
        channels * self.final_side() * self.final_side()
    }

    /// Builds the model with burn's default initialisation; [`crate::init`] then overwrites
    /// every parameter from the job's seed.
    pub fn build(&self, device: &Device) -> FaceCnn {
        let k = self.spec.kernel_size;
        let mut in_channels = 3;
        let convs = self
            .spec
            .conv_channels
            .iter()
            .map(|&out| {
                let conv =
                    Conv2dConfig::new([in_channels, out], [k, k]).with_padding(PaddingConfig2d::Same).init(device);
                in_channels = out;
                conv
            })
            .collect();
        let mut in_features = self.flat_features();
        let hidden = self
            .spec
            .fc_units
            .iter()
            .map(|&units| {
                let layer = LinearConfig::new(in_features, units).init(device);
                in_features = units;
                layer
            })
            .collect();
        FaceCnn {
            convs,
            pool: MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init(),
            hidden,
            output: LinearConfig::new(in_features, self.num_classes).init(device),
        }
    }

    /// Width of the activation the dropout mask applies to.
    pub fn dropout_width(&self) -> usize {
        self.spec.fc_units.last().copied().unwrap_or_else(|| self.flat_features())
    }
}

impl FaceCnn {
    /// `images`: `[batch, 3, side, side]` in [0, 1]. `dropout_mask`: `[batch, width]` of 0 or
    /// 1/keep_prob, applied after the last hidden layer; `None` for evaluation.
    pub fn forward(&self, images: Tensor<4>, dropout_mask: Option<Tensor<2>>) -> Tensor<2> {
        let mut x = images;
        for conv in &self.convs {
            x = conv_relu_pool(x, conv, &self.pool);
        }
        let mut x: Tensor<2> = x.flatten(1, 3);
        for layer in &self.hidden {
            x = relu(layer.forward(x));
        }
        if let Some(mask) = dropout_mask {
            x = x * mask;
        }
        self.output.forward(x)
    }
}
