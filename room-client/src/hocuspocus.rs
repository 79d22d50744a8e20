//! Hocuspocus framing (`@hocuspocus/server` and `@hocuspocus/provider` 4.x), sans-IO.
//!
//! Hocuspocus multiplexes documents over one socket, so every frame starts with the document's
//! name as a lib0 `varString` (varUint byte length, then UTF-8), followed by a varUint message
//! type and its payload. Types 0 (sync) and 1 (awareness) carry exactly what y-websocket puts
//! after its own type byte, so once the name is stripped those frames decode with the
//! y-websocket codec. The rest are Hocuspocus's own:
//!
//! | type | name | payload (server → client) |
//! |---|---|---|
//! | 2 | Auth | varUint sub-type: 0 token request, 1 permission denied + varString reason, 2 authenticated + varString scope |
//! | 3 | QueryAwareness | none |
//! | 4 | SyncReply | like Sync, but the receiver does not answer with its own step 1 |
//! | 5 | Stateless | varString |
//! | 7 | Close | varString reason |
//! | 8 | SyncStatus | varUint 1 (the update was applied) or 0 |
//! | 9 / 10 | Ping / Pong | sent **without** the name prefix: the frame is the single type byte |
//!
//! A provider opens a document by sending `Auth` (`name • 2 • 0 • varString token •
//! varString providerVersion`), then sync step 1 (`name • 0 • 0 • state vector`). The server
//! answers `name • 2 • 2 • "read-write"`, then, for the step 1, its own step 1 and the step 2.
//! (Sources: `provider/src/OutgoingMessages/AuthenticationMessage.ts`,
//! `common/src/auth.ts`, `server/src/ClientConnection.ts`, `server/src/MessageReceiver.ts`.)

/// Message types of the Hocuspocus protocol (`server/src/types.ts`).
pub mod message_type {
    pub const SYNC: u64 = 0;
    pub const AWARENESS: u64 = 1;
    pub const AUTH: u64 = 2;
    pub const QUERY_AWARENESS: u64 = 3;
    pub const SYNC_REPLY: u64 = 4;
    pub const STATELESS: u64 = 5;
    pub const BROADCAST_STATELESS: u64 = 6;
    pub const CLOSE: u64 = 7;
    pub const SYNC_STATUS: u64 = 8;
    pub const PING: u64 = 9;
    pub const PONG: u64 = 10;
}

/// Auth sub-types (`common/src/auth.ts`).
const AUTH_TOKEN: u64 = 0;
const AUTH_PERMISSION_DENIED: u64 = 1;
const AUTH_AUTHENTICATED: u64 = 2;

/// The provider version we announce in the auth message (the servers only log it).
pub const PROVIDER_VERSION: &str = "4.7.0";

/// One frame from a Hocuspocus server, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// An application-level ping (a bare type byte): answer with [`encode_pong`].
    Ping,
    /// A message addressed to document `document`.
    Message { document: String, message: HocusMessage },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HocusMessage {
    /// Sync (0) or SyncReply (4), re-framed as a y-websocket frame (`0 • sub-type • payload`),
    /// ready for the y-websocket codec.
    Sync(Vec<u8>),
    /// Awareness (1), re-framed as a y-websocket frame (`1 • varUint8Array`).
    Awareness(Vec<u8>),
    /// The server asks for the token again.
    TokenRequest,
    Authenticated {
        scope: String,
    },
    PermissionDenied {
        reason: String,
    },
    QueryAwareness,
    Stateless(String),
    Close {
        reason: String,
    },
    /// Whether the server applied our last update.
    SyncStatus {
        applied: bool,
    },
    /// A type we do not act on (a later protocol version, or a server-internal one).
    Other(u64),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("empty frame")]
    Empty,
    #[error("truncated frame")]
    Truncated,
    #[error("malformed varint")]
    BadVarInt,
    #[error("the document name is not UTF-8")]
    BadUtf8,
}

/// `varString(document) • inner`: a y-websocket message (`type • payload`) addressed to a document.
pub fn encode_frame(document: &str, inner: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(document.len() + inner.len() + 5);
    write_var_string(&mut frame, document);
    frame.extend_from_slice(inner);
    frame
}

