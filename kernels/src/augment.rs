//! The tutorial's augmentations on one image, as tf.image defines them on float images in
//! [0, 1]: left-right flip, brightness delta, contrast (around each channel's mean), hue shift
//! and saturation scale (through HSV), then a clip to [0, 1].
//!
//! As in the tutorial's TF graph, nothing is clipped between the steps: brightness and contrast
//! push values outside [0, 1], and the hue and saturation steps take them as they are, as
//! `tf.image.adjust_hue` and `adjust_saturation` do. Only the final clip bounds the output.
//!
//! Written as branch-free loops over f32 planes, which the compiler vectorises: brightness and
//! contrast fold into one multiply-add per value, and the HSV round trip uses selects and the
//! closed-form HSV-to-RGB instead of per-pixel sector branches and `rem_euclid` calls.

/// One sample's augmentation parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Jitter {
    pub flip: bool,
    /// Added to every value.
    pub brightness: f32,
    /// Scales each channel's distance from its mean.
    pub contrast: f32,
    /// Hue shift, in turns.
    pub hue: f32,
    /// Scales saturation.
    pub saturation: f32,
}

impl Jitter {
    pub fn identity() -> Self {
        Self { flip: false, brightness: 0.0, contrast: 1.0, hue: 0.0, saturation: 1.0 }
    }

    fn touches_colour(&self) -> bool {
        self.hue != 0.0 || self.saturation != 1.0
    }
}

/// Writes `pixels` (HWC u8, `side x side`) augmented by `jitter` into `out` (CHW f32).
pub fn augment_into(pixels: &[u8], side: usize, jitter: &Jitter, out: &mut [f32]) {
    let plane = side * side;
    assert_eq!(pixels.len(), plane * 3, "augment: HWC pixels for a {side}x{side} image");
    assert_eq!(out.len(), plane * 3, "augment: CHW output for a {side}x{side} image");
    let (r, rest) = out.split_at_mut(plane);
    let (g, b) = rest.split_at_mut(plane);
    let channel_sums = deinterleave(pixels, side, jitter.flip, [&mut *r, &mut *g, &mut *b]);
    for (channel, sum) in [&mut *r, &mut *g, &mut *b].into_iter().zip(channel_sums) {
        if jitter.contrast == 1.0 {
            // Exactly v/255 (+ brightness): evaluation and prediction see the plain conversion.
            channel.iter_mut().for_each(|v| *v = *v / 255.0 + jitter.brightness);
            continue;
        }
        // (v/255 + brightness - mean) * contrast + mean, with mean = sum/255/plane + brightness.
        let mean = sum as f32 / (255.0 * plane as f32) + jitter.brightness;
        let scale = jitter.contrast / 255.0;
        let offset = (jitter.brightness - mean) * jitter.contrast + mean;
        channel.iter_mut().for_each(|v| *v = *v * scale + offset);
    }
    if jitter.touches_colour() {
        adjust_hsv(r, g, b, jitter.hue, jitter.saturation);
    }
    out.iter_mut().for_each(|v| *v = v.clamp(0.0, 1.0));
}

/// HWC u8 -> three f32 planes of raw byte values (mirrored if `flip`); returns each channel's
/// exact integer sum, for the contrast mean.
fn deinterleave(pixels: &[u8], side: usize, flip: bool, [r, g, b]: [&mut [f32]; 3]) -> [u64; 3] {
    let mut sums = [0u64; 3];
    for (y, row) in pixels.chunks_exact(3 * side).enumerate() {
        let at = y * side;
        let (r, g, b) = (&mut r[at..at + side], &mut g[at..at + side], &mut b[at..at + side]);
        let mut row_sums = [0u32; 3];
        for (x, rgb) in row.chunks_exact(3).enumerate() {
            let x = if flip { side - 1 - x } else { x };
            (r[x], g[x], b[x]) = (f32::from(rgb[0]), f32::from(rgb[1]), f32::from(rgb[2]));
            for (sum, &value) in row_sums.iter_mut().zip(rgb) {
                *sum += u32::from(value);
            }
        }
        for (sum, row_sum) in sums.iter_mut().zip(row_sums) {
            *sum += u64::from(row_sum);
        }
    }
    sums
}

