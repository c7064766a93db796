//! The training step's contracts: gradients survive the flat-f32 round trip bit for bit, split
//! batches average to the whole batch, and a resumed job continues exactly.
// Test helpers: an unmet expectation is a failed test, which is what unwrap/expect say.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use facetrain_worker::backend::training_device;
use facetrain_worker::checkpoint::read_checkpoint;
use facetrain_worker::data::batch::build_batch;
use facetrain_worker::data::shard::{ShardPlan, share};
use facetrain_worker::job::{Backend, WeightInit};
use facetrain_worker::model::Architecture;
use facetrain_worker::params;
use facetrain_worker::train::run::{Silent, load_job_datasets, run_local};
use facetrain_worker::train::trainer::Trainer;

fn device() -> burn::tensor::Device {
    training_device(Backend::Flex, "cpu").unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gradients_round_trip_through_flat_f32_bit_identically() {
    let dir = tempfile::tempdir().unwrap();
    let data = common::synth_dataset(dir.path(), common::SMALL_SIDE, 6);
    let job = common::small_job(&data, None);
    let (train, _) = load_job_datasets(&job).await.unwrap();
    let arch = Architecture::new(job.model.clone(), train.num_classes);
    let picks = ShardPlan::new(train.len(), 1).picks(0, 20);
    let batch = build_batch(&train, picks, Some((&job.augment, 1))).unwrap();

    let mut direct = Trainer::new(arch.clone(), &job.training, device());
    let mut round_trip = Trainer::new(arch, &job.training, device());
    assert_eq!(direct.parameters(), round_trip.parameters(), "same seed, same initial parameters");
    for _ in 0..3 {
        let (grads, _) = direct.compute_gradients(&batch, 20);
        direct.apply(grads);
        let (mut grads, _) = round_trip.compute_gradients(&batch, 20);
        let flat = params::flatten_gradients(round_trip.model(), &grads);
        assert_eq!(flat.len(), params::parameter_count(round_trip.model()));
        params::replace_gradients(round_trip.model(), &mut grads, &flat);
        round_trip.apply(grads);
    }
    let (a, b) = (direct.parameters(), round_trip.parameters());
    assert!(a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()), "parameters differ after the round trip");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_halves_summed_match_the_whole_batch() {
    let dir = tempfile::tempdir().unwrap();
    let data = common::synth_dataset(dir.path(), common::SMALL_SIDE, 6);
    let mut job = common::no_augment(common::small_job(&data, None));
    job.model.keep_prob = 1.0;
    let (train, _) = load_job_datasets(&job).await.unwrap();
    let arch = Architecture::new(job.model.clone(), train.num_classes);
    let mut plan = ShardPlan::new(train.len(), 1);

    let mut whole = Trainer::new(arch.clone(), &job.training, device());
    let mut halves = [Trainer::new(arch.clone(), &job.training, device()), Trainer::new(arch, &job.training, device())];
    for step in 0..3u64 {
        let picks = plan.picks(step * 20, 20);
        let (grads, _) = whole.compute_gradients(&build_batch(&train, picks.clone(), None).unwrap(), 20);
        whole.apply(grads);
        let parts: Vec<_> = (0..2)
            .map(|rank| {
                let mine = picks[share(20, rank, 2)].to_vec();
                halves[rank].compute_gradients(&build_batch(&train, mine, None).unwrap(), 20)
            })
            .collect();
        let flats: Vec<Vec<f32>> =
            parts.iter().zip(&halves).map(|((g, _), t)| params::flatten_gradients(t.model(), g)).collect();
        let summed: Vec<f32> = flats[0].iter().zip(&flats[1]).map(|(a, b)| a + b).collect();
        for ((mut grads, _), trainer) in parts.into_iter().zip(halves.iter_mut()) {
            params::replace_gradients(trainer.model(), &mut grads, &summed);
            trainer.apply(grads);
        }
        assert_eq!(halves[0].parameters(), halves[1].parameters(), "replicas diverged at step {step}");
    }
    let (a, b) = (whole.parameters(), halves[0].parameters());
    let max_error = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
    assert!(max_error < 1e-4, "2 x 10 differs from 1 x 20 by {max_error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resuming_from_a_checkpoint_continues_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let data = common::synth_dataset(&dir.path().join("data"), common::SMALL_SIDE, 6);
    let straight = dir.path().join("straight");
    let resumed = dir.path().join("resumed");
    let interrupt = || Arc::new(AtomicBool::new(false));

    run_local(common::small_job(&data, Some(&straight)), Arc::new(Silent), interrupt()).await.unwrap();
    let mut first_half = common::small_job(&data, Some(&resumed));
    first_half.training.max_steps = 10;
    let summary = run_local(first_half, Arc::new(Silent), interrupt()).await.unwrap();
    assert_eq!((summary.steps, summary.resumed_from_step), (10, None));
    let summary = run_local(common::small_job(&data, Some(&resumed)), Arc::new(Silent), interrupt()).await.unwrap();
    assert_eq!((summary.steps, summary.resumed_from_step), (20, Some(10)));

    let parameters = |checkpoint: std::path::PathBuf| async move {
        let (location, checkpoint) = read_checkpoint(checkpoint.to_str().unwrap()).await.unwrap();
        assert_eq!(checkpoint.meta.step, 20);
        assert_eq!(checkpoint.meta.cursor, 20 * 20);
        Trainer::from_checkpoint(&checkpoint, &location.to_string(), device()).unwrap().parameters()
    };
    let (a, b) = (parameters(straight).await, parameters(resumed).await);
    assert!(a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()), "resumed run differs from the straight run");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_small_model_learns_the_synthetic_faces() {
    let dir = tempfile::tempdir().unwrap();
    let data = common::synth_dataset(dir.path(), common::SMALL_SIDE, 20);
    let mut job = common::small_job(&data, None);
    job.training.max_steps = 400;
    job.training.learning_rate = 1e-3;
    job.training.eval_every = 25;
    job.training.target_accuracy = 0.9;
    job.model.init = WeightInit::HeNormal;
    let summary = run_local(job, Arc::new(Silent), Arc::new(AtomicBool::new(false))).await.unwrap();
    assert!(summary.val_accuracy >= 0.9, "validation accuracy {} after {} steps", summary.val_accuracy, summary.steps);
    assert!(summary.train_loss.is_finite());
}

/// The size estimate that refuses absurd jobs counts the parameters burn builds, for the
/// tutorial's model and for odd shapes.
#[test]
fn the_size_estimate_counts_the_parameters_burn_builds() {
    let shapes = [
        (96, vec![16, 32, 64, 128], 3, vec![512, 1024], 5),
        (33, vec![7, 9, 5], 5, vec![], 11),
        (8, vec![4], 1, vec![3, 2], 2),
    ];
    for (image_size, conv_channels, kernel_size, fc_units, classes) in shapes {
        let spec =
            facetrain_worker::job::ModelSpec { image_size, conv_channels, kernel_size, fc_units, ..Default::default() };
        let model = Architecture::new(spec.clone(), classes).build(&burn::tensor::Device::flex());
        assert_eq!(spec.size(classes, 1).parameters, params::parameter_count(&model) as u64, "{spec:?}");
    }
}

/// The small model without augmentation or dropout at a rate of 1e-3, and one fixed batch of 20:
/// a step's parameter move then depends only on the optimizer.
async fn optimizer_test_setup(
    dir: &std::path::Path,
) -> (facetrain_worker::job::JobSpec, Architecture, facetrain_worker::data::batch::Batch) {
    let data = common::synth_dataset(dir, common::SMALL_SIDE, 6);
    let mut job = common::no_augment(common::small_job(&data, None));
    job.model.keep_prob = 1.0;
    job.training.learning_rate = 1e-3;
    let (train, _) = load_job_datasets(&job).await.unwrap();
    let arch = Architecture::new(job.model.clone(), train.num_classes);
    let batch = build_batch(&train, ShardPlan::new(train.len(), 1).picks(0, 20), None).unwrap();
    (job, arch, batch)
}

/// The schedule is what the optimizer uses: Adam's first update moves each parameter by about the
/// learning rate, so a 10-step warm-up (first rate base / 10) moves them about a tenth as far as a
/// constant rate does, and step decay halves the move at the decay step.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_optimizer_steps_at_the_scheduled_learning_rate() {
    use facetrain_proto::schedule::Schedule;

    let dir = tempfile::tempdir().unwrap();
    let (job, arch, batch) = optimizer_test_setup(dir.path()).await;
    // The largest parameter move of each of `steps` steps.
    let moves = |training: &facetrain_worker::job::TrainingSpec, steps: usize| {
        let mut trainer = Trainer::new(arch.clone(), training, device());
        (0..steps)
            .map(|_| {
                let before = trainer.parameters();
                let (grads, _) = trainer.compute_gradients(&batch, 20);
                trainer.apply(grads);
                before.iter().zip(trainer.parameters()).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max)
            })
            .collect::<Vec<f32>>()
    };
    let constant = moves(&job.training, 1)[0];
    assert!((0.9e-3..1.1e-3).contains(&constant), "Adam's first move is about the rate: {constant}");
    let warm = moves(&facetrain_worker::job::TrainingSpec { warmup_steps: 10, ..job.training.clone() }, 1)[0];
    assert!((0.09e-3..0.11e-3).contains(&warm), "the first warm-up step is at a tenth of the rate: {warm}");
    let decay = facetrain_worker::job::TrainingSpec {
        schedule: Schedule::Step,
        decay_every: 1,
        decay_factor: 0.5,
        ..job.training.clone()
    };
    let steps = moves(&decay, 3);
    assert!((0.9e-3..1.1e-3).contains(&steps[0]), "{steps:?}");
    assert!(steps[2] < 0.4e-3, "after two decays the rate is a quarter: {steps:?}");
}

