//! `facectl export --checkpoint DIR --format safetensors OUT`: a trained model for other tools.
//! The weights carry PyTorch's names and layouts (worker/src/export.rs), and the file's
//! metadata says what the model expects: the class names in label order, the input side, the
//! architecture and where the weights came from.

use bytes::Bytes;
use clap::Args;
use facetrain_worker::export::{safetensors, torch_state_dict};
use facetrain_worker::storage::Location;

use crate::model::restore;
use crate::output::{Output, print_json};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// safetensors, PyTorch names (`features.0.weight`, ...); loads into torch_cnn.py's model.
    Safetensors,
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// A checkpoint file (.ftck) or a checkpoint folder (its best checkpoint).
    #[arg(long)]
    checkpoint: String,
    #[arg(long, value_enum, default_value_t = Format::Safetensors)]
    format: Format,
    /// The file to write (a path, s3:// or gs://).
    out: String,
}

impl ExportArgs {
    pub async fn run(self, output: Output) -> anyhow::Result<()> {
        let (trainer, class_names, _, used) = restore(&self.checkpoint).await?;
        let tensors = torch_state_dict(&trainer.arch, trainer.model());
        let spec = &trainer.arch.spec;
        let metadata = [
            ("format", "pt".to_string()),
            ("model", "facetrain FaceCnn: features (Conv2d SAME, ReLU, MaxPool2d 2) x N, classifier (Flatten, (Linear, ReLU) x M, Dropout, Linear)".to_string()),
            ("input", format!("RGB float in [0, 1], NCHW, {0}x{0}", spec.image_size)),
            ("image_size", spec.image_size.to_string()),
            ("conv_channels", serde_json::to_string(&spec.conv_channels)?),
            ("kernel_size", spec.kernel_size.to_string()),
            ("fc_units", serde_json::to_string(&spec.fc_units)?),
            ("keep_prob", spec.keep_prob.to_string()),
            ("class_names", serde_json::to_string(&class_names)?),
            ("checkpoint", used.location.clone()),
            ("step", used.step.to_string()),
            ("job", used.job.clone()),
        ];
        let bytes = match self.format {
            Format::Safetensors => safetensors(&tensors, &metadata),
        };
        let size = bytes.len();
        Location::parse(&self.out)?.write(Bytes::from(bytes)).await?;
        let parameters: usize = tensors.iter().map(|t| t.values.len()).sum();
        match output {
            Output::Json => print_json(&serde_json::json!({
                "out": self.out, "tensors": tensors.len(), "parameters": parameters, "bytes": size,
                "checkpoint": used.location, "step": used.step,
            })),
            Output::Text => println!(
                "{}: {} tensors, {parameters} parameters, {size} bytes, from {} (step {})",
                self.out,
                tensors.len(),
                used.location,
                used.step
            ),
        }
        Ok(())
    }
}
