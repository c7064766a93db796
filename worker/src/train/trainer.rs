//! One replica of the model with its optimizer, and the training step split in two so that the
//! gradients can leave between backward and the optimizer:
//! `loss.backward() -> GradientsParams -> [exchange] -> optimizer.step`.

use burn::module::Module;
use burn::optim::{AdamConfig, AdamWConfig, GradientsParams, ModuleOptimizer};
use burn::store::ModuleRecord;
use burn::tensor::loss::cross_entropy_with_logits;
use burn::tensor::{Bytes, Device, Tensor, TensorData};

use crate::data::batch::Batch;
use crate::error::{Error, Result};
use crate::init::initialise;
use crate::job::TrainingSpec;
use crate::model::{Architecture, FaceCnn};
use crate::params;
use crate::train::dropout::dropout_mask;
use crate::train::exchange::GradientExchange;
use facetrain_proto::schedule::LearningRate;

/// What one worker's part of a step measured.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StepStats {
    /// Sum of per-sample losses over this worker's samples.
    pub loss_sum: f64,
    pub correct: usize,
    pub count: usize,
}

impl StepStats {
    pub fn merge(self, other: Self) -> Self {
        Self {
            loss_sum: self.loss_sum + other.loss_sum,
            correct: self.correct + other.correct,
            count: self.count + other.count,
        }
    }

    pub fn mean_loss(&self) -> f64 {
        if self.count == 0 { 0.0 } else { self.loss_sum / self.count as f64 }
    }

    pub fn accuracy(&self) -> f64 {
        if self.count == 0 { 0.0 } else { self.correct as f64 / self.count as f64 }
    }
}

/// Where the last [`Trainer::train_step`] spent its time, in seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StepTimings {
    pub compute: f64,
    pub reduce: f64,
    pub apply: f64,
}

pub struct Trainer {
    pub arch: Architecture,
    pub last_timings: StepTimings,
    model: FaceCnn,
    optimizer: ModuleOptimizer,
    device: Device,
    learning_rate: LearningRate,
    /// AdamW's decoupled weight decay; 0: Adam.
    weight_decay: f64,
    seed: u64,
    /// Optimizer steps applied so far.
    pub step: u64,
}

impl Trainer {
    /// A fresh model, initialised from the job seed, on an autodiff `device`.
    pub fn new(arch: Architecture, training: &TrainingSpec, device: Device) -> Self {
        let model = initialise(arch.build(&device), arch.spec.init, training.seed);
        Self {
            optimizer: adam_optimizer(training.weight_decay),
            last_timings: StepTimings::default(),
            arch,
            model,
            device,
            learning_rate: training.learning_rate(),
            weight_decay: training.weight_decay,
            seed: training.seed,
            step: 0,
        }
    }

