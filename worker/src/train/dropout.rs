//! Dropout masks drawn from the job seed and each sample's cursor position: the same sample
//! gets the same mask whichever worker trains it and whether or not the job was resumed.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::data::augment::sample_seed;
use crate::data::shard::Pick;

/// `[picks.len(), width]` values, each `1/keep_prob` with probability `keep_prob`, else 0.
pub fn dropout_mask(picks: &[Pick], width: usize, keep_prob: f64, seed: u64) -> Vec<f32> {
    let scale = (1.0 / keep_prob) as f32;
    let mut mask = Vec::with_capacity(picks.len() * width);
    for pick in picks {
        let mut rng = ChaCha8Rng::seed_from_u64(sample_seed(&[seed, pick.position, 0xd509]));
        mask.extend((0..width).map(|_| if rng.random_bool(keep_prob) { scale } else { 0.0 }));
    }
    mask
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_depend_on_the_sample_not_on_its_batch() {
        let picks: Vec<Pick> = (0..4).map(|i| Pick { position: 10 + i, epoch: 0, row: i as usize }).collect();
        let whole = dropout_mask(&picks, 8, 0.7, 1);
        let second_half = dropout_mask(&picks[2..], 8, 0.7, 1);
        assert_eq!(&whole[16..], &second_half[..]);
        let kept = whole.iter().filter(|&&v| v > 0.0).count();
        assert!(kept > 10 && kept < 32, "{kept}");
        assert!(whole.iter().all(|&v| v == 0.0 || (v - 1.0 / 0.7).abs() < 1e-6));
    }
}
