//! Parameters and gradients as one flat little-endian f32 vector, in the module's visit order.
//!
//! This is the boundary between burn and the rest of the platform: gradients leave the model
//! here to be averaged (by a reducer, in another process) and come back before the optimizer
//! step; parameters leave here to be checksummed or sent to a joining worker.

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::tensor::{Tensor, TensorData};

/// Number of scalars in every float parameter of `module`.
pub fn parameter_count<M: Module>(module: &M) -> usize {
    struct Count(usize);
    impl ModuleVisitor for Count {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            self.0 += param.val().dims().iter().product::<usize>();
        }
    }
    let mut count = Count(0);
    module.visit(&mut count);
    count.0
}

/// All parameters, flattened in visit order.
pub fn flatten_parameters<M: Module>(module: &M) -> Vec<f32> {
    struct Collect(Vec<f32>);
    impl ModuleVisitor for Collect {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            extend_from(&mut self.0, param.val().into_data());
        }
    }
    let mut collect = Collect(Vec::with_capacity(parameter_count(module)));
    module.visit(&mut collect);
    collect.0
}

/// Replaces every parameter's value from `flat` (same layout as [`flatten_parameters`]).
pub fn load_parameters<M: Module>(module: M, flat: &[f32]) -> M {
    struct Load<'a> {
        flat: &'a [f32],
    }
    impl ModuleMapper for Load<'_> {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            let (id, tensor, mapper) = param.consume();
            let dims = tensor.dims();
            let fresh = tensor_from(&mut self.flat, dims, &tensor.device()).set_require_grad(tensor.is_require_grad());
            Param::from_mapped_value(id, fresh, mapper)
        }
    }
    assert_eq!(flat.len(), parameter_count(&module), "parameter vector does not match the model");
    module.map(&mut Load { flat })
}

/// The gradients of `module`'s parameters, flattened in visit order. A parameter without a
/// gradient contributes zeros, so every worker's vector has the same layout.
pub fn flatten_gradients<M: Module>(module: &M, grads: &GradientsParams) -> Vec<f32> {
    struct Collect<'a> {
        grads: &'a GradientsParams,
        out: Vec<f32>,
    }
    impl ModuleVisitor for Collect<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            match self.grads.get::<D>(param.id) {
                Some(grad) => extend_from(&mut self.out, grad.into_data()),
                None => {
                    let count: usize = param.val().dims().iter().product();
                    self.out.resize(self.out.len() + count, 0.0);
                }
            }
        }
    }
    let mut collect = Collect { grads, out: Vec::with_capacity(parameter_count(module)) };
    module.visit(&mut collect);
    collect.out
}

/// Replaces each gradient in `grads` by its slice of `flat`, on the gradient's own device.
pub fn replace_gradients<M: Module>(module: &M, grads: &mut GradientsParams, flat: &[f32]) {
    struct Replace<'a, 'b> {
        grads: &'b mut GradientsParams,
        flat: &'a [f32],
        device: burn::tensor::Device,
    }
    impl ModuleVisitor for Replace<'_, '_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let dims = param.val().dims();
            let id: ParamId = param.id;
            let device = self.grads.remove::<D>(id).map_or_else(|| self.device.clone(), |old| old.device());
            let fresh = tensor_from(&mut self.flat, dims, &device);
            self.grads.register::<D>(id, fresh);
        }
    }
    assert_eq!(flat.len(), parameter_count(module), "gradient vector does not match the model");
    // A model without parameters has no device and nothing to replace.
    let Some(device) = module.devices().into_iter().next() else { return };
    module.visit(&mut Replace { grads, flat, device: device.inner() });
}

fn tensor_from<const D: usize>(flat: &mut &[f32], dims: [usize; D], device: &burn::tensor::Device) -> Tensor<D> {
    let count: usize = dims.iter().product();
    let (head, tail) = flat.split_at(count);
    *flat = tail;
    Tensor::<D>::from_data(TensorData::new(head.to_vec(), dims), device)
}

fn extend_from(out: &mut Vec<f32>, data: TensorData) {
    // f32 data is copied as one slice; `iter` converts element by element (~10x slower on the
    // 3M-parameter model, every step).
    match data.as_slice::<f32>() {
        Ok(values) => out.extend_from_slice(values),
        Err(_) => out.extend(data.iter::<f32>()),
    }
}

/// A cheap, order-sensitive fingerprint of a parameter vector, to compare workers' replicas.
pub fn checksum(flat: &[f32]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    if cfg!(target_endian = "little") {
        // The same bytes as value by value, in one call: crc32fast's SIMD path needs long inputs.
        hasher.update(bytemuck::cast_slice(flat));
    } else {
        flat.iter().for_each(|value| hasher.update(&value.to_le_bytes()));
    }
    hasher.finalize()
}
