//! What a provider returned, checked against what the node's output port promises, before it
//! is stored: images end up as PNG (the one format the built-in tools read), videos and meshes
//! keep their bytes under a content type recognised from their magic numbers.

use std::io::Cursor;

use image::{ImageFormat, ImageReader};

use super::http::Downloaded;
use crate::catalog::PortType;
use crate::imaging;

const PNG: &str = "image/png";
/// What converting one image may allocate (a 16 MP RGBA16 image is 128 MiB).
const MAX_DECODE_ALLOC: u64 = 256 * 1024 * 1024;

/// Bytes ready for the asset store.
#[derive(Debug)]
pub(crate) struct Media {
    pub bytes: Vec<u8>,
    pub content_type: String,
}

/// Checks `downloaded` against `port` and settles its content type, converting JPEG and WebP
/// images to PNG (on the blocking pool: decoding a large image would stall the async workers).
pub(crate) async fn prepare(port: PortType, downloaded: Downloaded) -> Result<Media, String> {
    let declared = downloaded.content_type.as_deref().map(str::to_ascii_lowercase);
    if declared.as_deref().is_some_and(|d| d.starts_with("text/html")) {
        return Err("the provider's result link returned a web page, not a file".into());
    }
    match port {
        PortType::Image => prepare_image(downloaded.bytes, declared.as_deref()).await,
        PortType::Video => prepare_video(downloaded.bytes, declared.as_deref()),
        PortType::Mesh => prepare_mesh(downloaded.bytes, declared.as_deref(), downloaded.url.as_deref()),
        other => Err(format!("a file cannot be a {other} output")),
    }
}

/// Checks an intermediate image for a live preview: a PNG, JPEG or WebP by its magic numbers
/// (and not declared as anything but an image), kept as it came. Unlike a result it is not
/// converted: it is only shown, never read by the built-in tools, so decoding it is work (and
/// memory) spent for nothing.
pub(crate) fn preview_image(downloaded: Downloaded) -> Result<Media, String> {
    let declared = downloaded.content_type.as_deref().map(str::to_ascii_lowercase);
    if !generic(declared.as_deref()) && !declared.as_deref().is_some_and(|d| d.starts_with("image/")) {
        return Err(format!(
            "expected an image, the provider sent {}",
            declared.as_deref().unwrap_or("nothing")
        ));
    }
    let content_type = match image::guess_format(&downloaded.bytes) {
        Ok(ImageFormat::Png) => PNG,
        Ok(ImageFormat::Jpeg) => "image/jpeg",
        Ok(ImageFormat::WebP) => "image/webp",
        _ => return Err("the preview is not a PNG, JPEG or WebP image".into()),
    };
    Ok(Media { bytes: downloaded.bytes, content_type: content_type.into() })
}

/// Generic types a CDN may put on any file; the bytes then decide.
fn generic(declared: Option<&str>) -> bool {
    matches!(declared, None | Some("application/octet-stream" | "binary/octet-stream" | "application/binary"))
}

async fn prepare_image(bytes: Vec<u8>, declared: Option<&str>) -> Result<Media, String> {
    if !generic(declared) && !declared.is_some_and(|d| d.starts_with("image/")) {
        return Err(format!("expected an image, the provider sent {}", declared.unwrap_or("nothing")));
    }
    let format = match image::guess_format(&bytes) {
        Ok(f @ (ImageFormat::Png | ImageFormat::Jpeg | ImageFormat::WebP)) => f,
        Ok(other) => return Err(format!("the image is {other:?}, which is not supported")),
        Err(_) => return Err("the provider's image is not a readable PNG, JPEG or WebP".into()),
    };
    match tokio::task::spawn_blocking(move || to_png(bytes, format)).await {
        Ok(result) => result,
        Err(_) => Err("decoding the provider's image failed".into()),
    }
}

