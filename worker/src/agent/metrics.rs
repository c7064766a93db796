//! A worker's Prometheus metrics (names as in dashboards/METRICS.md): its step phases,
//! samples, reduction traffic and input-pipeline throughput.

use facetrain_telemetry::STEP_BUCKETS;
use prometheus::{HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry};

use crate::train::trainer::StepTimings;

pub struct WorkerMetrics {
    info: IntGaugeVec,
    step_duration: HistogramVec,
    samples: IntCounterVec,
    reduce_bytes: IntCounterVec,
    pipeline_images: IntCounter,
    read_bytes: IntCounterVec,
    read_requests: IntCounterVec,
    cache_bytes: IntGaugeVec,
}

/// What a job's datasets read so far and hold, for [`WorkerMetrics::data`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DataTotals {
    pub bytes: u64,
    pub requests: u64,
    pub cache_bytes: u64,
}

impl WorkerMetrics {
    pub fn new(registry: &Registry) -> prometheus::Result<Self> {
        let step_duration = HistogramVec::new(
            HistogramOpts::new("facetrain_step_duration_seconds", "Time per training step by phase")
                .buckets(STEP_BUCKETS.to_vec()),
            &["job_id", "phase"],
        )?;
        let samples = IntCounterVec::new(
            Opts::new("facetrain_samples_total", "Training samples this worker consumed"),
            &["job_id"],
        )?;
        let reduce_bytes = IntCounterVec::new(
            Opts::new("facetrain_reduce_bytes_total", "Gradient bytes sent and received for reduction"),
            &["job_id", "strategy"],
        )?;
        let pipeline_images =
            IntCounter::new("facetrain_pipeline_images_total", "Images augmented and batched by the input pipeline")?;
        let info = IntGaugeVec::new(
            Opts::new("facetrain_worker_info", "1 for each job backend this worker runs, with the device it trains on"),
            &["backend", "device"],
        )?;
        let read_bytes = IntCounterVec::new(
            Opts::new("facetrain_data_read_bytes_total", "Image bytes read from storage for the job"),
            &["job_id"],
        )?;
        let read_requests = IntCounterVec::new(
            Opts::new(
                "facetrain_data_read_requests_total",
                "Read requests to storage for the job: image objects, or byte ranges of packed shards",
            ),
            &["job_id"],
        )?;
        let cache_bytes = IntGaugeVec::new(
            Opts::new("facetrain_data_cache_bytes", "Decoded images held in memory for the job"),
            &["job_id"],
        )?;
        registry.register(Box::new(read_bytes.clone()))?;
        registry.register(Box::new(read_requests.clone()))?;
        registry.register(Box::new(cache_bytes.clone()))?;
        registry.register(Box::new(info.clone()))?;
        registry.register(Box::new(step_duration.clone()))?;
        registry.register(Box::new(samples.clone()))?;
        registry.register(Box::new(reduce_bytes.clone()))?;
        registry.register(Box::new(pipeline_images.clone()))?;
        Ok(Self { info, step_duration, samples, reduce_bytes, pipeline_images, read_bytes, read_requests, cache_bytes })
    }

    /// What this worker offers, as `facetrain_worker_info{backend,device}` series.
    pub fn offers(&self, host: &crate::devices::Host) {
        for backend in &host.backends {
            self.info.with_label_values(&[backend.name(), &host.device_for(*backend)]).set(1);
        }
    }

    /// Mean seconds per step by phase (data, compute, reduce, apply) and total reduction bytes,
    /// over every worker that shares this registry (in-process workers of `facectl local`).
    pub fn summary(&self, job: &str, strategy: &str) -> (Vec<(&'static str, f64)>, u64) {
        let phases = ["data", "compute", "reduce", "apply"]
            .into_iter()
            .map(|phase| {
                let histogram = self.step_duration.with_label_values(&[job, phase]);
                let count = histogram.get_sample_count();
                (phase, if count == 0 { 0.0 } else { histogram.get_sample_sum() / count as f64 })
            })
            .collect();
        (phases, self.reduce_bytes.with_label_values(&[job, strategy]).get())
    }

    /// Adds what `job`'s datasets read since `before` (totals of the same session) and sets the
    /// cache size.
    pub fn data(&self, job: &str, before: DataTotals, now: DataTotals) {
        self.read_bytes.with_label_values(&[job]).inc_by(now.bytes.saturating_sub(before.bytes));
        self.read_requests.with_label_values(&[job]).inc_by(now.requests.saturating_sub(before.requests));
        self.cache_bytes.with_label_values(&[job]).set(i64::try_from(now.cache_bytes).unwrap_or(i64::MAX));
    }

    /// Records one completed step of `job` over `samples` samples.
    pub fn step(
        &self,
        job: &str,
        strategy: &str,
        samples: usize,
        data_seconds: f64,
        timings: StepTimings,
        reduce_bytes: u64,
    ) {
        for (phase, seconds) in
            [("data", data_seconds), ("compute", timings.compute), ("reduce", timings.reduce), ("apply", timings.apply)]
        {
            self.step_duration.with_label_values(&[job, phase]).observe(seconds);
        }
        self.samples.with_label_values(&[job]).inc_by(samples as u64);
        self.pipeline_images.inc_by(samples as u64);
        self.reduce_bytes.with_label_values(&[job, strategy]).inc_by(reduce_bytes);
    }
}
