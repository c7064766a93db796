//! The embedded job store: one redb file (crash-safe, copy-on-write B-trees with atomic
//! commits) on a persistent volume, so jobs, their progress and their incidents survive a
//! coordinator restart. After an I/O error (a full disk) redb refuses every later call until the
//! file is reopened, so a failed call drops the handle and the next call reopens it: once space is
//! back, writes work again without a restart.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use redb::{Database, ReadableDatabase, TableDefinition};

use crate::record::JobRecord;

const JOBS: TableDefinition<&str, &[u8]> = TableDefinition::new("jobs");

#[derive(Debug, thiserror::Error)]
#[error("job store {path}: {message}")]
pub struct StoreError {
    path: String,
    message: String,
}

pub struct JobStore {
    db: Mutex<Option<Database>>,
    file: PathBuf,
    path: String,
}

impl JobStore {
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let display = path.display().to_string();
        let fail = |message: String| StoreError { path: display.clone(), message };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| fail(format!("cannot create folder: {e}")))?;
        }
        let db = Database::create(path).map_err(|e| fail(e.to_string()))?;
        let txn = db.begin_write().map_err(|e| fail(e.to_string()))?;
        txn.open_table(JOBS).map_err(|e| fail(e.to_string()))?;
        txn.commit().map_err(|e| fail(e.to_string()))?;
        Ok(Self { db: Mutex::new(Some(db)), file: path.to_path_buf(), path: display })
    }

    /// Runs `operation` on the open database (reopening it first if an error closed it); an
    /// error closes it so the next call starts from a fresh handle.
    fn with_db<T>(&self, operation: impl FnOnce(&Database) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let mut slot: MutexGuard<'_, Option<Database>> = self.db.lock().expect("job store lock");
        if slot.is_none() {
            *slot = Some(Database::create(&self.file).map_err(|e| self.fail(format!("cannot reopen: {e}")))?);
        }
        let result = operation(slot.as_ref().expect("just opened"));
        if result.is_err() {
            *slot = None;
        }
        result
    }

    fn fail(&self, message: impl std::fmt::Display) -> StoreError {
        StoreError { path: self.path.clone(), message: message.to_string() }
    }

    pub fn put(&self, job: &JobRecord) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(job).expect("job records serialise");
        self.with_db(|db| {
            let txn = db.begin_write().map_err(|e| self.fail(e))?;
            {
                let mut table = txn.open_table(JOBS).map_err(|e| self.fail(e))?;
                table.insert(job.id.as_str(), bytes.as_slice()).map_err(|e| self.fail(e))?;
            }
            txn.commit().map_err(|e| self.fail(format!("commit failed: {e}")))
        })
    }

    pub fn all(&self) -> Result<Vec<JobRecord>, StoreError> {
        let mut jobs = self.with_db(|db| {
            let txn = db.begin_read().map_err(|e| self.fail(e))?;
            let table = txn.open_table(JOBS).map_err(|e| self.fail(e))?;
            let mut jobs = Vec::new();
            for entry in table.range::<&str>(..).map_err(|e| self.fail(e))? {
                let (key, value) = entry.map_err(|e| self.fail(e))?;
                let job: JobRecord = serde_json::from_slice(value.value())
                    .map_err(|e| self.fail(format!("job {} unreadable: {e}", key.value())))?;
                jobs.push(job);
            }
            Ok(jobs)
        })?;
        jobs.sort_by_key(|j| j.created_unix_ms);
        Ok(jobs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(id: &str, created: u64) -> JobRecord {
        JobRecord::queued(id.into(), "n".into(), String::new(), "test".into(), 10, created)
    }

    #[test]
    fn jobs_survive_reopening_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/jobs.redb");
        {
            let store = JobStore::open(&path).unwrap();
            store.put(&job("b", 2)).unwrap();
            store.put(&job("a", 1)).unwrap();
            let mut updated = job("b", 2);
            updated.step = 7;
            store.put(&updated).unwrap();
        }
        let jobs = JobStore::open(&path).unwrap().all().unwrap();
        assert_eq!(jobs.iter().map(|j| (j.id.as_str(), j.step)).collect::<Vec<_>>(), vec![("a", 0), ("b", 7)]);
    }
}
