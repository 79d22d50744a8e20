//! The built-in nodes: tools that compute locally, with no provider and no cost.
//!
//! Images travel as PNG assets; each node fetches its inputs from the asset store, does its
//! pixel work on tokio's blocking pool (decoding, filtering and encoding a 16 MP image takes
//! long enough to stall an async worker thread) and stores its result as a new asset.

/// The pixel work lives in [`crate::imaging`]; kept reachable here, where it used to be.
pub use crate::imaging;

use async_trait::async_trait;
use dojo_ids::AssetId;
use image::DynamicImage;

use crate::imaging::ImagingError;
use crate::node::{NodeContext, NodeError, NodeRunner};
use crate::value::{OutputValue, Outputs};

const PNG: &str = "image/png";

/// Runs every catalog entry without a provider.
#[derive(Debug, Clone, Copy, Default)]
pub struct BuiltinRunner;

#[async_trait]
impl NodeRunner for BuiltinRunner {
    async fn run(&self, ctx: NodeContext<'_>) -> Result<Outputs, NodeError> {
        match ctx.node.node_type.as_str() {
            "text-prompt" => Ok(one("text", OutputValue::text(ctx.param_str("text")?))),
            "image-input" => image_input(&ctx).await,
            "dev-image" => {
                let prompt = match ctx.input("prompt") {
                    Some(v) => v.as_text().ok_or_else(|| not_text("prompt"))?.to_owned(),
                    None => ctx.param_str("prompt")?.to_owned(),
                };
                let seed = u64::try_from(ctx.param_i64("seed")?).unwrap_or(0);
                let (w, h) = (ctx.param_u32("width")?, ctx.param_u32("height")?);
                let png = blocking(move || {
                    let img = imaging::dev_image(&prompt, seed, w, h)?;
                    imaging::encode_png(&DynamicImage::ImageRgba8(img))
                })
                .await?;
                store(&ctx, "image", png).await
            }
            "blur" => {
                let sigma = ctx.param_f64("sigma")? as f32;
                map_image(&ctx, "image", move |img| Ok(DynamicImage::ImageRgba8(imaging::blur(&img, sigma))))
                    .await
            }
            "invert" => {
                map_image(&ctx, "image", |img| Ok(DynamicImage::ImageRgba8(imaging::invert(img)))).await
            }
            "crop" => {
                let (x, y) = (ctx.param_u32("x")?, ctx.param_u32("y")?);
                let (w, h) = (ctx.param_u32("width")?, ctx.param_u32("height")?);
                map_image(&ctx, "image", move |img| {
                    Ok(DynamicImage::ImageRgba8(imaging::crop(&img, x, y, w, h)?))
                })
                .await
            }
            "resize" => {
                let scale = ctx.param_f64("scale")?;
                let (w, h) = (ctx.param_u32("width")?, ctx.param_u32("height")?);
                map_image(&ctx, "image", move |img| {
                    let (tw, th) = imaging::resize_target(img.dimensions(), scale, w, h)?;
                    Ok(DynamicImage::ImageRgba8(imaging::resize(&img, tw, th)))
                })
                .await
            }
            "grayscale" => map_image(&ctx, "image", |img| Ok(imaging::grayscale(img))).await,
            "threshold" => {
                let level = u8::try_from(ctx.param_i64("level")?).unwrap_or(u8::MAX);
                map_image(&ctx, "mask", move |img| {
                    Ok(DynamicImage::ImageLuma8(imaging::threshold(&img, level)))
                })
                .await
            }
            "channel-split" => {
                let bytes = input_bytes(&ctx, "image").await?;
                let pngs = blocking(move || {
                    let img = imaging::decode_png(&bytes)?;
                    let [r, g, b] = imaging::channel_split(&img);
                    Ok([
                        imaging::encode_png(&DynamicImage::ImageLuma8(r))?,
                        imaging::encode_png(&DynamicImage::ImageLuma8(g))?,
                        imaging::encode_png(&DynamicImage::ImageLuma8(b))?,
                    ])
                })
                .await?;
                ctx.progress.report(50).await;
                let mut outputs = Outputs::new();
                for (name, png) in ["r", "g", "b"].into_iter().zip(pngs) {
                    outputs
                        .insert(name.into(), OutputValue::Asset { asset: ctx.assets.put(png, PNG).await? });
                }
                Ok(outputs)
            }
            "composite" => {
                let background = input_bytes(&ctx, "background").await?;
                let foreground = input_bytes(&ctx, "foreground").await?;
                let (x, y) = (ctx.param_i64("x")?, ctx.param_i64("y")?);
                let opacity = ctx.param_f64("opacity")? as f32;
                let png = blocking(move || {
                    let bg = imaging::decode_png(&background)?;
                    let fg = imaging::decode_png(&foreground)?;
                    imaging::encode_png(&DynamicImage::ImageRgba8(imaging::composite(bg, fg, x, y, opacity)))
                })
                .await?;
                ctx.progress.report(50).await;
                store(&ctx, "image", png).await
            }
            "describe-image" => {
                let bytes = input_bytes(&ctx, "image").await?;
                let description =
                    blocking(move || Ok(imaging::describe(&imaging::decode_png(&bytes)?))).await?;
                let json = serde_json::to_string(&description).map_err(NodeError::Encode)?;
                Ok(Outputs::from([
                    ("json".into(), OutputValue::text(json)),
                    ("width".into(), OutputValue::Number { value: description.width as f64 }),
                    ("height".into(), OutputValue::Number { value: description.height as f64 }),
                ]))
            }
            other => Err(NodeError::Unsupported(other.to_owned())),
        }
    }
}