/// A local job with `patience` stops once validation accuracy stops improving: with `min_delta`
/// 0.99 no later evaluation can count as an improvement, so the second evaluation ends the job.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_job_stops_early_when_validation_accuracy_stops_improving() {
    use facetrain_worker::train::run::StopReason;

    let dir = tempfile::tempdir().unwrap();
    let data = common::synth_dataset(dir.path(), common::SMALL_SIDE, 6);
    let mut job = common::small_job(&data, None);
    job.training.max_steps = 100;
    job.training.eval_every = 3;
    job.training.patience = 1;
    job.training.min_delta = 0.99;
    let summary = run_local(job, Arc::new(Silent), Arc::new(AtomicBool::new(false))).await.unwrap();
    assert_eq!((summary.stopped, summary.steps), (StopReason::EarlyStopped, 6), "{:?}", summary.stopped);
}

/// `weight_decay` shrinks every parameter by `rate x weight_decay` of itself per step on top of
/// Adam's move (AdamW), and survives a checkpoint: a resumed AdamW job continues exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weight_decay_is_adamw_and_its_state_survives_a_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let (job, arch, batch) = optimizer_test_setup(dir.path()).await;
    let one_step = |training: &facetrain_worker::job::TrainingSpec| {
        let mut trainer = Trainer::new(arch.clone(), training, device());
        let (grads, _) = trainer.compute_gradients(&batch, 20);
        trainer.apply(grads);
        trainer
    };
    let adam = one_step(&job.training).parameters();
    let decayed = facetrain_worker::job::TrainingSpec { weight_decay: 0.5, ..job.training.clone() };
    let adamw = one_step(&decayed);
    let initial = Trainer::new(arch.clone(), &job.training, device()).parameters();
    // AdamW = Adam's step minus rate x decay x the initial value, element by element.
    let worst = initial
        .iter()
        .zip(&adam)
        .zip(adamw.parameters())
        .map(|((p0, a), w)| (w - (a - 1e-3 * 0.5 * p0)).abs())
        .fold(0.0f32, f32::max);
    assert!(worst < 1e-6, "AdamW differs from Adam minus the decoupled decay by {worst}");
    assert!(adam.iter().zip(adamw.parameters()).any(|(a, w)| a != &w), "the decay changed nothing");

    // A second step from a reloaded state matches a second step straight on.
    let (model, optimizer) = adamw.state_bytes().unwrap();
    let mut straight = one_step(&decayed);
    let mut resumed = Trainer::new(arch.clone(), &decayed, device());
    resumed.load_state(&model, &optimizer, 1).unwrap();
    for trainer in [&mut straight, &mut resumed] {
        let (grads, _) = trainer.compute_gradients(&batch, 20);
        trainer.apply(grads);
    }
    assert_eq!(straight.parameters(), resumed.parameters());
}
