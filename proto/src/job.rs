//! `job.toml`: the description of one training job, parsed strictly.
//!
//! Unknown keys and wrong types are errors that name the key (serde + toml give line and column);
//! values that parse but make no sense (a zero batch, a learning rate of -1) are caught by
//! [`JobSpec::validate`] with the dotted key and the expected form.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::schedule::{LearningRate, Schedule};

/// A job file that cannot be used; the message names the file, the key and the expected form.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("invalid job: {0}")]
    Invalid(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

type Result<T> = std::result::Result<T, JobError>;

/// Priorities run from -MAX_PRIORITY to MAX_PRIORITY (0 by default).
pub const MAX_PRIORITY: i32 = 1000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobSpec {
    pub name: String,
    /// Scheduling order on a shared pool: higher first, FIFO within a priority.
    #[serde(default)]
    pub priority: i32,
    pub dataset: DatasetSpec,
    #[serde(default)]
    pub model: ModelSpec,
    #[serde(default)]
    pub training: TrainingSpec,
    #[serde(default)]
    pub augment: AugmentSpec,
    #[serde(default)]
    pub workers: WorkersSpec,
    #[serde(default)]
    pub checkpoint: CheckpointSpec,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetSpec {
    /// CSV of `path,name,label` rows: a local path, `file://`, `s3://` or `gs://` URL.
    pub train: String,
    pub validate: String,
    /// Inferred from the labels when absent.
    #[serde(default)]
    pub num_classes: Option<usize>,
    #[serde(default)]
    pub on_bad_row: OnBadRow,
    /// Allow image paths that escape the CSV's folder (`../x.jpg`, absolute paths).
    #[serde(default)]
    pub allow_outside_paths: bool,
    /// Decoded images a worker keeps in memory for this job, in MiB (training and validation
    /// sets together). Datasets that fit are read whole before training starts; larger ones
    /// stream, each worker reading the samples it trains. 0: keep nothing.
    #[serde(default = "default_cache_mb")]
    pub cache_mb: u64,
}

/// 4 GiB holds ~150,000 decoded 96x96 images.
pub const DEFAULT_CACHE_MB: u64 = 4096;

fn default_cache_mb() -> u64 {
    DEFAULT_CACHE_MB
}

impl DatasetSpec {
    /// The cache budget in bytes.
    pub fn cache_bytes(&self) -> u64 {
        self.cache_mb.saturating_mul(1 << 20)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnBadRow {
    /// Stop at the first bad row (the default: nothing is trained on a dataset that is not what
    /// the user thinks it is). A dataset that fits the cache is checked whole before training;
    /// a streamed one when each image is read.
    #[default]
    Fail,
    /// Drop bad rows, count them and report the count.
    Skip,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelSpec {
    pub image_size: usize,
    pub conv_channels: Vec<usize>,
    pub kernel_size: usize,
    pub fc_units: Vec<usize>,
    /// Probability of keeping an activation in the dropout after the last hidden layer (tutorial: 0.7).
    pub keep_prob: f64,
    pub init: WeightInit,
}

impl Default for ModelSpec {
    fn default() -> Self {
        Self {
            image_size: 96,
            conv_channels: vec![16, 32, 64, 128],
            kernel_size: 3,
            fc_units: vec![512, 1024],
            keep_prob: 0.7,
            init: WeightInit::default(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WeightInit {
    /// He (Kaiming) normal weights, zero biases: converges faster than the tutorial's init
    /// (numbers in the README).
    #[default]
    HeNormal,
    /// The tutorial's `tf.truncated_normal(stddev=0.1)` for weights and biases.
    TruncatedNormal,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainingSpec {
    /// Global batch, split across workers.
    pub batch_size: usize,
    pub learning_rate: f64,
    pub max_steps: u64,
    /// Stop once validation accuracy reaches this (0 disables).
    pub target_accuracy: f64,
    /// Validate on the whole validation set every N steps (0 disables).
    pub eval_every: u64,
    pub seed: u64,
    /// How the learning rate changes over the job (`constant`, the tutorial's; `step`; `cosine`).
    pub schedule: Schedule,
    /// Linear warm-up to `learning_rate` over this many steps, for any schedule (0: none).
    pub warmup_steps: u64,
    /// `step`: multiply the rate by `decay_factor` every `decay_every` steps.
    pub decay_every: u64,
    pub decay_factor: f64,
    /// `cosine`: the rate at `max_steps`.
    pub min_learning_rate: f64,
    /// Early stopping: end the job (succeeded, `early stopped`) after this many evaluations in a
    /// row without an improvement of validation accuracy (0: never).
    pub patience: u32,
    /// What counts as an improvement: more than this above the best accuracy so far.
    pub min_delta: f64,
    /// Decoupled weight decay (AdamW); 0, the default, is the tutorial's Adam.
    pub weight_decay: f64,
}

impl Default for TrainingSpec {
    fn default() -> Self {
        Self {
            batch_size: 100,
            learning_rate: 1e-4,
            max_steps: 7000,
            target_accuracy: 0.0,
            eval_every: 50,
            seed: 42,
            schedule: Schedule::Constant,
            warmup_steps: 0,
            decay_every: 1000,
            decay_factor: 0.1,
            min_learning_rate: 0.0,
            patience: 0,
            min_delta: 0.0,
            weight_decay: 0.0,
        }
    }
}

impl TrainingSpec {
    /// The learning rate of each step.
    pub fn learning_rate(&self) -> LearningRate {
        LearningRate {
            base: self.learning_rate,
            schedule: self.schedule,
            warmup_steps: self.warmup_steps,
            decay_every: self.decay_every,
            decay_factor: self.decay_factor,
            min: self.min_learning_rate,
            max_steps: self.max_steps,
        }
    }
}

/// The tutorial's augmentations; each toggle keeps the tutorial's range.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AugmentSpec {
    pub flip: bool,
    pub brightness: bool,
    pub contrast: bool,
    pub hue: bool,
    pub saturation: bool,
}

impl Default for AugmentSpec {
    fn default() -> Self {
        Self { flip: true, brightness: true, contrast: true, hue: true, saturation: true }
    }
}

impl AugmentSpec {
    pub fn none() -> Self {
        Self { flip: false, brightness: false, contrast: false, hue: false, saturation: false }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkersSpec {
    pub count: usize,
    /// Start with this many once they are free and the rest do not come within the start grace;
    /// the job grows to `count` at step boundaries. Absent: `count` (all at once).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_count: Option<usize>,
    pub backend: Backend,
    /// `cpu`, or `cuda:N` with the `tch` and `cuda` backends. A worker started with its own
    /// `--device cuda:M` trains on that GPU instead (one worker per GPU on a host).
    pub device: String,
    pub reduction: Reduction,
    pub gradient_dtype: GradientDtype,
}

impl WorkersSpec {
    /// The fewest workers a job starts with.
    pub fn min_count(&self) -> usize {
        self.min_count.unwrap_or(self.count)
    }
}

impl Default for WorkersSpec {
    fn default() -> Self {
        Self {
            count: 1,
            min_count: None,
            backend: Backend::default(),
            device: "cpu".into(),
            reduction: Reduction::default(),
            gradient_dtype: GradientDtype::default(),
        }
    }
}

/// How gradients are summed across workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Reduction {
    /// Every worker pushes to the coordinator and pulls the sum: simple, best for few workers.
    #[default]
    Coordinator,
    /// Ring all-reduce between the workers: 2(N-1)/N x gradient bytes per worker per step.
    Ring,
}

impl Reduction {
    pub fn name(self) -> &'static str {
        match self {
            Self::Coordinator => "coordinator",
            Self::Ring => "ring",
        }
    }
}

/// Gradients on the wire: exact f32, or bf16 (half the bytes, ~3 significant digits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GradientDtype {
    #[default]
    F32,
    Bf16,
}

impl GradientDtype {
    pub fn name(self) -> &'static str {
        match self {
            Self::F32 => "f32",
            Self::Bf16 => "bf16",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        [Self::F32, Self::Bf16].into_iter().find(|d| d.name() == name)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// burn's pure-Rust CPU backend (with facetrain's fused kernels).
    #[default]
    Flex,
    /// libtorch through burn-tch, on `cpu` or `cuda:N`.
    Tch,
    /// burn's CUDA backend (CubeCL), on `cuda:N`.
    Cuda,
}

impl Backend {
    pub const ALL: [Self; 3] = [Self::Flex, Self::Tch, Self::Cuda];

    pub fn name(self) -> &'static str {
        match self {
            Self::Flex => "flex",
            Self::Tch => "tch",
            Self::Cuda => "cuda",
        }
    }

    /// Whether the backend runs on `device` (`cpu` or `cuda:N`).
    pub fn runs_on(self, device: &str) -> bool {
        let cuda = device.starts_with("cuda:");
        match self {
            Self::Flex => !cuda,
            Self::Tch => true,
            Self::Cuda => cuda,
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|b| b.name() == name)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CheckpointSpec {
    /// Directory or object-store prefix (`s3://bucket/prefix`). Empty: no checkpoints.
    pub dir: String,
    /// Write one every N steps (and always at the end).
    pub every: u64,
    /// Keep the last K; older ones are deleted.
    pub keep: usize,
}

impl CheckpointSpec {
    /// Where a coordinator job's checkpoints go: its own folder under `dir`, so jobs sharing a
    /// `dir` never prune each other's checkpoints. Empty when checkpoints are off.
    pub fn for_job(&self, job_id: &str) -> String {
        if self.dir.is_empty() {
            return String::new();
        }
        format!("{}/{job_id}", self.dir.trim_end_matches('/'))
    }
}

impl Default for CheckpointSpec {
    fn default() -> Self {
        Self { dir: String::new(), every: 100, keep: 3 }
    }
}

impl JobSpec {
    /// Reads and validates a job file. Relative dataset and checkpoint paths are resolved against
    /// the job file's folder, so a job file works from any current directory.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| JobError::Io { context: format!("cannot read job file {}", path.display()), source })?;
        let mut spec = Self::parse(&text, &path.display().to_string())?;
        // Absolute, so a job file named bare (`job.toml`) still resolves to paths a coordinator
        // accepts: its folder is the current one.
        let parent = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let base = std::path::absolute(parent).map_err(|source| JobError::Io {
            context: format!("cannot resolve the folder of {}", path.display()),
            source,
        })?;
        let base = base.as_path();
        spec.dataset.train = resolve_relative(base, &spec.dataset.train);
        spec.dataset.validate = resolve_relative(base, &spec.dataset.validate);
        if !spec.checkpoint.dir.is_empty() {
            spec.checkpoint.dir = resolve_relative(base, &spec.checkpoint.dir);
        }
        Ok(spec)
    }

    /// Parses and validates job TOML; `origin` names the source in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self> {
        let spec: Self =
            toml::from_str(text).map_err(|e| JobError::Invalid(format!("{origin}: {}", e.to_string().trim_end())))?;
        spec.validate().map_err(|msg| JobError::Invalid(format!("{origin}: {msg}")))?;
        Ok(spec)
    }

    pub fn to_toml(&self) -> String {
        // Plain strings, numbers, booleans, arrays and tables: TOML can hold all of them.
        #[allow(clippy::expect_used)]
        toml::to_string(self).expect("a job spec always serialises")
    }

    /// Checks what the types cannot: every message names the key and the expected form.
    pub fn validate(&self) -> std::result::Result<(), String> {
        let m = &self.model;
        let t = &self.training;
        let checks: [(bool, &str, &str); 23] = [
            (!self.name.trim().is_empty(), "name", "a non-empty string"),
            (!self.dataset.train.is_empty(), "dataset.train", "a CSV path or URL"),
            (!self.dataset.validate.is_empty(), "dataset.validate", "a CSV path or URL"),
            (self.dataset.num_classes.is_none_or(|n| n >= 2), "dataset.num_classes", "an integer >= 2"),
            (self.dataset.cache_mb <= 1 << 24, "dataset.cache_mb", "an integer in 0..=16777216 (MiB)"),
            (m.image_size >= 8 && m.image_size <= 1024, "model.image_size", "an integer in 8..=1024"),
            (
                !m.conv_channels.is_empty() && m.conv_channels.iter().all(|&c| c > 0),
                "model.conv_channels",
                "a non-empty list of positive integers",
            ),
            (
                m.image_size >> m.conv_channels.len() > 0,
                "model.conv_channels",
                "at most log2(image_size) layers (each halves the image)",
            ),
            (m.kernel_size % 2 == 1 && m.kernel_size <= 11, "model.kernel_size", "an odd integer in 1..=11"),
            (m.fc_units.iter().all(|&u| u > 0), "model.fc_units", "a list of positive integers"),
            (m.keep_prob > 0.0 && m.keep_prob <= 1.0, "model.keep_prob", "a number in (0, 1]"),
            (t.batch_size > 0 && t.batch_size <= 65536, "training.batch_size", "an integer in 1..=65536"),
            (t.learning_rate > 0.0 && t.learning_rate.is_finite(), "training.learning_rate", "a positive number"),
            ((0.0..=1.0).contains(&t.target_accuracy), "training.target_accuracy", "a number in [0, 1]"),
            (
                t.warmup_steps == 0 || t.warmup_steps < t.max_steps,
                "training.warmup_steps",
                "an integer below training.max_steps",
            ),
            (t.decay_every >= 1, "training.decay_every", "an integer >= 1"),
            (t.decay_factor > 0.0 && t.decay_factor <= 1.0, "training.decay_factor", "a number in (0, 1]"),
            (
                (0.0..=t.learning_rate).contains(&t.min_learning_rate),
                "training.min_learning_rate",
                "a number in [0, training.learning_rate]",
            ),
            ((0.0..1.0).contains(&t.min_delta), "training.min_delta", "a number in [0, 1)"),
            ((0.0..1.0).contains(&t.weight_decay), "training.weight_decay", "a number in [0, 1)"),
            (
                self.workers.count >= 1 && self.workers.count <= t.batch_size,
                "workers.count",
                "an integer in 1..=training.batch_size",
            ),
            (
                self.workers.min_count.is_none_or(|m| m >= 1 && m <= self.workers.count),
                "workers.min_count",
                "an integer in 1..=workers.count",
            ),
            ((-MAX_PRIORITY..=MAX_PRIORITY).contains(&self.priority), "priority", "an integer in -1000..=1000"),
        ];
        for (ok, key, expected) in checks {
            if !ok {
                return Err(format!("invalid value for `{key}`: expected {expected}"));
            }
        }
        if t.max_steps == 0 {
            return Err("invalid value for `training.max_steps`: expected an integer >= 1".into());
        }
        if !self.checkpoint.dir.is_empty() && (self.checkpoint.every == 0 || self.checkpoint.keep == 0) {
            return Err("invalid value for `checkpoint.every`/`checkpoint.keep`: expected integers >= 1 when `checkpoint.dir` is set".into());
        }
        parse_device(&self.workers.device).map_err(|e| format!("invalid value for `workers.device`: {e}"))?;
        let backend = self.workers.backend;
        if !backend.runs_on(&self.workers.device) {
            let expected = if backend == Backend::Cuda { "`cuda:N`" } else { "`cpu` (tch or cuda run on `cuda:N`)" };
            return Err(format!(
                "invalid value for `workers.device`: backend {} runs on {expected}, got `{}`",
                backend.name(),
                self.workers.device
            ));
        }
        Ok(())
    }
}

/// `cpu` or `cuda:N`.
pub fn parse_device(text: &str) -> std::result::Result<Option<usize>, String> {
    match text {
        "cpu" => Ok(None),
        _ => text
            .strip_prefix("cuda:")
            .and_then(|n| n.parse().ok())
            .map(Some)
            .ok_or_else(|| format!("expected `cpu` or `cuda:N`, got `{text}`")),
    }
}

impl JobSpec {
    /// The locations (key, value) on a file system rather than in object storage: on a cluster
    /// each worker reads them from its own disk, so they must exist there too.
    pub fn local_locations(&self) -> Vec<(&'static str, &str)> {
        let local = |location: &str| !location.contains("://") || location.starts_with("file://");
        self.locations().into_iter().filter(|(_, location)| local(location)).collect()
    }

    /// The data and checkpoint locations that are set, by key.
    fn locations(&self) -> Vec<(&'static str, &str)> {
        [
            ("dataset.train", self.dataset.train.as_str()),
            ("dataset.validate", self.dataset.validate.as_str()),
            ("checkpoint.dir", self.checkpoint.dir.as_str()),
        ]
        .into_iter()
        .filter(|(_, location)| !location.is_empty())
        .collect()
    }

    /// The locations (key, value) that are relative paths. A coordinator refuses them: they would
    /// resolve against each worker's working directory, not against anything the submitter sees
    /// (`facectl submit` resolves them against the job file before sending).
    pub fn relative_locations(&self) -> Vec<(&'static str, &str)> {
        self.locations().into_iter().filter(|(_, location)| !is_absolute_location(location)).collect()
    }
}

/// A URL (`s3://`, `gs://`, `file://`) or an absolute path.
fn is_absolute_location(location: &str) -> bool {
    location.contains("://") || Path::new(location).is_absolute()
}

fn resolve_relative(base: &Path, location: &str) -> String {
    if is_absolute_location(location) {
        return location.to_string();
    }
    base.join(location).display().to_string()
}

/// What a model needs to train on one worker: its parameter count and an estimate of the memory
/// a step takes (a bound to refuse absurd jobs before they are scheduled, not a prediction of
/// RSS: the fused CPU kernels need less).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelSize {
    pub parameters: u64,
    pub training_bytes: u64,
}

impl ModelSpec {
    /// Sizes for `num_classes` outputs and a per-worker batch of `batch` samples. Saturates
    /// instead of overflowing, so any spec that parses can be sized.
    pub fn size(&self, num_classes: usize, batch: usize) -> ModelSize {
        // u128 with saturating arithmetic: absurd sizes give an absurd (clamped) answer, never a
        // wrapped small one.
        let mul = |a: u128, b: u128| a.saturating_mul(b);
        let k = self.kernel_size as u128;
        let (mut parameters, mut activations) = (0u128, mul(3, mul(self.image_size as u128, self.image_size as u128)));
        let (mut channels, mut side) = (3u128, self.image_size as u128);
        for &out in &self.conv_channels {
            let out = out as u128;
            parameters = parameters.saturating_add(mul(mul(channels, out), mul(k, k))).saturating_add(out);
            // The conv output at full size, then the pooled map.
            let half = side / 2;
            activations =
                activations.saturating_add(mul(out, mul(side, side))).saturating_add(mul(out, mul(half, half)));
            channels = out;
            side = half;
        }
        let mut features = mul(channels, mul(side, side));
        for &units in self.fc_units.iter().chain(std::iter::once(&num_classes)) {
            let units = units as u128;
            parameters = parameters.saturating_add(mul(features, units)).saturating_add(units);
            activations = activations.saturating_add(units);
            features = units;
        }
        // Parameters, their gradients, Adam's two moments and the flat exchange buffer; the
        // activations kept for backward, their gradients and temporaries.
        let bytes = mul(parameters, 4 * 5).saturating_add(mul(mul(activations, batch as u128), 4 * 3));
        let clamp = |v: u128| u64::try_from(v).unwrap_or(u64::MAX);
        ModelSize { parameters: clamp(parameters), training_bytes: clamp(bytes) }
    }
}

/// Refuses a model that needs more than `max_bytes` to train a batch of `batch` on one worker;
/// the message gives the numbers and the keys to change.
pub fn check_model_fits(model: &ModelSpec, num_classes: usize, batch: usize, max_bytes: u64) -> Result<ModelSize> {
    let size = model.size(num_classes, batch);
    if size.training_bytes > max_bytes {
        return Err(JobError::Invalid(format!(
            "the model is too large: {} parameters and about {} to train a batch of {batch} with {num_classes} \
             classes on one worker, over the limit of {}; reduce `model.conv_channels`, `model.fc_units`, \
             `model.image_size` or `training.batch_size` (or the class count)",
            size.parameters,
            human_bytes(size.training_bytes),
            human_bytes(max_bytes)
        )));
    }
    Ok(size)
}

/// `1.5 GiB`, `512 MiB`.
pub fn human_bytes(bytes: u64) -> String {
    const GIB: f64 = (1u64 << 30) as f64;
    const MIB: f64 = (1u64 << 20) as f64;
    match bytes as f64 {
        b if b >= GIB => format!("{:.1} GiB", b / GIB),
        b => format!("{:.0} MiB", b / MIB),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_workers(workers: &str) -> std::result::Result<JobSpec, String> {
        let text =
            format!("name = \"j\"\n[dataset]\ntrain = \"/t.csv\"\nvalidate = \"/v.csv\"\n[workers]\n{workers}\n");
        JobSpec::parse(&text, "job.toml").map_err(|e| e.to_string())
    }

    #[test]
    fn a_backend_is_checked_against_its_device_at_parse() {
        assert!(with_workers("backend = \"cuda\"\ndevice = \"cuda:1\"").is_ok());
        assert!(with_workers("backend = \"tch\"\ndevice = \"cpu\"").is_ok());
        let cuda_on_cpu = with_workers("backend = \"cuda\"").unwrap_err();
        assert!(cuda_on_cpu.contains("`workers.device`") && cuda_on_cpu.contains("`cuda:N`"), "{cuda_on_cpu}");
        let flex_on_gpu = with_workers("device = \"cuda:0\"").unwrap_err();
        assert!(flex_on_gpu.contains("backend flex runs on `cpu`"), "{flex_on_gpu}");
    }

    #[test]
    fn priority_and_min_count_are_bounded() {
        assert!(with_workers("count = 4\nmin_count = 2").is_ok());
        assert!(with_workers("count = 2\nmin_count = 3").unwrap_err().contains("workers.min_count"));
        assert!(with_workers("count = 2\nmin_count = 0").unwrap_err().contains("workers.min_count"));
        let text = "name = \"j\"\npriority = 1001\n[dataset]\ntrain = \"/t.csv\"\nvalidate = \"/v.csv\"\n";
        assert!(JobSpec::parse(text, "job.toml").unwrap_err().to_string().contains("`priority`"));
    }

    #[test]
    fn local_locations_are_file_paths_not_object_storage() {
        let text = "name = \"j\"\n[dataset]\ntrain = \"/home/me/t.csv\"\nvalidate = \"s3://b/v.csv\"\n\
                    [checkpoint]\ndir = \"file:///ckpt\"\n";
        let spec = JobSpec::parse(text, "job.toml").unwrap();
        assert_eq!(spec.local_locations(), [("dataset.train", "/home/me/t.csv"), ("checkpoint.dir", "file:///ckpt")]);
    }

    #[test]
    fn a_jobs_checkpoints_go_into_its_own_folder() {
        let mut spec = CheckpointSpec { dir: "s3://b/ckpt/".into(), ..CheckpointSpec::default() };
        assert_eq!(spec.for_job("j-1"), "s3://b/ckpt/j-1");
        spec.dir.clear();
        assert_eq!(spec.for_job("j-1"), "", "checkpoints off stay off");
    }
}
