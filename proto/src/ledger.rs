//! The sample ledger: what every applied step actually trained, checked against the plan.
//!
//! Workers report, with each step, the global cursor positions and the dataset rows of the
//! samples they trained (taken from the batch they built, not from the plan). The ledger checks
//! that a step's samples are exactly the step's global batch, every position once across all
//! members; and, at the end of each epoch, that the rows trained in it are every row of the
//! dataset once (the sum of a hash over the rows must equal the sum over `0..rows`, which needs no
//! copy of the permutation). A violation names the worker and the positions.
//!
//! The ledger follows the job's history: a rewind to a checkpoint restores the ledger saved with
//! it, so it describes the samples the current model was trained on. `digest` is independent of
//! the worker count (an order-free sum), so two runs of one job can be compared by it.

use std::fmt::Write;

use serde::{Deserialize, Serialize};

/// One member's part of a step, as it reported it.
#[derive(Debug, Clone, Copy)]
pub struct Trained<'a> {
    pub worker: &'a str,
    pub positions: &'a [u64],
    pub rows: &'a [u32],
}

/// Why a step's samples are not its global batch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct LedgerViolation(pub String);

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SampleLedger {
    /// Rows in the training set (0 until the first report says).
    pub rows: u64,
    /// The first position of the next step's global batch.
    pub next_position: u64,
    /// Positions checked along the job's history (every applied step's batch).
    pub positions_trained: u64,
    /// Samples of the current epoch seen so far, and the wrapping sum of their row hashes.
    pub epoch_samples: u64,
    pub epoch_row_sum: u64,
    /// Epochs completed whose rows were checked: every row exactly once.
    pub epochs_checked: u64,
    /// The current epoch began before this ledger did (resumed without a ledger): its rows
    /// cannot be checked.
    #[serde(default)]
    pub partial_epoch: bool,
    /// Wrapping sum of a hash of every (position, row) trained: equal for equal histories.
    pub digest: u64,
}

impl SampleLedger {
    /// A ledger for a job whose history before `position` is unknown (resumed from a checkpoint
    /// written before ledgers existed): checking starts there.
    pub fn starting_at(position: u64) -> Self {
        Self { next_position: position, positions_trained: position, partial_epoch: position > 0, ..Self::default() }
    }

    /// Checks one step's samples against the global batch `[next_position, next_position + batch)`
    /// and records them. `dataset_rows` is what the members report their training set holds.
    /// Nothing is recorded when the step is refused.
    pub fn record_step(
        &mut self,
        batch: u64,
        dataset_rows: u64,
        members: &[Trained<'_>],
    ) -> Result<(), LedgerViolation> {
        let start = self.next_position;
        let rows = if self.rows == 0 { dataset_rows } else { self.rows };
        if dataset_rows != rows || rows == 0 {
            return Err(LedgerViolation(format!(
                "the members report a training set of {dataset_rows} rows; the job's ledger has {rows}"
            )));
        }
        let mut row_of: Vec<Option<(u32, &str)>> = vec![None; batch as usize];
        for member in members {
            if member.positions.len() != member.rows.len() {
                return Err(LedgerViolation(format!(
                    "{} reported {} positions but {} rows",
                    member.worker,
                    member.positions.len(),
                    member.rows.len()
                )));
            }
            for (&position, &row) in member.positions.iter().zip(member.rows) {
                let Some(slot) = position.checked_sub(start).filter(|&i| i < batch).map(|i| &mut row_of[i as usize])
                else {
                    return Err(LedgerViolation(format!(
                        "{} trained position {position}, outside the step's batch [{start}, {})",
                        member.worker,
                        start + batch
                    )));
                };
                if let Some((_, first)) = slot {
                    return Err(LedgerViolation(format!(
                        "position {position} trained twice in one step (by {first} and {})",
                        member.worker
                    )));
                }
                if u64::from(row) >= rows {
                    return Err(LedgerViolation(format!(
                        "{} trained row {row}, beyond the training set's {rows} rows",
                        member.worker
                    )));
                }
                *slot = Some((row, member.worker));
            }
        }
        let Some(trained_rows) = row_of.iter().map(|slot| slot.map(|(row, _)| row)).collect::<Option<Vec<u32>>>()
        else {
            let missing: Vec<u64> =
                row_of.iter().enumerate().filter(|(_, s)| s.is_none()).map(|(i, _)| start + i as u64).collect();
            return Err(LedgerViolation(format!(
                "{} of the step's {batch} positions were not trained: {}",
                missing.len(),
                preview(&missing)
            )));
        };
        let mut next = self.clone();
        next.rows = rows;
        for (offset, row) in trained_rows.into_iter().enumerate() {
            next.add(start + offset as u64, row)?;
        }
        *self = next;
        Ok(())
    }

    fn add(&mut self, position: u64, row: u32) -> Result<(), LedgerViolation> {
        self.digest = self.digest.wrapping_add(mix(position ^ mix(u64::from(row) ^ 0x5eed)));
        self.epoch_samples += 1;
        self.epoch_row_sum = self.epoch_row_sum.wrapping_add(row_hash(row));
        self.positions_trained += 1;
        self.next_position = position + 1;
        if self.next_position.is_multiple_of(self.rows) {
            let epoch = position / self.rows;
            if !self.partial_epoch
                && (self.epoch_samples != self.rows || self.epoch_row_sum != expected_row_sum(self.rows))
            {
                return Err(LedgerViolation(format!(
                    "epoch {epoch} did not train every one of the {} rows exactly once ({} samples)",
                    self.rows, self.epoch_samples
                )));
            }
            if !self.partial_epoch {
                self.epochs_checked += 1;
            }
            self.partial_epoch = false;
            self.epoch_samples = 0;
            self.epoch_row_sum = 0;
        }
        Ok(())
    }
}

impl From<&SampleLedger> for crate::pb::SampleLedger {
    fn from(ledger: &SampleLedger) -> Self {
        Self {
            rows: ledger.rows,
            next_position: ledger.next_position,
            positions_trained: ledger.positions_trained,
            epochs_checked: ledger.epochs_checked,
            digest: ledger.digest,
        }
    }
}

fn preview(positions: &[u64]) -> String {
    let mut text = String::new();
    for position in positions.iter().take(5) {
        let _ = write!(text, "{}{position}", if text.is_empty() { "" } else { ", " });
    }
    if positions.len() > 5 {
        text.push_str(", ...");
    }
    text
}

/// splitmix64's finaliser: a well-mixed 64-bit hash of a 64-bit value.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn row_hash(row: u32) -> u64 {
    mix(u64::from(row).wrapping_mul(0x2545_f491_4f6c_dd1d) ^ 0xa11c_e5ed)
}

