//! Image files to RGB pixels of the model's input size.

use std::io::Cursor;

use image::imageops::FilterType;
use image::{DynamicImage, ImageDecoder, ImageError, ImageReader, Limits};

/// Refuse images larger than this on either side before decoding them (decompression bombs).
pub const MAX_IMAGE_SIDE: u32 = 8192;
/// Refuse images whose decoded pixels would take more than this (an 8192x8192 RGB8 fits).
pub const MAX_DECODED_BYTES: u64 = 256 * 1024 * 1024;
/// Sides a model input may have (`model.image_size`), so a flag such as `--image-size` is
/// refused before it sizes a buffer.
pub const MODEL_SIDES: std::ops::RangeInclusive<u32> = 8..=1024;
/// Refuse image files larger than this before reading them: a face photo is far smaller, and
/// loading reads many files at once, so one huge file must not be held whole.
pub const MAX_IMAGE_FILE_BYTES: u64 = 64 * 1024 * 1024;

/// An RGB image, `side x side`, row-major HWC bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RgbImage {
    pub side: usize,
    pub pixels: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decoded {
    /// The file had another size and was resized to the model's input.
    pub resized: bool,
}

/// Decodes a JPEG or PNG (format sniffed from the bytes) to RGB and resizes it to `side` when
/// it differs. The error says what is wrong with the file, not where it is: callers add that.
pub fn decode_rgb(bytes: &[u8], side: usize) -> Result<(RgbImage, Decoded), String> {
    let rgb = decode_full(bytes)?;
    let target = side as u32;
    let resized = rgb.width() != target || rgb.height() != target;
    let rgb = if resized { image::imageops::resize(&rgb, target, target, FilterType::Triangle) } else { rgb };
    Ok((RgbImage { side, pixels: rgb.into_raw() }, Decoded { resized }))
}

/// Decodes a JPEG or PNG, takes the largest centred square (face datasets such as LFW centre
/// the face) and resizes it to `side`: how `facectl dataset import` makes model inputs from
/// photos of any size without stretching them.
pub fn decode_centre_square(bytes: &[u8], side: usize) -> Result<RgbImage, String> {
    let rgb = decode_full(bytes)?;
    let edge = rgb.width().min(rgb.height());
    let (x, y) = ((rgb.width() - edge) / 2, (rgb.height() - edge) / 2);
    let square = image::imageops::crop_imm(&rgb, x, y, edge, edge).to_image();
    let target = side as u32;
    let square =
        if edge == target { square } else { image::imageops::resize(&square, target, target, FilterType::Triangle) };
    Ok(RgbImage { side, pixels: square.into_raw() })
}

/// The whole image as RGB, within the size limits (checked on the header, before any pixel).
fn decode_full(bytes: &[u8]) -> Result<image::RgbImage, String> {
    let mut reader =
        ImageReader::new(Cursor::new(bytes)).with_guessed_format().map_err(|e| format!("cannot read image: {e}"))?;
    if reader.format().is_none() {
        return Err("not a JPEG or PNG image (unrecognised file signature)".into());
    }
    let mut limits = Limits::default();
    limits.max_alloc = Some(MAX_DECODED_BYTES);
    reader.limits(limits);
    // The header alone gives the size: check it before a single pixel is allocated.
    let decoder = reader.into_decoder().map_err(undecodable)?;
    let (width, height) = decoder.dimensions();
    if width > MAX_IMAGE_SIDE || height > MAX_IMAGE_SIDE {
        return Err(format!("image is {width}x{height} pixels: more than the limit of {MAX_IMAGE_SIDE} on a side"));
    }
    if decoder.total_bytes() > MAX_DECODED_BYTES {
        return Err(format!(
            "image is {width}x{height} pixels of {:?}: decoding needs more than the limit of {} MiB",
            decoder.color_type(),
            MAX_DECODED_BYTES >> 20
        ));
    }
    let decoded = DynamicImage::from_decoder(decoder).map_err(undecodable)?;
    Ok(decoded.into_rgb8())
}

fn undecodable(error: ImageError) -> String {
    match error {
        ImageError::Limits(_) => format!(
            "image too large to decode ({error}): the limits are {MAX_IMAGE_SIDE} pixels on a side and {} MiB",
            MAX_DECODED_BYTES >> 20
        ),
        _ => format!("corrupt or undecodable image: {error}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(width: u32, height: u32) -> Vec<u8> {
        let img = image::RgbImage::from_fn(width, height, |x, y| image::Rgb([x as u8, y as u8, 7]));
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, image::ImageFormat::Png).unwrap();
        out.into_inner()
    }

    #[test]
    fn a_centre_square_keeps_the_middle_of_a_wide_photo() {
        // 12x8: the square is columns 2..10; at 8 pixels nothing is resized.
        let square = decode_centre_square(&png(12, 8), 8).unwrap();
        assert_eq!(square.side, 8);
        assert_eq!(&square.pixels[..3], &[2, 0, 7], "the first pixel is column 2, row 0");
        assert_eq!(decode_centre_square(&png(40, 30), 16).unwrap().pixels.len(), 16 * 16 * 3);
    }

    #[test]
    fn images_of_the_right_size_are_kept_as_is() {
        let (img, info) = decode_rgb(&png(8, 8), 8).unwrap();
        assert!(!info.resized);
        assert_eq!(&img.pixels[..6], &[0, 0, 7, 1, 0, 7]);
    }

    #[test]
    fn other_sizes_are_resized_and_counted() {
        let (img, info) = decode_rgb(&png(20, 10), 8).unwrap();
        assert!(info.resized);
        assert_eq!(img.pixels.len(), 8 * 8 * 3);
    }

    #[test]
    fn garbage_and_truncated_files_are_refused_clearly() {
        assert!(decode_rgb(b"hello world", 8).unwrap_err().contains("not a JPEG or PNG"));
        let mut truncated = png(64, 64);
        truncated.truncate(60);
        assert!(decode_rgb(&truncated, 8).unwrap_err().contains("corrupt or undecodable"));
    }
}
