//! `facectl eval` and `facectl predict`: use a trained checkpoint.

use clap::Args;
use facetrain_worker::backend::{built_backends, training_device};
use facetrain_worker::checkpoint::read_best_checkpoint;
use facetrain_worker::data::batch::unlabelled_batch;
use facetrain_worker::data::cache::CacheBudget;
use facetrain_worker::data::dataset::{LoadOptions, class_name_mismatches, load_dataset};
use facetrain_worker::data::image::{RgbImage, decode_rgb};
use facetrain_worker::devices::Host;
use facetrain_worker::job::{Backend, JobSpec, OnBadRow};
use facetrain_worker::storage::Location;
use facetrain_worker::train::evaluate::{evaluate, softmax};
use facetrain_worker::train::trainer::Trainer;

use crate::output::{Format, Output, print_json};

#[derive(Args, Debug)]
pub struct EvalArgs {
    /// A checkpoint file (.ftck) or a checkpoint folder: its best checkpoint by validation accuracy
    /// (the newest good one when none was recorded).
    #[arg(long)]
    checkpoint: String,
    #[arg(long)]
    csv: String,
}

impl EvalArgs {
    pub async fn run(self, output: Output) -> anyhow::Result<()> {
        let Self { checkpoint, csv } = self;
        let (checkpoint, csv) = (checkpoint.as_str(), csv.as_str());
        let (trainer, class_names, side, used) = restore(checkpoint).await?;
        let options = LoadOptions {
            side,
            num_classes: Some(trainer.arch.num_classes),
            on_bad_row: OnBadRow::Fail,
            allow_outside_paths: false,
            cache: CacheBudget::unlimited(),
        };
        let mut dataset = load_dataset(csv, &options).await?;
        // Labels are what is scored; names only show whether the CSV is the checkpoint's dataset.
        let mismatches = class_name_mismatches(&dataset.class_names, &class_names);
        if !mismatches.is_empty() {
            let shown: Vec<String> = mismatches
                .iter()
                .take(10)
                .map(|(label, ours, theirs)| {
                    format!("label {label} is `{ours}` in the CSV but `{theirs}` in the checkpoint")
                })
                .collect();
            let more = mismatches.len().saturating_sub(shown.len());
            let more = if more > 0 { format!(" (and {more} more)") } else { String::new() };
            tracing::warn!(
                csv,
                checkpoint,
                "class names differ from the checkpoint's: {}{more}; is this the dataset it was trained on?",
                shown.join("; ")
            );
        }
        dataset.class_names = class_names;
        let evaluation = tokio::task::spawn_blocking(move || evaluate(&trainer, &dataset)).await??;
        match output {
            Output::Json => {
                let mut json = serde_json::to_value(&evaluation)?;
                if let Some(fields) = json.as_object_mut() {
                    fields.insert("checkpoint".into(), used.location.into());
                    fields.insert("step".into(), used.step.into());
                }
                print_json(&json)
            }
            Output::Text => {
                println!("checkpoint {} (step {})", used.location, used.step);
                println!("accuracy {:.4} on {} samples", evaluation.accuracy, evaluation.samples);
                // Zipped, not indexed: a checkpoint naming more classes than its model has must
                // not panic here.
                let rows = evaluation.per_class_accuracy.iter().zip(&evaluation.confusion);
                for (i, (name, (accuracy, predicted))) in evaluation.class_names.iter().zip(rows).enumerate() {
                    let accuracy = accuracy.map_or("-".into(), |a| format!("{a:.3}"));
                    println!("  {i} {name:<24} accuracy {accuracy:<6} predicted as {predicted:?}");
                }
            }
        }
        Ok(())
    }
}

#[derive(Args, Debug)]
pub struct PredictArgs {
    /// A checkpoint file (.ftck) or a checkpoint folder (its best checkpoint).
    #[arg(long)]
    checkpoint: String,
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=1000))]
    top_k: u32,
    /// Images (.jpg, .jpeg, .png), or folders and object-store prefixes (s3://, gs://) whose images
    /// are all predicted, in key order.
    #[arg(required = true)]
    images: Vec<String>,
}

/// Images decoded and ranked this many at a time, so memory does not grow with a folder's size.
const PREDICT_BATCH: usize = 256;

impl PredictArgs {
    pub async fn run(self, format: Format) -> anyhow::Result<()> {
        let Self { checkpoint, top_k, images } = self;
        let top_k = top_k as usize;
        let (trainer, class_names, side, _) = restore(&checkpoint).await?;
        let images = expand_images(&images).await?;
        let trainer = std::sync::Arc::new(trainer);
        let class_names = std::sync::Arc::new(class_names);
        let mut results = Vec::with_capacity(images.len());
        for chunk in images.chunks(PREDICT_BATCH) {
            let mut decoded = Vec::with_capacity(chunk.len());
            for image in chunk {
                let bytes = image.read().await?;
                let (rgb, _) = decode_rgb(&bytes, side).map_err(|e| anyhow::anyhow!("{image}: {e}"))?;
                decoded.push(rgb);
            }
            let (trainer, class_names) = (trainer.clone(), class_names.clone());
            results.extend(tokio::task::spawn_blocking(move || rank(&trainer, decoded, &class_names, top_k)).await?);
        }
        let named: Vec<String> = images.iter().map(ToString::to_string).collect();
        match format {
            Format::Json => print_json(&serde_json::json!(
                named.iter().zip(&results).map(|(image, top)| serde_json::json!({
                    "image": image,
                    "predictions": top.iter().map(|(name, p)| serde_json::json!({"name": name, "probability": p})).collect::<Vec<_>>(),
                })).collect::<Vec<_>>()
            )),
            // `image,rank,name,probability`, one row per image and rank.
            Format::Csv => {
                println!("image,rank,name,probability");
                for (image, top) in named.iter().zip(&results) {
                    for (rank, (name, p)) in top.iter().enumerate() {
                        println!("{},{},{},{p:.6}", csv_field(image), rank + 1, csv_field(name));
                    }
                }
            }
            Format::Text => {
                for (image, top) in named.iter().zip(&results) {
                    let ranked: Vec<String> = top.iter().map(|(name, p)| format!("{name} {p:.3}")).collect();
                    println!("{image}: {}", ranked.join(", "));
                }
            }
        }
        Ok(())
    }
}

