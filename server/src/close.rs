//! Why the server closes a connection, and the WebSocket close code it says so with.

use std::sync::{Arc, OnceLock};

use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// The server is shutting down (1001 Going Away).
    ShuttingDown,
    /// The frame was not valid y-protocols (1002 Protocol Error).
    Protocol(String),
    /// A text frame: y-protocols is binary only (1003 Unsupported Data).
    TextFrame,
    /// The message decoded but its content was invalid, e.g. not a Yjs update (1007).
    InvalidPayload(String),
    /// The client broke a rule it was told about, e.g. too many awareness ids (1008).
    Policy(String),
    /// A message over the size limit (1009 Message Too Big).
    TooBig,
    /// The server could not serve the room (1011 Internal Error).
    Internal(String),
    /// The client read too slowly and its outbound queue filled (1013 Try Again Later).
    SlowConsumer,
    /// The server's budget for bytes waiting to be sent was exceeded and this client held the
    /// most: it reads too slowly for the load the server carries (1013 Try Again Later).
    OutboundBudget,
    /// Nothing arrived from the client for the idle timeout, not even a pong.
    IdleTimeout,
    /// The client closed the connection or it dropped: no close frame of ours is due.
    PeerGone,
    /// The room's document could not be loaded or stored; reconnecting retries (1013).
    StorageUnavailable,
    /// The room is reloading its document from the store; reconnect at once (1012).
    Reloading,
    /// The room's permissions changed; reconnecting checks them again (1012, as for a restart).
    PermissionsChanged,
    /// The connection's token expired; reconnect with a fresh one (4401, the code Hocuspocus
    /// clients know as "unauthorized").
    TokenExpired,
    /// A Hocuspocus client broke the protocol or a limit (4205, "Reset Connection", the code
    /// the Hocuspocus server uses for both).
    Reset(String),
    /// A `/collab` socket authenticated no document in time (4408, the timeout code
    /// Hocuspocus clients know).
    AuthTimeout,
    /// A server-wide budget is spent (connection slots, bytes queued before authentication);
    /// reconnecting later may succeed (1013 Try Again Later).
    ServerBusy(String),
    /// The room's stored document is unsafe to load (see `quarantine.rs`); 1011, since only an
    /// operator can repair it.
    Quarantined,
}

impl CloseReason {
    pub fn code(&self) -> u16 {
        match self {
            Self::ShuttingDown => 1001,
            Self::Protocol(_) => 1002,
            Self::TextFrame => 1003,
            Self::InvalidPayload(_) => 1007,
            Self::Policy(_) => 1008,
            Self::TooBig => 1009,
            Self::Internal(_) => 1011,
            Self::SlowConsumer => 1013,
            Self::OutboundBudget => 1013,
            Self::IdleTimeout => 1001,
            Self::PeerGone => 1000,
            Self::StorageUnavailable => 1013,
            Self::Reloading => 1012,
            Self::PermissionsChanged => 1012,
            Self::TokenExpired => 4401,
            Self::Reset(_) => 4205,
            Self::AuthTimeout => 4408,
            Self::ServerBusy(_) => 1013,
            Self::Quarantined => 1011,
        }
    }

    /// The close frame's reason text: at most 123 bytes, as RFC 6455 allows.
    pub fn text(&self) -> String {
        let text = match self {
            Self::ShuttingDown => "server shutting down".to_owned(),
            Self::Protocol(why) => format!("protocol error: {why}"),
            Self::TextFrame => "text frames are not supported; y-protocols is binary".to_owned(),
            Self::InvalidPayload(why) => format!("invalid payload: {why}"),
            Self::Policy(why) => why.clone(),
            Self::TooBig => "message too big".to_owned(),
            Self::Internal(why) => format!("internal error: {why}"),
            Self::SlowConsumer => "client too slow: outbound queue full, reconnect to resync".to_owned(),
            Self::OutboundBudget => {
                "server send budget exceeded: this client reads too slowly, reconnect to resync".to_owned()
            }
            Self::IdleTimeout => "idle timeout".to_owned(),
            Self::PeerGone => "closed by the client".to_owned(),
            Self::StorageUnavailable => {
                "storage unavailable: the room cannot be served now, reconnect later".to_owned()
            }
            Self::Reloading => "room reloading from storage: reconnect".to_owned(),
            Self::PermissionsChanged => "permissions changed: reconnect".to_owned(),
            Self::TokenExpired => "unauthorized: the token expired, reconnect with a fresh one".to_owned(),
            Self::Reset(why) => format!("reset connection: {why}"),
            Self::AuthTimeout => "authentication timeout: no document authenticated in time".to_owned(),
            Self::ServerBusy(why) => format!("server busy: {why}; retry later"),
            Self::Quarantined => {
                "room quarantined: its stored document cannot be loaded safely; ask the operator".to_owned()
            }
        };
        truncate_utf8(text, 123)
    }

    /// A short stable label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Self::ShuttingDown => "shutdown",
            Self::Protocol(_) => "protocol_error",
            Self::TextFrame => "text_frame",
            Self::InvalidPayload(_) => "invalid_payload",
            Self::Policy(_) => "policy",
            Self::TooBig => "too_big",
            Self::Internal(_) => "internal",
            Self::SlowConsumer => "slow_consumer",
            Self::OutboundBudget => "outbound_budget",
            Self::IdleTimeout => "idle_timeout",
            Self::PeerGone => "client_closed",
            Self::StorageUnavailable => "storage_unavailable",
            Self::Reloading => "reloading",
            Self::PermissionsChanged => "permissions_changed",
            Self::TokenExpired => "token_expired",
            Self::Reset(_) => "reset",
            Self::AuthTimeout => "auth_timeout",
            Self::ServerBusy(_) => "server_busy",
            Self::Quarantined => "quarantined",
        }
    }
}

fn truncate_utf8(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

/// A one-shot "close this connection" signal that either side (the room or the socket loop)
/// can fire. The first reason wins.
#[derive(Debug, Clone, Default)]
pub struct Disconnect {
    token: CancellationToken,
    reason: Arc<OnceLock<CloseReason>>,
}

impl Disconnect {
    pub fn trigger(&self, reason: CloseReason) {
        let _ = self.reason.set(reason);
        self.token.cancel();
    }

    pub async fn triggered(&self) {
        self.token.cancelled().await
    }

    pub fn reason(&self) -> Option<&CloseReason> {
        self.reason.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_texts_fit_in_a_close_frame() {
        let long = CloseReason::Protocol("é".repeat(200));
        assert!(long.text().len() <= 123);
        assert_eq!(CloseReason::TooBig.code(), 1009);
    }

    #[test]
    fn the_first_reason_wins() {
        let d = Disconnect::default();
        d.trigger(CloseReason::SlowConsumer);
        d.trigger(CloseReason::TooBig);
        assert_eq!(d.reason(), Some(&CloseReason::SlowConsumer));
    }
}
