//! What an uploaded image must be before it is stored: a PNG that really decodes, within size
//! bounds, and nothing else.
//!
//! A signature check alone let 19 MiB of random bytes behind a PNG header be stored as an
//! "image". Here the header's dimensions are checked first (refusing an image too large to
//! decode before anything is allocated for it), then the whole image is decoded under the
//! `image` crate's allocation limit, and bytes after the PNG's end (`IEND`) are refused: no
//! encoder writes them, and they would let a valid picture carry any payload.
//!
//! No I/O: the server runs [`check_png_upload`] on its blocking pool.

use std::io::Cursor;

use image::{ImageFormat, ImageReader};

const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";
/// The last chunk of every PNG: length 0, type `IEND`, its CRC.
const IEND_CHUNK: &[u8] = b"\x00\x00\x00\x00IEND\xae\x42\x60\x82";
/// Bytes per pixel at most (RGBA, 16 bits a channel), for the decoder's allocation limit.
const MAX_BYTES_PER_PIXEL: u64 = 8;
/// Room for the decoder's own buffers besides the pixels.
const DECODER_SLACK: u64 = 16 * 1024 * 1024;

/// Bounds on an uploaded image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageLimits {
    /// Longest accepted side, in pixels.
    pub max_side: u32,
    /// Most pixels (width × height) accepted.
    pub max_pixels: u64,
}

impl ImageLimits {
    /// What the decoder may allocate: the largest accepted image at 8 bytes a pixel, plus slack.
    pub fn max_alloc(&self) -> u64 {
        self.max_pixels.saturating_mul(MAX_BYTES_PER_PIXEL).saturating_add(DECODER_SLACK)
    }
}

/// Why an upload is refused. The messages are for the uploader.
#[derive(Debug, thiserror::Error)]
pub enum UploadRefusal {
    #[error("the body is not a PNG image")]
    NotPng,
    #[error(
        "the image is {width}×{height} pixels; at most {max_side} pixels a side and {max_pixels} pixels in all are accepted"
    )]
    TooLarge { width: u64, height: u64, max_side: u32, max_pixels: u64 },
    #[error("the image has no pixels")]
    Empty,
    /// Broken before the decoder saw it (no end), or the decoder itself failed.
    #[error("the PNG does not decode: {0}")]
    Corrupt(String),
    /// What the decoder found wrong.
    #[error("the PNG does not decode: {0}")]
    Undecodable(#[source] image::ImageError),
    #[error("the PNG has data after its end")]
    TrailingData,
}

/// A checked upload's dimensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckedImage {
    pub width: u32,
    pub height: u32,
}

