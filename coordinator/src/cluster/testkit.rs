//! A simulated cluster for the state machine's tests: a clock the test moves, and workers that
//! follow the protocol as the real agent does (take a task, push a gradient, apply the sum,
//! report the samples of their share), each step callable on its own.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use facetrain_proto::internal;

use super::{Cluster, Limits, Now, Timing};
use crate::run::Pull;

/// Rows in the simulated training set; every epoch trains them in row order.
pub const ROWS: u64 = 50;
/// Elements of the simulated gradient.
pub const GRADIENT: usize = 4;

pub fn job_toml(name: &str, workers: usize, max_steps: u64, batch: usize, extra: &str) -> String {
    format!(
        "name = \"{name}\"\n{extra}\n[dataset]\ntrain = \"/data/t.csv\"\nvalidate = \"/data/v.csv\"\n[training]\nbatch_size = {batch}\n\
         max_steps = {max_steps}\neval_every = 0\n[workers]\ncount = {workers}\n[checkpoint]\ndir = \"/checkpoints\"\nevery = 3\n"
    )
}

pub fn timing() -> Timing {
    Timing {
        heartbeat_interval: Duration::from_millis(200),
        heartbeat_timeout: Duration::from_secs(2),
        step_deadline_floor: Duration::from_secs(5),
        step_deadline_factor: 5.0,
        load_deadline: Duration::from_secs(30),
        start_grace: Duration::from_secs(1),
    }
}

#[derive(Debug, Default, Clone)]
pub struct SimWorker {
    pub id: String,
    /// Steps this replica has applied.
    pub model_step: u64,
    pub task: Option<internal::TrainStep>,
    pub pushed: bool,
    pub applied: bool,
    pub last_beat: Option<Instant>,
}

pub struct Sim {
    pub cluster: Cluster,
    pub now: Now,
    pub workers: BTreeMap<String, SimWorker>,
}

impl Sim {
    pub fn new() -> Self {
        let now = Now { at: Instant::now(), unix_ms: 1_700_000_000_000 };
        Self { cluster: Cluster::open(Vec::new(), timing(), Limits::default(), now), now, workers: BTreeMap::new() }
    }

    pub fn advance(&mut self, ms: u64) {
        self.now = self.now.after(Duration::from_millis(ms));
    }

    pub fn submit(&mut self, toml: &str) -> String {
        let record = self.cluster.prepare_submit(toml, "test", "", self.now).expect("valid job");
        self.cluster.accept(record)
    }

    pub fn register(&mut self, name: &str) {
        let id = self.cluster.register(name, "", Default::default(), self.now);
        let worker = SimWorker { id, last_beat: Some(self.now.at), ..SimWorker::default() };
        self.workers.insert(name.to_string(), worker);
    }

    pub fn heartbeat(&mut self, name: &str) {
        let worker = self.workers.get_mut(name).expect("known worker");
        if self.cluster.heartbeat(&worker.id, self.now).is_ok() {
            worker.last_beat = Some(self.now.at);
        }
    }

    pub fn tick(&mut self) {
        self.cluster.tick(self.now);
    }

    /// Asks for a task as the agent does; a step task replaces the one held. State sources are
    /// honoured: a replica that loads state takes the task's step.
    pub fn take_task(&mut self, name: &str) -> Option<internal::TrainStep> {
        let worker = self.workers.get_mut(name).expect("known worker");
        let task = self.cluster.next_task(&worker.id, self.now).ok().flatten()?;
        worker.last_beat = Some(self.now.at);
        if let Some(internal::task::Kind::Step(step)) = task.kind {
            // Loading state sets the replica to the state's step, whatever the task says.
            match internal::StateSource::try_from(step.state_source) {
                Ok(internal::StateSource::Fresh) => worker.model_step = 0,
                Ok(internal::StateSource::Checkpoint) => {
                    worker.model_step = step.checkpoint.trim_start_matches("ckpt-").parse().expect("a sim checkpoint")
                }
                Ok(internal::StateSource::Peer) => worker.model_step = step.step,
                _ => {}
            }
            worker.task = Some(step.clone());
            worker.pushed = false;
            worker.applied = false;
            return Some(step);
        }
        None
    }

