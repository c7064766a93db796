//! The embedded job store: one redb file (crash-safe, copy-on-write B-trees with atomic
//! commits) on a persistent volume, so jobs, their progress and their incidents survive a
//! coordinator restart.
//!
//! - After an I/O error (a full disk) redb refuses every later call until the file is reopened,
//!   so a failed call drops the handle and the next call reopens it: once space is back, writes
//!   work again without a restart.
//! - A damaged file must not take the coordinator down with a panic: opening checks the file's
//!   integrity (redb repairs what it can) and a file it cannot repair is an error that names the
//!   file and what to do. redb can panic on some damage instead of returning an error, so every
//!   call runs behind a panic guard. A record that does not parse is moved to a `quarantine`
//!   table and its job shown as failed with the reason, instead of stopping the start-up.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use facetrain_proto::incidents::IncidentCause;
use redb::{Database, ReadableDatabase, ReadableTableMetadata, TableDefinition};
use tracing::{error, warn};

use crate::record::{IncidentRecord, JobRecord, JobState};

mod history;

const JOBS: TableDefinition<&str, &[u8]> = TableDefinition::new("jobs");
const QUARANTINE: TableDefinition<&str, &[u8]> = TableDefinition::new("quarantine");

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

/// Runs `call`, turning a panic inside redb into an error message (the panic's own line still
/// reaches stderr: the hook is process-wide, and swapping it would hide other threads' panics).
fn guarded<T>(call: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(call)).unwrap_or_else(|panic| {
        let reason = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown damage".into());
        Err(format!("the file is damaged ({reason})"))
    })
}

impl JobStore {
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let display = path.display().to_string();
        let fail = |message: String| StoreError { path: display.clone(), message };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| fail(format!("cannot create folder: {e}")))?;
        }
        if std::fs::metadata(path).is_ok_and(|m| m.len() == 0) {
            warn!(store = %path.display(), "the job store file is empty (0 bytes): starting a new store in it");
        }
        let store = Self { db: Mutex::new(None), file: path.to_path_buf(), path: display.clone() };
        let db = store.open_database(true).map_err(|message| {
            fail(format!(
                "{message}. It cannot be used: stop the coordinator, move the file aside (its jobs are then \
                 forgotten) or restore it from a backup, and start again"
            ))
        })?;
        *store.slot() = Some(db);
        Ok(store)
    }

    fn open_database(&self, check: bool) -> Result<Database, String> {
        guarded(|| {
            let mut db = Database::create(&self.file).map_err(|e| e.to_string())?;
            if check && !db.check_integrity().map_err(|e| e.to_string())? {
                warn!(store = %self.path, "the job store file was damaged and has been repaired");
            }
            let txn = db.begin_write().map_err(|e| e.to_string())?;
            txn.open_table(JOBS).map_err(|e| e.to_string())?;
            txn.open_table(QUARANTINE).map_err(|e| e.to_string())?;
            txn.open_table(history::HISTORY).map_err(|e| e.to_string())?;
            txn.commit().map_err(|e| e.to_string())?;
            Ok(db)
        })
    }

    fn slot(&self) -> MutexGuard<'_, Option<Database>> {
        self.db.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs `operation` on the open database (reopening it first if an error closed it); an
    /// error closes it so the next call starts from a fresh handle.
    fn with_db<T>(&self, operation: impl FnOnce(&Database) -> Result<T, String>) -> Result<T, StoreError> {
        let mut slot = self.slot();
        let db = match slot.take() {
            Some(db) => db,
            None => self.open_database(false).map_err(|e| self.fail(format!("cannot reopen: {e}")))?,
        };
        let db = slot.insert(db);
        let result = guarded(|| operation(db));
        if result.is_err() {
            *slot = None;
        }
        result.map_err(|e| self.fail(e))
    }

    fn fail(&self, message: impl std::fmt::Display) -> StoreError {
        StoreError { path: self.path.clone(), message: message.to_string() }
    }

    pub fn put(&self, job: &JobRecord) -> Result<(), StoreError> {
        let bytes =
            serde_json::to_vec(job).map_err(|e| self.fail(format!("job {} does not serialise: {e}", job.id)))?;
        self.write(|txn| {
            txn.open_table(JOBS)
                .map_err(|e| e.to_string())?
                .insert(job.id.as_str(), bytes.as_slice())
                .map(drop)
                .map_err(|e| e.to_string())
        })
    }

    /// Removes a job's record and its training curve, in one transaction (a quarantined record's
    /// original bytes stay where they were kept).
    pub fn delete(&self, id: &str) -> Result<(), StoreError> {
        self.write(|txn| {
            txn.open_table(JOBS).map_err(|e| e.to_string())?.remove(id).map_err(|e| e.to_string())?;
            history::remove(txn, id)
        })
    }

    /// One committed write transaction, on whichever tables `change` opens.
    fn write(&self, change: impl FnOnce(&redb::WriteTransaction) -> Result<(), String>) -> Result<(), StoreError> {
        self.with_db(|db| {
            let txn = db.begin_write().map_err(|e| e.to_string())?;
            change(&txn)?;
            txn.commit().map_err(|e| format!("commit failed: {e}"))
        })
    }

    /// Every job, oldest first. A record that does not parse is quarantined and its job shown
    /// as failed with the reason.
    pub fn all(&self) -> Result<Vec<JobRecord>, StoreError> {
        let (mut jobs, unreadable) = self.with_db(|db| {
            let txn = db.begin_read().map_err(|e| e.to_string())?;
            let table = txn.open_table(JOBS).map_err(|e| e.to_string())?;
            let (mut jobs, mut unreadable) = (Vec::new(), Vec::new());
            for entry in table.range::<&str>(..).map_err(|e| e.to_string())? {
                let (key, value) = entry.map_err(|e| e.to_string())?;
                match serde_json::from_slice::<JobRecord>(value.value()) {
                    Ok(job) => jobs.push(job),
                    Err(e) => unreadable.push((key.value().to_string(), value.value().to_vec(), e.to_string())),
                }
            }
            Ok((jobs, unreadable))
        })?;
        for (id, bytes, reason) in unreadable {
            error!(store = %self.path, job = %id, reason, "job record unreadable: quarantined, job marked failed");
            let placeholder = quarantined_job(&id, &reason);
            self.quarantine(&id, &bytes, &placeholder)?;
            jobs.push(placeholder);
        }
        jobs.sort_by_key(|j| j.created_unix_ms);
        Ok(jobs)
    }

    /// Moves a record's bytes to the quarantine table and puts `placeholder` in its place.
    fn quarantine(&self, id: &str, bytes: &[u8], placeholder: &JobRecord) -> Result<(), StoreError> {
        let replacement = serde_json::to_vec(placeholder).map_err(|e| self.fail(e))?;
        self.write(|txn| {
            txn.open_table(QUARANTINE).map_err(|e| e.to_string())?.insert(id, bytes).map_err(|e| e.to_string())?;
            let mut jobs = txn.open_table(JOBS).map_err(|e| e.to_string())?;
            jobs.insert(id, replacement.as_slice()).map(drop).map_err(|e| e.to_string())
        })
    }

    /// How many records were ever quarantined.
    pub fn quarantined(&self) -> Result<u64, StoreError> {
        self.with_db(|db| {
            let txn = db.begin_read().map_err(|e| e.to_string())?;
            let table = txn.open_table(QUARANTINE).map_err(|e| e.to_string())?;
            table.len().map_err(|e| e.to_string())
        })
    }
}

