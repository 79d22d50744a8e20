//! The pixel work of the built-in nodes (and the providers' image checks): plain synchronous
//! functions on decoded images, run by the built-in runner on tokio's blocking pool.
//!
//! Every image entering or leaving is bounded (side and pixel count) before memory for it is
//! allocated, because images and sizes come from users.

use std::io::Cursor;

use image::imageops::{self, FilterType};
use image::{DynamicImage, GrayImage, ImageFormat, ImageReader, Luma, Pixel, Rgba, RgbaImage};
use serde::Serialize;
use sha2::{Digest, Sha256};

/// Largest width or height accepted or produced.
pub const MAX_SIDE: u32 = 4096;
/// Largest pixel count accepted or produced (16 MP: 64 MiB as RGBA8).
pub const MAX_PIXELS: u64 = 16 * 1024 * 1024;
/// What the PNG decoder may allocate at once (a 16 MP RGBA16 image is 128 MiB).
const MAX_DECODE_ALLOC: u64 = 256 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ImagingError {
    #[error("not a readable PNG: {0}")]
    Decode(#[source] image::ImageError),
    #[error("a {width}×{height} image exceeds the limit ({MAX_SIDE} px a side, {} MP)", MAX_PIXELS / (1024 * 1024))]
    TooLarge { width: u64, height: u64 },
    #[error("the result would be empty ({width}×{height})")]
    Empty { width: u64, height: u64 },
    #[error("PNG encoding failed: {0}")]
    Encode(#[source] image::ImageError),
}

/// Refuses sizes over the bounds (and empty ones), in u64 so huge factors cannot overflow.
pub fn check_size(width: u64, height: u64) -> Result<(), ImagingError> {
    if width == 0 || height == 0 {
        return Err(ImagingError::Empty { width, height });
    }
    if width > MAX_SIDE as u64 || height > MAX_SIDE as u64 || width * height > MAX_PIXELS {
        return Err(ImagingError::TooLarge { width, height });
    }
    Ok(())
}

/// Decodes a PNG into RGBA8, refusing oversized images from their header, before decoding.
pub fn decode_png(bytes: &[u8]) -> Result<RgbaImage, ImagingError> {
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_DECODE_ALLOC);
    let dimensions = {
        let mut reader = ImageReader::with_format(Cursor::new(bytes), ImageFormat::Png);
        reader.limits(limits.clone());
        reader.into_dimensions().map_err(ImagingError::Decode)?
    };
    check_size(dimensions.0 as u64, dimensions.1 as u64)?;
    let mut reader = ImageReader::with_format(Cursor::new(bytes), ImageFormat::Png);
    reader.limits(limits);
    let image = reader.decode().map_err(|e| match e {
        image::ImageError::Limits(_) => {
            ImagingError::TooLarge { width: dimensions.0 as u64, height: dimensions.1 as u64 }
        }
        other => ImagingError::Decode(other),
    })?;
    Ok(image.into_rgba8())
}

pub fn encode_png(image: &DynamicImage) -> Result<Vec<u8>, ImagingError> {
    let mut out = Vec::new();
    image.write_to(&mut Cursor::new(&mut out), ImageFormat::Png).map_err(ImagingError::Encode)?;
    Ok(out)
}

pub fn blur(image: &RgbaImage, sigma: f32) -> RgbaImage {
    imageops::blur(image, sigma)
}

pub fn invert(mut image: RgbaImage) -> RgbaImage {
    // Colour channels only: transparency stays where it was.
    imageops::invert(&mut image);
    image
}

/// The part of `(x, y, width, height)` that lies inside the image.
pub fn crop(image: &RgbaImage, x: u32, y: u32, width: u32, height: u32) -> Result<RgbaImage, ImagingError> {
    let w = width.min(image.width().saturating_sub(x));
    let h = height.min(image.height().saturating_sub(y));
    check_size(w as u64, h as u64)?;
    Ok(imageops::crop_imm(image, x, y, w, h).to_image())
}

/// The size `resize` produces: explicit width/height (0 = keep the aspect ratio from the other),
/// or `scale` times the current size when both are 0.
pub fn resize_target(
    current: (u32, u32),
    scale: f64,
    width: u32,
    height: u32,
) -> Result<(u32, u32), ImagingError> {
    let (cw, ch) = (current.0 as f64, current.1 as f64);
    let (w, h) = match (width, height) {
        (0, 0) => ((cw * scale).round(), (ch * scale).round()),
        (w, 0) => (w as f64, (ch * w as f64 / cw).round()),
        (0, h) => ((cw * h as f64 / ch).round(), h as f64),
        (w, h) => (w as f64, h as f64),
    };
    // Clamped to u64 range before the check; non-finite values become 0 and are refused.
    let clamp = |v: f64| if v.is_finite() && v > 0.0 { v.min(u32::MAX as f64) as u64 } else { 0 };
    let (w, h) = (clamp(w).max(1), clamp(h).max(1));
    check_size(w, h)?;
    Ok((w as u32, h as u32))
}

pub fn resize(image: &RgbaImage, width: u32, height: u32) -> RgbaImage {
    imageops::resize(image, width, height, FilterType::Lanczos3)
}

pub fn grayscale(image: RgbaImage) -> DynamicImage {
    // Keeps alpha (LumaA8).
    DynamicImage::ImageRgba8(image).grayscale()
}

/// Red, green and blue as three grayscale images.
pub fn channel_split(image: &RgbaImage) -> [GrayImage; 3] {
    let channel =
        |c: usize| GrayImage::from_fn(image.width(), image.height(), |x, y| Luma([image.get_pixel(x, y)[c]]));
    [channel(0), channel(1), channel(2)]
}

/// White where the luminance is at least `level`.
pub fn threshold(image: &RgbaImage, level: u8) -> GrayImage {
    GrayImage::from_fn(image.width(), image.height(), |x, y| {
        let luma = image.get_pixel(x, y).to_luma()[0];
        Luma([if luma >= level { 255 } else { 0 }])
    })
}

/// `foreground` over `background` at (x, y), its alpha scaled by `opacity` (0..=1).
pub fn composite(
    mut background: RgbaImage,
    mut foreground: RgbaImage,
    x: i64,
    y: i64,
    opacity: f32,
) -> RgbaImage {
    let opacity = opacity.clamp(0.0, 1.0);
    if opacity < 1.0 {
        for p in foreground.pixels_mut() {
            p[3] = (p[3] as f32 * opacity).round() as u8;
        }
    }
    imageops::overlay(&mut background, &foreground, x, y);
    background
}

/// What the describer node reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Description {
    pub width: u32,
    pub height: u32,
    /// Mean red, green, blue and alpha, 0-255.
    pub mean_rgba: [f64; 4],
    /// Pixel counts per luminance band of 16 levels (0-15, 16-31, …).
    pub luminance_histogram: [u64; 16],
}

