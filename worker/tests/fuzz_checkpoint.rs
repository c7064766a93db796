//! Checkpoints are read back from disks and buckets that may hold anything: any bytes must give
//! an error, never a panic; damage the checksum can see must be refused; and no length field may
//! make the decoder allocate more than the file it was given.
// Test helpers: an unmet expectation is a failed test, which is what unwrap/expect say.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../fuzz/proptest_support.rs"]
mod fuzz_support;

use facetrain_worker::checkpoint::{Checkpoint, CheckpointMeta};
use proptest::prelude::*;

const MAGIC: &[u8] = b"FTCKPT1\n";

fn sample() -> Checkpoint {
    Checkpoint {
        meta: CheckpointMeta {
            step: 30,
            cursor: 3000,
            job: "name = \"fuzz\"".into(),
            num_classes: 5,
            class_names: vec!["Ann".into(), "Bob".into()],
            val_accuracy: Some(0.5),
            created_unix: 1,
            ledger: None,
        },
        model: vec![1, 2, 3, 4],
        optimizer: vec![9; 10],
    }
}

/// Appends the CRC the format ends with, so a mutation reaches the parser behind the checksum.
fn seal(mut body: Vec<u8>) -> Vec<u8> {
    let crc = crc32fast::hash(&body);
    body.extend_from_slice(&crc.to_le_bytes());
    body
}

/// `FTCKPT1\n`, the header length field, the header, the payload, sealed.
fn checkpoint_bytes(header_len: u32, header: &[u8], payload: &[u8]) -> Vec<u8> {
    seal([MAGIC, &header_len.to_le_bytes(), header, payload].concat())
}

/// Decodes; a success must not hold more bytes than the file had.
fn decode_checked(bytes: &[u8]) -> Result<Option<Checkpoint>, TestCaseError> {
    match Checkpoint::decode(bytes) {
        Ok(checkpoint) => {
            prop_assert!(checkpoint.model.len() + checkpoint.optimizer.len() < bytes.len());
            Ok(Some(checkpoint))
        }
        Err(message) => {
            prop_assert!(!message.is_empty());
            Ok(None)
        }
    }
}

fn header_json(model_len: u64, optimizer_len: u64) -> Vec<u8> {
    let meta = serde_json::to_value(sample().meta).unwrap();
    serde_json::to_vec(&serde_json::json!({ "meta": meta, "model_len": model_len, "optimizer_len": optimizer_len }))
        .unwrap()
}

fn length() -> impl Strategy<Value = u64> {
    prop_oneof![0u64..32, Just(u64::MAX), Just(u64::MAX - 3), Just(1 << 40), Just(u32::MAX as u64 + 4), any::<u64>()]
}

proptest! {
    #![proptest_config(fuzz_support::config(256))]

    #[test]
    fn arbitrary_bytes_are_refused(
        with_magic in any::<bool>(),
        bytes in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        let bytes = if with_magic { [MAGIC, &bytes].concat() } else { bytes };
        prop_assert!(decode_checked(&bytes)?.is_none());
    }

    /// Past the checksum: whatever the body, no panic and nothing bigger than the input.
    #[test]
    fn sealed_arbitrary_bodies_never_panic(
        header_len in any::<u32>(),
        rest in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        decode_checked(&checkpoint_bytes(header_len, &rest, &[]))?;
    }

    #[test]
    fn lying_length_fields_are_refused(
        header_len_delta in -3i64..=3,
        model_len in length(),
        optimizer_len in length(),
        payload in proptest::collection::vec(any::<u8>(), 0..32),
    ) {
        let header = header_json(model_len, optimizer_len);
        let header_len = (header.len() as i64 + header_len_delta) as u32;
        let decoded = decode_checked(&checkpoint_bytes(header_len, &header, &payload))?;
        if header_len_delta == 0 {
            let truthful = model_len.checked_add(optimizer_len) == Some(payload.len() as u64);
            prop_assert_eq!(decoded.is_some(), truthful);
        }
        // A longer header length can still parse (JSON allows trailing whitespace); then the
        // sections must be exactly what the header says.
        if let Some(checkpoint) = decoded {
            let sections = (checkpoint.model.len() as u64, checkpoint.optimizer.len() as u64);
            prop_assert_eq!(sections, (model_len, optimizer_len));
        }
    }

    #[test]
    fn every_truncation_is_refused(keep in any::<prop::sample::Index>()) {
        let bytes = sample().encode();
        prop_assert!(decode_checked(&bytes[..keep.index(bytes.len())])?.is_none());
    }

    /// CRC-32 catches every error burst of up to 32 bits, single bit flips included.
    #[test]
    fn every_burst_of_flipped_bits_is_refused(
        start in any::<prop::sample::Index>(),
        len in 1u32..=32,
        middle in any::<u32>(),
    ) {
        let mut bytes = sample().encode();
        // A burst of `len` bits: its first and last bits flip, those between at random.
        let pattern = u64::from(middle | 1 | (1 << (len - 1))) & ((1u64 << len) - 1);
        let start = start.index(bytes.len() * 8 - len as usize + 1);
        for bit in 0..len as usize {
            if pattern >> bit & 1 == 1 {
                bytes[(start + bit) / 8] ^= 1 << ((start + bit) % 8);
            }
        }
        prop_assert!(decode_checked(&bytes)?.is_none());
    }

    #[test]
    fn any_checkpoint_round_trips(
        step in any::<u64>(),
        class_names in proptest::collection::vec(".{0,8}", 0..4),
        model in proptest::collection::vec(any::<u8>(), 0..64),
        optimizer in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let mut checkpoint = sample();
        checkpoint.meta.step = step;
        checkpoint.meta.class_names = class_names;
        checkpoint.model = model;
        checkpoint.optimizer = optimizer;
        prop_assert_eq!(decode_checked(&checkpoint.encode())?, Some(checkpoint));
    }
}

#[test]
fn a_header_length_past_the_end_is_refused_by_name() {
    let err = Checkpoint::decode(&checkpoint_bytes(u32::MAX, b"{}", &[])).unwrap_err();
    assert_eq!(err, "header length exceeds the file");
}

#[test]
fn section_lengths_that_overflow_are_refused_without_allocating() {
    let header = header_json(u64::MAX, 2);
    let err = Checkpoint::decode(&checkpoint_bytes(header.len() as u32, &header, &[0])).unwrap_err();
    assert_eq!(err, "section lengths do not match the file");
}

#[test]
fn corpus_replays_without_panics() {
    for (name, bytes) in fuzz_support::corpus("checkpoint") {
        let decoded = Checkpoint::decode(&bytes);
        if let Ok(checkpoint) = &decoded {
            assert!(checkpoint.model.len() + checkpoint.optimizer.len() < bytes.len(), "corpus file {name}");
        }
        assert_eq!(decoded.is_ok(), name.starts_with("valid-"), "corpus file {name}: {:?}", decoded.err());
    }
}