fn to_png(bytes: Vec<u8>, format: ImageFormat) -> Result<Media, String> {
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(imaging::MAX_SIDE);
    limits.max_image_height = Some(imaging::MAX_SIDE);
    limits.max_alloc = Some(MAX_DECODE_ALLOC);
    let mut reader = ImageReader::with_format(Cursor::new(&bytes), format);
    reader.limits(limits.clone());
    let dimensions = reader.into_dimensions();
    let within_limits = match dimensions {
        Ok((width, height)) => imaging::check_size(width.into(), height.into()).is_ok(),
        // Over the side limit: the header was read, the image is just big.
        Err(image::ImageError::Limits(_)) => false,
        Err(e) => return Err(format!("the provider's image is not readable: {e}")),
    };
    // A paid result is kept even when it is too big for the built-in tools (which say so if it
    // is wired into one); only images within their limits are decoded and converted.
    if format == ImageFormat::Png || !within_limits {
        let content_type = match format {
            ImageFormat::Jpeg => "image/jpeg",
            ImageFormat::WebP => "image/webp",
            _ => PNG,
        };
        return Ok(Media { bytes, content_type: content_type.into() });
    }
    let mut reader = ImageReader::with_format(Cursor::new(&bytes), format);
    reader.limits(limits);
    let image = reader.decode().map_err(|e| format!("the provider's image is not readable: {e}"))?;
    let png = imaging::encode_png(&image).map_err(|e| e.to_string())?;
    Ok(Media { bytes: png, content_type: PNG.into() })
}

fn prepare_video(bytes: Vec<u8>, declared: Option<&str>) -> Result<Media, String> {
    let sniffed = if bytes.len() >= 12 && &bytes[4..8] == b"ftyp" {
        Some(if &bytes[8..12] == b"qt  " { "video/quicktime" } else { "video/mp4" })
    } else if bytes.starts_with(&[0x1A, 0x45, 0xDF, 0xA3]) {
        Some("video/webm")
    } else {
        None
    };
    match (sniffed, declared) {
        (Some(kind), _) => Ok(Media { bytes, content_type: kind.into() }),
        (None, Some(d)) if d.starts_with("video/") => Ok(Media { bytes, content_type: d.into() }),
        (None, _) => {
            Err(format!("expected a video, the provider sent {}", declared.unwrap_or("an unknown file")))
        }
    }
}