    /// Pushes the gradient for the held task (if the replica is at its step), with the samples of
    /// this worker's share, optionally altered.
    pub fn push_with(&mut self, name: &str, alter: impl FnOnce(&mut Vec<u64>)) -> bool {
        let worker = self.workers.get_mut(name).expect("known worker");
        let Some(task) = worker.task.clone().filter(|t| t.step == worker.model_step && !worker.pushed) else {
            return false;
        };
        let values = [1.0f32; GRADIENT];
        let chunk = internal::GradientChunk {
            worker_id: worker.id.clone(),
            job_id: task.job_id.clone(),
            step: task.step,
            round: task.round,
            offset: 0,
            total: GRADIENT as u64,
            data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            samples: Some(samples(&task, alter)),
        };
        worker.pushed = true;
        let id = worker.id.clone();
        self.cluster.push_chunk(&id, &chunk, self.now).is_ok()
    }

    pub fn push(&mut self, name: &str) -> bool {
        self.push_with(name, |_| {})
    }

    /// Applies the released sum (the replica moves one step).
    pub fn apply(&mut self, name: &str) -> bool {
        let worker = self.workers.get_mut(name).expect("known worker");
        let Some(task) = worker.task.clone().filter(|_| worker.pushed && !worker.applied) else { return false };
        match self.cluster.pull(&task.job_id, task.step, task.round) {
            Pull::Ready(_) => {
                worker.model_step += 1;
                worker.applied = true;
                true
            }
            _ => false,
        }
    }

    /// Reports the applied step.
    pub fn report(&mut self, name: &str) -> bool {
        let worker = self.workers.get_mut(name).expect("known worker");
        let Some(task) = worker.task.clone().filter(|_| worker.applied) else { return false };
        worker.task = None;
        // Uploads are instant here: a checkpoint asked for is reported with its step.
        let (checkpoint, checkpoint_step) = match task.write_checkpoint {
            true => (format!("ckpt-{}", task.step + 1), task.step + 1),
            false => (String::new(), 0),
        };
        let report = internal::StepReport {
            worker_id: worker.id.clone(),
            job_id: task.job_id.clone(),
            step: task.step + 1,
            round: task.round,
            samples: 1,
            checkpoint,
            checkpoint_step,
            ..internal::StepReport::default()
        };
        let id = worker.id.clone();
        self.cluster.report(&id, &report, self.now).is_ok()
    }

    /// Every named worker takes its task, pushes and applies the sum: all that is left is to report.
    pub fn prepare(&mut self, names: &[&str]) {
        for name in names {
            self.take_task(name);
        }
        for name in names {
            self.push(name);
        }
        for name in names {
            self.apply(name);
        }
    }

    /// Every named worker takes its task, pushes, applies and reports.
    pub fn step(&mut self, names: &[&str]) {
        self.prepare(names);
        for name in names {
            self.report(name);
        }
    }

    pub fn job(&self, id: &str) -> crate::record::JobRecord {
        self.cluster.job(id).expect("known job").record
    }
}

/// The samples of the task's share of the global batch (rows: the identity permutation), as an
/// honest worker reports them, after `alter`.
fn samples(task: &internal::TrainStep, alter: impl FnOnce(&mut Vec<u64>)) -> internal::TrainedSamples {
    let spec = facetrain_proto::job::JobSpec::parse(&task.job_toml, "t").expect("valid job");
    let batch = spec.training.batch_size;
    let (rank, world) = (task.rank as usize, task.world as usize);
    let start = batch / world * rank + rank.min(batch % world);
    let end = batch / world * (rank + 1) + (rank + 1).min(batch % world);
    let mut positions: Vec<u64> = (start..end).map(|i| task.cursor + i as u64).collect();
    alter(&mut positions);
    let rows = positions.iter().map(|p| (p % ROWS) as u32).collect();
    internal::TrainedSamples { positions, rows, dataset_rows: ROWS }
}
