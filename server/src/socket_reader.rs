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
        // One timer for the three deadlines: every open connection holds it while it waits
        // (BENCHMARKS.md, idle memory).
        let (deadline, expired) = deadlines.next(Instant::now());
        let next = tokio::select! {
            () = disconnect.triggered() => return None,
            () = shutdown.cancelled() => Err(CloseReason::ShuttingDown),
            () = tokio::time::sleep_until(deadline) => {
                if expired == CloseReason::AuthTimeout {
                    tracing::info!("closing a collab connection that authenticated nothing in time");
                }
                Err(expired)
            }
            next = stream.next() => Ok(next),
        };
        let frame = match next {
            Err(reason) => Err(reason),
            Ok(None | Some(Ok(WsMessage::Close(_)))) => Err(CloseReason::PeerGone),
            Ok(Some(Err(error))) => Err(read_error_reason(error)),
            Ok(Some(Ok(WsMessage::Text(_)))) => Err(CloseReason::TextFrame),
            Ok(Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_)))) => continue,
            Ok(Some(Ok(WsMessage::Binary(frame)))) => Ok(frame),
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

impl Deadlines {
    /// The first deadline after a frame read at `now`, and the reason the socket ends with if
    /// it passes (on a tie, the token's or authentication's, which say more than idleness).
    fn next(&self, now: Instant) -> (Instant, CloseReason) {
        let mut first = (now + self.idle, CloseReason::IdleTimeout);
        for (at, reason) in [
            (self.authenticate_by, CloseReason::AuthTimeout),
            (self.token_expires, CloseReason::TokenExpired),
        ] {
            if let Some(at) = at.filter(|at| *at <= first.0) {
                first = (at, reason);
            }
        }
        first
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_deadline_decides_the_reason() {
        let now = Instant::now();
        let secs = Duration::from_secs;
        let idle_only = Deadlines { idle: secs(60), token_expires: None, authenticate_by: None };
        assert_eq!(idle_only.next(now), (now + secs(60), CloseReason::IdleTimeout));
        let token_first = Deadlines { token_expires: Some(now + secs(5)), ..idle_only };
        assert_eq!(token_first.next(now), (now + secs(5), CloseReason::TokenExpired));
        let auth_first = Deadlines { authenticate_by: Some(now + secs(3)), ..token_first };
        assert_eq!(auth_first.next(now), (now + secs(3), CloseReason::AuthTimeout));
        let idle_first = Deadlines { idle: secs(1), ..auth_first };
        assert_eq!(idle_first.next(now), (now + secs(1), CloseReason::IdleTimeout));
        let tie = Deadlines { idle: secs(5), token_expires: Some(now + secs(5)), authenticate_by: None };
        assert_eq!(tie.next(now), (now + secs(5), CloseReason::TokenExpired));
    }
}