/// The provider's first message for a document: `varString(document) • 2 • 0 • varString(token)
/// • varString(provider version)`.
pub fn encode_auth(document: &str, token: &str) -> Vec<u8> {
    let mut frame = Vec::with_capacity(document.len() + token.len() + 16);
    write_var_string(&mut frame, document);
    write_var_uint(&mut frame, message_type::AUTH);
    write_var_uint(&mut frame, AUTH_TOKEN);
    write_var_string(&mut frame, token);
    write_var_string(&mut frame, PROVIDER_VERSION);
    frame
}

/// The answer to a server's [`Incoming::Ping`]: the bare Pong type byte.
pub fn encode_pong() -> Vec<u8> {
    vec![message_type::PONG as u8]
}

/// Decodes one frame from a Hocuspocus server. Never panics, whatever the bytes.
pub fn decode_frame(frame: &[u8]) -> Result<Incoming, FrameError> {
    if frame.is_empty() {
        return Err(FrameError::Empty);
    }
    if frame == [message_type::PING as u8] {
        return Ok(Incoming::Ping);
    }
    let mut reader = Reader { bytes: frame, pos: 0 };
    let document = reader.var_string()?;
    let type_start = reader.pos;
    let kind = reader.var_uint()?;
    let rest = |reader: &Reader| reader.bytes[reader.pos..].to_vec();
    let message = match kind {
        message_type::SYNC | message_type::AWARENESS => {
            HocusMessage::from_y(kind, frame[type_start..].to_vec())
        }
        message_type::SYNC_REPLY => {
            let mut inner = vec![message_type::SYNC as u8];
            inner.extend_from_slice(&rest(&reader));
            HocusMessage::Sync(inner)
        }
        message_type::AUTH => match reader.var_uint()? {
            AUTH_TOKEN => HocusMessage::TokenRequest,
            AUTH_PERMISSION_DENIED => HocusMessage::PermissionDenied { reason: reader.var_string()? },
            AUTH_AUTHENTICATED => HocusMessage::Authenticated { scope: reader.var_string()? },
            _ => HocusMessage::Other(kind),
        },
        message_type::QUERY_AWARENESS => HocusMessage::QueryAwareness,
        message_type::STATELESS => HocusMessage::Stateless(reader.var_string()?),
        message_type::CLOSE => HocusMessage::Close { reason: reader.var_string()? },
        message_type::SYNC_STATUS => HocusMessage::SyncStatus { applied: reader.var_uint()? == 1 },
        other => HocusMessage::Other(other),
    };
    Ok(Incoming::Message { document, message })
}

impl HocusMessage {
    fn from_y(kind: u64, inner: Vec<u8>) -> Self {
        if kind == message_type::SYNC { Self::Sync(inner) } else { Self::Awareness(inner) }
    }
}

