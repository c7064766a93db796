//! The coordinator's Prometheus metrics. Job-level figures (jobs by state, step, samples,
//! loss, accuracy, incidents, lost work, running time, manual actions) are read from the job
//! records at scrape time, so they are exact, survive a coordinator restart with the store, and
//! cost nothing per step; events (step and recovery durations, reduction bytes, RPCs) are
//! counted as they happen. Names follow dashboards/METRICS.md.

use std::sync::Arc;
use std::time::Instant;

use facetrain_proto::incidents::{IncidentCause, Resolver, ToilKind};
use facetrain_telemetry::{RECOVERY_BUCKETS, STEP_BUCKETS, grpc_code_name};
use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{
    CounterVec, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts,
    Registry,
};

use crate::cluster::Snapshot;
use crate::record::JobState;

/// Where the job-record metrics come from at scrape time (the coordinator; a fixed snapshot in
/// tests).
pub trait SnapshotSource: Send + Sync {
    fn snapshot(&self) -> Snapshot;
}

pub struct CoordinatorMetrics {
    pub step_duration: HistogramVec,
    pub worker_compute: GaugeVec,
    pub reduce_bytes: IntCounterVec,
    pub recovery_duration: HistogramVec,
    pub checkpoint_duration: Histogram,
    pub checkpoint_failures: IntCounter,
    pub queue_wait: Histogram,
    grpc_requests: IntCounterVec,
    grpc_duration: HistogramVec,
}

impl CoordinatorMetrics {
    pub fn new(registry: &Registry) -> prometheus::Result<Arc<Self>> {
        let step_duration = HistogramVec::new(
            HistogramOpts::new("facetrain_step_duration_seconds", "Time per training step by phase")
                .buckets(STEP_BUCKETS.to_vec()),
            &["job_id", "phase"],
        )?;
        let worker_compute = GaugeVec::new(
            Opts::new("facetrain_worker_step_compute_seconds", "Compute time of the last step on each worker"),
            &["job_id", "worker"],
        )?;
        let reduce_bytes = IntCounterVec::new(
            Opts::new("facetrain_reduce_bytes_total", "Gradient bytes received and sent for reduction"),
            &["job_id", "strategy"],
        )?;
        let recovery_duration = HistogramVec::new(
            HistogramOpts::new(
                "facetrain_recovery_duration_seconds",
                "Time from detecting an incident to training again",
            )
            .buckets(RECOVERY_BUCKETS.to_vec()),
            &["cause"],
        )?;
        let checkpoint_duration = Histogram::with_opts(
            HistogramOpts::new("facetrain_checkpoint_duration_seconds", "Time to write a checkpoint")
                .buckets(STEP_BUCKETS.to_vec()),
        )?;
        let checkpoint_failures =
            IntCounter::new("facetrain_checkpoint_failures_total", "Checkpoint writes that failed")?;
        let queue_wait = Histogram::with_opts(
            HistogramOpts::new(
                "facetrain_queue_wait_seconds",
                "Time from a job's submission to its first start (with an autoscaler: the scale-up time)",
            )
            .buckets(RECOVERY_BUCKETS.to_vec()),
        )?;
        let grpc_requests =
            IntCounterVec::new(Opts::new("facetrain_grpc_requests_total", "gRPC calls served"), &["rpc", "code"])?;
        let grpc_duration = HistogramVec::new(
            HistogramOpts::new("facetrain_grpc_request_duration_seconds", "Server-side handling time of unary RPCs")
                .buckets(STEP_BUCKETS.to_vec()),
            &["rpc"],
        )?;
        // Known label values start at 0, so a first increment is visible to rate() and alerts.
        for cause in IncidentCause::ALL {
            recovery_duration.with_label_values(&[cause.name()]);
        }
        for collector in [
            Box::new(step_duration.clone()) as Box<dyn Collector>,
            Box::new(worker_compute.clone()),
            Box::new(reduce_bytes.clone()),
            Box::new(recovery_duration.clone()),
            Box::new(checkpoint_duration.clone()),
            Box::new(checkpoint_failures.clone()),
            Box::new(queue_wait.clone()),
            Box::new(grpc_requests.clone()),
            Box::new(grpc_duration.clone()),
        ] {
            registry.register(collector)?;
        }
        Ok(Arc::new(Self {
            step_duration,
            worker_compute,
            reduce_bytes,
            recovery_duration,
            checkpoint_duration,
            checkpoint_failures,
            queue_wait,
            grpc_requests,
            grpc_duration,
        }))
    }

