//! Opening a WebSocket to a Dojo server and reading how the server ended it: what both the
//! editing client ([`crate::SyncClient`]) and the worker's durable writer ([`crate::DurableRoom`])
//! need before and after the y-protocols exchange.

use std::time::Duration;

use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The close code a peer reports when the close frame carried none (RFC 6455, 7.1.5).
pub const NO_STATUS: u16 = 1005;

/// Opens a WebSocket to `url`. `max_frame` raises tungstenite's own message and frame limits
/// (`None` keeps its defaults).
pub async fn open(url: &str, max_frame: Option<usize>) -> Result<Socket, tungstenite::Error> {
    let config = max_frame.map(|max| {
        let mut config = WebSocketConfig::default();
        config.max_message_size = Some(max);
        config.max_frame_size = Some(max);
        config
    });
    // Nagle's algorithm off, as browsers have it: a small update is sent at once instead of
    // waiting for the previous one's ACK (up to 40 ms with delayed ACKs), which would show up
    // as latency that no real client sees.
    let (socket, _) = tokio_tungstenite::connect_async_with_config(url, config, true).await?;
    Ok(socket)
}

/// Why a connection could not be opened, and whether trying again may help.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectError {
    /// The server refused us (an access decision, or a name it will never serve): retrying
    /// gets the same answer.
    Refused(String),
    /// The server was unreachable, slow, full or busy: worth another attempt later.
    Retry(String),
}

/// Opens a WebSocket within `timeout` and sorts a failure into [`ConnectError`].
pub async fn open_within(
    url: &str,
    max_frame: Option<usize>,
    timeout: Duration,
) -> Result<Socket, ConnectError> {
    let connected = tokio::time::timeout(timeout, open(url, max_frame))
        .await
        .map_err(|_| ConnectError::Retry("connecting timed out".into()))?;
    match connected {
        Ok(socket) => Ok(socket),
        Err(tungstenite::Error::Http(response)) => {
            let status = response.status().as_u16();
            let body =
                response.body().as_deref().map(String::from_utf8_lossy).unwrap_or_default().into_owned();
            let reason = format!("HTTP {status} {}", body.chars().take(200).collect::<String>());
            // Access decisions do not change by retrying; a full server or a room that is
            // loading does.
            if matches!(status, 400 | 401 | 403 | 404) {
                Err(ConnectError::Refused(reason))
            } else {
                Err(ConnectError::Retry(reason))
            }
        }
        Err(error) => Err(ConnectError::Retry(error.to_string())),
    }
}

/// A close frame as `(code, reason)`.
pub fn close_parts(frame: CloseFrame) -> (u16, String) {
    (u16::from(frame.code), frame.reason.to_string())
}

/// Whether a close code says the server refused bytes we sent (a malformed or forbidden
/// message): sending them again would be refused again.
pub fn refused_our_bytes(code: u16) -> bool {
    matches!(
        CloseCode::from(code),
        CloseCode::Protocol | CloseCode::Invalid | CloseCode::Policy | CloseCode::Unsupported
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_the_codes_for_bad_input() {
        for code in [1002, 1003, 1007, 1008] {
            assert!(refused_our_bytes(code), "{code}");
        }
        for code in [1000, 1001, 1005, 1009, 1011, 1013, 4000] {
            assert!(!refused_our_bytes(code), "{code}");
        }
    }
}
