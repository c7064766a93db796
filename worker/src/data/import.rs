//! Turning folders of photos into a dataset (`facectl dataset import`): the decisions, without
//! I/O. Near-duplicate photos of one person are grouped by a difference hash of a small grey
//! thumbnail, and a group goes to one side of the train/validate split as a whole, so a
//! validation image is never a copy (or a resized, recompressed copy) of a training one.

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use crate::data::image::RgbImage;

/// A 256-bit difference hash (16 rows of 16 neighbour comparisons).
pub type Hash = [u64; 4];

/// Two photos whose hashes differ in at most this many of 256 bits are taken for the same photo
/// (a copy, a resize, a recompression, a one-pixel crop). Measured on lfw5 (aligned face crops,
/// the hard case: the faces line up): different photos of one person differ in 46 bits or more,
/// copies resized and recompressed (JPEG 60-90) or cropped by a pixel in 26 at most. The 64-bit
/// hash (9x8) could not tell them apart: 4 bits against 8.
pub const NEAR_DUPLICATE_BITS: u32 = 32;

/// Bits in which two hashes differ.
pub fn distance(a: &Hash, b: &Hash) -> u32 {
    a.iter().zip(b).map(|(x, y)| (x ^ y).count_ones()).sum()
}

/// The difference hash of an image: a 17x16 grey thumbnail (box-averaged), one bit per
/// horizontal neighbour pair (left brighter than right). Robust to scaling, compression and
/// small colour shifts.
pub fn difference_hash(image: &RgbImage) -> Hash {
    let (w, h) = (17usize, 16usize);
    let side = image.side;
    let grey = |x: usize, y: usize| -> f64 {
        // Mean over the thumbnail cell, so every source pixel counts.
        let (x0, x1) = (x * side / w, ((x + 1) * side / w).max(x * side / w + 1).min(side));
        let (y0, y1) = (y * side / h, ((y + 1) * side / h).max(y * side / h + 1).min(side));
        let mut sum = 0.0;
        for yy in y0..y1 {
            for xx in x0..x1 {
                let p = &image.pixels[(yy * side + xx) * 3..][..3];
                sum += 0.299 * f64::from(p[0]) + 0.587 * f64::from(p[1]) + 0.114 * f64::from(p[2]);
            }
        }
        sum / ((x1 - x0) * (y1 - y0)).max(1) as f64
    };
    let mut hash = [0u64; 4];
    for y in 0..h {
        let row: Vec<f64> = (0..w).map(|x| grey(x, y)).collect();
        for x in 0..16 {
            let bit = y * 16 + x;
            hash[bit / 64] |= u64::from(row[x] > row[x + 1]) << (bit % 64);
        }
    }
    hash
}

/// Groups of near-duplicates among one person's hashes (indices into `hashes`, ascending; every
/// index in exactly one group; groups in order of their first member).
pub fn near_duplicate_groups(hashes: &[Hash]) -> Vec<Vec<usize>> {
    let mut parent: Vec<usize> = (0..hashes.len()).collect();
    fn root(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    for i in 0..hashes.len() {
        for j in i + 1..hashes.len() {
            if distance(&hashes[i], &hashes[j]) <= NEAR_DUPLICATE_BITS {
                let (a, b) = (root(&mut parent, i), root(&mut parent, j));
                parent[a.max(b)] = a.min(b);
            }
        }
    }
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut group_of = vec![usize::MAX; hashes.len()];
    for i in 0..hashes.len() {
        let r = root(&mut parent, i);
        if group_of[r] == usize::MAX {
            group_of[r] = groups.len();
            groups.push(Vec::new());
        }
        groups[group_of[r]].push(i);
    }
    groups
}

/// Which of one person's images go to validation: whole groups, in a seeded order, until the
/// validation share reaches `fraction` of the person's images without passing it. At least one
/// image stays in training. Returns one flag per image (true: validation).
pub fn split_person(groups: &[Vec<usize>], fraction: f64, seed: u64) -> Vec<bool> {
    let total: usize = groups.iter().map(Vec::len).sum();
    let mut validate = vec![false; total];
    let target = ((total as f64) * fraction).round() as usize;
    let target = target.min(total.saturating_sub(1));
    let mut order: Vec<usize> = (0..groups.len()).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    let mut taken = 0;
    for g in order {
        if taken + groups[g].len() <= target {
            taken += groups[g].len();
            groups[g].iter().for_each(|&i| validate[i] = true);
        }
        if taken == target {
            break;
        }
    }
    validate
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A smooth picture (`phase` picks which), sampled at `side` pixels: a resize of the same scene.
    fn scene(side: usize, phase: f64) -> RgbImage {
        let mut pixels = Vec::with_capacity(side * side * 3);
        for y in 0..side {
            for x in 0..side {
                let (u, v) = (x as f64 / side as f64, y as f64 / side as f64);
                let value = 128.0 + 100.0 * (u * 7.0 + phase).sin() * (v * 5.0 - phase * 2.0).cos();
                let value = value as u8;
                pixels.extend([value, value / 2, 255 - value]);
            }
        }
        RgbImage { side, pixels }
    }

    #[test]
    fn a_resized_copy_hashes_alike_and_another_photo_does_not() {
        let original = difference_hash(&scene(96, 0.0));
        let smaller = difference_hash(&scene(40, 0.0));
        let other = difference_hash(&scene(96, 1.3));
        assert!(distance(&original, &smaller) <= NEAR_DUPLICATE_BITS, "{}", distance(&original, &smaller));
        assert!(distance(&original, &other) > NEAR_DUPLICATE_BITS, "{}", distance(&original, &other));
    }

    #[test]
    fn near_duplicates_group_transitively_and_every_image_is_in_one_group() {
        let ones = |n: u32| -> Hash { [(1u64 << n) - 1, 0, 0, 0] };
        let far = |n: u32| -> Hash { [0, 0, u64::MAX, (1u64 << n) - 1] };
        // 0~2 (20 bits), 2~4 (40: no), 0~4 (60: no), 1~3 (1 bit).
        let hashes = [ones(0), far(0), ones(20), far(1), ones(60)];
        assert_eq!(near_duplicate_groups(&hashes), vec![vec![0, 2], vec![1, 3], vec![4]]);
    }

    #[test]
    fn a_split_keeps_groups_whole_is_seeded_and_leaves_training_images() {
        let groups = vec![vec![0, 1, 2], vec![3], vec![4], vec![5], vec![6], vec![7], vec![8], vec![9]];
        let flags = split_person(&groups, 0.2, 7);
        assert_eq!(flags.iter().filter(|v| **v).count(), 2, "20% of 10");
        assert!(flags[0] == flags[1] && flags[1] == flags[2], "a group is on one side");
        assert_eq!(flags, split_person(&groups, 0.2, 7), "the same seed, the same split");
        assert_ne!(split_person(&groups, 0.5, 1), split_person(&groups, 0.5, 2));
        assert_eq!(split_person(&[vec![0]], 0.5, 1), vec![false], "one image stays in training");
        assert_eq!(split_person(&[vec![0, 1]], 0.5, 1), vec![false, false], "one group cannot be split");
    }
}