fn write_var_uint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn write_var_string(out: &mut Vec<u8>, value: &str) {
    write_var_uint(out, value.len() as u64);
    out.extend_from_slice(value.as_bytes());
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn var_uint(&mut self) -> Result<u64, FrameError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *self.bytes.get(self.pos).ok_or(FrameError::Truncated)?;
            self.pos += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                return Ok(value);
            }
        }
        Err(FrameError::BadVarInt)
    }

    fn var_string(&mut self) -> Result<String, FrameError> {
        let len = usize::try_from(self.var_uint()?).map_err(|_| FrameError::Truncated)?;
        let end =
            self.pos.checked_add(len).filter(|end| *end <= self.bytes.len()).ok_or(FrameError::Truncated)?;
        let text = std::str::from_utf8(&self.bytes[self.pos..end]).map_err(|_| FrameError::BadUtf8)?;
        self.pos = end;
        Ok(text.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bytes printed by the 4.7.0 packages themselves (`OutgoingMessage`, `writeAuthentication`,
    /// `y-protocols/sync`, `lib0/encoding`), for document `room-1`.
    fn hex(text: &str) -> Vec<u8> {
        (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap()).collect()
    }

    #[test]
    fn the_provider_messages_match_the_javascript_bytes() {
        // AuthenticationMessage with token "" and version 4.7.0.
        assert_eq!(encode_auth("room-1", ""), hex("06726f6f6d2d3102000005342e372e30"));
        // SyncStepOneMessage for an empty document: y-websocket's [0, 0, varUint8Array([0])].
        assert_eq!(encode_frame("room-1", &[0, 0, 1, 0]), hex("06726f6f6d2d3100000100"));
        assert_eq!(encode_pong(), [10]);
    }

    #[test]
    fn server_messages_decode() {
        let message = |document: &str, message| Incoming::Message { document: document.into(), message };
        let cases = [
            (
                "06726f6f6d2d3102020a726561642d7772697465",
                HocusMessage::Authenticated { scope: "read-write".into() },
            ),
            (
                "06726f6f6d2d310201117065726d697373696f6e2d64656e696564",
                HocusMessage::PermissionDenied { reason: "permission-denied".into() },
            ),
            ("06726f6f6d2d310801", HocusMessage::SyncStatus { applied: true }),
            ("06726f6f6d2d310800", HocusMessage::SyncStatus { applied: false }),
            ("06726f6f6d2d310703627965", HocusMessage::Close { reason: "bye".into() }),
            ("06726f6f6d2d3105026869", HocusMessage::Stateless("hi".into())),
            ("06726f6f6d2d3103", HocusMessage::QueryAwareness),
            ("06726f6f6d2d310200", HocusMessage::TokenRequest),
        ];
        for (bytes, expected) in cases {
            assert_eq!(decode_frame(&hex(bytes)), Ok(message("room-1", expected)), "{bytes}");
        }
        // A broadcast update and a SyncReply (step 1) both come out as y-websocket sync frames.
        assert_eq!(
            decode_frame(&hex("06726f6f6d2d310002020000")),
            Ok(message("room-1", HocusMessage::Sync(vec![0, 2, 2, 0, 0])))
        );
        assert_eq!(
            decode_frame(&hex("06726f6f6d2d3104000100")),
            Ok(message("room-1", HocusMessage::Sync(vec![0, 0, 1, 0])))
        );
        assert_eq!(decode_frame(&[9]), Ok(Incoming::Ping));
        assert_eq!(decode_frame(&hex("06726f6f6d2d310c")), Ok(message("room-1", HocusMessage::Other(12))));
    }

    #[test]
    fn frames_round_trip_through_the_y_websocket_codec() {
        use dojo_sync_protocol::codec::{FrameLimits, decode_frame as decode_y, encode_update};
        let inner = encode_update(&[0, 0]);
        let Ok(Incoming::Message { document, message: HocusMessage::Sync(back) }) =
            decode_frame(&encode_frame("canvas:42", &inner))
        else {
            panic!("not a sync frame");
        };
        assert_eq!((document.as_str(), &back), ("canvas:42", &inner));
        assert!(decode_y(&back, &FrameLimits::default()).is_ok());
    }

    #[test]
    fn long_names_use_multi_byte_lengths() {
        // 100 × "é" is 200 bytes: varUint 200 is c8 01 (checked against lib0's output).
        let name = "é".repeat(100);
        let frame = encode_frame(&name, &[8, 0]);
        assert_eq!(&frame[..4], &hex("c801c3a9")[..]);
        assert_eq!(
            decode_frame(&frame),
            Ok(Incoming::Message { document: name, message: HocusMessage::SyncStatus { applied: false } })
        );
    }

    #[test]
    fn garbage_is_an_error_never_a_panic() {
        assert_eq!(decode_frame(&[]), Err(FrameError::Empty));
        assert_eq!(decode_frame(&[5, b'a']), Err(FrameError::Truncated));
        assert_eq!(decode_frame(&[2, 0xff, 0xfe, 0]), Err(FrameError::BadUtf8));
        assert_eq!(decode_frame(&[0xff; 12]), Err(FrameError::BadVarInt));
        assert_eq!(decode_frame(&[1, b'a']), Err(FrameError::Truncated));
        assert_eq!(decode_frame(&[1, b'a', 2]), Err(FrameError::Truncated));
        for length in 0..64 {
            let bytes: Vec<u8> = (0..length).map(|i| (i * 37 + 11) as u8).collect();
            let _ = decode_frame(&bytes);
        }
    }
}