/// Whether `name` is an image `predict` reads.
fn is_image(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    [".jpg", ".jpeg", ".png"].iter().any(|ext| lower.ends_with(ext))
}

/// Each argument as itself when it names an image, else every image under it (a folder or an
/// object-store prefix); a folder without images is an error naming it.
async fn expand_images(arguments: &[String]) -> anyhow::Result<Vec<Location>> {
    let mut images = Vec::new();
    for argument in arguments {
        let location = Location::parse(argument)?;
        if is_image(argument) {
            images.push(location);
            continue;
        }
        let found: Vec<Location> = location.list().await?.into_iter().filter(|l| is_image(&l.to_string())).collect();
        if found.is_empty() {
            anyhow::bail!("{argument}: not an image (.jpg, .jpeg, .png) and no images under it");
        }
        images.extend(found);
    }
    Ok(images)
}

/// A CSV field, quoted when it holds a comma, a quote or a line break.
fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) { format!("\"{}\"", text.replace('"', "\"\"")) } else { text.to_string() }
}

/// Which checkpoint a folder resolved to.
pub(crate) struct Used {
    pub location: String,
    pub step: u64,
    /// The name of the job that wrote it.
    pub job: String,
}

/// The checkpoint's model, class names and image side, on a backend this build and host run.
pub(crate) async fn restore(checkpoint: &str) -> anyhow::Result<(Trainer, Vec<String>, usize, Used)> {
    let (location, checkpoint) = read_best_checkpoint(checkpoint).await?;
    let job = JobSpec::parse(&checkpoint.meta.job, &location.to_string())?;
    let used = Used { location: location.to_string(), step: checkpoint.meta.step, job: job.name.clone() };
    let host = Host::detect(&built_backends(), None).map_err(anyhow::Error::msg)?;
    let (backend, device) = inference_device(job.workers.backend, &host);
    let trainer = Trainer::from_checkpoint(&checkpoint, &location.to_string(), training_device(backend, &device)?)?;
    Ok((trainer, checkpoint.meta.class_names, job.model.image_size, used))
}

/// Where to run a checkpoint's model here: on the backend it trained on when this build and host
/// offer it, else flex on the CPU. Checkpoints are the same format on every backend, so a model
/// trained on `cuda` is evaluated, used and exported on a machine without a GPU.
fn inference_device(trained_on: Backend, host: &Host) -> (Backend, String) {
    if host.backends.contains(&trained_on) {
        (trained_on, host.device_for(trained_on))
    } else {
        (Backend::Flex, "cpu".into())
    }
}

/// Each image's `top_k` most probable classes, named (or `class N` where the checkpoint has no name).
fn rank(trainer: &Trainer, images: Vec<RgbImage>, class_names: &[String], top_k: usize) -> Vec<Vec<(String, f32)>> {
    let classes = trainer.arch.num_classes;
    let logits = trainer.predict_logits(&unlabelled_batch(&images));
    logits
        .chunks(classes)
        .map(|row| {
            let mut ranked: Vec<(String, f32)> = softmax(row)
                .into_iter()
                .enumerate()
                .map(|(i, p)| {
                    (class_names.get(i).filter(|n| !n.is_empty()).cloned().unwrap_or_else(|| format!("class {i}")), p)
                })
                .collect();
            ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
            ranked.truncate(top_k.max(1));
            ranked
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_model_runs_where_it_trained_when_it_can_else_on_the_cpu() {
        let cpu_only = Host::from_parts(&[Backend::Flex], None, 0).unwrap();
        assert_eq!(inference_device(Backend::Cuda, &cpu_only), (Backend::Flex, "cpu".to_string()));
        assert_eq!(inference_device(Backend::Tch, &cpu_only), (Backend::Flex, "cpu".to_string()));
        assert_eq!(inference_device(Backend::Flex, &cpu_only), (Backend::Flex, "cpu".to_string()));
        let gpu = Host::from_parts(&[Backend::Flex, Backend::Cuda], None, 1).unwrap();
        assert_eq!(inference_device(Backend::Cuda, &gpu), (Backend::Cuda, "cuda:0".to_string()));
        let no_gpu = Host::from_parts(&[Backend::Flex, Backend::Cuda], None, 0).unwrap();
        assert_eq!(
            inference_device(Backend::Cuda, &no_gpu),
            (Backend::Flex, "cpu".to_string()),
            "a cuda build, no GPU"
        );
    }
}
