//! Gradient reduction through the coordinator: each member streams its flat f32 gradient in
//! chunks; chunks are checked and added into one running sum as they arrive, so memory stays at
//! one gradient vector per job however many workers push.
//!
//! The sum is what workers apply: each worker scaled its loss by its share of the global batch.

use std::collections::BTreeMap;

/// A gradient contribution that cannot be accepted; the sender is evicted with this reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadGradient {
    #[error("gradient has {got} elements, expected {expected}")]
    WrongLength { got: u64, expected: u64 },
    #[error("chunk [{offset}, {end}) lies outside the {total}-element gradient or overlaps what was sent")]
    BadChunk { offset: u64, end: u64, total: u64 },
    #[error("chunk payload of {0} bytes is not whole f32 values")]
    Ragged(usize),
    #[error("non-finite value (NaN or infinity) at element {0}")]
    NonFinite(u64),
}

#[derive(Debug, Clone)]
pub struct GradientSum {
    total: usize,
    sum: Vec<f32>,
    /// Elements received so far from each contributor (chunks arrive in order per stream).
    received: BTreeMap<String, usize>,
    complete: usize,
}

impl GradientSum {
    pub fn new(total: usize) -> Self {
        Self { total, sum: vec![0.0; total], received: BTreeMap::new(), complete: 0 }
    }

    /// Adds one chunk of f32 bytes from `contributor`. Returns true when it is now complete.
    pub fn add_chunk(&mut self, contributor: &str, total: u64, offset: u64, data: &[u8]) -> Result<bool, BadGradient> {
        let values = facetrain_proto::bytes_to_f32(data).ok_or(BadGradient::Ragged(data.len()))?;
        self.add_values(contributor, total, offset, &values)
    }

    /// Adds one chunk of decoded values from `contributor`. Returns true when it is now complete.
    pub fn add_values(
        &mut self,
        contributor: &str,
        total: u64,
        offset: u64,
        values: &[f32],
    ) -> Result<bool, BadGradient> {
        if total != self.total as u64 {
            return Err(BadGradient::WrongLength { got: total, expected: self.total as u64 });
        }
        let expected_offset = *self.received.get(contributor).unwrap_or(&0);
        let end = offset + values.len() as u64;
        if offset != expected_offset as u64 || end > total {
            return Err(BadGradient::BadChunk { offset, end, total });
        }
        let start = offset as usize;
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            return Err(BadGradient::NonFinite((start + i) as u64));
        }
        // Validate the whole chunk before touching the sum, so a refused chunk changes nothing.
        for (slot, value) in self.sum[start..end as usize].iter_mut().zip(values) {
            *slot += value;
        }
        self.received.insert(contributor.to_string(), end as usize);
        let done = end as usize == self.total;
        if done {
            self.complete += 1;
        }
        Ok(done)
    }

    pub fn is_complete_for(&self, contributor: &str) -> bool {
        self.received.get(contributor) == Some(&self.total)
    }

    pub fn completed(&self) -> usize {
        self.complete
    }

    pub fn into_sum(self) -> Vec<f32> {
        self.sum
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(values: &[f32]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    #[test]
    fn chunked_contributions_sum_elementwise() {
        let mut sum = GradientSum::new(4);
        assert!(!sum.add_chunk("a", 4, 0, &bytes(&[1.0, 2.0])).unwrap());
        assert!(sum.add_chunk("a", 4, 2, &bytes(&[3.0, 4.0])).unwrap());
        assert!(sum.add_chunk("b", 4, 0, &bytes(&[0.5, 0.5, 0.5, 0.5])).unwrap());
        assert_eq!(sum.completed(), 2);
        assert_eq!(sum.into_sum(), vec![1.5, 2.5, 3.5, 4.5]);
    }

    proptest::proptest! {
        /// However each contributor chunks its vector, the sum is the elementwise sum (and /N the mean).
        #[test]
        fn the_sum_does_not_depend_on_chunking(
            vectors in proptest::collection::vec(proptest::collection::vec(-1000i32..1000, 12), 1..5),
            chunk in 1usize..13,
        ) {
            let mut sum = GradientSum::new(12);
            for (i, vector) in vectors.iter().enumerate() {
                let values: Vec<f32> = vector.iter().map(|v| *v as f32 / 8.0).collect();
                for (n, piece) in values.chunks(chunk).enumerate() {
                    sum.add_chunk(&format!("w{i}"), 12, (n * chunk) as u64, &bytes(piece)).unwrap();
                }
            }
            proptest::prop_assert_eq!(sum.completed(), vectors.len());
            let expected: Vec<f32> = (0..12).map(|j| vectors.iter().map(|v| v[j] as f32 / 8.0).sum()).collect();
            proptest::prop_assert_eq!(sum.into_sum(), expected);
        }
    }

    #[test]
    fn malformed_contributions_are_refused_without_touching_the_sum() {
        let mut sum = GradientSum::new(4);
        assert_eq!(sum.add_chunk("a", 5, 0, &bytes(&[1.0])), Err(BadGradient::WrongLength { got: 5, expected: 4 }));
        assert_eq!(sum.add_chunk("a", 4, 0, &[0, 0, 0]), Err(BadGradient::Ragged(3)));
        assert!(matches!(sum.add_chunk("a", 4, 2, &bytes(&[1.0])), Err(BadGradient::BadChunk { .. })));
        assert!(matches!(sum.add_chunk("a", 4, 0, &bytes(&[1.0; 5])), Err(BadGradient::BadChunk { .. })));
        assert_eq!(sum.add_chunk("a", 4, 0, &bytes(&[1.0, f32::NAN])), Err(BadGradient::NonFinite(1)));
        assert_eq!(sum.into_sum(), vec![0.0; 4]);
    }
}