/// The row-hash sum of an epoch that trained every row once.
fn expected_row_sum(rows: u64) -> u64 {
    (0..rows).fold(0u64, |sum, row| sum.wrapping_add(row_hash(row as u32)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The positions and rows of one step of a job with a fixed permutation, split over `world`.
    fn step(ledger: &SampleLedger, batch: u64, order: &[u32], world: usize) -> Vec<(String, Vec<u64>, Vec<u32>)> {
        let positions: Vec<u64> = (ledger.next_position..ledger.next_position + batch).collect();
        let per = positions.len().div_ceil(world);
        positions
            .chunks(per)
            .enumerate()
            .map(|(rank, chunk)| {
                let rows = chunk.iter().map(|p| order[(*p % order.len() as u64) as usize]).collect();
                (format!("w{rank}"), chunk.to_vec(), rows)
            })
            .collect()
    }

    fn record(
        ledger: &mut SampleLedger,
        batch: u64,
        rows: u64,
        parts: &[(String, Vec<u64>, Vec<u32>)],
    ) -> Result<(), LedgerViolation> {
        let members: Vec<Trained<'_>> =
            parts.iter().map(|(w, p, r)| Trained { worker: w, positions: p, rows: r }).collect();
        ledger.record_step(batch, rows, &members)
    }

    #[test]
    fn honest_steps_pass_and_the_digest_does_not_depend_on_the_worker_count() {
        let order: Vec<u32> = vec![3, 0, 4, 1, 2, 6, 5];
        let mut one = SampleLedger::default();
        let mut three = SampleLedger::default();
        for _ in 0..10 {
            let parts = step(&one, 5, &order, 1);
            record(&mut one, 5, 7, &parts).unwrap();
            let parts = step(&three, 5, &order, 3);
            record(&mut three, 5, 7, &parts).unwrap();
        }
        assert_eq!(one, three);
        assert_eq!((one.next_position, one.epochs_checked), (50, 7));
    }

    #[test]
    fn a_dropped_or_repeated_sample_is_a_violation_that_names_the_position() {
        let order: Vec<u32> = (0..10).collect();
        let mut ledger = SampleLedger::default();
        let mut parts = step(&ledger, 4, &order, 2);
        parts[1].1.pop();
        parts[1].2.pop();
        let error = record(&mut ledger, 4, 10, &parts).unwrap_err();
        assert!(error.0.contains("1 of the step's 4 positions were not trained: 3"), "{error}");
        let mut parts = step(&ledger, 4, &order, 2);
        parts[1].1[1] = parts[1].1[0];
        let error = record(&mut ledger, 4, 10, &parts).unwrap_err();
        assert!(error.0.contains("position 2 trained twice in one step (by w1 and w1)"), "{error}");
        assert_eq!(ledger, SampleLedger::default(), "a refused step records nothing");
    }

    #[test]
    fn a_row_trained_twice_in_an_epoch_is_caught_when_the_epoch_ends() {
        // Positions are right, but the permutation is not one: row 1 twice, row 2 never.
        let order: Vec<u32> = vec![0, 1, 1, 3];
        let mut ledger = SampleLedger::default();
        let parts = step(&ledger, 2, &order, 1);
        record(&mut ledger, 2, 4, &parts).unwrap();
        let parts = step(&ledger, 2, &order, 2);
        let error = record(&mut ledger, 2, 4, &parts).unwrap_err();
        assert!(error.0.contains("epoch 0 did not train every one of the 4 rows exactly once"), "{error}");
    }

    #[test]
    fn a_ledger_started_mid_epoch_checks_from_the_next_epoch_on() {
        let order: Vec<u32> = (0..6).collect();
        let mut ledger = SampleLedger::starting_at(4);
        ledger.rows = 6;
        let parts = step(&ledger, 2, &order, 1);
        record(&mut ledger, 2, 6, &parts).unwrap();
        assert_eq!((ledger.epochs_checked, ledger.partial_epoch), (0, false));
        for _ in 0..3 {
            let parts = step(&ledger, 2, &order, 2);
            record(&mut ledger, 2, 6, &parts).unwrap();
        }
        assert_eq!(ledger.epochs_checked, 1);
    }

    #[test]
    fn a_member_with_another_dataset_is_refused() {
        let mut ledger = SampleLedger::default();
        let order: Vec<u32> = (0..8).collect();
        let parts = step(&ledger, 2, &order, 1);
        record(&mut ledger, 2, 8, &parts).unwrap();
        let parts = step(&ledger, 2, &order, 1);
        assert!(record(&mut ledger, 2, 9, &parts).unwrap_err().0.contains("9 rows"));
    }
}
