//! How much memory a job may need on this worker: a job whose model needs more is refused with
//! the numbers before anything is allocated (an absurd `fc_units` or class count would otherwise
//! abort the process).

use crate::error::{Error, Result};
use crate::job::{JobSpec, ModelSize, check_model_fits};

/// This machine's memory (`MemTotal` of /proc/meminfo), when it can be read.
pub fn machine_memory_bytes() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The default limit: 80% of the machine's memory, leaving room for the process itself, the
/// decoded-image cache and the system (64 GiB where it cannot be read).
pub fn default_job_limit() -> u64 {
    machine_memory_bytes().map_or(64 << 30, |bytes| bytes / 5 * 4)
}

/// Checks `spec`'s model for `num_classes` on a per-worker batch of `batch` against `limit`.
pub fn check_fits(spec: &JobSpec, num_classes: usize, batch: usize, limit: u64) -> Result<ModelSize> {
    check_model_fits(&spec.model, num_classes, batch, limit).map_err(|e| Error::Unsupported(e.to_string()))
}
