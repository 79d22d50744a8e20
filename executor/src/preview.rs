//! Live previews: what a provider shows of a node while it runs (the tail of its log, an
//! intermediate image), reported through [`ProgressSink::preview`] and written by the worker
//! under `results[node].preview` in the room's document (docs/document-schema.md).
//!
//! A preview is never the node's result: it is not an output, not cached, not settled, and it
//! is removed from the document when the node ends. Everything a provider sends here is
//! untrusted, so every dimension is bounded by the constants below, enforced by [`Preview`]
//! (text) and [`PreviewGate`] (rate, images).
//!
//! [`ProgressSink::preview`]: crate::node::ProgressSink::preview

use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

use crate::value::AssetRef;

/// Longest preview text, in bytes (UTF-8): the document is shared by everyone in the room and
/// stored forever in its update log, so a log of megabytes must not land there. 1 KiB is a
/// dozen log lines, more than a node on the canvas can show.
pub const MAX_PREVIEW_TEXT_BYTES: usize = 1024;

/// The shortest time between two previews of one node: every preview is a document update
/// sent to every client of the room and stored, and a provider polled faster (or a model
/// logging every step) must not turn a run into a stream of writes.
pub const MIN_PREVIEW_INTERVAL: Duration = Duration::from_secs(1);

/// Intermediate images fetched per node per run; after that, previews carry text only. Each
/// one is a download and a stored asset, so a provider changing its image URL on every poll
/// must not make us fetch and keep hundreds.
pub const MAX_PREVIEW_IMAGES: u32 = 10;

/// Largest intermediate image fetched. Previews are shown small on a node; a bigger file is
/// skipped (the node's own result has the full download limit).
pub const MAX_PREVIEW_IMAGE_BYTES: u64 = 4 * 1024 * 1024;

/// How long fetching one intermediate image may take, in one attempt (no retries): a preview
/// that is slow to fetch is simply skipped, it must not hold the node's polling back.
pub const PREVIEW_DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(5);

/// What a running node shows: the tail of its log and its latest intermediate image (an asset
/// in our store, never the provider's URL). Build it with [`Preview::new`], which bounds and
/// cleans the text.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Preview {
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    image: Option<AssetRef>,
}

impl Preview {
    /// A preview of `text`'s tail ([`text_tail`]; nothing left of it: no text) and `image`.
    pub fn new(text: Option<&str>, image: Option<AssetRef>) -> Self {
        let text = text.map(text_tail).filter(|t| !t.trim().is_empty());
        Self { text, image }
    }

    pub fn text(&self) -> Option<&str> {
        self.text.as_deref()
    }

    pub fn image(&self) -> Option<&AssetRef> {
        self.image.as_ref()
    }

    pub fn is_empty(&self) -> bool {
        self.text.is_none() && self.image.is_none()
    }
}

/// The end of a log as a preview shows it: control characters dropped except line breaks (a
/// carriage return, which progress bars use to redraw a line, becomes one), surrounding blank
/// lines trimmed, and at most [`MAX_PREVIEW_TEXT_BYTES`] bytes kept from the end, cut on a
/// character boundary. Only the end of `raw` is read, however long it is.
pub fn text_tail(raw: &str) -> String {
    // Dropping characters only shortens the text, so a window of four times the limit is
    // enough unless most of it is control characters, which then deserve to be cut.
    let mut start = raw.len().saturating_sub(4 * MAX_PREVIEW_TEXT_BYTES);
    while !raw.is_char_boundary(start) {
        start += 1;
    }
    let window = raw.get(start..).unwrap_or_default();
    let mut clean = String::with_capacity(window.len().min(4 * MAX_PREVIEW_TEXT_BYTES));
    let mut chars = window.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' if chars.peek() == Some(&'\n') => {}
            '\r' | '\n' => clean.push('\n'),
            c if c.is_control() => {}
            c => clean.push(c),
        }
    }
    let clean = clean.trim();
    let mut cut = clean.len().saturating_sub(MAX_PREVIEW_TEXT_BYTES);
    while !clean.is_char_boundary(cut) {
        cut += 1;
    }
    clean.get(cut..).unwrap_or_default().to_owned()
}

/// What a runner remembers of one node's previews, to apply the bounds: one preview per
/// [`MIN_PREVIEW_INTERVAL`], at most [`MAX_PREVIEW_IMAGES`] image fetches, an image fetched
/// only when its URL changed, and nothing sent when nothing changed.
#[derive(Debug, Default)]
pub struct PreviewGate {
    last_sent: Option<Instant>,
    last_text: Option<String>,
    /// The last image URL tried, fetched or not: a URL that failed is not tried again.
    last_url: Option<String>,
    /// The last image stored, repeated in later previews so the node keeps showing it.
    image: Option<AssetRef>,
    fetches: u32,
}