/// Shifts hue by `hue` turns and scales saturation, in place, through HSV, as
/// `tf.image.adjust_hue` followed by `tf.image.adjust_saturation` (skipped when `saturation` is
/// 1). Values outside [0, 1] are taken as they are, as TF does: the hue shift keeps each
/// pixel's largest and smallest channel; saturation is `(max - min) / max`, scaled and clamped
/// to [0, 1], and zero where the largest channel is not positive.
pub fn adjust_hsv(r: &mut [f32], g: &mut [f32], b: &mut [f32], hue: f32, saturation: f32) {
    let shift = hue * 6.0;
    let scale_saturation = saturation != 1.0;
    for ((r, g), b) in r.iter_mut().zip(g.iter_mut()).zip(b.iter_mut()) {
        let (red, green, blue) = (*r, *g, *b);
        let max = red.max(green).max(blue);
        let min = red.min(green).min(blue);
        let delta = max - min;
        // Hue in sixths of a turn, chosen by which channel is the maximum (selects, no branches).
        let safe_delta = if delta > 0.0 { delta } else { 1.0 };
        let from_red = (green - blue) / safe_delta;
        let from_green = (blue - red) / safe_delta + 2.0;
        let from_blue = (red - green) / safe_delta + 4.0;
        let sixths = if max == red {
            from_red
        } else if max == green {
            from_green
        } else {
            from_blue
        };
        let sixths = if delta > 0.0 { sixths } else { 0.0 } + shift;
        // One wrap is enough: the hue lies in (-1, 5] sixths and the shift in (-6, 6).
        let sixths = if sixths < 0.0 { sixths + 6.0 } else { sixths };
        let sixths = if sixths >= 6.0 { sixths - 6.0 } else { sixths };
        // A hue shift alone keeps the chroma; adjust_saturation rescales it from HSV.
        let safe_max = if max > 0.0 { max } else { 1.0 };
        let scaled = if max > 0.0 { max * (delta / safe_max * saturation).clamp(0.0, 1.0) } else { 0.0 };
        let chroma = if scale_saturation { scaled } else { delta };
        // Closed-form HSV -> RGB: channel n in {5, 3, 1} is v - c * clamp(min(k, 4 - k), 0, 1),
        // k = (n + hue) mod 6.
        let channel = |n: f32| {
            let k = n + sixths;
            let k = if k >= 6.0 { k - 6.0 } else { k };
            max - chroma * k.min(4.0 - k).clamp(0.0, 1.0)
        };
        (*r, *g, *b) = (channel(5.0), channel(3.0), channel(1.0));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The textbook sector-by-sector HSV round trip, for comparison.
    fn sector_hsv(r: f32, g: f32, b: f32, hue: f32, saturation: f32) -> (f32, f32, f32) {
        let max = r.max(g).max(b);
        let min = r.min(g).min(b);
        let delta = max - min;
        if max <= 0.0 {
            return (0.0, 0.0, 0.0);
        }
        let h = if delta == 0.0 {
            0.0
        } else if max == r {
            ((g - b) / delta).rem_euclid(6.0) / 6.0
        } else if max == g {
            ((b - r) / delta + 2.0) / 6.0
        } else {
            ((r - g) / delta + 4.0) / 6.0
        };
        let h = (h + hue).rem_euclid(1.0);
        let s = (delta / max * saturation).clamp(0.0, 1.0);
        let sector = h * 6.0;
        let c = max * s;
        let x = c * (1.0 - (sector.rem_euclid(2.0) - 1.0).abs());
        let m = max - c;
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

    #[test]
    fn closed_form_hsv_matches_the_sector_form() {
        let steps: Vec<f32> = (0..=10).map(|i| i as f32 / 10.0).collect();
        for &r in &steps {
            for &g in &steps {
                for &b in &steps {
                    for (hue, saturation) in [(0.0, 1.0), (0.08, 1.0), (-0.08, 0.2), (0.05, 2.0), (-0.01, 0.0)] {
                        let (mut rr, mut gg, mut bb) = ([r], [g], [b]);
                        adjust_hsv(&mut rr, &mut gg, &mut bb, hue, saturation);
                        let want = sector_hsv(r, g, b, hue, saturation);
                        let got = (rr[0], gg[0], bb[0]);
                        let close = |a: f32, b: f32| (a - b).abs() < 1e-5;
                        assert!(
                            close(got.0, want.0) && close(got.1, want.1) && close(got.2, want.2),
                            "rgb ({r}, {g}, {b}) hue {hue} sat {saturation}: got {got:?}, want {want:?}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn brightness_and_contrast_follow_tf_image() {
        // 2x2 image, one channel varying: tf.image.adjust_contrast((x/255 + d), c).
        let pixels: Vec<u8> = [10u8, 20, 30, 40].iter().flat_map(|&v| [v, 0, 255]).collect();
        let mut out = vec![0.0; 12];
        augment_into(&pixels, 2, &Jitter { brightness: 0.1, contrast: 1.5, ..Jitter::identity() }, &mut out);
        let values: Vec<f32> = [10.0f32, 20.0, 30.0, 40.0].iter().map(|v| v / 255.0 + 0.1).collect();
        let mean = values.iter().sum::<f32>() / 4.0;
        for (i, v) in values.iter().enumerate() {
            assert!((out[i] - ((v - mean) * 1.5 + mean)).abs() < 1e-6);
        }
        assert!(out[4..8].iter().all(|&v| (v - 0.1).abs() < 1e-6), "green: 0 + brightness");
        assert!(out[8..].iter().all(|&v| v == 1.0), "blue: clipped at 1");
    }

    #[test]
    fn hue_and_saturation_take_out_of_range_values_as_tf_image_does() {
        // tf.image.adjust_hue then adjust_saturation (TF 2.21) on pixels that brightness and
        // contrast pushed outside [0, 1], before any clip.
        let pixels = [[1.4, 0.2, -0.3], [-0.2, -0.5, -0.1], [0.3, 1.7, 0.9], [1.2, 1.1, 1.05], [0.5, -0.4, 0.6]];
        let cases: [(f32, f32, [[f32; 3]; 5]); 3] = [
            (
                0.05,
                1.5,
                [[1.4, 0.831765, 0.0], [-0.1; 3], [0.0, 1.7, 1.238571], [1.2, 1.1175, 0.975], [0.6, 0.0, 0.48]],
            ),
            // Hue alone keeps the smallest channel, even below 0.
            (
                0.07,
                1.0,
                [[1.4, 0.914, -0.3], [-0.1, -0.5, -0.168], [0.3, 1.7, 1.488], [1.2, 1.163, 1.05], [0.6, -0.4, 0.28]],
            ),
            (0.0, 1.8, [[1.4, 0.411765, 0.0], [-0.1; 3], [0.0, 1.7, 0.728571], [1.2, 1.02, 0.93], [0.54, 0.0, 0.6]]),
        ];
        for (hue, saturation, want) in cases {
            let mut r: Vec<f32> = pixels.iter().map(|p| p[0]).collect();
            let mut g: Vec<f32> = pixels.iter().map(|p| p[1]).collect();
            let mut b: Vec<f32> = pixels.iter().map(|p| p[2]).collect();
            adjust_hsv(&mut r, &mut g, &mut b, hue, saturation);
            for (i, want) in want.iter().enumerate() {
                let got = [r[i], g[i], b[i]];
                assert!(
                    got.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-5),
                    "pixel {:?} hue {hue} sat {saturation}: got {got:?}, want {want:?}",
                    pixels[i]
                );
            }
        }
    }

    #[test]
    fn only_the_output_is_clipped_as_in_the_tutorial_graph() {
        // flip, adjust_brightness, adjust_contrast, adjust_hue, adjust_saturation, then
        // clip_by_value(0, 1), by TF 2.21 on this 2x2 image (CHW out). Clipping before the hue
        // step, as facetrain once did, gives e.g. 0.0 and 0.4547 for the third and sixth values.
        let pixels: [u8; 12] = [250, 30, 10, 20, 200, 90, 128, 128, 128, 5, 60, 240];
        let cases: [(Jitter, [f32; 12]); 2] = [
            (
                Jitter { flip: true, brightness: 0.3, contrast: 1.9, hue: 0.05, saturation: 1.5 },
                [0.0, 1.0, 0.110312, 0.892181, 1.0, 0.731263, 0.0, 0.898137, 0.923289, 0.0, 1.0, 0.812108],
            ),
            (
                Jitter { flip: true, brightness: -0.35, contrast: 1.6, hue: -0.07, saturation: 0.4 },
                [
                    0.238651, 0.981569, 0.306078, 0.216078, 0.65902, 0.363922, 0.681883, 0.206126, 0.210784, 0.561373,
                    0.880588, 0.200784,
                ],
            ),
        ];
        for (jitter, want) in cases {
            let mut out = vec![0.0; 12];
            augment_into(&pixels, 2, &jitter, &mut out);
            assert!(out.iter().zip(&want).all(|(a, b)| (a - b).abs() < 1e-5), "{jitter:?}: got {out:?}, want {want:?}");
        }
    }
}
