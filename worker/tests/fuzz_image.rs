//! Image files come from datasets nobody vetted: any bytes, truncated or damaged JPEG/PNG, and
//! headers that claim huge sizes must end in a clear error, never a panic or a giant allocation.
// Test helpers: an unmet expectation is a failed test, which is what unwrap/expect say.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../fuzz/proptest_support.rs"]
mod fuzz_support;

use std::io::Cursor;

use facetrain_worker::data::cache::CacheBudget;
use facetrain_worker::data::dataset::{LoadOptions, load_dataset};
use facetrain_worker::data::image::{MAX_DECODED_BYTES, MAX_IMAGE_SIDE, decode_rgb};
use facetrain_worker::job::OnBadRow;
use image::ImageFormat;
use proptest::prelude::*;

const SIDE: usize = 8;
const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";
const JPEG_START: &[u8] = b"\xff\xd8\xff";

/// The messages `decode_rgb` gives; anything else is an error a user cannot act on.
const CLEAR_ERRORS: [&str; 5] =
    ["not a JPEG or PNG", "corrupt or undecodable image", "image is ", "image too large", "cannot read image"];

fn decode_checked(bytes: &[u8]) -> Result<Option<String>, TestCaseError> {
    match decode_rgb(bytes, SIDE) {
        Ok((image, _)) => {
            prop_assert_eq!(image.pixels.len(), SIDE * SIDE * 3);
            Ok(None)
        }
        Err(message) => {
            prop_assert!(CLEAR_ERRORS.iter().any(|start| message.starts_with(start)), "unclear error: {message}");
            Ok(Some(message))
        }
    }
}

fn encoded(format: ImageFormat, width: u32, height: u32) -> Vec<u8> {
    let image = image::RgbImage::from_fn(width, height, |x, y| image::Rgb([(x * 17) as u8, (y * 29) as u8, 200]));
    let mut out = Cursor::new(Vec::new());
    image.write_to(&mut out, format).unwrap();
    out.into_inner()
}

/// A PNG whose IHDR claims another size and pixel format, with its CRC fixed so the decoder
/// believes it (the pixel data stays that of a 16x16 RGB image).
fn png_claiming(width: u32, height: u32, bit_depth: u8, color_type: u8) -> Vec<u8> {
    let mut png = encoded(ImageFormat::Png, 16, 16);
    // Signature (8), IHDR length (4), "IHDR" (4), then width, height, depth, colour type.
    png[16..20].copy_from_slice(&width.to_be_bytes());
    png[20..24].copy_from_slice(&height.to_be_bytes());
    png[24] = bit_depth;
    png[25] = color_type;
    let crc = crc32fast::hash(&png[12..29]);
    png[29..33].copy_from_slice(&crc.to_be_bytes());
    png
}

/// A JPEG whose baseline frame header (SOF0) claims another size.
fn jpeg_claiming(width: u16, height: u16) -> Vec<u8> {
    let mut jpeg = encoded(ImageFormat::Jpeg, 16, 16);
    let sof = jpeg.windows(2).position(|w| w == [0xff, 0xc0]).expect("baseline JPEG");
    // Marker (2), length (2), precision (1), then height and width.
    jpeg[sof + 5..sof + 7].copy_from_slice(&height.to_be_bytes());
    jpeg[sof + 7..sof + 9].copy_from_slice(&width.to_be_bytes());
    jpeg
}

fn valid_image() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        (1u32..24, 1u32..24).prop_map(|(w, h)| encoded(ImageFormat::Png, w, h)),
        (1u32..24, 1u32..24).prop_map(|(w, h)| encoded(ImageFormat::Jpeg, w, h)),
    ]
}

/// Sides around the limits and the formats' own edges.
fn side() -> impl Strategy<Value = u32> {
    prop_oneof![
        0u32..64,
        Just(MAX_IMAGE_SIDE),
        Just(MAX_IMAGE_SIDE + 1),
        Just(100_000),
        Just(i32::MAX as u32),
        Just(u32::MAX),
        any::<u32>()
    ]
}

