//! Packing a dataset into shards (`facectl dataset pack`): the layout, without I/O. Images go
//! into a shard end to end, unchanged (no re-encoding), until it holds at least the target size;
//! an image never straddles two shards. The index is a dataset CSV whose rows name a shard and a
//! byte range of it (see `csv`), so packed data is read, checked and reported like any dataset.

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

/// The index's header: it marks the file as packed data for a reader of the CSV.
pub const INDEX_HEADER: [&str; 5] = ["shard_path", "offset", "length", "name", "label"];
/// The index's file name inside the packed folder.
pub const INDEX_FILE: &str = "index.csv";
/// Shard size when none is asked for: big enough that a shard costs few requests to write and
/// list, small enough that a merged read of a run never comes near it.
pub const DEFAULT_SHARD_MB: u64 = 4;

/// A shard's file name inside the packed folder.
pub fn shard_name(index: usize) -> String {
    format!("shard-{index:05}.pack")
}

/// The order rows are packed in: shuffled once (seeded), so that a run of consecutive packed
/// rows, which a job draws as one unit, is a random group of faces rather than one person's.
pub fn pack_order(rows: usize, seed: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..rows).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    order
}

/// Where an image went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    pub shard: usize,
    pub offset: u64,
}

/// A shard ready to write: its number and bytes.
pub type Full = (usize, Vec<u8>);

/// Fills shards one after another.
#[derive(Debug)]
pub struct Packer {
    target: usize,
    shard: usize,
    buffer: Vec<u8>,
}

impl Packer {
    pub fn new(target_bytes: usize) -> Self {
        Self { target: target_bytes.max(1), shard: 0, buffer: Vec::new() }
    }

    /// Appends one image: where it went, and the shard it filled, if it did.
    pub fn add(&mut self, image: &[u8]) -> (Placement, Option<Full>) {
        let placement = Placement { shard: self.shard, offset: self.buffer.len() as u64 };
        self.buffer.extend_from_slice(image);
        if self.buffer.len() < self.target {
            return (placement, None);
        }
        let full = (self.shard, std::mem::take(&mut self.buffer));
        self.shard += 1;
        (placement, Some(full))
    }

    /// The last shard, unless it is empty.
    pub fn finish(self) -> Option<Full> {
        (!self.buffer.is_empty()).then_some((self.shard, self.buffer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_fill_shards_end_to_end_and_never_straddle_two() {
        let mut packer = Packer::new(10);
        let mut written = Vec::new();
        let mut placed = Vec::new();
        for image in [&b"aaaa"[..], b"bbbb", b"cccc", b"dddddddddddd", b"e"] {
            let (placement, full) = packer.add(image);
            placed.push(placement);
            written.extend(full);
        }
        written.extend(packer.finish());
        assert_eq!(
            placed,
            [(0, 0), (0, 4), (0, 8), (1, 0), (2, 0)].map(|(shard, offset)| Placement { shard, offset }).to_vec()
        );
        assert_eq!(written, vec![(0, b"aaaabbbbcccc".to_vec()), (1, b"dddddddddddd".to_vec()), (2, b"e".to_vec())]);
        assert!(Packer::new(10).finish().is_none(), "no empty last shard");
    }

    #[test]
    fn the_pack_order_is_a_seeded_permutation() {
        let order = pack_order(100, 5);
        let mut sorted = order.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..100).collect::<Vec<_>>());
        assert_eq!(order, pack_order(100, 5));
        assert_ne!(order, pack_order(100, 6));
        assert_eq!(shard_name(7), "shard-00007.pack");
    }
}