pub fn describe(image: &RgbaImage) -> Description {
    let mut sums = [0u64; 4];
    let mut histogram = [0u64; 16];
    for p in image.pixels() {
        for (s, &c) in sums.iter_mut().zip(p.0.iter()) {
            *s += c as u64;
        }
        histogram[(p.to_luma()[0] / 16) as usize] += 1;
    }
    let n = (image.width() as u64 * image.height() as u64).max(1) as f64;
    let mean = |s: u64| (s as f64 / n * 100.0).round() / 100.0;
    Description {
        width: image.width(),
        height: image.height(),
        mean_rgba: [mean(sums[0]), mean(sums[1]), mean(sums[2]), mean(sums[3])],
        luminance_histogram: histogram,
    }
}

/// SplitMix64: tiny, fast, and fully specified here, so the dev generator's pictures never
/// change with a dependency upgrade.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn colour(&mut self) -> [f64; 3] {
        [self.unit() * 255.0, self.unit() * 255.0, self.unit() * 255.0]
    }
}

/// The `dev` image generator: a two-colour gradient and a few translucent circles and
/// rectangles, all derived from SHA-256(prompt, seed). Same inputs, same pixels.
pub fn dev_image(prompt: &str, seed: u64, width: u32, height: u32) -> Result<RgbaImage, ImagingError> {
    check_size(width as u64, height as u64)?;
    let mut h = Sha256::new();
    h.update((prompt.len() as u64).to_le_bytes());
    h.update(prompt.as_bytes());
    h.update(seed.to_le_bytes());
    let digest = h.finalize();
    let mut state = [0u8; 8];
    state.copy_from_slice(&digest[..8]);
    let mut rng = SplitMix(u64::from_le_bytes(state));

    let (from, to) = (rng.colour(), rng.colour());
    let angle = rng.unit() * std::f64::consts::TAU;
    let (dx, dy) = (angle.cos(), angle.sin());
    let (w, h) = (width as f64, height as f64);
    // Projections of the corners bound the gradient parameter.
    let corners = [0.0, w * dx, h * dy, w * dx + h * dy];
    let lo = corners.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = corners.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let span = (hi - lo).max(1.0);
    let mut image = RgbaImage::from_fn(width, height, |x, y| {
        let t = ((x as f64 * dx + y as f64 * dy) - lo) / span;
        let c = |i: usize| (from[i] + (to[i] - from[i]) * t).round().clamp(0.0, 255.0) as u8;
        Rgba([c(0), c(1), c(2), 255])
    });

    let shapes = 3 + rng.next() % 6;
    for _ in 0..shapes {
        let colour = rng.colour();
        let alpha = 0.45 + rng.unit() * 0.45;
        let (cx, cy) = (rng.unit() * w, rng.unit() * h);
        let size = (0.08 + rng.unit() * 0.3) * w.min(h);
        let circle = rng.next().is_multiple_of(2);
        let (x0, x1) = ((cx - size).max(0.0) as u32, ((cx + size).ceil() as u32).min(width));
        let (y0, y1) = ((cy - size).max(0.0) as u32, ((cy + size).ceil() as u32).min(height));
        for y in y0..y1 {
            for x in x0..x1 {
                let (px, py) = (x as f64 + 0.5 - cx, y as f64 + 0.5 - cy);
                let inside = if circle {
                    px * px + py * py <= size * size
                } else {
                    px.abs() <= size && py.abs() <= size * 0.6
                };
                if inside {
                    let p = image.get_pixel_mut(x, y);
                    for i in 0..3 {
                        p[i] =
                            (p[i] as f64 * (1.0 - alpha) + colour[i] * alpha).round().clamp(0.0, 255.0) as u8;
                    }
                }
            }
        }
    }
    Ok(image)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checker(w: u32, h: u32) -> RgbaImage {
        RgbaImage::from_fn(w, h, |x, y| {
            if (x + y) % 2 == 0 { Rgba([255, 0, 0, 255]) } else { Rgba([0, 0, 255, 128]) }
        })
    }

    #[test]
    fn png_round_trips_and_garbage_is_refused() {
        let img = checker(5, 3);
        let png = encode_png(&DynamicImage::ImageRgba8(img.clone())).unwrap();
        assert_eq!(decode_png(&png).unwrap(), img);
        assert!(matches!(decode_png(b"not a png"), Err(ImagingError::Decode(_))));
        assert!(matches!(decode_png(&png[..png.len() / 2]), Err(ImagingError::Decode(_))));
    }

    #[test]
    fn oversized_pngs_are_refused_from_the_header() {
        // A 5000×1 image is small in bytes but over the side limit.
        let wide = encode_png(&DynamicImage::ImageLuma8(GrayImage::new(5000, 1))).unwrap();
        assert!(matches!(decode_png(&wide), Err(ImagingError::TooLarge { .. } | ImagingError::Decode(_))));
        assert!(check_size(4096, 4096).is_ok());
        assert!(check_size(4097, 1).is_err());
        assert!(check_size(0, 10).is_err());
    }

    #[test]
    fn invert_keeps_alpha_and_crop_clamps() {
        let inverted = invert(checker(2, 1));
        assert_eq!(inverted.get_pixel(0, 0), &Rgba([0, 255, 255, 255]));
        assert_eq!(inverted.get_pixel(1, 0), &Rgba([255, 255, 0, 128]));
        let cropped = crop(&checker(10, 10), 8, 7, 100, 100).unwrap();
        assert_eq!(cropped.dimensions(), (2, 3));
        assert!(matches!(crop(&checker(10, 10), 10, 0, 5, 5), Err(ImagingError::Empty { .. })));
    }

    #[test]
    fn resize_targets_are_computed_and_bounded() {
        assert_eq!(resize_target((100, 50), 2.0, 0, 0).unwrap(), (200, 100));
        assert_eq!(resize_target((100, 50), 2.0, 40, 0).unwrap(), (40, 20));
        assert_eq!(resize_target((100, 50), 2.0, 0, 10).unwrap(), (20, 10));
        assert_eq!(resize_target((100, 50), 2.0, 7, 9).unwrap(), (7, 9));
        assert_eq!(resize_target((3, 3), 0.05, 0, 0).unwrap(), (1, 1));
        assert!(matches!(resize_target((3000, 3000), 8.0, 0, 0), Err(ImagingError::TooLarge { .. })));
        assert_eq!(resize(&checker(4, 4), 8, 8).dimensions(), (8, 8));
    }

    #[test]
    fn channels_threshold_and_description() {
        let img = checker(4, 4);
        let [r, g, b] = channel_split(&img);
        assert_eq!((r.get_pixel(0, 0)[0], g.get_pixel(0, 0)[0], b.get_pixel(0, 0)[0]), (255, 0, 0));
        assert_eq!((r.get_pixel(1, 0)[0], b.get_pixel(1, 0)[0]), (0, 255));
        let white = RgbaImage::from_pixel(2, 2, Rgba([255, 255, 255, 255]));
        assert!(threshold(&white, 200).pixels().all(|p| p[0] == 255));
        assert!(threshold(&checker(2, 2), 200).pixels().all(|p| p[0] == 0));
        let d = describe(&img);
        assert_eq!((d.width, d.height), (4, 4));
        assert_eq!(d.mean_rgba, [127.5, 0.0, 127.5, 191.5]);
        assert_eq!(d.luminance_histogram.iter().sum::<u64>(), 16);
        assert_eq!(grayscale(img).color(), image::ColorType::La8);
    }

    #[test]
    fn composite_respects_opacity_and_offset() {
        let bg = RgbaImage::from_pixel(4, 4, Rgba([0, 0, 0, 255]));
        let fg = RgbaImage::from_pixel(2, 2, Rgba([255, 255, 255, 255]));
        let out = composite(bg.clone(), fg.clone(), 1, 1, 1.0);
        assert_eq!(out.get_pixel(1, 1), &Rgba([255, 255, 255, 255]));
        assert_eq!(out.get_pixel(0, 0), &Rgba([0, 0, 0, 255]));
        let half = composite(bg.clone(), fg.clone(), 0, 0, 0.5);
        let v = half.get_pixel(0, 0)[0];
        assert!((120..=135).contains(&v), "{v}");
        // Off the canvas entirely: unchanged.
        assert_eq!(composite(bg.clone(), fg, -10, -10, 1.0), bg);
    }

    #[test]
    fn the_dev_generator_is_deterministic_and_varied() {
        let a = dev_image("a red fox", 1, 64, 48).unwrap();
        assert_eq!(a.dimensions(), (64, 48));
        assert_eq!(a, dev_image("a red fox", 1, 64, 48).unwrap());
        assert_ne!(a, dev_image("a red fox", 2, 64, 48).unwrap());
        assert_ne!(a, dev_image("a blue fox", 1, 64, 48).unwrap());
        assert!(dev_image("x", 0, 0, 10).is_err());
    }
}
