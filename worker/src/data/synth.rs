//! A small generated face-like dataset, deterministic for a seed, so the demo and the tests run
//! with no data at hand. Each "person" has a face shape, skin tone, hair colour and eye spacing
//! of their own; each photo moves, lights and noises the face differently. Written as real JPEG
//! files with the tutorial's CSV layout (`train.csv`, `validate.csv`, paths relative to them).

use std::path::Path;

use image::{Rgb, RgbImage};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::data::augment::sample_seed;
use crate::error::{Error, Result};

/// Photos per person and split a synthetic dataset may have: an empty split is no dataset, and
/// the bound keeps a mistyped count from filling a disk.
pub const PER_PERSON: std::ops::RangeInclusive<u32> = 1..=100_000;

pub const PEOPLE: [&str; 5] = ["Ada_Lovelace", "Alan_Turing", "Grace_Hopper", "Edsger_Dijkstra", "Barbara_Liskov"];

#[derive(Debug, Clone)]
pub struct SynthOptions {
    pub side: u32,
    pub train_per_person: usize,
    pub validate_per_person: usize,
    pub seed: u64,
}

impl Default for SynthOptions {
    fn default() -> Self {
        Self { side: 96, train_per_person: 40, validate_per_person: 10, seed: 7 }
    }
}

impl SynthOptions {
    /// What is out of range, named as the option.
    pub fn validate(&self) -> std::result::Result<(), String> {
        let per_person = |n: usize| u32::try_from(n).is_ok_and(|n| PER_PERSON.contains(&n));
        let checks = [
            (
                crate::data::image::MODEL_SIDES.contains(&self.side),
                "side",
                self.side as usize,
                crate::data::image::MODEL_SIDES,
            ),
            (per_person(self.train_per_person), "train_per_person", self.train_per_person, PER_PERSON),
            (per_person(self.validate_per_person), "validate_per_person", self.validate_per_person, PER_PERSON),
        ];
        for (ok, name, value, range) in checks {
            if !ok {
                let (low, high) = (range.start(), range.end());
                return Err(format!("{name} = {value}: expected {low}..={high}"));
            }
        }
        Ok(())
    }
}

struct Person {
    skin: [f32; 3],
    hair: [f32; 3],
    face_width: f32,
    face_height: f32,
    eye_gap: f32,
    hair_line: f32,
}

fn person(index: usize) -> Person {
    let mut rng = ChaCha8Rng::seed_from_u64(sample_seed(&[0xface, index as u64]));
    let hair_colours =
        [[40.0, 30.0, 25.0], [200.0, 170.0, 90.0], [150.0, 60.0, 30.0], [120.0, 120.0, 125.0], [25.0, 25.0, 60.0]];
    Person {
        skin: [rng.random_range(150.0..240.0), rng.random_range(110.0..190.0), rng.random_range(90.0..160.0)],
        hair: hair_colours[index % hair_colours.len()],
        face_width: 0.26 + 0.03 * (index % 3) as f32,
        face_height: 0.34 + 0.03 * (index % 2) as f32,
        eye_gap: 0.09 + 0.025 * (index % 4) as f32,
        hair_line: 0.22 + 0.05 * (index % 5) as f32 / 2.0,
    }
}

/// Writes the dataset under `dir` and returns the number of images written. Options out of
/// range are refused before anything is written.
pub fn write_synthetic_dataset(dir: &Path, options: &SynthOptions) -> Result<usize> {
    options.validate().map_err(|message| Error::BadDataset { file: dir.display().to_string(), message })?;
    let mut written = 0;
    for (split, per_person) in [("train", options.train_per_person), ("validate", options.validate_per_person)] {
        let mut csv = String::new();
        for (label, name) in PEOPLE.iter().enumerate() {
            let folder = dir.join(split).join(name);
            std::fs::create_dir_all(&folder)
                .map_err(|e| Error::io(format!("cannot create {}", folder.display()), e))?;
            for n in 0..per_person {
                let seed = sample_seed(&[options.seed, label as u64, n as u64, split.len() as u64]);
                let image = render(&person(label), options.side, seed);
                let relative = format!("{split}/{name}/{name}_{n:04}.jpg");
                let path = dir.join(&relative);
                image
                    .save(&path)
                    .map_err(|e| Error::io(format!("cannot write {}", path.display()), std::io::Error::other(e)))?;
                csv.push_str(&format!("{relative},{name},{label}\n"));
                written += 1;
            }
        }
        let csv_path = dir.join(format!("{split}.csv"));
        std::fs::write(&csv_path, csv).map_err(|e| Error::io(format!("cannot write {}", csv_path.display()), e))?;
    }
    Ok(written)
}

fn render(person: &Person, side: u32, seed: u64) -> RgbImage {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let s = side as f32;
    let (cx, cy) = (s * (0.5 + rng.random_range(-0.06..0.06)), s * (0.52 + rng.random_range(-0.05..0.05)));
    let scale = rng.random_range(0.9..1.1);
    let light = rng.random_range(0.7..1.25);
    let background = [rng.random_range(30.0..220.0), rng.random_range(30.0..220.0), rng.random_range(30.0..220.0)];
    let (fw, fh) = (person.face_width * s * scale, person.face_height * s * scale);
    let eye_y = cy - fh * 0.15;
    let eye_dx = person.eye_gap * s * scale;
    let eye_r = 0.035 * s * scale;
    let mouth_y = cy + fh * 0.45;
    RgbImage::from_fn(side, side, |x, y| {
        let (px, py) = (x as f32 + 0.5, y as f32 + 0.5);
        let face = ((px - cx) / fw).powi(2) + ((py - cy) / fh).powi(2) <= 1.0;
        let hair = ((px - cx) / (fw * 1.12)).powi(2) + ((py - cy) / (fh * 1.1)).powi(2) <= 1.0
            && py < cy - fh * (1.0 - person.hair_line * 2.0);
        let eye = ((px - (cx - eye_dx)).powi(2) + (py - eye_y).powi(2)).sqrt() < eye_r
            || ((px - (cx + eye_dx)).powi(2) + (py - eye_y).powi(2)).sqrt() < eye_r;
        let mouth = (py - mouth_y).abs() < 0.015 * s && (px - cx).abs() < fw * 0.35;
        let base = if hair {
            person.hair
        } else if eye {
            [20.0, 20.0, 30.0]
        } else if mouth {
            [150.0, 50.0, 60.0]
        } else if face {
            person.skin
        } else {
            background
        };
        let noise = rng.random_range(-12.0..12.0);
        Rgb(base.map(|c| (c * light + noise).clamp(0.0, 255.0) as u8))
    })
}
