//! The reading half of a WebSocket, for both endpoints: waits for the client's next binary
//! frame and decides, the same way for both, when the socket ends instead.

use std::time::Duration;

use axum::extract::ws::{Message as WsMessage, WebSocket};
use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::SplitStream;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::close::{CloseReason, Disconnect};

/// When a socket's wait for its next frame gives up.
pub(crate) struct Deadlines {
    /// Nothing at all from the client for this long (not even a pong): 1001.
    pub idle: Duration,
    /// The token expires: 4401.
    pub token_expires: Option<Instant>,
    /// A Hocuspocus socket still has no authenticated document: 4408.
    pub authenticate_by: Option<Instant>,
}

/// The client's next binary frame, or `None` once the socket is to end, with the reason set
/// on `disconnect` (by us, or already by whoever fired it). Pings and pongs only count as signs
/// of life (tungstenite answers pings itself).
pub(crate) async fn next_frame(
    stream: &mut SplitStream<WebSocket>,
    disconnect: &Disconnect,
    shutdown: &CancellationToken,
    deadlines: &Deadlines,
) -> Option<Bytes> {
    loop {
        let next = tokio::select! {
            () = disconnect.triggered() => return None,
            () = shutdown.cancelled() => Err(CloseReason::ShuttingDown),
            () = sleep_until(deadlines.token_expires) => Err(CloseReason::TokenExpired),
            () = sleep_until(deadlines.authenticate_by) => {
                tracing::info!("closing a collab connection that authenticated nothing in time");
                Err(CloseReason::AuthTimeout)
            }
            next = tokio::time::timeout(deadlines.idle, stream.next()) => Ok(next),
        };
        let frame = match next {
            Err(reason) => Err(reason),
            Ok(Err(_)) => Err(CloseReason::IdleTimeout),
            Ok(Ok(None) | Ok(Some(Ok(WsMessage::Close(_))))) => Err(CloseReason::PeerGone),
            Ok(Ok(Some(Err(error)))) => Err(read_error_reason(error)),
            Ok(Ok(Some(Ok(WsMessage::Text(_))))) => Err(CloseReason::TextFrame),
            Ok(Ok(Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_))))) => continue,
            Ok(Ok(Some(Ok(WsMessage::Binary(frame))))) => Ok(frame),
        };
        return match frame {
            Ok(frame) => Some(frame),
            Err(reason) => {
                disconnect.trigger(reason);
                None
            }
        };
    }
}

/// A frame over tungstenite's size limits is "too big" (1009); any other read error means the
/// client is gone.
fn read_error_reason(error: axum::Error) -> CloseReason {
    let too_big = error
        .into_inner()
        .downcast_ref::<tungstenite::Error>()
        .is_some_and(|e| matches!(e, tungstenite::Error::Capacity(_)));
    if too_big { CloseReason::TooBig } else { CloseReason::PeerGone }
}

/// Sleeps until `deadline`, or forever without one.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
