//! A trained model as a file other tools read: safetensors with PyTorch's names and layouts, so
//! `../shared/bench/torch_cnn.py`'s `TutorialCNN` (and any `nn.Sequential` of the same shape)
//! loads it with `load_state_dict(strict=True)`.
//!
//! The PyTorch model is `features` (per conv block: Conv2d, ReLU, MaxPool2d) and `classifier`
//! (Flatten, then per hidden layer Linear and ReLU, then Dropout, then the output Linear), so the
//! names are `features.{3i}.weight`, `classifier.{1 + 2j}.weight`, ..., `classifier.{2 + 2M}`.
//! Conv weights have the same `[out, in, k, k]` layout in burn and PyTorch; burn's `Linear`
//! keeps `[in, out]` where PyTorch keeps `[out, in]`, so those are transposed. Both flatten the
//! last feature map in `C, H, W` order, and both take RGB in [0, 1], channels first.

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::Tensor;

use crate::model::{Architecture, FaceCnn};

/// One named tensor, row-major f32.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedTensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub values: Vec<f32>,
}

/// PyTorch's names for the parameters of a model with `convs` conv blocks and `hidden` hidden
/// layers, in burn's visit order (each layer's weight, then its bias), and whether each is a
/// Linear weight (to transpose).
pub fn torch_names(convs: usize, hidden: usize) -> Vec<(String, bool)> {
    let mut names = Vec::new();
    let mut layer = |prefix: String, linear: bool| {
        names.push((format!("{prefix}.weight"), linear));
        names.push((format!("{prefix}.bias"), false));
    };
    (0..convs).for_each(|i| layer(format!("features.{}", 3 * i), false));
    (0..hidden).for_each(|j| layer(format!("classifier.{}", 1 + 2 * j), true));
    layer(format!("classifier.{}", 2 + 2 * hidden), true);
    names
}

/// The model's parameters under PyTorch's names and layouts.
pub fn torch_state_dict(arch: &Architecture, model: &FaceCnn) -> Vec<NamedTensor> {
    struct Collect(Vec<(Vec<usize>, Vec<f32>)>);
    impl ModuleVisitor for Collect {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let value = param.val();
            let shape = value.dims().to_vec();
            self.0.push((shape, value.into_data().iter::<f32>().collect()));
        }
    }
    let mut collect = Collect(Vec::new());
    model.visit(&mut collect);
    let names = torch_names(arch.spec.conv_channels.len(), arch.spec.fc_units.len());
    assert_eq!(names.len(), collect.0.len(), "the model's parameters and the export's names must match");
    names
        .into_iter()
        .zip(collect.0)
        .map(|((name, linear), (shape, values))| match linear {
            true => {
                let (rows, cols) = (shape[0], shape[1]);
                let mut transposed = vec![0.0; values.len()];
                for r in 0..rows {
                    for c in 0..cols {
                        transposed[c * rows + r] = values[r * cols + c];
                    }
                }
                NamedTensor { name, shape: vec![cols, rows], values: transposed }
            }
            false => NamedTensor { name, shape, values },
        })
        .collect()
}

/// The safetensors encoding: an 8-byte little-endian header length, a JSON header (dtype, shape
/// and byte range of each tensor, plus string `metadata`), padded with spaces to 8 bytes, then
/// the data.
pub fn safetensors(tensors: &[NamedTensor], metadata: &[(&str, String)]) -> Vec<u8> {
    let mut header = serde_json::Map::new();
    let meta: serde_json::Map<String, serde_json::Value> =
        metadata.iter().map(|(k, v)| (k.to_string(), serde_json::Value::String(v.clone()))).collect();
    header.insert("__metadata__".into(), meta.into());
    let mut offset = 0usize;
    for tensor in tensors {
        let bytes = tensor.values.len() * 4;
        header.insert(
            tensor.name.clone(),
            serde_json::json!({"dtype": "F32", "shape": tensor.shape, "data_offsets": [offset, offset + bytes]}),
        );
        offset += bytes;
    }
    let mut json = serde_json::Value::Object(header).to_string().into_bytes();
    json.resize(json.len().div_ceil(8) * 8, b' ');
    let mut out = Vec::with_capacity(8 + json.len() + offset);
    out.extend_from_slice(&(json.len() as u64).to_le_bytes());
    out.extend_from_slice(&json);
    for tensor in tensors {
        out.extend(tensor.values.iter().flat_map(|v| v.to_le_bytes()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_pytorch_sequentials() {
        let names: Vec<String> = torch_names(4, 2).into_iter().map(|(n, _)| n).collect();
        assert_eq!(&names[..2], ["features.0.weight", "features.0.bias"]);
        assert_eq!(names[6], "features.9.weight");
        assert_eq!(
            &names[8..],
            [
                "classifier.1.weight",
                "classifier.1.bias",
                "classifier.3.weight",
                "classifier.3.bias",
                "classifier.6.weight",
                "classifier.6.bias"
            ]
        );
        let linear: Vec<bool> = torch_names(1, 0).into_iter().map(|(_, l)| l).collect();
        assert_eq!(linear, [false, false, true, false], "only Linear weights are transposed");
    }

    #[test]
    fn safetensors_has_its_header_aligned_and_each_tensor_where_the_header_says() {
        let tensors = [
            NamedTensor { name: "a".into(), shape: vec![2], values: vec![1.0, 2.0] },
            NamedTensor { name: "b".into(), shape: vec![1, 1], values: vec![-3.5] },
        ];
        let bytes = safetensors(&tensors, &[("format", "pt".into())]);
        let length = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        assert_eq!(length % 8, 0);
        let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + length]).unwrap();
        assert_eq!(header["__metadata__"]["format"], "pt");
        assert_eq!(header["b"]["shape"], serde_json::json!([1, 1]));
        let [start, end] = [0, 1].map(|i| header["b"]["data_offsets"][i].as_u64().unwrap() as usize);
        let data = &bytes[8 + length..];
        assert_eq!(data.len(), 12);
        assert_eq!(f32::from_le_bytes(data[start..end].try_into().unwrap()), -3.5);
    }
}