/// Checks that `bytes` are exactly one PNG image within `limits`, decoding all of it.
pub fn check_png_upload(bytes: &[u8], limits: ImageLimits) -> Result<CheckedImage, UploadRefusal> {
    if !bytes.starts_with(PNG_SIGNATURE) {
        return Err(UploadRefusal::NotPng);
    }
    if !bytes.ends_with(IEND_CHUNK) {
        // Either truncated (no end) or followed by something else: neither is one PNG.
        return Err(if contains(bytes, b"IEND") {
            UploadRefusal::TrailingData
        } else {
            UploadRefusal::Corrupt("the image ends before its IEND chunk".into())
        });
    }
    let mut decoder_limits = image::Limits::default();
    decoder_limits.max_image_width = Some(limits.max_side);
    decoder_limits.max_image_height = Some(limits.max_side);
    decoder_limits.max_alloc = Some(limits.max_alloc());
    let too_large = |width: u64, height: u64| UploadRefusal::TooLarge {
        width,
        height,
        max_side: limits.max_side,
        max_pixels: limits.max_pixels,
    };
    let reader = |limits: image::Limits| {
        let mut reader = ImageReader::with_format(Cursor::new(bytes), ImageFormat::Png);
        reader.limits(limits);
        reader
    };
    // The header first, with no side limit, to say how large a refused image is.
    let (width, height) =
        reader(image::Limits::no_limits()).into_dimensions().map_err(UploadRefusal::Undecodable)?;
    let (w, h) = (u64::from(width), u64::from(height));
    if w == 0 || h == 0 {
        return Err(UploadRefusal::Empty);
    }
    if width > limits.max_side || height > limits.max_side || w * h > limits.max_pixels {
        return Err(too_large(w, h));
    }
    reader(decoder_limits).decode().map_err(|e| match e {
        image::ImageError::Limits(_) => too_large(w, h),
        other => UploadRefusal::Undecodable(other),
    })?;
    Ok(CheckedImage { width, height })
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use image::{DynamicImage, RgbaImage};

    use super::*;

    const LIMITS: ImageLimits = ImageLimits { max_side: 64, max_pixels: 64 * 32 };

    fn png(width: u32, height: u32) -> Vec<u8> {
        let image = RgbaImage::from_fn(width, height, |x, y| image::Rgba([x as u8, y as u8, 7, 255]));
        crate::imaging::encode_png(&DynamicImage::ImageRgba8(image)).unwrap()
    }

    #[test]
    fn a_real_png_within_the_limits_passes() {
        assert!(matches!(check_png_upload(&png(64, 32), LIMITS), Ok(CheckedImage { width: 64, height: 32 })));
    }

    #[test]
    fn random_bytes_behind_a_png_signature_are_refused() {
        let mut bytes = PNG_SIGNATURE.to_vec();
        bytes.extend((0..100_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
        assert!(matches!(check_png_upload(&bytes, LIMITS), Err(UploadRefusal::Corrupt(_))));
        bytes.extend_from_slice(IEND_CHUNK);
        let refused = check_png_upload(&bytes, LIMITS);
        assert!(matches!(refused, Err(UploadRefusal::Undecodable(_))), "{refused:?}");
        assert!(matches!(check_png_upload(b"GIF89a", LIMITS), Err(UploadRefusal::NotPng)));
    }

    #[test]
    fn sizes_over_the_limits_are_refused_from_the_header() {
        assert!(matches!(
            check_png_upload(&png(65, 1), LIMITS),
            Err(UploadRefusal::TooLarge { width: 65, height: 1, .. })
        ));
        assert!(matches!(
            check_png_upload(&png(64, 33), LIMITS),
            Err(UploadRefusal::TooLarge { width: 64, height: 33, .. })
        ));
    }

    #[test]
    fn a_header_claiming_a_huge_image_is_refused_before_decoding() {
        // A valid signature and IHDR saying 100000×100000, then an end: nothing is allocated.
        let mut bytes = PNG_SIGNATURE.to_vec();
        let mut ihdr = b"IHDR".to_vec();
        ihdr.extend(100_000u32.to_be_bytes());
        ihdr.extend(100_000u32.to_be_bytes());
        ihdr.extend([8, 6, 0, 0, 0]);
        bytes.extend(13u32.to_be_bytes());
        bytes.extend(&ihdr);
        bytes.extend(crc32(&ihdr).to_be_bytes());
        // A few bytes of image data: the decoder reads the header once it meets them.
        let idat = b"IDAT\x78\x9c\x03\x00\x00\x00\x00\x01";
        bytes.extend(8u32.to_be_bytes());
        bytes.extend(idat);
        bytes.extend(crc32(idat).to_be_bytes());
        bytes.extend_from_slice(IEND_CHUNK);
        let refused = check_png_upload(&bytes, LIMITS);
        assert!(
            matches!(refused, Err(UploadRefusal::TooLarge { width: 100_000, height: 100_000, .. })),
            "{refused:?}"
        );
    }

    #[test]
    fn data_after_the_end_and_truncated_images_are_refused() {
        let mut bytes = png(8, 8);
        bytes.extend_from_slice(b"<html>anything</html>");
        assert!(matches!(check_png_upload(&bytes, LIMITS), Err(UploadRefusal::TrailingData)));
        let whole = png(8, 8);
        let truncated = &whole[..whole.len() - 20];
        assert!(matches!(check_png_upload(truncated, LIMITS), Err(UploadRefusal::Corrupt(_))));
    }

    /// PNG's CRC-32 (ISO 3309), for building a header by hand.
    fn crc32(data: &[u8]) -> u32 {
        let mut crc = 0xffff_ffffu32;
        for &byte in data {
            crc ^= u32::from(byte);
            for _ in 0..8 {
                crc = if crc & 1 == 1 { (crc >> 1) ^ 0xedb8_8320 } else { crc >> 1 };
            }
        }
        !crc
    }
}