    /// A step of `job` completed in `seconds`; `compute`: each member's compute time, by name.
    pub fn step_applied(&self, job: &str, seconds: f64, compute: &[(String, f64)]) {
        self.step_duration.with_label_values(&[job, "total"]).observe(seconds);
        for (worker, seconds) in compute {
            self.worker_compute.with_label_values(&[job, worker]).set(*seconds);
        }
    }

    /// `job` was deleted: its series kept here go (those read from the job records go with the
    /// record), so deleting jobs bounds the series a long-lived coordinator exports.
    pub fn job_deleted(&self, job: &str) {
        let _ = self.step_duration.remove_label_values(&[job, "total"]);
        let _ = self.reduce_bytes.remove_label_values(&[job, "coordinator"]);
    }

    /// `worker` no longer trains `job`: its series goes, so a flapping worker cannot grow them.
    pub fn member_left(&self, job: &str, worker: &str) {
        let _ = self.worker_compute.remove_label_values(&[job, worker]);
    }

    /// Counts one finished RPC; unary calls also observe their duration.
    pub fn rpc<T>(&self, rpc: &str, started: Instant, unary: bool, result: &Result<T, tonic::Status>) {
        let code = result.as_ref().map_or_else(|s| s.code(), |_| tonic::Code::Ok);
        self.grpc_requests.with_label_values(&[rpc, grpc_code_name(code)]).inc();
        if unary {
            self.grpc_duration.with_label_values(&[rpc]).observe(started.elapsed().as_secs_f64());
        }
    }
}

/// Registers the collector of job-record metrics, read from `source` at every scrape.
pub fn register_job_metrics(registry: &Registry, source: Arc<dyn SnapshotSource>) -> prometheus::Result<()> {
    registry.register(Box::new(JobCollector::new(source)?))
}

struct JobCollector {
    source: Arc<dyn SnapshotSource>,
    descs: Vec<Desc>,
}

impl JobCollector {
    fn new(source: Arc<dyn SnapshotSource>) -> prometheus::Result<Self> {
        let descs =
            Families::new()?.all().iter().flat_map(|c| c.desc().into_iter().cloned().collect::<Vec<_>>()).collect();
        Ok(Self { source, descs })
    }
}

/// Fresh metric vectors filled from one snapshot at every scrape.
struct Families {
    jobs: IntGaugeVec,
    workers: IntGaugeVec,
    step: IntGaugeVec,
    running_seconds: CounterVec,
    samples: IntCounterVec,
    loss: GaugeVec,
    learning_rate: GaugeVec,
    accuracy: GaugeVec,
    incidents: IntCounterVec,
    incidents_open: IntGaugeVec,
    lost_work: CounterVec,
    last_checkpoint: GaugeVec,
    toil_events: IntCounterVec,
    toil_seconds: CounterVec,
    workers_wanted: IntGaugeVec,
}

impl Families {
    fn new() -> prometheus::Result<Self> {
        Ok(Self {
            jobs: IntGaugeVec::new(Opts::new("facetrain_jobs", "Jobs by state"), &["state"])?,
            workers: IntGaugeVec::new(Opts::new("facetrain_workers", "Registered workers by state"), &["state"])?,
            step: IntGaugeVec::new(Opts::new("facetrain_job_step", "Last completed global step"), &["job_id"])?,
            running_seconds: CounterVec::new(
                Opts::new("facetrain_job_running_seconds_total", "Wall time the job spent running"),
                &["job_id"],
            )?,
            samples: IntCounterVec::new(
                Opts::new("facetrain_samples_total", "Training samples trained in applied steps (never decreases)"),
                &["job_id"],
            )?,
            loss: GaugeVec::new(Opts::new("facetrain_loss", "Training loss of the last step"), &["job_id"])?,
            learning_rate: GaugeVec::new(
                Opts::new("facetrain_learning_rate", "Learning rate of the last step (the job's schedule)"),
                &["job_id"],
            )?,
            accuracy: GaugeVec::new(Opts::new("facetrain_accuracy_ratio", "Accuracy by split"), &["job_id", "split"])?,
            incidents: IntCounterVec::new(
                Opts::new("facetrain_incidents_total", "Incidents, counted when resolved"),
                &["job_id", "cause", "resolved_by"],
            )?,
            incidents_open: IntGaugeVec::new(
                Opts::new("facetrain_incidents_open", "Unresolved incidents"),
                &["job_id"],
            )?,
            lost_work: CounterVec::new(
                Opts::new("facetrain_lost_work_seconds_total", "Training time thrown away"),
                &["job_id"],
            )?,
            last_checkpoint: GaugeVec::new(
                Opts::new("facetrain_last_checkpoint_timestamp_seconds", "Time of the newest checkpoint"),
                &["job_id"],
            )?,
            toil_events: IntCounterVec::new(
                Opts::new("facetrain_toil_events_total", "Manual interventions by people"),
                &["kind"],
            )?,
            toil_seconds: CounterVec::new(
                Opts::new("facetrain_toil_seconds_total", "Hands-on time of manual interventions"),
                &["kind"],
            )?,
            workers_wanted: IntGaugeVec::new(
                Opts::new("facetrain_workers_wanted", "Workers the running and queued jobs want, by backend"),
                &["backend"],
            )?,
        })
    }

