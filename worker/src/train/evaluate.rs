//! Accuracy of a model on a whole dataset: overall, per class, and the confusion matrix.

use std::ops::Range;

use serde::Serialize;

use crate::data::batch::sequential_batches;
use crate::data::dataset::Dataset;
use crate::data::shard::share;
use crate::error::Result;
use crate::train::trainer::{Trainer, argmax};

/// Evaluation batches are this large whatever the training batch (memory stays bounded).
pub const EVAL_BATCH: usize = 100;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evaluation {
    pub accuracy: f64,
    pub samples: usize,
    pub class_names: Vec<String>,
    /// Accuracy per true class (`null` in JSON for a class with no samples).
    pub per_class_accuracy: Vec<Option<f64>>,
    /// `confusion[true][predicted]`.
    pub confusion: Vec<Vec<usize>>,
}

/// The model on the whole dataset (bad images skipped under `on_bad_row = "skip"`).
pub fn evaluate(trainer: &Trainer, dataset: &Dataset) -> Result<Evaluation> {
    evaluate_rows(trainer, dataset, 0..dataset.len())
}

/// Worker `rank`'s share of an evaluation split over `world` workers: the sums of the shares'
/// confusion matrices are the whole set's, so each worker reads and scores only its slice.
pub fn evaluate_share(trainer: &Trainer, dataset: &Dataset, rank: usize, world: usize) -> Result<Evaluation> {
    evaluate_rows(trainer, dataset, share(dataset.len(), rank, world))
}

fn evaluate_rows(trainer: &Trainer, dataset: &Dataset, rows: Range<usize>) -> Result<Evaluation> {
    let classes = trainer.arch.num_classes;
    let mut confusion = vec![vec![0usize; classes]; classes];
    for batch in sequential_batches(dataset, rows, EVAL_BATCH) {
        let batch = batch?;
        if batch.is_empty() {
            continue;
        }
        let logits = trainer.predict_logits(&batch);
        for (row, &label) in logits.chunks(classes).zip(&batch.labels) {
            confusion[label][argmax(row)] += 1;
        }
    }
    Ok(summarise(confusion, dataset.class_names.clone()))
}

impl Evaluation {
    /// Correctly predicted samples.
    pub fn correct(&self) -> usize {
        (0..self.confusion.len()).map(|i| self.confusion[i][i]).sum()
    }
}

pub fn summarise(confusion: Vec<Vec<usize>>, class_names: Vec<String>) -> Evaluation {
    let samples: usize = confusion.iter().flatten().sum();
    let correct: usize = (0..confusion.len()).map(|i| confusion[i][i]).sum();
    let per_class_accuracy = confusion
        .iter()
        .enumerate()
        .map(|(i, row)| {
            let total: usize = row.iter().sum();
            (total > 0).then(|| row[i] as f64 / total as f64)
        })
        .collect();
    Evaluation {
        accuracy: if samples == 0 { 0.0 } else { correct as f64 / samples as f64 },
        samples,
        class_names,
        per_class_accuracy,
        confusion,
    }
}

/// Softmax of one row of logits.
pub fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f32> = logits.iter().map(|v| (v - max).exp()).collect();
    let sum: f32 = exps.iter().sum();
    exps.into_iter().map(|v| v / sum).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_counts_overall_and_per_class() {
        let e = summarise(vec![vec![3, 1], vec![0, 0]], vec!["a".into(), "b".into()]);
        assert_eq!(e.samples, 4);
        assert_eq!(e.accuracy, 0.75);
        assert_eq!(e.per_class_accuracy, vec![Some(0.75), None]);
    }

    #[test]
    fn softmax_sums_to_one_and_keeps_order() {
        let p = softmax(&[1.0, 3.0, 2.0]);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(p[1] > p[2] && p[2] > p[0]);
    }
}