/// What `facectl list` shows for a record that could not be read.
fn quarantined_job(id: &str, reason: &str) -> JobRecord {
    let mut job = JobRecord::queued(id.into(), id.into(), String::new(), String::new(), 0, 0);
    let message = format!(
        "the job's record in the store is unreadable ({reason}); its bytes are kept in the store's quarantine table"
    );
    let mut incident = IncidentRecord::detected(IncidentCause::JobStore, message.clone(), 0, 0, 0.0);
    incident.resolve(facetrain_proto::incidents::Resolver::JobEnded, 0);
    job.incidents.push(incident);
    job.state = JobState::Failed;
    job.message = message;
    job
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

    #[test]
    fn a_deleted_job_is_gone_after_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jobs.redb");
        let store = JobStore::open(&path).unwrap();
        store.put(&job("j-1", 1)).unwrap();
        store.put(&job("j-2", 2)).unwrap();
        store.delete("j-1").unwrap();
        store.delete("j-unknown").unwrap();
        drop(store);
        let ids: Vec<String> = JobStore::open(&path).unwrap().all().unwrap().into_iter().map(|j| j.id).collect();
        assert_eq!(ids, ["j-2"]);
    }

    #[test]
    fn an_unreadable_record_is_quarantined_and_shown_as_failed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jobs.redb");
        let store = JobStore::open(&path).unwrap();
        store.put(&job("good", 1)).unwrap();
        store
            .with_db(|db| {
                let txn = db.begin_write().map_err(|e| e.to_string())?;
                txn.open_table(JOBS)
                    .map_err(|e| e.to_string())?
                    .insert("bad", b"{not json".as_slice())
                    .map_err(|e| e.to_string())?;
                txn.commit().map_err(|e| e.to_string())
            })
            .unwrap();
        let jobs = store.all().unwrap();
        let bad = jobs.iter().find(|j| j.id == "bad").unwrap();
        assert_eq!(bad.state, JobState::Failed);
        assert!(bad.message.contains("unreadable"), "{}", bad.message);
        assert_eq!(store.quarantined().unwrap(), 1);
        assert!(jobs.iter().any(|j| j.id == "good"));
        // The placeholder is what the store holds now: a second start reads it normally.
        assert_eq!(store.all().unwrap().len(), 2);
        assert_eq!(store.quarantined().unwrap(), 1);
    }

    #[test]
    fn a_file_that_is_not_a_store_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jobs.redb");
        std::fs::write(&path, vec![0x5a; 64 * 1024]).unwrap();
        let message = JobStore::open(&path).err().expect("garbage is refused").to_string();
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert!(message.contains("move the file aside"), "{message}");
    }
}