proptest! {
    #![proptest_config(fuzz_support::config(256))]

    #[test]
    fn arbitrary_bytes_are_refused_clearly(
        signature in prop::sample::select(vec![&b""[..], PNG_SIGNATURE, JPEG_START]),
        rest in proptest::collection::vec(any::<u8>(), 0..1024),
    ) {
        decode_checked(&[signature, &rest].concat())?;
    }

    #[test]
    fn truncated_images_never_panic(image in valid_image(), keep in 0.0f64..1.0) {
        let cut = (image.len() as f64 * keep) as usize;
        decode_checked(&image[..cut])?;
    }

    #[test]
    fn damaged_images_never_panic(
        image in valid_image(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..8),
    ) {
        let mut image = image;
        for (at, mask) in flips {
            let at = at.index(image.len());
            image[at] ^= mask;
        }
        decode_checked(&image)?;
    }

    #[test]
    fn png_headers_claiming_any_size_are_checked_before_decoding(
        width in side(),
        height in side(),
        (bit_depth, color_type) in prop::sample::select(vec![(8, 2), (16, 6), (1, 0), (8, 3), (16, 0), (4, 4), (3, 2)]),
    ) {
        let message = decode_checked(&png_claiming(width, height, bit_depth, color_type))?;
        // Within PNG's own range (< 2^31) and in a valid pixel format, an oversized image is
        // refused by our limit, by name.
        let valid_format = !matches!((bit_depth, color_type), (4, 4) | (3, 2));
        let oversized = width.max(height) > MAX_IMAGE_SIDE && width.max(height) <= i32::MAX as u32;
        if valid_format && oversized && width > 0 && height > 0 {
            let message = message.unwrap_or_default();
            prop_assert!(message.contains(&MAX_IMAGE_SIDE.to_string()), "{width}x{height}: {message}");
        }
    }

    #[test]
    fn jpeg_headers_claiming_any_size_are_checked_before_decoding(width in any::<u16>(), height in any::<u16>()) {
        let message = decode_checked(&jpeg_claiming(width, height))?;
        if u32::from(width.max(height)) > MAX_IMAGE_SIDE && width > 0 && height > 0 {
            let message = message.unwrap_or_default();
            prop_assert!(message.contains(&MAX_IMAGE_SIDE.to_string()), "{width}x{height}: {message}");
        }
    }
}

#[test]
fn a_decompression_bomb_header_is_refused_by_the_side_limit() {
    let err = decode_rgb(&png_claiming(100_000, 100_000, 8, 2), SIDE).unwrap_err();
    assert_eq!(err, "image is 100000x100000 pixels: more than the limit of 8192 on a side");
}

#[test]
fn an_image_within_the_side_limit_but_too_many_bytes_is_refused_before_allocating() {
    // 8000 x 8000 RGBA16 would need 488 MiB.
    let err = decode_rgb(&png_claiming(8000, 8000, 16, 6), SIDE).unwrap_err();
    let limit = format!("limit of {} MiB", MAX_DECODED_BYTES >> 20);
    assert!(err.starts_with("image is 8000x8000 pixels of Rgba16") && err.contains(&limit), "{err}");
}

/// The dataset loader adds the CSV file, line and image path to the decoder's words.
#[tokio::test]
async fn a_bomb_in_a_dataset_names_the_csv_line_the_image_and_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bomb.png"), png_claiming(100_000, 100_000, 8, 2)).unwrap();
    let csv = dir.path().join("train.csv");
    std::fs::write(&csv, "bomb.png,Ann,0\n").unwrap();
    let options = LoadOptions {
        side: SIDE,
        num_classes: None,
        on_bad_row: OnBadRow::Fail,
        allow_outside_paths: false,
        cache: CacheBudget::unlimited(),
    };
    let err = load_dataset(csv.to_str().unwrap(), &options).await.unwrap_err().to_string();
    assert!(
        err.ends_with(
            "train.csv:1: image `bomb.png`: image is 100000x100000 pixels: more than the limit of 8192 on a side"
        ),
        "{err}"
    );
}

#[test]
fn corpus_replays_without_panics() {
    for (name, bytes) in fuzz_support::corpus("image") {
        decode_checked(&bytes).unwrap_or_else(|e| panic!("corpus file {name}: {e}"));
    }
}
