//! Jobs' training curves in the store: one table keyed by (job, step), so a job's curve is one
//! range read, appending a point is one small write, and a redone step replaces its point.

use redb::{ReadableDatabase, TableDefinition};

use super::{JobStore, StoreError};
use crate::history::HistoryPoint;

pub(super) const HISTORY: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("history");

impl JobStore {
    pub fn append_history(&self, job: &str, point: &HistoryPoint) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(point).map_err(|e| self.fail(e))?;
        self.write(|txn| {
            let mut table = txn.open_table(HISTORY).map_err(|e| e.to_string())?;
            table.insert((job, point.step), bytes.as_slice()).map(drop).map_err(|e| e.to_string())
        })
    }

    /// Up to `limit` points of `job`'s curve from `from_step` on, in step order. A point that
    /// does not parse is skipped (a curve with a gap beats no curve).
    pub fn history(&self, job: &str, from_step: u64, limit: usize) -> Result<Vec<HistoryPoint>, StoreError> {
        self.with_db(|db| {
            let txn = db.begin_read().map_err(|e| e.to_string())?;
            let table = txn.open_table(HISTORY).map_err(|e| e.to_string())?;
            let mut points = Vec::new();
            for entry in table.range((job, from_step)..=(job, u64::MAX)).map_err(|e| e.to_string())? {
                let (_, value) = entry.map_err(|e| e.to_string())?;
                if let Ok(point) = serde_json::from_slice(value.value()) {
                    points.push(point);
                }
                if points.len() >= limit {
                    break;
                }
            }
            Ok(points)
        })
    }
}

/// Removes `job`'s curve inside a write transaction (deleting a job takes its history with it).
pub(super) fn remove(txn: &redb::WriteTransaction, job: &str) -> Result<(), String> {
    let mut table = txn.open_table(HISTORY).map_err(|e| e.to_string())?;
    table.retain_in((job, 0)..=(job, u64::MAX), |_, _| false).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(step: u64, loss: f64) -> HistoryPoint {
        HistoryPoint {
            step,
            unix_ms: step,
            train_loss: loss,
            train_accuracy: 0.5,
            val_accuracy: None,
            learning_rate: 1e-4,
            step_seconds: 0.1,
            samples_per_second: 1000.0,
            workers: 1,
        }
    }

    #[test]
    fn a_curve_survives_reopening_a_redone_step_replaces_its_point_and_delete_takes_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jobs.redb");
        {
            let store = JobStore::open(&path).unwrap();
            for step in [10, 20, 30] {
                store.append_history("j-1", &point(step, 1.0)).unwrap();
            }
            store.append_history("j-2", &point(10, 9.0)).unwrap();
            store.append_history("j-1", &point(20, 0.5)).unwrap();
        }
        let store = JobStore::open(&path).unwrap();
        let curve = store.history("j-1", 0, 100).unwrap();
        let steps: Vec<(u64, f64)> = curve.iter().map(|p| (p.step, p.train_loss)).collect();
        assert_eq!(steps, [(10, 1.0), (20, 0.5), (30, 1.0)]);
        assert_eq!(store.history("j-1", 11, 1).unwrap()[0].step, 20, "a page starts at from_step");
        store.delete("j-1").unwrap();
        assert!(store.history("j-1", 0, 100).unwrap().is_empty());
        assert_eq!(store.history("j-2", 0, 100).unwrap().len(), 1, "another job's curve stays");
    }
}