impl PreviewGate {
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether a preview may be sent at `now` (the rate bound).
    pub fn due(&self, now: Instant) -> bool {
        self.last_sent.is_none_or(|last| now.saturating_duration_since(last) >= MIN_PREVIEW_INTERVAL)
    }

    /// Whether the image at `url` should be fetched: a URL not tried before, within the
    /// number of fetches a node may make. Marks it tried when it says yes.
    pub fn take_image_url(&mut self, url: &str) -> bool {
        if self.fetches >= MAX_PREVIEW_IMAGES || self.last_url.as_deref() == Some(url) {
            return false;
        }
        self.fetches += 1;
        self.last_url = Some(url.to_owned());
        true
    }

    /// Records an image fetched and stored: later previews show it until another replaces it.
    pub fn image_stored(&mut self, image: AssetRef) {
        self.image = Some(image);
    }

    /// The preview to send now from `text` (raw) and the latest image, if it differs from the
    /// last one sent; records it as sent at `now`. `None`: nothing new, or not yet due.
    pub fn next(&mut self, now: Instant, text: Option<&str>, new_image: bool) -> Option<Preview> {
        if !self.due(now) {
            return None;
        }
        let preview = Preview::new(text, self.image.clone());
        if preview.is_empty() || (!new_image && preview.text == self.last_text) {
            return None;
        }
        self.last_sent = Some(now);
        self.last_text = preview.text.clone();
        Some(preview)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asset(id: &str) -> AssetRef {
        AssetRef { id: id.into(), content_hash: "00".into(), content_type: "image/png".into(), size: 1 }
    }

    #[test]
    fn the_tail_is_bounded_and_cut_on_a_character_boundary() {
        let long = "é".repeat(100_000);
        let tail = text_tail(&long);
        assert!(tail.len() <= MAX_PREVIEW_TEXT_BYTES, "{}", tail.len());
        assert!(tail.len() >= MAX_PREVIEW_TEXT_BYTES - 1);
        assert!(tail.chars().all(|c| c == 'é'));
        // A window start inside a 4-byte character.
        let emoji = format!("a{}", "🦊".repeat(3000));
        assert!(text_tail(&emoji).chars().all(|c| c == '🦊'));
        assert_eq!(text_tail("short"), "short");
        assert_eq!(text_tail(""), "");
    }

    #[test]
    fn the_tail_keeps_the_end_of_the_log() {
        let log: String = (0..2000).map(|i| format!("step {i}\n")).collect();
        let tail = text_tail(&log);
        assert!(tail.ends_with("step 1999"), "{tail:?}");
        assert!(!tail.contains("step 1000\n"));
    }

    #[test]
    fn control_characters_are_dropped_and_line_breaks_kept() {
        assert_eq!(text_tail("a\u{1b}[31mred\u{1b}[0m\tb\u{0}\u{7f}c"), "a[31mred[0mbc");
        assert_eq!(text_tail("one\r\ntwo\rthree\n\n"), "one\ntwo\nthree");
        assert_eq!(text_tail("\u{85}x\u{9b}"), "x");
        assert_eq!(Preview::new(Some("\n\u{1}\n"), None), Preview::new(None, None));
    }

    #[test]
    fn the_gate_bounds_rate_images_and_repeats() {
        let mut gate = PreviewGate::new();
        let t0 = Instant::now();
        assert!(gate.next(t0, Some("a"), false).is_some());
        assert!(gate.next(t0 + Duration::from_millis(500), Some("b"), false).is_none(), "too soon");
        assert!(gate.next(t0 + MIN_PREVIEW_INTERVAL, Some("a"), false).is_none(), "nothing new");
        let later = t0 + MIN_PREVIEW_INTERVAL;
        assert!(gate.take_image_url("https://x/1.png"));
        assert!(!gate.take_image_url("https://x/1.png"), "the same URL is fetched once");
        gate.image_stored(asset("a1"));
        let sent = gate.next(later, Some("a"), true).expect("a new image");
        assert_eq!(sent.image().map(|a| a.id.as_str()), Some("a1"));
        let text_only = gate.next(later + MIN_PREVIEW_INTERVAL, Some("c"), false).expect("new text");
        assert_eq!(text_only.image().map(|a| a.id.as_str()), Some("a1"), "the image stays shown");
        for i in 2..=MAX_PREVIEW_IMAGES {
            assert!(gate.take_image_url(&format!("https://x/{i}.png")));
        }
        assert!(!gate.take_image_url("https://x/new.png"), "no more than the limit per node");
    }
}
