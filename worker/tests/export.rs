//! The export's names and layouts are PyTorch's: a forward pass written from PyTorch's
//! definitions (Conv2d as cross-correlation over `[out, in, k, k]`, `Linear` as `x W^T + b`,
//! max-pool 2x2, flatten `C, H, W`), run on the exported tensors alone, gives the logits burn
//! gives on the same images. (`make export-check` does the same with PyTorch itself.)
// Test helpers: an unmet expectation is a failed test, which is what unwrap/expect say.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use burn::tensor::{Device, Tensor, TensorData};
use facetrain_worker::export::{NamedTensor, safetensors, torch_state_dict};
use facetrain_worker::job::ModelSpec;
use facetrain_worker::model::Architecture;

/// Reads a safetensors file back: name -> (shape, values).
fn read(bytes: &[u8]) -> std::collections::HashMap<String, (Vec<usize>, Vec<f32>)> {
    let length = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + length]).unwrap();
    let data = &bytes[8 + length..];
    header
        .as_object()
        .unwrap()
        .iter()
        .filter(|(name, _)| *name != "__metadata__")
        .map(|(name, entry)| {
            assert_eq!(entry["dtype"], "F32");
            let shape: Vec<usize> =
                entry["shape"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize).collect();
            let [start, end] = [0, 1].map(|i| entry["data_offsets"][i].as_u64().unwrap() as usize);
            let values = data[start..end].chunks(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect();
            (name.clone(), (shape, values))
        })
        .collect()
}

/// PyTorch's `Conv2d(padding=k/2)` + ReLU + `MaxPool2d(2)` on one CHW image.
fn conv_relu_pool(x: &[f32], side: usize, weight: &(Vec<usize>, Vec<f32>), bias: &[f32]) -> Vec<f32> {
    let (out_c, in_c, k) = (weight.0[0], weight.0[1], weight.0[2]);
    let pad = k / 2;
    let mut conv = vec![0.0f32; out_c * side * side];
    for o in 0..out_c {
        for y in 0..side {
            for x0 in 0..side {
                let mut sum = bias[o];
                for i in 0..in_c {
                    for ky in 0..k {
                        for kx in 0..k {
                            let (yy, xx) = (y + ky, x0 + kx);
                            if yy < pad || xx < pad || yy - pad >= side || xx - pad >= side {
                                continue;
                            }
                            let w = weight.1[((o * in_c + i) * k + ky) * k + kx];
                            sum += w * x[(i * side + yy - pad) * side + xx - pad];
                        }
                    }
                }
                conv[(o * side + y) * side + x0] = sum.max(0.0);
            }
        }
    }
    let half = side / 2;
    let mut pooled = vec![0.0f32; out_c * half * half];
    for o in 0..out_c {
        for y in 0..half {
            for x0 in 0..half {
                let at = |dy: usize, dx: usize| conv[(o * side + 2 * y + dy) * side + 2 * x0 + dx];
                pooled[(o * half + y) * half + x0] = at(0, 0).max(at(0, 1)).max(at(1, 0)).max(at(1, 1));
            }
        }
    }
    pooled
}

/// PyTorch's `Linear`: `weight` is `[out, in]`.
fn linear(x: &[f32], weight: &(Vec<usize>, Vec<f32>), bias: &[f32]) -> Vec<f32> {
    let (out, inputs) = (weight.0[0], weight.0[1]);
    assert_eq!(x.len(), inputs, "the flattened features must match the Linear's input width");
    (0..out).map(|o| bias[o] + (0..inputs).map(|i| weight.1[o * inputs + i] * x[i]).sum::<f32>()).collect()
}

#[test]
fn pytorchs_forward_on_the_exported_tensors_gives_burns_logits() {
    let spec = ModelSpec { image_size: 16, conv_channels: vec![4, 6], fc_units: vec![12, 10], ..ModelSpec::default() };
    let arch = Architecture::new(spec, 3);
    let device = Device::flex();
    let model = arch.build(&device);
    let side = 16;
    let images: Vec<f32> = (0..2 * 3 * side * side).map(|i| ((i * 37 % 101) as f32) / 100.0).collect();
    let input = Tensor::<4>::from_data(TensorData::new(images.clone(), [2, 3, side, side]), &device);
    let burn: Vec<f32> = model.forward(input, None).into_data().iter::<f32>().collect();

    let exported: Vec<NamedTensor> = torch_state_dict(&arch, &model);
    let tensors = read(&safetensors(&exported, &[("format", "pt".into())]));
    assert_eq!(tensors["classifier.1.weight"].0, [12, 6 * 4 * 4], "Linear weights are [out, in]");
    assert_eq!(tensors["features.3.weight"].0, [6, 4, 3, 3]);
    let mut torch = Vec::new();
    for image in images.chunks(3 * side * side) {
        let mut x = image.to_vec();
        let mut s = side;
        for (i, _) in [4, 6].iter().enumerate() {
            let name = format!("features.{}", 3 * i);
            x = conv_relu_pool(&x, s, &tensors[&format!("{name}.weight")], &tensors[&format!("{name}.bias")].1);
            s /= 2;
        }
        for j in 0..2 {
            let name = format!("classifier.{}", 1 + 2 * j);
            x = linear(&x, &tensors[&format!("{name}.weight")], &tensors[&format!("{name}.bias")].1);
            x.iter_mut().for_each(|v| *v = v.max(0.0));
        }
        torch.extend(linear(&x, &tensors["classifier.6.weight"], &tensors["classifier.6.bias"].1));
    }
    assert_eq!(torch.len(), burn.len());
    let worst = torch.iter().zip(&burn).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    assert!(worst < 1e-4, "PyTorch's forward on the export differs from burn's by {worst}: {torch:?} vs {burn:?}");
}
