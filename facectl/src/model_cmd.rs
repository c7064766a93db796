//! `facectl eval` and `facectl predict`: use a trained checkpoint.

use facetrain_worker::backend::training_device;
use facetrain_worker::checkpoint::read_checkpoint;
use facetrain_worker::data::batch::unlabelled_batch;
use facetrain_worker::data::dataset::{LoadOptions, class_name_mismatches, load_dataset};
use facetrain_worker::data::image::{RgbImage, decode_rgb};
use facetrain_worker::job::{JobSpec, OnBadRow};
use facetrain_worker::storage::Location;
use facetrain_worker::train::evaluate::{evaluate, softmax};
use facetrain_worker::train::trainer::Trainer;

use crate::output::{Output, print_json};

async fn restore(checkpoint: &str) -> anyhow::Result<(Trainer, Vec<String>, usize)> {
    let (location, checkpoint) = read_checkpoint(checkpoint).await?;
    let job = JobSpec::parse(&checkpoint.meta.job, &location.to_string())?;
    let device = training_device(job.workers.backend, &job.workers.device)?;
    let trainer = Trainer::from_checkpoint(&checkpoint, &location.to_string(), device)?;
    Ok((trainer, checkpoint.meta.class_names, job.model.image_size))
}

pub async fn eval(checkpoint: &str, csv: &str, output: Output) -> anyhow::Result<()> {
    let (trainer, class_names, side) = restore(checkpoint).await?;
    let options = LoadOptions {
        side,
        num_classes: Some(trainer.arch.num_classes),
        on_bad_row: OnBadRow::Fail,
        allow_outside_paths: false,
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
    let evaluation = tokio::task::spawn_blocking(move || evaluate(&trainer, &dataset)).await?;
    match output {
        Output::Json => print_json(&serde_json::to_value(&evaluation)?),
        Output::Text => {
            println!("accuracy {:.4} on {} samples", evaluation.accuracy, evaluation.samples);
            for (i, name) in evaluation.class_names.iter().enumerate() {
                let accuracy = evaluation.per_class_accuracy[i].map_or("-".into(), |a| format!("{a:.3}"));
                println!("  {i} {name:<24} accuracy {accuracy:<6} predicted as {:?}", evaluation.confusion[i]);
            }
        }
    }
    Ok(())
}

pub async fn predict(checkpoint: &str, top_k: usize, images: &[String], output: Output) -> anyhow::Result<()> {
    let (trainer, class_names, side) = restore(checkpoint).await?;
    let mut decoded = Vec::with_capacity(images.len());
    for image in images {
        let bytes = Location::parse(image)?.read().await?;
        let (rgb, _) = decode_rgb(&bytes, side).map_err(|e| anyhow::anyhow!("{image}: {e}"))?;
        decoded.push(rgb);
    }
    let results = tokio::task::spawn_blocking(move || rank(&trainer, decoded, &class_names, top_k)).await?;
    match output {
        Output::Json => print_json(&serde_json::json!(
            images.iter().zip(&results).map(|(image, top)| serde_json::json!({
                "image": image,
                "predictions": top.iter().map(|(name, p)| serde_json::json!({"name": name, "probability": p})).collect::<Vec<_>>(),
            })).collect::<Vec<_>>()
        )),
        Output::Text => {
            for (image, top) in images.iter().zip(&results) {
                let ranked: Vec<String> = top.iter().map(|(name, p)| format!("{name} {p:.3}")).collect();
                println!("{image}: {}", ranked.join(", "));
            }
        }
    }
    Ok(())
}

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