    pub fn model(&self) -> &FaceCnn {
        &self.model
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Forward and backward on this worker's share of a global batch of `global_batch` samples.
    /// The loss is scaled by `len / global_batch` so that summing the workers' gradients gives the
    /// gradient of the global mean loss.
    pub fn compute_gradients(&self, batch: &Batch, global_batch: usize) -> (GradientsParams, StepStats) {
        let n = batch.len();
        let classes = self.arch.num_classes;
        let images = images_tensor(batch, &self.device);
        let mask = (self.arch.spec.keep_prob < 1.0).then(|| {
            let width = self.arch.dropout_width();
            let values = dropout_mask(&batch.picks, width, self.arch.spec.keep_prob, self.seed);
            Tensor::<2>::from_data(TensorData::new(values, [n, width]), &self.device)
        });
        let logits = self.model.forward(images, mask);
        let targets =
            Tensor::<2>::from_data(TensorData::new(one_hot(&batch.labels, classes), [n, classes]), &self.device);
        let loss = cross_entropy_with_logits(logits.clone(), targets);
        let mean_loss = scalar(&loss);
        let scaled = loss * (n as f64 / global_batch as f64);
        let grads = GradientsParams::from_grads(scaled.backward(), &self.model);
        let predictions = argmax_rows(&logits.into_data(), classes);
        let correct = predictions.iter().zip(&batch.labels).filter(|(p, l)| p == l).count();
        (grads, StepStats { loss_sum: mean_loss as f64 * n as f64, correct, count: n })
    }

    /// Applies one Adam step with `grads`.
    pub fn apply(&mut self, grads: GradientsParams) {
        let model = self.model.clone();
        self.model = self.optimizer.step(self.learning_rate.at(self.step), model, grads);
        self.step += 1;
    }

    /// A whole step. With an `exchange`, gradients go out as flat f32 and come back summed over
    /// all workers before the optimizer step.
    pub fn train_step(
        &mut self,
        batch: &Batch,
        global_batch: usize,
        exchange: Option<&mut dyn GradientExchange>,
    ) -> Result<StepStats> {
        if batch.is_empty() {
            // Only when every sample of this share was a bad image skipped under
            // on_bad_row = "skip": there is nothing to compute a gradient from.
            return Err(Error::Training(format!(
                "step {}: every sample of this worker's share was a bad image and was skipped ({} picks)",
                self.step + 1,
                batch.skipped.len()
            )));
        }
        let started = std::time::Instant::now();
        let (mut grads, stats) = tracing::info_span!("compute", samples = batch.len())
            .in_scope(|| self.compute_gradients(batch, global_batch));
        if !stats.loss_sum.is_finite() {
            return Err(Error::NonFinite(format!(
                "the training loss is {} at step {}: the model diverged (learning rate too high?)",
                stats.mean_loss(),
                self.step + 1
            )));
        }
        let computed = std::time::Instant::now();
        tracing::info_span!("reduce").in_scope(|| self.reduce(exchange, &mut grads))?;
        let reduced = std::time::Instant::now();
        tracing::info_span!("apply").in_scope(|| self.apply(grads));
        self.last_timings = StepTimings {
            compute: computed.duration_since(started).as_secs_f64(),
            reduce: reduced.duration_since(computed).as_secs_f64(),
            apply: reduced.elapsed().as_secs_f64(),
        };
        Ok(stats)
    }

    /// Replaces `grads` by their sum over the job's workers: nothing to do without an exchange,
    /// and nothing to move for a lone member (the exchange still marks the step done).
    fn reduce(&self, exchange: Option<&mut dyn GradientExchange>, grads: &mut GradientsParams) -> Result<()> {
        let Some(exchange) = exchange else { return Ok(()) };
        if !exchange.moves_gradients() {
            return exchange.all_reduce(self.step, &mut []);
        }
        let mut flat = params::flatten_gradients(&self.model, grads);
        exchange.all_reduce(self.step, &mut flat)?;
        if flat.iter().any(|v| !v.is_finite()) {
            return Err(Error::NonFinite(format!(
                "the summed gradient is not finite at step {} (learning rate too high?)",
                self.step + 1
            )));
        }
        params::replace_gradients(&self.model, grads, &flat);
        Ok(())
    }

    /// Logits for a batch without dropout or autodiff.
    pub fn predict_logits(&self, batch: &Batch) -> Vec<f32> {
        let inference = self.model.valid();
        let images = images_tensor(batch, &self.device.clone().inner());
        let logits = inference.forward(images, None).into_data();
        logits.iter::<f32>().collect()
    }

    pub fn parameters(&self) -> Vec<f32> {
        params::flatten_parameters(&self.model)
    }

    /// Model parameters and optimizer state, as bytes for a checkpoint.
    pub fn state_bytes(&self) -> Result<(Vec<u8>, Vec<u8>)> {
        let model = self
            .model
            .clone()
            .into_record()
            .into_bytes()
            .map_err(|e| Error::Training(format!("cannot serialise the model: {e}")))?;
        let optimizer =
            self.optimizer.into_bytes().map_err(|e| Error::Training(format!("cannot serialise the optimizer: {e}")))?;
        Ok((model.to_vec(), optimizer.to_vec()))
    }

    /// Restores parameters and optimizer state written by [`Trainer::state_bytes`].
    pub fn load_state(&mut self, model: &[u8], optimizer: &[u8], step: u64) -> Result<()> {
        let record = ModuleRecord::from_bytes(Bytes::from_bytes_vec(model.to_vec()))
            .map_err(|e| Error::Training(format!("model state unreadable: {e}")))?;
        self.model = self
            .model
            .clone()
            .try_load_record(record)
            .map_err(|e| Error::Training(format!("model state does not fit this architecture: {e}")))?;
        self.optimizer = adam_optimizer(self.weight_decay)
            .from_bytes(Bytes::from_bytes_vec(optimizer.to_vec()))
            .map_err(|e| Error::Training(format!("optimizer state unreadable: {e}")))?;
        self.step = step;
        Ok(())
    }
}

/// Adam's epsilon: the tutorial's `tf.train.AdamOptimizer` default (burn's is 1e-5, Keras's 1e-7).
/// burn adds it to the bias-corrected `sqrt(v)`, TF before the correction, so burn's matches a TF
/// epsilon of `1e-8 * sqrt(1 - beta2^t)`: both far below `sqrt(v)` wherever a gradient flows.
pub const ADAM_EPSILON: f32 = 1e-8;

/// Adam as the tutorial's `tf.train.AdamOptimizer`, or with `weight_decay` > 0 AdamW: the same
/// moments, plus `parameter -= rate x weight_decay x parameter` each step (decoupled from the
/// gradient, as Loshchilov and Hutter's AdamW and PyTorch's `torch.optim.AdamW`).
fn adam_optimizer(weight_decay: f64) -> ModuleOptimizer {
    if weight_decay > 0.0 {
        return AdamWConfig::new().with_epsilon(ADAM_EPSILON).with_weight_decay(weight_decay as f32).init();
    }
    AdamConfig::new().with_epsilon(ADAM_EPSILON).init()
}

fn images_tensor(batch: &Batch, device: &Device) -> Tensor<4> {
    let shape = [batch.len(), 3, batch.side, batch.side];
    Tensor::<4>::from_data(TensorData::new(batch.images.clone(), shape), device)
}

fn one_hot(labels: &[usize], classes: usize) -> Vec<f32> {
    let mut values = vec![0.0; labels.len() * classes];
    labels.iter().enumerate().for_each(|(i, &label)| values[i * classes + label] = 1.0);
    values
}

fn scalar(tensor: &Tensor<1>) -> f32 {
    tensor.to_data().iter::<f32>().next().unwrap_or(f32::NAN)
}

/// Index of the largest value in each row of a `[rows, classes]` f32 tensor.
pub fn argmax_rows(data: &TensorData, classes: usize) -> Vec<usize> {
    let values: Vec<f32> = data.iter::<f32>().collect();
    values.chunks(classes.max(1)).map(argmax).collect()
}

pub fn argmax(row: &[f32]) -> usize {
    row.iter().enumerate().fold(0, |best, (i, &v)| if v > row[best] { i } else { best })
}

impl Trainer {
    /// A trainer holding a checkpoint's model and optimizer state, for evaluation, prediction or
    /// resuming.
    pub fn from_checkpoint(checkpoint: &crate::checkpoint::Checkpoint, origin: &str, device: Device) -> Result<Self> {
        let job = crate::job::JobSpec::parse(&checkpoint.meta.job, origin)?;
        // The sizes come from a file: refuse what this machine cannot hold before allocating it.
        let batch = job.training.batch_size.max(crate::train::evaluate::EVAL_BATCH);
        crate::memory::check_fits(&job, checkpoint.meta.num_classes, batch, crate::memory::default_job_limit())
            .map_err(|e| Error::checkpoint(origin, e))?;
        let arch = Architecture::new(job.model, checkpoint.meta.num_classes);
        let mut trainer = Self::new(arch, &job.training, device);
        trainer.load_state(&checkpoint.model, &checkpoint.optimizer, checkpoint.meta.step)?;
        Ok(trainer)
    }
}
