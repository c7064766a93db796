//! Seeded weight initialisation: every worker that builds the model from the same job and seed
//! gets bit-identical parameters, without a broadcast and independent of burn's global RNG.

use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::{Tensor, TensorData};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::job::WeightInit;

/// Overwrites every float parameter of `module`, in visit order, from `seed`.
pub fn initialise<M: Module>(module: M, scheme: WeightInit, seed: u64) -> M {
    let mut mapper = Initialiser { scheme, rng: ChaCha8Rng::seed_from_u64(seed ^ 0x1217_5eed) };
    module.map(&mut mapper)
}

struct Initialiser {
    scheme: WeightInit,
    rng: ChaCha8Rng,
}

impl ModuleMapper for Initialiser {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let (id, tensor, mapper) = param.consume();
        let dims = tensor.dims();
        let count: usize = dims.iter().product();
        let values: Vec<f32> = match (self.scheme, D) {
            (WeightInit::TruncatedNormal, _) => (0..count).map(|_| truncated_normal(&mut self.rng) * 0.1).collect(),
            (WeightInit::HeNormal, 1) => vec![0.0; count],
            (WeightInit::HeNormal, _) => {
                let std = (2.0 / fan_in(&dims) as f32).sqrt();
                (0..count).map(|_| truncated_normal(&mut self.rng) * std / 0.879_626).collect()
            }
        };
        let device = tensor.device();
        let fresh =
            Tensor::<D>::from_data(TensorData::new(values, dims), &device).set_require_grad(tensor.is_require_grad());
        Param::from_mapped_value(id, fresh, mapper)
    }
}

/// Conv weights are `[out, in, k, k]`; linear weights `[in, out]`.
fn fan_in(dims: &[usize]) -> usize {
    match dims {
        [_, input, kh, kw] => input * kh * kw,
        [input, _] => *input,
        other => other.iter().product(),
    }
}

/// Standard normal truncated to two standard deviations, as `tf.truncated_normal`. (Its
/// standard deviation is 0.8796; He init divides that out.)
fn truncated_normal(rng: &mut ChaCha8Rng) -> f32 {
    loop {
        let u1: f32 = rng.random::<f32>().max(f32::MIN_POSITIVE);
        let u2: f32 = rng.random();
        let z = (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos();
        if z.abs() <= 2.0 {
            return z;
        }
    }
}
