//! Membership: workers register and beat, silent or overdue ones are lost, and a running job's
//! members are filled up to its worker count (rewinding to the latest checkpoint when nobody
//! holds the state). Which job gets which free worker is `schedule.rs`.

use facetrain_proto::incidents::IncidentCause;
use facetrain_proto::internal;
use facetrain_proto::job::Backend;

use super::error::{Result, unknown_worker};
use super::{Cluster, Event, Now, Offer, WorkerEntry, WorkerView};
use crate::run::StateSource;

/// How a running job without members starts its message.
const NO_MEMBER_LEFT: &str = "no worker left: waiting for one";

impl Cluster {
    /// Admits a worker; one that restarts under the same name replaces its old registration.
    pub fn register(&mut self, name: &str, peer_address: &str, offer: Offer, now: Now) -> String {
        let previous: Vec<String> =
            self.workers.iter().filter(|(_, w)| w.name == name).map(|(id, _)| id.clone()).collect();
        for id in previous {
            self.lose_worker(&id, IncidentCause::WorkerLost, "re-registered after a restart", now);
        }
        let id = format!("w{}", self.next_worker);
        self.next_worker += 1;
        let backends = if offer.backends.is_empty() { vec![Backend::Flex] } else { offer.backends };
        let devices = if offer.devices.is_empty() { vec!["cpu".to_string()] } else { offer.devices };
        let entry = WorkerEntry {
            name: name.to_string(),
            peer_address: peer_address.to_string(),
            backends,
            devices,
            last_seen: now.at,
            release: None,
        };
        self.workers.insert(id.clone(), entry);
        self.emit(Event::WorkerRegistered { worker: id.clone(), name: name.to_string() });
        id
    }

    /// The registered workers, by id, with the job each trains now.
    pub fn workers(&self) -> Vec<WorkerView> {
        self.workers
            .iter()
            .map(|(id, w)| WorkerView {
                id: id.clone(),
                name: w.name.clone(),
                backends: w.backends.clone(),
                devices: w.devices.clone(),
                job: self.job_holding(id),
            })
            .collect()
    }

    pub fn heartbeat(&mut self, worker: &str, now: Now) -> Result<()> {
        let entry = self.workers.get_mut(worker).ok_or_else(|| unknown_worker(worker))?;
        entry.last_seen = now.at;
        Ok(())
    }

    /// A stopping worker leaves: it gets no more work. An idle one just goes; a member's job
    /// redoes its step without it at once (an incident, as a loss is: the job lost a worker, but
    /// it is noticed now rather than after the heartbeat timeout).
    pub fn leave(&mut self, worker: &str, reason: &str, now: Now) -> Result<()> {
        let name = self.workers.get(worker).map(|w| w.name.clone()).ok_or_else(|| unknown_worker(worker))?;
        if self.active.values().any(|a| a.run.is_member(worker)) {
            self.lose_worker(worker, IncidentCause::WorkerLost, &format!("left: {reason}"), now);
            return Ok(());
        }
        self.workers.remove(worker);
        for active in self.active.values_mut() {
            active.run.remove(worker, now.at);
        }
        self.emit(Event::WorkerLeft { worker: worker.to_string(), name, reason: reason.to_string() });
        Ok(())
    }

    /// Evicts `worker` (heartbeat lost, deadline missed, bad gradient): its job redoes its step
    /// without it and the incident is recorded on the job.
    pub(super) fn lose_worker(&mut self, worker: &str, cause: IncidentCause, detail: &str, now: Now) {
        let described = self.describe(worker);
        let Some(entry) = self.workers.remove(worker) else { return };
        self.workers_lost += 1;
        self.emit(Event::WorkerLost {
            worker: worker.to_string(),
            name: entry.name.clone(),
            cause,
            detail: detail.to_string(),
        });
        // Since the last completed step the member's job made no progress: the stall, plus the
        // partial step thrown away when the round is abandoned.
        let member_of = self
            .active
            .iter()
            .find(|(_, a)| a.run.is_member(worker))
            .map(|(id, a)| (id.clone(), now.at.saturating_duration_since(a.run.round_started).as_secs_f64()));
        for active in self.active.values_mut() {
            active.run.remove(worker, now.at);
        }
        if let Some((job, lost_seconds)) = member_of {
            self.emit(Event::MemberLeft { job: job.clone(), name: entry.name });
            self.incident(&job, cause, format!("{described}: {detail}"), lost_seconds, now);
            if let Some(active) = self.active.get(&job)
                && let Some(outcome) = active.run.outcome_if_complete(now.at)
            {
                // The lost member was the last one the step waited for.
                self.complete_step(&job, outcome, now);
            }
        }
        self.schedule(now);
    }

