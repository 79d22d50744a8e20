//! How a client's y-websocket messages are framed on the wire: bare (y-websocket), or addressed
//! to one document (Hocuspocus).

use std::sync::Arc;

use crate::hocuspocus;

/// How this client's frames are framed on the wire.
#[derive(Debug, Clone)]
pub enum Framing {
    YWebsocket,
    /// Hocuspocus, for one document on this socket.
    Hocuspocus {
        document: Arc<str>,
    },
}

impl Framing {
    /// Wraps a y-websocket frame (`type • payload`) for the wire.
    pub(crate) fn wrap(&self, inner: Vec<u8>) -> Vec<u8> {
        match self {
            Self::YWebsocket => inner,
            Self::Hocuspocus { document } => hocuspocus::encode_frame(document, &inner),
        }
    }
}
