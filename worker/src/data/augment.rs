//! The tutorial's augmentations, as tf.image does them on float images in [0, 1]:
//! random left-right flip, brightness delta in [-0.5, 0.5], contrast factor in [0.2, 2.0]
//! (around each channel's mean), hue shift in [-0.08, 0.08] turns, saturation factor in
//! [0.2, 2.0], then a clip to [0, 1].
//!
//! Each sample gets its own RNG from (seed, epoch, sample), so a run is reproducible and a
//! sample is augmented the same way whichever worker loads it. Output is CHW, the layout the
//! model reads, written straight into the batch buffer. The pixel loops live in
//! `facetrain-kernels`, built fully optimised and vectorised.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub use facetrain_kernels::augment::{Jitter, augment_into};

use crate::job::AugmentSpec;

/// Mixes identifiers into one RNG seed (splitmix64 finaliser over a running hash).
pub fn sample_seed(parts: &[u64]) -> u64 {
    parts.iter().fold(0x9e37_79b9_7f4a_7c15_u64, |acc, &part| {
        let mut z = acc ^ part.wrapping_add(0x9e37_79b9_7f4a_7c15).wrapping_add(acc << 6).wrapping_add(acc >> 2);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    })
}

/// The random draws for one sample; drawn in a fixed order whatever is enabled, so turning one
/// augmentation off does not change the others.
pub fn draw(spec: &AugmentSpec, seed: u64) -> Jitter {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let flip = rng.random::<bool>();
    let brightness = rng.random_range(-0.5f32..=0.5);
    let contrast = rng.random_range(0.2f32..=2.0);
    let hue = rng.random_range(-0.08f32..=0.08);
    let saturation = rng.random_range(0.2f32..=2.0);
    Jitter {
        flip: spec.flip && flip,
        brightness: if spec.brightness { brightness } else { 0.0 },
        contrast: if spec.contrast { contrast } else { 1.0 },
        hue: if spec.hue { hue } else { 0.0 },
        saturation: if spec.saturation { saturation } else { 1.0 },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(side: usize) -> Vec<u8> {
        (0..side * side * 3).map(|i| (i * 37 % 256) as u8).collect()
    }

    #[test]
    fn identity_converts_to_chw_unit_range() {
        let pixels = image(4);
        let mut out = vec![0.0; 48];
        augment_into(&pixels, 4, &Jitter::identity(), &mut out);
        assert_eq!(out[0], pixels[0] as f32 / 255.0);
        assert_eq!(out[16], pixels[1] as f32 / 255.0);
        assert_eq!(out[32 + 5], pixels[5 * 3 + 2] as f32 / 255.0);
    }

    #[test]
    fn flip_mirrors_each_row() {
        let pixels = image(4);
        let (mut plain, mut flipped) = (vec![0.0; 48], vec![0.0; 48]);
        augment_into(&pixels, 4, &Jitter::identity(), &mut plain);
        augment_into(&pixels, 4, &Jitter { flip: true, ..Jitter::identity() }, &mut flipped);
        for y in 0..4 {
            for x in 0..4 {
                assert_eq!(flipped[y * 4 + x], plain[y * 4 + 3 - x]);
            }
        }
    }

    #[test]
    fn draws_are_seeded_in_tutorial_ranges_and_output_is_clipped() {
        let spec = AugmentSpec::default();
        assert_eq!(draw(&spec, 7), draw(&spec, 7));
        assert_ne!(draw(&spec, 7), draw(&spec, 8));
        for seed in 0..200 {
            let d = draw(&spec, seed);
            assert!((-0.5..=0.5).contains(&d.brightness) && (0.2..=2.0).contains(&d.contrast));
            assert!((-0.08..=0.08).contains(&d.hue) && (0.2..=2.0).contains(&d.saturation));
            let mut out = vec![0.0; 48];
            augment_into(&image(4), 4, &d, &mut out);
            assert!(out.iter().all(|v| (0.0..=1.0).contains(v)));
        }
        assert_eq!(draw(&AugmentSpec::none(), 3), Jitter::identity());
    }
}
