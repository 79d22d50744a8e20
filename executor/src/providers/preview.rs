//! Live previews from a provider's polling loop: what each poll shows (a log, the URL of an
//! intermediate image) goes through the node's [`PreviewGate`], its image is fetched like a
//! result (public addresses only, no credentials) but within the preview bounds and stored as
//! an asset, and the preview goes to the node's [`ProgressSink`] with our asset, never the
//! provider's URL. Nothing here can fail or stop the node: a preview that cannot be made is
//! logged and skipped.

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::http::Http;
use super::media;
use crate::assets::AssetStore;
use crate::node::{NodeContext, ProgressSink};
use crate::preview::PreviewGate;
use crate::value::AssetRef;

pub(super) struct Previews<'a> {
    sink: &'a dyn ProgressSink,
    assets: &'a dyn AssetStore,
    cancel: &'a CancellationToken,
    http: &'a Http,
    gate: PreviewGate,
}

impl<'a> Previews<'a> {
    pub(super) fn new(ctx: &NodeContext<'a>, http: &'a Http) -> Self {
        Self { sink: ctx.progress, assets: ctx.assets, cancel: ctx.cancel, http, gate: PreviewGate::new() }
    }

    /// Shows what the provider reported at this poll: `log` (raw: only its tail is kept) and
    /// the URL of its latest intermediate image. Does nothing until a preview is due, fetches
    /// an image only when its URL is new and the node has fetches left.
    pub(super) async fn offer(&mut self, log: Option<&str>, image_url: Option<&str>) {
        if !self.gate.due(Instant::now()) {
            return;
        }
        let mut new_image = false;
        if let Some(url) = image_url
            && self.gate.take_image_url(url)
        {
            match self.fetch(url).await {
                Ok(image) => {
                    self.gate.image_stored(image);
                    new_image = true;
                }
                // The URL stays out of the log: it is a capability on the provider's CDN.
                Err(reason) => {
                    tracing::info!(provider = %self.http.provider, %reason, "a preview image was skipped");
                }
            }
        }
        if let Some(preview) = self.gate.next(Instant::now(), log, new_image) {
            self.sink.preview(preview).await;
        }
    }

    async fn fetch(&self, url: &str) -> Result<AssetRef, String> {
        let downloaded = tokio::select! {
            () = self.cancel.cancelled() => return Err("the run was cancelled".into()),
            downloaded = self.http.download_preview(url) => downloaded.map_err(|f| f.to_string())?,
        };
        let media = media::preview_image(downloaded)?;
        self.assets.put(media.bytes, &media.content_type).await.map_err(|e| e.to_string())
    }
}
