//! The writing half of a WebSocket, for both endpoints: drains the socket's frames into the
//! sink in flushed batches, sends keep-alive pings, and at the end the close frame.
//!
//! Where frames come from is the endpoint's part ([`FrameSource`]): a y-websocket connection's
//! one send queue, or a Hocuspocus socket's own replies merged with each document's queue.

use std::future::Future;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message as WsMessage, WebSocket};
use bytes::Bytes;
use futures_util::SinkExt;
use futures_util::stream::SplitSink;
use tokio_util::sync::CancellationToken;

use crate::close::{CloseReason, Disconnect};
use crate::send_queue::Outgoing;

/// How long a close frame may take to go out before the socket is simply dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// Frames sent with one flush at most: enough to coalesce a burst, few enough that a ping or
/// a close is never far behind.
const MAX_FRAMES_PER_FLUSH: usize = 64;

/// A frame to write.
pub(crate) enum Queued {
    /// From a send queue: its bytes count against the connection's and the server's budgets
    /// until it is flushed.
    Counted(Outgoing),
    /// A frame the socket answers with itself, outside the budgets (bounded by its own queue).
    Control(Bytes),
}

/// Where a socket's frames come from, in the order they go out.
pub(crate) trait FrameSource: Send {
    /// The next frame, once there is one; `None` when there will be no more (the room closed
    /// the queue). Cancel-safe: the writer drops it whenever something else happens first.
    fn next(&mut self) -> impl Future<Output = Option<Queued>> + Send;

    /// A frame already waiting, without waiting.
    fn ready(&mut self) -> Option<Queued>;

    /// At each keep-alive ping: a protocol-level ping to send after it, for clients that count
    /// only messages as signs of life.
    fn keepalive(&mut self) -> Option<Bytes> {
        None
    }
}

/// What the writer does next.
enum Step {
    Frame(Queued),
    QueueClosed,
    AppPing(Bytes),
    Ping,
}

/// Writes until `disconnect` fires (or shutdown, or the client stops taking frames), then
/// frees what was queued and sends the close frame with the reason `disconnect` holds.
pub(crate) async fn write<F: FrameSource>(
    mut sink: SplitSink<WebSocket, WsMessage>,
    mut frames: F,
    disconnect: &Disconnect,
    shutdown: &CancellationToken,
    ping_interval: Duration,
) {
    let mut ping = tokio::time::interval(ping_interval);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ping.tick().await; // the first tick is immediate
    // Frames handed to the socket but not flushed yet: they still count against the
    // outbound budgets (tungstenite holds a copy) until the flush returns.
    let mut writing = Vec::new();
    let mut app_ping: Option<Bytes> = None;
    loop {
        writing.clear();
        let step = tokio::select! {
            biased;
            () = disconnect.triggered() => break,
            () = shutdown.cancelled() => {
                disconnect.trigger(CloseReason::ShuttingDown);
                break;
            }
            frame = frames.next() => frame.map_or(Step::QueueClosed, Step::Frame),
            () = async {}, if app_ping.is_some() => Step::AppPing(app_ping.take().unwrap_or_default()),
            _ = ping.tick() => Step::Ping,
        };
        let message = match step {
            Step::Frame(frame) => message(frame, &mut writing),
            Step::QueueClosed => {
                disconnect.trigger(CloseReason::Internal("room closed".into()));
                break;
            }
            Step::AppPing(frame) => WsMessage::Binary(frame),
            Step::Ping => {
                app_ping = frames.keepalive();
                WsMessage::Ping(Bytes::new())
            }
        };
        // A client that stops reading blocks this send; a room notices its full queue and
        // fires `disconnect`, which must win over the stuck send.
        tokio::select! {
            sent = send_batch(&mut sink, message, &mut frames, &mut writing) => if sent.is_err() {
                disconnect.trigger(CloseReason::PeerGone);
                break;
            },
            () = disconnect.triggered() => break,
        }
    }
    // What was queued for this client is freed now, not after the close handshake: a client
    // closed for reading too slowly must give its memory back at once.
    drop(writing);
    drop(frames);
    let reason = disconnect.reason().cloned().unwrap_or(CloseReason::PeerGone);
    if reason != CloseReason::PeerGone {
        let frame = CloseFrame { code: reason.code(), reason: reason.text().into() };
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, sink.send(WsMessage::Close(Some(frame)))).await;
    }
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, sink.close()).await;
}

/// The frame as a WebSocket message; a counted frame is kept in `writing` until flushed.
fn message(frame: Queued, writing: &mut Vec<Outgoing>) -> WsMessage {
    match frame {
        Queued::Counted(outgoing) => {
            let message = WsMessage::Binary(outgoing.frame().clone());
            writing.push(outgoing);
            message
        }
        Queued::Control(frame) => WsMessage::Binary(frame),
    }
}

/// Sends `first` and whatever else is already queued, then flushes once: a busy room's burst
/// costs one write to the socket instead of one per frame (per-frame flushes were ~15 % of the
/// server's CPU in the profile in BENCHMARKS.md).
async fn send_batch<F: FrameSource>(
    sink: &mut SplitSink<WebSocket, WsMessage>,
    first: WsMessage,
    frames: &mut F,
    writing: &mut Vec<Outgoing>,
) -> Result<(), axum::Error> {
    let more = matches!(first, WsMessage::Binary(_));
    sink.feed(first).await?;
    if more {
        for _ in 1..MAX_FRAMES_PER_FLUSH {
            let Some(frame) = frames.ready() else { break };
            sink.feed(message(frame, writing)).await?;
        }
    }
    sink.flush().await
}
