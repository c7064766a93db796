//! Gradient reduction through the coordinator: each member streams its flat f32 gradient in
//! chunks; chunks are checked and added into one running sum.
//!
//! Floating-point addition is not associative, so the sum is always taken in rank order,
//! `((g0 + g1) + g2) + ...`, whatever order the chunks arrive in: a job's result must not depend
//! on network timing. A contributor's values are added as soon as every lower rank has added
//! the same elements; until then they wait in a buffer. Contributors that stream in step keep
//! the buffers small; memory is one gradient vector plus what arrived ahead of its turn.
//!
//! The sum is what workers apply: each worker scaled its loss by its share of the global batch.

use std::collections::VecDeque;

/// A gradient contribution that cannot be accepted; the sender is evicted with this reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadGradient {
    #[error("gradient has {got} elements, expected {expected}")]
    WrongLength { got: u64, expected: u64 },
    #[error("chunk [{offset}, {end}) lies outside the {total}-element gradient or overlaps what was sent")]
    BadChunk { offset: u64, end: u64, total: u64 },
    #[error("chunk payload of {0} bytes is not whole values")]
    Ragged(usize),
    #[error("non-finite value (NaN or infinity) at element {0}")]
    NonFinite(u64),
}

#[derive(Debug, Clone)]
struct Contributor {
    name: String,
    /// Elements received (chunks arrive in order on each stream).
    received: usize,
    /// Elements already added into the sum.
    summed: usize,
    /// Received but not yet added: elements `[summed, received)`.
    waiting: VecDeque<f32>,
}

#[derive(Debug, Clone)]
pub struct GradientSum {
    total: usize,
    sum: Vec<f32>,
    /// In rank order: the order of the additions.
    contributors: Vec<Contributor>,
}

impl GradientSum {
    /// A sum of `total`-element vectors from `ranks`, added in that order.
    pub fn new(total: usize, ranks: &[String]) -> Self {
        let contributors = ranks
            .iter()
            .map(|name| Contributor { name: name.clone(), received: 0, summed: 0, waiting: VecDeque::new() })
            .collect();
        Self { total, sum: vec![0.0; total], contributors }
    }

    /// Adds one chunk of decoded values from `contributor` (a rank given to [`Self::new`]).
    /// Returns true when that contributor's vector is now complete. A refused chunk changes
    /// nothing.
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
        let end = offset + values.len() as u64;
        let Some(rank) = self.contributors.iter().position(|c| c.name == contributor) else {
            return Err(BadGradient::BadChunk { offset, end, total });
        };
        if offset != self.contributors[rank].received as u64 || end > total {
            return Err(BadGradient::BadChunk { offset, end, total });
        }
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            return Err(BadGradient::NonFinite(offset + i as u64));
        }
        let entry = &mut self.contributors[rank];
        entry.waiting.extend(values);
        entry.received = end as usize;
        self.add_in_rank_order();
        Ok(end as usize == self.total)
    }

    /// Adds every waiting value whose lower ranks are already in the sum.
    fn add_in_rank_order(&mut self) {
        let mut limit = self.total;
        for contributor in &mut self.contributors {
            let upto = contributor.received.min(limit);
            if upto > contributor.summed {
                let values = contributor.waiting.drain(..upto - contributor.summed);
                for (slot, value) in self.sum[contributor.summed..upto].iter_mut().zip(values) {
                    *slot += value;
                }
                contributor.summed = upto;
            }
            limit = contributor.summed;
        }
    }

    pub fn is_complete_for(&self, contributor: &str) -> bool {
        self.contributors.iter().any(|c| c.name == contributor && c.received == self.total)
    }

    /// Every contributor's values are in the sum.
    pub fn is_complete(&self) -> bool {
        self.contributors.iter().all(|c| c.summed == self.total)
    }

    pub fn into_sum(self) -> Vec<f32> {
        debug_assert!(self.is_complete(), "the sum is taken only once every rank is in");
        self.sum
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ranks(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("w{i}")).collect()
    }

    #[test]
    fn chunked_contributions_sum_elementwise() {
        let mut sum = GradientSum::new(4, &ranks(2));
        assert!(!sum.add_values("w0", 4, 0, &[1.0, 2.0]).unwrap());
        assert!(sum.add_values("w0", 4, 2, &[3.0, 4.0]).unwrap());
        assert!(sum.add_values("w1", 4, 0, &[0.5, 0.5, 0.5, 0.5]).unwrap());
        assert!(sum.is_complete());
        assert_eq!(sum.into_sum(), vec![1.5, 2.5, 3.5, 4.5]);
    }

    proptest::proptest! {
        /// Values whose sum depends on the order of the additions (1e8 + 1 - 1e8 is 0 in f32 one
        /// way round and 1 the other): however the contributors chunk their vectors and however
        /// the chunks interleave, the result is the rank-order sum, bit for bit.
        #[test]
        fn the_sum_is_the_rank_order_sum_whatever_the_arrival_order(
            vectors in proptest::collection::vec(
                proptest::collection::vec(proptest::sample::select(vec![1e8f32, -1e8, 1.0, -1.0, 0.1, 3e-5]), 12), 1..5),
            chunk in 1usize..13,
            arrival in proptest::collection::vec(0usize..5, 0..64),
        ) {
            let n = vectors.len();
            let mut sum = GradientSum::new(12, &ranks(n));
            let mut sent = vec![0usize; n];
            // Interleave the streams in the drawn order, then finish them in reverse rank order.
            let order = arrival.iter().map(|a| a % n).chain((0..n).rev().flat_map(|r| std::iter::repeat_n(r, 12)));
            for rank in order {
                if sent[rank] < 12 {
                    let end = (sent[rank] + chunk).min(12);
                    sum.add_values(&format!("w{rank}"), 12, sent[rank] as u64, &vectors[rank][sent[rank]..end]).unwrap();
                    sent[rank] = end;
                }
            }
            proptest::prop_assert!(sum.is_complete());
            let expected: Vec<f32> = (0..12).map(|j| vectors.iter().fold(0.0f32, |acc, v| acc + v[j])).collect();
            let got = sum.into_sum();
            proptest::prop_assert_eq!(
                got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                expected.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
            );
        }
    }

    #[test]
    fn order_matters_for_these_values_so_the_test_above_can_fail() {
        let (a, b, c) = (1e8f32, 1.0f32, -1e8f32);
        assert_ne!((a + b) + c, (a + c) + b);
    }

    #[test]
    fn malformed_contributions_are_refused_without_touching_the_sum() {
        let mut sum = GradientSum::new(4, &ranks(1));
        assert_eq!(sum.add_values("w0", 5, 0, &[1.0]), Err(BadGradient::WrongLength { got: 5, expected: 4 }));
        assert!(matches!(sum.add_values("w0", 4, 2, &[1.0]), Err(BadGradient::BadChunk { .. })));
        assert!(matches!(sum.add_values("w0", 4, 0, &[1.0; 5]), Err(BadGradient::BadChunk { .. })));
        assert!(matches!(sum.add_values("stranger", 4, 0, &[1.0]), Err(BadGradient::BadChunk { .. })));
        assert_eq!(sum.add_values("w0", 4, 0, &[1.0, f32::NAN]), Err(BadGradient::NonFinite(1)));
        assert!(!sum.is_complete());
        sum.add_values("w0", 4, 0, &[1.0; 4]).unwrap();
        assert_eq!(sum.into_sum(), vec![1.0; 4]);
    }
}