fn one(name: &str, value: OutputValue) -> Outputs {
    Outputs::from([(name.to_owned(), value)])
}

fn not_text(input: &str) -> NodeError {
    NodeError::BadInput { input: input.into(), reason: "expected text".into() }
}

/// An uploaded image, checked to be a PNG within the size bounds before anything uses it.
async fn image_input(ctx: &NodeContext<'_>) -> Result<Outputs, NodeError> {
    let id = ctx.param_str("asset")?;
    let asset = ctx.assets.get(&AssetId::from(id)).await?;
    if asset.reference.content_type != PNG {
        return Err(NodeError::BadParam {
            param: "asset".into(),
            reason: format!("asset {id} is {}, not a PNG", asset.reference.content_type),
        });
    }
    let bytes = asset.bytes;
    blocking(move || imaging::decode_png(&bytes).map(|_| ())).await?;
    Ok(one("image", OutputValue::Asset { asset: asset.reference }))
}

async fn input_bytes(ctx: &NodeContext<'_>, input: &str) -> Result<Vec<u8>, NodeError> {
    let value = ctx.input(input).ok_or_else(|| NodeError::MissingInput(input.into()))?;
    let reference = value
        .as_asset()
        .ok_or_else(|| NodeError::BadInput { input: input.into(), reason: "expected an image".into() })?;
    Ok(ctx.assets.get(&reference.id).await?.bytes)
}

/// Decode the input image, apply `f`, encode the result and store it as `output`.
async fn map_image<F>(ctx: &NodeContext<'_>, output: &str, f: F) -> Result<Outputs, NodeError>
where
    F: FnOnce(image::RgbaImage) -> Result<DynamicImage, ImagingError> + Send + 'static,
{
    let bytes = input_bytes(ctx, "image").await?;
    let png = blocking(move || {
        let img = f(imaging::decode_png(&bytes)?)?;
        imaging::check_size(img.width() as u64, img.height() as u64)?;
        imaging::encode_png(&img)
    })
    .await?;
    ctx.progress.report(50).await;
    store(ctx, output, png).await
}

async fn store(ctx: &NodeContext<'_>, output: &str, png: Vec<u8>) -> Result<Outputs, NodeError> {
    let asset = ctx.assets.put(png, PNG).await?;
    Ok(one(output, OutputValue::Asset { asset }))
}

async fn blocking<T, F>(f: F) -> Result<T, NodeError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, ImagingError> + Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => Ok(result?),
        // A panic inside the image crate on a hostile file fails this node, not the server.
        Err(e) => Err(NodeError::Internal(format!("image processing stopped: {e}"))),
    }
}
