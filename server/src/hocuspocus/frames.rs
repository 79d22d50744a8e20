//! What a `/collab` socket's writer sends: its own replies (auth, pong) first, then each open
//! document's send queue, every frame prefixed with its document's name.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use dojo_sync_protocol::hocuspocus;
use futures_util::stream::{BoxStream, SelectAll};
use futures_util::{FutureExt, StreamExt};
use tokio::sync::mpsc;

use crate::send_queue::{Outgoing, SendQueueReceiver};
use crate::socket_writer::{FrameSource, Queued};

pub(super) struct CollabFrames {
    /// Frames the socket answers with itself.
    pub control: mpsc::Receiver<Bytes>,
    /// Each newly open document's queue, as [`prefixed`] makes it.
    pub document_queues: mpsc::Receiver<BoxStream<'static, Outgoing>>,
    pub documents: SelectAll<BoxStream<'static, Outgoing>>,
    /// Set once a provider announces version 4 or later, which answers the bare Ping.
    pub app_ping: Arc<AtomicBool>,
}

impl FrameSource for CollabFrames {
    async fn next(&mut self) -> Option<Queued> {
        loop {
            tokio::select! {
                biased;
                // Control frames first: a document's Authenticated goes out before anything its
                // room sends (the room hears of the document only after it is queued).
                Some(frame) = self.control.recv() => return Some(Queued::Control(frame)),
                Some(stream) = self.document_queues.recv() => self.documents.push(stream),
                Some(frame) = self.documents.next(), if !self.documents.is_empty() => {
                    return Some(Queued::Counted(frame));
                }
                // The reader is gone and no document is left: the socket is closing, and the
                // writer hears of it through its `Disconnect`.
                else => std::future::pending::<()>().await,
            }
        }
    }

    fn ready(&mut self) -> Option<Queued> {
        match self.control.try_recv() {
            Ok(frame) => Some(Queued::Control(frame)),
            Err(_) => self.documents.next().now_or_never().flatten().map(Queued::Counted),
        }
    }

    /// The provider counts only messages as signs of life (30 s), not WebSocket pings; a 4.x
    /// provider answers the bare Ping, which keeps a document without presence connected.
    /// Older providers would misread it.
    fn keepalive(&mut self) -> Option<Bytes> {
        self.app_ping.load(Ordering::Relaxed).then(|| Bytes::from_static(&[hocuspocus::MSG_PING]))
    }
}

/// A document's send queue as a stream of Hocuspocus frames: its name, then the room's frame.
/// The prefixed copy counts against the outbound budget in place of the room's frame.
pub(super) fn prefixed(inbox: SendQueueReceiver, prefix: Vec<u8>) -> BoxStream<'static, Outgoing> {
    futures_util::stream::unfold((inbox, prefix), |(mut inbox, prefix)| async move {
        let mut outgoing = inbox.recv().await?;
        let frame = outgoing.frame();
        let mut out = Vec::with_capacity(prefix.len() + frame.len());
        out.extend_from_slice(&prefix);
        out.extend_from_slice(frame);
        outgoing.replace_frame(inbox.budget().count(Bytes::from(out)));
        Some((outgoing, (inbox, prefix)))
    })
    .boxed()
}