fn prepare_mesh(bytes: Vec<u8>, declared: Option<&str>, url: Option<&str>) -> Result<Media, String> {
    if bytes.is_empty() {
        return Err("the provider's 3D model is empty".into());
    }
    let extension = url
        .and_then(|u| u.split(['?', '#']).next())
        .and_then(|path| path.rsplit('/').next())
        .and_then(|name| name.rsplit_once('.'))
        .map(|(_, ext)| ext.to_ascii_lowercase());
    let content_type = if bytes.starts_with(b"glTF") {
        "model/gltf-binary".to_owned()
    } else {
        match extension.as_deref() {
            Some("usdz") => "model/vnd.usdz+zip".to_owned(),
            Some("obj") => "model/obj".to_owned(),
            Some("stl") => "model/stl".to_owned(),
            Some("gltf") => "model/gltf+json".to_owned(),
            Some("zip") => "application/zip".to_owned(),
            _ => match declared {
                Some(d) if d.starts_with("model/") || d.starts_with("application/") => d.to_owned(),
                // FBX and other formats without a registered type.
                _ => "application/octet-stream".to_owned(),
            },
        }
    };
    Ok(Media { bytes, content_type })
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{DynamicImage, RgbImage};

    fn encoded(format: ImageFormat) -> Vec<u8> {
        let img = DynamicImage::ImageRgb8(RgbImage::from_pixel(8, 4, image::Rgb([200, 10, 10])));
        let mut out = Vec::new();
        img.write_to(&mut Cursor::new(&mut out), format).unwrap();
        out
    }

    fn downloaded(bytes: Vec<u8>, content_type: Option<&str>) -> Downloaded {
        Downloaded { bytes, content_type: content_type.map(str::to_owned), url: None }
    }

    #[tokio::test]
    async fn jpeg_results_become_png() {
        let media = prepare(PortType::Image, downloaded(encoded(ImageFormat::Jpeg), Some("image/jpeg")))
            .await
            .unwrap();
        assert_eq!(media.content_type, "image/png");
        let png = imaging::decode_png(&media.bytes).unwrap();
        assert_eq!(png.dimensions(), (8, 4));
    }

    #[tokio::test]
    async fn images_too_big_for_the_tools_are_kept_as_they_came() {
        let wide = DynamicImage::ImageRgb8(RgbImage::from_pixel(5000, 2, image::Rgb([1, 2, 3])));
        let mut jpeg = Vec::new();
        wide.write_to(&mut Cursor::new(&mut jpeg), ImageFormat::Jpeg).unwrap();
        let media = prepare(PortType::Image, downloaded(jpeg.clone(), Some("image/jpeg"))).await.unwrap();
        assert_eq!(media.content_type, "image/jpeg");
        assert_eq!(media.bytes, jpeg);
    }

    #[tokio::test]
    async fn png_results_are_kept_as_they_are() {
        let bytes = encoded(ImageFormat::Png);
        let media = prepare(PortType::Image, downloaded(bytes.clone(), None)).await.unwrap();
        assert_eq!(media.bytes, bytes);
    }

    #[tokio::test]
    async fn pages_and_garbage_are_refused() {
        let page = prepare(PortType::Image, downloaded(b"<html>".to_vec(), Some("text/html; charset=utf-8")));
        assert!(page.await.unwrap_err().contains("web page"));
        let garbage = prepare(PortType::Image, downloaded(b"not an image".to_vec(), Some("image/png")));
        assert!(garbage.await.unwrap_err().contains("not a readable"));
        let json = prepare(PortType::Image, downloaded(encoded(ImageFormat::Png), Some("application/json")));
        assert!(json.await.unwrap_err().contains("expected an image"));
    }

    #[test]
    fn preview_images_are_recognised_and_kept_as_they_came() {
        let jpeg = encoded(ImageFormat::Jpeg);
        let media = preview_image(downloaded(jpeg.clone(), Some("image/jpeg"))).unwrap();
        assert_eq!((media.content_type.as_str(), media.bytes), ("image/jpeg", jpeg));
        let png = preview_image(downloaded(encoded(ImageFormat::Png), None)).unwrap();
        assert_eq!(png.content_type, "image/png");
        assert!(preview_image(downloaded(b"<html>".to_vec(), Some("text/html"))).is_err());
        assert!(preview_image(downloaded(b"GIF89a....".to_vec(), Some("image/gif"))).is_err());
        assert!(preview_image(downloaded(encoded(ImageFormat::Png), Some("application/json"))).is_err());
    }

    #[tokio::test]
    async fn videos_and_meshes_are_recognised() {
        let mut mp4 = vec![0, 0, 0, 24];
        mp4.extend_from_slice(b"ftypisom\0\0\0\0");
        let media =
            prepare(PortType::Video, downloaded(mp4, Some("application/octet-stream"))).await.unwrap();
        assert_eq!(media.content_type, "video/mp4");
        assert!(prepare(PortType::Video, downloaded(b"nope".to_vec(), None)).await.is_err());
        let glb = prepare(PortType::Mesh, downloaded(b"glTF\x02\0\0\0".to_vec(), None)).await.unwrap();
        assert_eq!(glb.content_type, "model/gltf-binary");
        let usdz = Downloaded {
            bytes: b"PK\x03\x04".to_vec(),
            content_type: None,
            url: Some("https://cdn.example/x/model.USDZ?sig=1".into()),
        };
        assert_eq!(prepare(PortType::Mesh, usdz).await.unwrap().content_type, "model/vnd.usdz+zip");
    }
}
