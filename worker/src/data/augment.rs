//! The tutorial's augmentations, as tf.image does them on float images in [0, 1]:
//! random left-right flip, brightness delta in [-0.5, 0.5], contrast factor in [0.2, 2.0]
//! (around each channel's mean), hue shift in [-0.08, 0.08] turns, saturation factor in
//! [0.2, 2.0], then a clip to [0, 1].
//!
//! Each sample gets its own RNG from (seed, epoch, sample), so a run is reproducible and a
//! sample is augmented the same way whichever worker loads it. Output is CHW, the layout the
//! model reads, written straight into the batch buffer.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

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
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Draws {
    pub flip: bool,
    pub brightness: f32,
    pub contrast: f32,
    pub hue: f32,
    pub saturation: f32,
}

impl Draws {
    pub fn sample(spec: &AugmentSpec, seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let flip = rng.random::<bool>();
        let brightness = rng.random_range(-0.5f32..=0.5);
        let contrast = rng.random_range(0.2f32..=2.0);
        let hue = rng.random_range(-0.08f32..=0.08);
        let saturation = rng.random_range(0.2f32..=2.0);
        Self {
            flip: spec.flip && flip,
            brightness: if spec.brightness { brightness } else { 0.0 },
            contrast: if spec.contrast { contrast } else { 1.0 },
            hue: if spec.hue { hue } else { 0.0 },
            saturation: if spec.saturation { saturation } else { 1.0 },
        }
    }

    pub fn identity() -> Self {
        Self { flip: false, brightness: 0.0, contrast: 1.0, hue: 0.0, saturation: 1.0 }
    }

    fn touches_colour(&self) -> bool {
        self.hue != 0.0 || self.saturation != 1.0
    }
}

/// Writes `pixels` (HWC u8, `side x side`) augmented by `draws` into `out` (CHW f32, 3*side*side).
pub fn augment_into(pixels: &[u8], side: usize, draws: &Draws, out: &mut [f32]) {
    let plane = side * side;
    assert_eq!(pixels.len(), plane * 3);
    assert_eq!(out.len(), plane * 3);
    let (r_plane, rest) = out.split_at_mut(plane);
    let (g_plane, b_plane) = rest.split_at_mut(plane);
    // Flip and brightness, u8 HWC -> f32 CHW.
    for y in 0..side {
        for x in 0..side {
            let src_x = if draws.flip { side - 1 - x } else { x };
            let src = (y * side + src_x) * 3;
            let dst = y * side + x;
            r_plane[dst] = pixels[src] as f32 / 255.0 + draws.brightness;
            g_plane[dst] = pixels[src + 1] as f32 / 255.0 + draws.brightness;
            b_plane[dst] = pixels[src + 2] as f32 / 255.0 + draws.brightness;
        }
    }
    if draws.contrast != 1.0 {
        for channel in [&mut *r_plane, &mut *g_plane, &mut *b_plane] {
            let mean = channel.iter().sum::<f32>() / plane as f32;
            channel.iter_mut().for_each(|v| *v = (*v - mean) * draws.contrast + mean);
        }
    }
    if draws.touches_colour() {
        for i in 0..plane {
            let (r, g, b) = adjust_hsv(r_plane[i], g_plane[i], b_plane[i], draws.hue, draws.saturation);
            (r_plane[i], g_plane[i], b_plane[i]) = (r, g, b);
        }
    }
    out.iter_mut().for_each(|v| *v = v.clamp(0.0, 1.0));
}

/// Shifts hue by `hue` turns and scales saturation by `saturation`, via HSV. Inputs are clamped
/// to [0, 1] first: HSV is undefined outside it.
fn adjust_hsv(r: f32, g: f32, b: f32, hue: f32, saturation: f32) -> (f32, f32, f32) {
    let (r, g, b) = (r.clamp(0.0, 1.0), g.clamp(0.0, 1.0), b.clamp(0.0, 1.0));
    let max = r.max(g).max(b);
    let min = r.min(g).min(b);
    let delta = max - min;
    if max <= 0.0 {
        return (0.0, 0.0, 0.0);
    }
    let mut h = if delta == 0.0 {
        0.0
    } else if max == r {
        ((g - b) / delta).rem_euclid(6.0) / 6.0
    } else if max == g {
        ((b - r) / delta + 2.0) / 6.0
    } else {
        ((r - g) / delta + 4.0) / 6.0
    };
    h = (h + hue).rem_euclid(1.0);
    let s = (delta / max * saturation).clamp(0.0, 1.0);
    let v = max;
    let sector = h * 6.0;
    let c = v * s;
    let x = c * (1.0 - (sector.rem_euclid(2.0) - 1.0).abs());
    let m = v - c;
    let (r, g, b) = match sector as u32 {
        0 => (c, x, 0.0),
        1 => (x, c, 0.0),
        2 => (0.0, c, x),
        3 => (0.0, x, c),
        4 => (x, 0.0, c),
        _ => (c, 0.0, x),
    };
    (r + m, g + m, b + m)
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
        augment_into(&pixels, 4, &Draws::identity(), &mut out);
        assert_eq!(out[0], pixels[0] as f32 / 255.0);
        assert_eq!(out[16], pixels[1] as f32 / 255.0);
        assert_eq!(out[32 + 5], pixels[5 * 3 + 2] as f32 / 255.0);
    }

    #[test]
    fn flip_mirrors_each_row() {
        let pixels = image(4);
        let (mut plain, mut flipped) = (vec![0.0; 48], vec![0.0; 48]);
        augment_into(&pixels, 4, &Draws::identity(), &mut plain);
        augment_into(&pixels, 4, &Draws { flip: true, ..Draws::identity() }, &mut flipped);
        for y in 0..4 {
            for x in 0..4 {
                assert_eq!(flipped[y * 4 + x], plain[y * 4 + 3 - x]);
            }
        }
    }

    #[test]
    fn hsv_round_trip_is_lossless_without_changes() {
        for &(r, g, b) in &[(0.2, 0.4, 0.6), (0.9, 0.1, 0.1), (0.5, 0.5, 0.5), (0.0, 1.0, 0.3)] {
            let (r2, g2, b2) = adjust_hsv(r, g, b, 0.0, 1.0);
            assert!((r - r2).abs() < 1e-5 && (g - g2).abs() < 1e-5 && (b - b2).abs() < 1e-5, "{r} {g} {b}");
        }
        // Zero saturation gives grey at the original value.
        let (r, g, b) = adjust_hsv(0.9, 0.1, 0.1, 0.0, 0.0);
        assert!((r - 0.9).abs() < 1e-6 && (g - 0.9).abs() < 1e-6 && (b - 0.9).abs() < 1e-6);
    }

    #[test]
    fn draws_are_seeded_in_tutorial_ranges_and_output_is_clipped() {
        let spec = AugmentSpec::default();
        assert_eq!(Draws::sample(&spec, 7), Draws::sample(&spec, 7));
        assert_ne!(Draws::sample(&spec, 7), Draws::sample(&spec, 8));
        for seed in 0..200 {
            let d = Draws::sample(&spec, seed);
            assert!((-0.5..=0.5).contains(&d.brightness) && (0.2..=2.0).contains(&d.contrast));
            assert!((-0.08..=0.08).contains(&d.hue) && (0.2..=2.0).contains(&d.saturation));
            let mut out = vec![0.0; 48];
            augment_into(&image(4), 4, &d, &mut out);
            assert!(out.iter().all(|v| (0.0..=1.0).contains(v)));
        }
        assert_eq!(Draws::sample(&AugmentSpec::none(), 3), Draws::identity());
    }
}