    fn all(&self) -> Vec<&dyn Collector> {
        vec![
            &self.jobs,
            &self.workers,
            &self.step,
            &self.running_seconds,
            &self.samples,
            &self.loss,
            &self.learning_rate,
            &self.accuracy,
            &self.incidents,
            &self.incidents_open,
            &self.lost_work,
            &self.last_checkpoint,
            &self.toil_events,
            &self.toil_seconds,
            &self.workers_wanted,
        ]
    }
}

impl Collector for JobCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let Ok(f) = Families::new() else { return Vec::new() };
        let snapshot = self.source.snapshot();
        let jobs = &snapshot.jobs;
        for state in JobState::ALL {
            f.jobs.with_label_values(&[state.name()]).set(jobs.iter().filter(|j| j.state == state).count() as i64);
        }
        let training = snapshot.workers_training;
        f.workers.with_label_values(&["training"]).set(training as i64);
        f.workers.with_label_values(&["idle"]).set(snapshot.workers_registered.saturating_sub(training) as i64);
        f.workers.with_label_values(&["lost"]).set(snapshot.workers_lost as i64);
        for (backend, wanted) in &snapshot.workers_wanted {
            f.workers_wanted.with_label_values(&[backend.name()]).set(*wanted as i64);
        }
        // Every kind starts at 0, so the first manual action is visible to rate() and alerts.
        for kind in ToilKind::ALL {
            f.toil_events.with_label_values(&[kind.name()]);
            f.toil_seconds.with_label_values(&[kind.name()]);
        }
        for toil in jobs.iter().flat_map(|j| &j.toil) {
            f.toil_events.with_label_values(&[toil.kind.name()]).inc();
            f.toil_seconds.with_label_values(&[toil.kind.name()]).inc_by(toil.hands_on_seconds);
        }
        for (kind, total) in &snapshot.deleted_toil {
            f.toil_events.with_label_values(&[kind.name()]).inc_by(total.actions);
            f.toil_seconds.with_label_values(&[kind.name()]).inc_by(total.hands_on_seconds);
        }
        for job in jobs {
            let id = job.id.as_str();
            f.step.with_label_values(&[id]).set(job.step as i64);
            f.running_seconds.with_label_values(&[id]).inc_by(job.running_seconds);
            f.samples.with_label_values(&[id]).inc_by(job.samples_trained);
            f.loss.with_label_values(&[id]).set(job.train_loss);
            if let Some(rate) = job.learning_rate {
                f.learning_rate.with_label_values(&[id]).set(rate);
            }
            if let Some(accuracy) = job.val_accuracy {
                f.accuracy.with_label_values(&[id, "validate"]).set(accuracy);
            }
            if let Some(accuracy) = job.train_accuracy {
                f.accuracy.with_label_values(&[id, "train"]).set(accuracy);
            }
            let open = job.incidents.iter().filter(|i| i.is_open()).count();
            f.incidents_open.with_label_values(&[id]).set(open as i64);
            // Every cause and resolver starts at 0 for each job: dashboards show 0, not "No data",
            // and increase() sees the first incident.
            for cause in IncidentCause::ALL {
                for resolver in Resolver::ALL {
                    f.incidents.with_label_values(&[id, cause.name(), resolver.name()]);
                }
            }
            for incident in &job.incidents {
                if let Some(resolver) = incident.resolved_by {
                    f.incidents.with_label_values(&[id, incident.cause.name(), resolver.name()]).inc();
                }
            }
            f.lost_work.with_label_values(&[id]).inc_by(job.incidents.iter().map(|i| i.lost_work_seconds).sum());
            if let Some(checkpoint) = job.latest_checkpoint.as_ref().filter(|c| c.written_unix_ms > 0) {
                f.last_checkpoint.with_label_values(&[id]).set(checkpoint.written_unix_ms as f64 / 1000.0);
            }
        }
        f.all().iter().flat_map(|c| c.collect()).collect()
    }
}