    /// Periodic duties: lose silent and overdue workers, refill running jobs, start queued ones,
    /// count running time.
    pub fn tick(&mut self, now: Now) {
        let timeout = self.timing.heartbeat_timeout;
        let silent: Vec<String> = self
            .workers
            .iter()
            .filter(|(_, w)| now.at.saturating_duration_since(w.last_seen) > timeout)
            .map(|(id, _)| id.clone())
            .collect();
        for worker in silent {
            let detail = format!("no heartbeat for {:.1} s", timeout.as_secs_f64());
            self.lose_worker(&worker, IncidentCause::WorkerLost, &detail, now);
        }
        let overdue: Vec<(String, std::time::Duration)> = self
            .active
            .values()
            .flat_map(|a| {
                let deadline = a.run.deadline(&self.timing);
                a.run.overdue(now.at, deadline).into_iter().map(move |w| (w, deadline))
            })
            .collect();
        for (worker, deadline) in overdue {
            let detail = format!("no gradient within the {:.1} s step deadline", deadline.as_secs_f64());
            self.lose_worker(&worker, IncidentCause::StalledStep, &detail, now);
        }
        self.schedule(now);
        for (id, active) in &mut self.active {
            let elapsed = now.at.saturating_duration_since(active.running_since).as_secs_f64();
            active.running_since = now.at;
            if let Some(job) = self.jobs.get_mut(id) {
                job.running_seconds += elapsed;
            }
        }
    }

    /// The next task for `worker`, or `None` when there is nothing to do yet.
    pub fn next_task(&mut self, worker: &str, now: Now) -> Result<Option<internal::Task>> {
        let entry = self.workers.get_mut(worker).ok_or_else(|| unknown_worker(worker))?;
        entry.last_seen = now.at;
        if let Some(job) = entry.release.take() {
            return Ok(Some(internal::Task { kind: Some(internal::task::Kind::ReleaseJob(job)) }));
        }
        let Some(job) = self.job_holding(worker) else { return Ok(None) };
        let Some(active) = self.active.get_mut(&job) else { return Ok(None) };
        let workers = &self.workers;
        let peers =
            active.run.members.iter().map(|m| workers.get(m).map(|w| w.peer_address.clone()).unwrap_or_default());
        let task = active.run.task_for(worker, peers.collect());
        Ok(task.map(|step| internal::Task { kind: Some(internal::task::Kind::Step(step)) }))
    }

    /// Assigns `candidates` (idle workers that can run the job) to `job`, up to its worker count.
    pub(super) fn fill(&mut self, job: &str, candidates: Vec<String>, now: Now) {
        let Some(active) = self.active.get_mut(job) else { return };
        if active.run.members.is_empty() {
            // Joiners wait for a member to push them the state; with no member left they never
            // would: they start over with everyone else from the rewind below.
            active.run.joining.clear();
        }
        for worker in candidates {
            let Some(active) = self.active.get_mut(job) else { return };
            let run = &mut active.run;
            if run.members.len() + run.joining.len() >= run.wanted_workers() {
                break;
            }
            if run.members.is_empty() {
                // Nobody holds the state: rewind to the latest checkpoint (or start over).
                let Some(record) = self.jobs.get_mut(job) else { return };
                let (step, source, ledger) = match &record.latest_checkpoint {
                    Some(c) => (c.step, StateSource::Checkpoint(c.location.clone()), c.ledger.clone()),
                    None => (0, StateSource::Fresh, Some(Default::default())),
                };
                run.rewind(step);
                record.step = step;
                record.cursor = run.cursor;
                record.ledger =
                    ledger.unwrap_or_else(|| facetrain_proto::ledger::SampleLedger::starting_at(run.cursor));
                active.ledgers.clear();
                run.admit(&worker, source, now.at);
                self.changed(job);
            } else if let Some(source) = run.shared_start() {
                // No step done since the members loaded this state: load it too and start now.
                run.admit(&worker, source, now.at);
            } else {
                run.queue_joiner(&worker);
            }
        }
        self.say_what_the_run_waits_for(job);
    }

    /// A running job with no member left says so (and from where it will resume) instead of
    /// showing `running` with 0 workers and no word; the line goes once a worker is back.
    fn say_what_the_run_waits_for(&mut self, job: &str) {
        let Some(active) = self.active.get(job) else { return };
        let run = &active.run;
        let Some(record) = self.jobs.get(job) else { return };
        let message = if run.members.is_empty() && run.joining.is_empty() {
            let resume = record.latest_checkpoint.as_ref().map_or(0, |c| c.step);
            format!(
                "{NO_MEMBER_LEFT} with backend {}; training resumes from step {resume} (the latest checkpoint) when \
                 one is free",
                run.spec.workers.backend.name()
            )
        } else if record.message.starts_with(NO_MEMBER_LEFT) {
            String::new()
        } else {
            return;
        };
        self.set_message(job, message);
    }
}
