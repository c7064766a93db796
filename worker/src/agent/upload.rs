//! Checkpoint uploads in the background: training never waits for the object store. One upload
//! runs at a time; a checkpoint due while the previous one is still uploading is skipped (a slow
//! or unreachable store costs checkpoints, not step time), and the result of a finished upload
//! rides on the next step report.

use std::time::Instant;

use tokio::task::JoinHandle;

use crate::checkpoint::{Checkpoint, CheckpointStore};

/// What the coordinator hears about a finished upload.
#[derive(Debug, Clone, PartialEq)]
pub struct UploadNews {
    pub step: u64,
    pub seconds: f64,
    /// The checkpoint's location, or why the upload failed.
    pub result: Result<String, String>,
}

struct Running {
    step: u64,
    started: Instant,
    task: JoinHandle<crate::Result<String>>,
}

#[derive(Default)]
pub struct Uploader {
    running: Option<Running>,
}

impl Uploader {
    pub fn is_busy(&self) -> bool {
        self.running.as_ref().is_some_and(|r| !r.task.is_finished())
    }

    /// Starts uploading `checkpoint` to `dir` (keeping the newest `keep`); false when busy.
    pub fn start(&mut self, checkpoint: Checkpoint, dir: &str, keep: usize) -> bool {
        if self.is_busy() {
            return false;
        }
        let step = checkpoint.meta.step;
        let dir = dir.to_string();
        let task = tokio::spawn(async move {
            let store = CheckpointStore::new(&dir, keep)?;
            Ok(store.save(&checkpoint).await?.to_string())
        });
        self.running = Some(Running { step, started: Instant::now(), task });
        true
    }

    /// The finished upload's result, if one finished; with `wait`, waits for a running one.
    pub async fn finished(&mut self, wait: bool) -> Option<UploadNews> {
        if !wait && self.is_busy() {
            return None;
        }
        let running = self.running.take()?;
        let result = match running.task.await {
            Ok(Ok(location)) => Ok(location),
            Ok(Err(e)) => Err(e.to_string()),
            Err(e) => Err(format!("upload task failed: {e}")),
        };
        Some(UploadNews { step: running.step, seconds: running.started.elapsed().as_secs_f64(), result })
    }
}
