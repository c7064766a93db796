//! Checkpoints: model parameters, optimizer state, step, data cursor and the job itself, in one
//! checksummed object, written atomically; the last K are kept, and the best by validation
//! accuracy besides them (`best.json` names it); a corrupt one is skipped for the one before it.
//!
//! Layout: `FTCKPT1\n`, u32 LE header length, header JSON, model bytes, optimizer bytes, and a
//! CRC-32 (LE) of everything before it.

use facetrain_proto::ledger::SampleLedger;
use facetrain_proto::plan::StepPlan;
use serde::{Deserialize, Serialize};
use tracing::warn;

use crate::error::{Error, Result};
use crate::job::JobSpec;
use crate::storage::Location;
use crate::train::trainer::Trainer;

const MAGIC: &[u8; 8] = b"FTCKPT1\n";
const PREFIX: &str = "ckpt-";
const SUFFIX: &str = ".ftck";
/// Names the best checkpoint of a folder: the highest validation accuracy among those written at
/// an evaluation step (the earliest of equals).
const BEST: &str = "best.json";

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct Best {
    step: u64,
    val_accuracy: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointMeta {
    pub step: u64,
    /// Samples consumed: where the data stream resumes.
    pub cursor: u64,
    /// The job as TOML, so a checkpoint is self-describing (eval/predict need nothing else).
    pub job: String,
    pub num_classes: usize,
    pub class_names: Vec<String>,
    pub val_accuracy: Option<f64>,
    pub created_unix: u64,
    /// The sample ledger at `step` (local runs keep it here; the coordinator keeps its own).
    #[serde(default)]
    pub ledger: Option<SampleLedger>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    pub meta: CheckpointMeta,
    pub model: Vec<u8>,
    pub optimizer: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
struct Header {
    meta: CheckpointMeta,
    model_len: u64,
    optimizer_len: u64,
}

impl Checkpoint {
    /// `trainer`'s state after its last step, with what makes the checkpoint self-describing:
    /// the job, where the data resumes, the class names, the accuracy measured at this step.
    pub fn of(
        trainer: &Trainer,
        spec: &JobSpec,
        class_names: &[String],
        val_accuracy: Option<f64>,
        ledger: Option<SampleLedger>,
    ) -> Result<Self> {
        let (model, optimizer) = trainer.state_bytes()?;
        let created_unix =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let meta = CheckpointMeta {
            step: trainer.step,
            cursor: StepPlan::new(spec).cursor_at(trainer.step),
            job: spec.to_toml(),
            num_classes: trainer.arch.num_classes,
            class_names: class_names.to_vec(),
            val_accuracy,
            created_unix,
            ledger,
        };
        Ok(Self { meta, model, optimizer })
    }

    pub fn encode(&self) -> Vec<u8> {
        let header = Header {
            meta: self.meta.clone(),
            model_len: self.model.len() as u64,
            optimizer_len: self.optimizer.len() as u64,
        };
        // Strings, numbers and lists with string keys only: JSON can hold all of them.
        #[allow(clippy::expect_used)]
        let header = serde_json::to_vec(&header).expect("checkpoint header serialises");
        let mut out = Vec::with_capacity(MAGIC.len() + 4 + header.len() + self.model.len() + self.optimizer.len() + 4);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(header.len() as u32).to_le_bytes());
        out.extend_from_slice(&header);
        out.extend_from_slice(&self.model);
        out.extend_from_slice(&self.optimizer);
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// Checks magic, lengths and checksum before trusting any of it.
    pub fn decode(bytes: &[u8]) -> std::result::Result<Self, String> {
        if bytes.len() < MAGIC.len() + 8 || &bytes[..MAGIC.len()] != MAGIC {
            return Err("not a facetrain checkpoint (bad magic)".into());
        }
        let (body, crc) = bytes.split_at(bytes.len() - 4);
        let expected = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
        let actual = crc32fast::hash(body);
        if expected != actual {
            return Err(format!(
                "checksum mismatch (stored {expected:08x}, computed {actual:08x}): truncated or corrupt"
            ));
        }
        let rest = &body[MAGIC.len()..];
        let header_len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let rest = &rest[4..];
        if header_len > rest.len() {
            return Err("header length exceeds the file".into());
        }
        let header: Header = serde_json::from_slice(&rest[..header_len]).map_err(|e| format!("bad header: {e}"))?;
        let payload = &rest[header_len..];
        let (model_len, optimizer_len) = (header.model_len as usize, header.optimizer_len as usize);
        if model_len.checked_add(optimizer_len) != Some(payload.len()) {
            return Err("section lengths do not match the file".into());
        }
        Ok(Self { meta: header.meta, model: payload[..model_len].to_vec(), optimizer: payload[model_len..].to_vec() })
    }
}

/// Checkpoints of one job under a folder or object-store prefix.
#[derive(Debug, Clone)]
pub struct CheckpointStore {
    dir: Location,
    keep: usize,
}

impl CheckpointStore {
    pub fn new(dir: &str, keep: usize) -> Result<Self> {
        Ok(Self { dir: Location::parse(dir)?, keep: keep.max(1) })
    }

    pub fn name(step: u64) -> String {
        format!("{PREFIX}{step:010}{SUFFIX}")
    }

    /// Writes the checkpoint (atomically), records it as the best when its validation accuracy
    /// beats the best so far, and prunes all but the newest `keep` and the best. Returns where it
    /// went.
    pub async fn save(&self, checkpoint: &Checkpoint) -> Result<Location> {
        let location = self.dir.child(&Self::name(checkpoint.meta.step))?;
        location.write(checkpoint.encode().into()).await?;
        let steps = self.steps().await?;
        let mut best = self.best_pointer().await.filter(|b| steps.contains(&b.step));
        if let Some(val_accuracy) = checkpoint.meta.val_accuracy
            && best.is_none_or(|b| val_accuracy > b.val_accuracy)
        {
            let new = Best { step: checkpoint.meta.step, val_accuracy };
            // A JSON of two numbers always serialises.
            #[allow(clippy::expect_used)]
            let bytes = serde_json::to_vec(&new).expect("best pointer serialises");
            match self.dir.child(BEST)?.write(bytes.into()).await {
                Ok(()) => best = Some(new),
                Err(e) => warn!(error = %e, "best checkpoint not recorded"),
            }
        }
        for &old in steps.iter().rev().skip(self.keep).filter(|&&s| best.is_none_or(|b| b.step != s)) {
            let old_location = self.dir.child(&Self::name(old))?;
            if let Err(e) = old_location.delete().await {
                warn!(checkpoint = %old_location, error = %e, "old checkpoint not deleted");
            }
        }
        Ok(location)
    }

    /// Steps that have a checkpoint, oldest first.
    pub async fn steps(&self) -> Result<Vec<u64>> {
        let mut steps: Vec<u64> = self
            .dir
            .list_names()
            .await?
            .iter()
            .filter_map(|name| name.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?.parse().ok())
            .collect();
        steps.sort_unstable();
        steps.dedup();
        Ok(steps)
    }

    async fn best_pointer(&self) -> Option<Best> {
        let bytes = self.dir.child(BEST).ok()?.read().await.ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// The checkpoint with the best validation accuracy, if one was recorded and reads back.
    pub async fn best(&self) -> Result<Option<(Location, Checkpoint)>> {
        let Some(best) = self.best_pointer().await else { return Ok(None) };
        let location = self.dir.child(&Self::name(best.step))?;
        match location.read().await.map_err(|e| e.to_string()).and_then(|b| Checkpoint::decode(&b)) {
            Ok(checkpoint) => Ok(Some((location, checkpoint))),
            Err(problem) => {
                warn!(checkpoint = %location, problem, "best checkpoint unreadable: using the latest");
                Ok(None)
            }
        }
    }

    /// The newest checkpoint that reads back intact; corrupt ones are reported and skipped.
    pub async fn latest(&self) -> Result<Option<(Location, Checkpoint)>> {
        for step in self.steps().await?.into_iter().rev() {
            let location = self.dir.child(&Self::name(step))?;
            match location.read().await.map_err(|e| e.to_string()).and_then(|b| Checkpoint::decode(&b)) {
                Ok(checkpoint) => return Ok(Some((location, checkpoint))),
                Err(problem) => warn!(checkpoint = %location, problem, "skipping unreadable checkpoint"),
            }
        }
        Ok(None)
    }
}

/// What a model is used from: a checkpoint file, or a folder's best checkpoint (the newest good
/// one when none was recorded), for eval, predict and export.
pub async fn read_best_checkpoint(location: &str) -> Result<(Location, Checkpoint)> {
    if !location.ends_with(SUFFIX)
        && let Some(best) = CheckpointStore::new(location, 1)?.best().await?
    {
        return Ok(best);
    }
    read_checkpoint(location).await
}

/// Reads a checkpoint file, or the newest good one when `location` is a checkpoint folder (where
/// training resumes).
pub async fn read_checkpoint(location: &str) -> Result<(Location, Checkpoint)> {
    if location.ends_with(SUFFIX) {
        let file = Location::parse(location)?;
        let bytes = file.read().await?;
        let checkpoint = Checkpoint::decode(&bytes).map_err(|m| Error::checkpoint(&file, m))?;
        return Ok((file, checkpoint));
    }
    CheckpointStore::new(location, 1)?.latest().await?.ok_or_else(|| {
        Error::checkpoint(location, "no readable checkpoint (expected a .ftck file or a folder holding one)")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(step: u64) -> Checkpoint {
        Checkpoint {
            meta: CheckpointMeta {
                step,
                cursor: step * 100,
                job: "name = \"x\"".into(),
                num_classes: 5,
                class_names: vec!["a".into()],
                val_accuracy: None,
                created_unix: 1,
                ledger: None,
            },
            model: vec![1, 2, 3],
            optimizer: vec![9; 10],
        }
    }

    #[test]
    fn encode_decode_round_trip() {
        assert_eq!(Checkpoint::decode(&sample(3).encode()).unwrap(), sample(3));
    }

    #[test]
    fn corruption_is_detected() {
        let mut bytes = sample(3).encode();
        bytes[20] ^= 1;
        assert!(Checkpoint::decode(&bytes).unwrap_err().contains("checksum mismatch"));
        let bytes = sample(3).encode();
        assert!(Checkpoint::decode(&bytes[..bytes.len() - 5]).is_err());
        assert!(Checkpoint::decode(b"garbage garbage garbage").unwrap_err().contains("bad magic"));
    }

    #[tokio::test]
    async fn store_keeps_the_last_k_and_skips_a_corrupt_latest() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::new(dir.path().to_str().unwrap(), 2).unwrap();
        for step in [10, 20, 30] {
            store.save(&sample(step)).await.unwrap();
        }
        assert_eq!(store.steps().await.unwrap(), vec![20, 30]);
        std::fs::write(dir.path().join(CheckpointStore::name(30)), b"FTCKPT1\ntruncated").unwrap();
        let (_, latest) = store.latest().await.unwrap().unwrap();
        assert_eq!(latest.meta.step, 20);
    }

    #[tokio::test]
    async fn the_best_checkpoint_is_kept_besides_the_last_k_and_read_by_default_for_use() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().to_str().unwrap();
        let store = CheckpointStore::new(folder, 2).unwrap();
        let with = |step, accuracy| Checkpoint {
            meta: CheckpointMeta { val_accuracy: accuracy, ..sample(step).meta },
            ..sample(step)
        };
        for (step, accuracy) in [(10, Some(0.5)), (20, Some(0.9)), (30, Some(0.6)), (40, Some(0.9)), (50, None)] {
            store.save(&with(step, accuracy)).await.unwrap();
        }
        assert_eq!(store.steps().await.unwrap(), vec![20, 40, 50], "the last 2 and the best (the earliest of equals)");
        assert_eq!(read_best_checkpoint(folder).await.unwrap().1.meta.step, 20);
        assert_eq!(read_checkpoint(folder).await.unwrap().1.meta.step, 50, "training resumes from the latest");
        store.save(&with(60, Some(0.95))).await.unwrap();
        assert_eq!(store.steps().await.unwrap(), vec![50, 60], "the old best goes once it is beaten");
        assert_eq!(read_best_checkpoint(folder).await.unwrap().1.meta.step, 60);
        // A best that no longer reads back falls back to the latest good one.
        std::fs::write(dir.path().join(CheckpointStore::name(60)), b"FTCKPT1\ntruncated").unwrap();
        assert_eq!(read_best_checkpoint(folder).await.unwrap().1.meta.step, 50);
        let file = dir.path().join(CheckpointStore::name(50));
        assert_eq!(read_best_checkpoint(file.to_str().unwrap()).await.unwrap().1.meta.step, 50, "a file is itself");
    }
}
