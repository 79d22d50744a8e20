//! Hocuspocus framing, as `@hocuspocus/provider` 4.x sends and expects it. Sans-IO.
//!
//! Hocuspocus multiplexes documents over one socket: every frame is
//! `varString(documentName) • varUint(type) • payload`, one message per frame. The name may be a
//! routing key `documentName\0sessionId` (provider option `sessionAwareness`); replies must carry
//! the raw key back, since the provider routes incoming frames by exact key.
//!
//! | type | name | payload |
//! |---|---|---|
//! | 0 | Sync | y-protocols sync body: `varUint sub-type • varUint8Array` (step 1, step 2, update) |
//! | 1 | Awareness | `varUint8Array` awareness update (as y-protocols) |
//! | 2 | Auth | `varUint sub-type`: 0 token (client: `varString token • varString providerVersion`; server: nothing, "send your token again"), 1 permission denied `• varString reason`, 2 authenticated `• varString scope` (`"readonly"` / `"read-write"`) |
//! | 3 | QueryAwareness | none |
//! | 4 | SyncReply | like Sync (server-to-server; provider 4.x does not understand it) |
//! | 5 | Stateless | `varString` |
//! | 6 | BroadcastStateless | `varString` (server-internal; never legitimate from a client) |
//! | 7 | Close | client: none; server: `varString reason` |
//! | 8 | SyncStatus | `varUint` 1 (the update was applied) or 0 (refused) |
//! | 9 / 10 | Ping / Pong | **no name**: the whole frame is the single type byte |
//!
//! Sources (npm, read for this module): `@hocuspocus/provider@4.8.0` `src/types.ts`,
//! `src/HocuspocusProviderWebsocket.ts` (bare ping/pong), `src/MessageReceiver.ts`,
//! `src/OutgoingMessages/*.ts`; `@hocuspocus/common@4.8.0` `src/auth.ts`, `src/CloseEvents.ts`;
//! `@hocuspocus/server@4.7.0` `src/OutgoingMessage.ts`, `src/MessageReceiver.ts`,
//! `src/ClientConnection.ts`.
//!
//! Decoding is strict (a frame holds exactly one message, strings are UTF-8, sync and awareness
//! payloads get the y-protocols codec's checks), except that an auth token message may carry
//! fields after the provider version: the version itself was such an addition.

use std::panic::{AssertUnwindSafe, catch_unwind};

use yrs::encoding::read::{Cursor, Read};
use yrs::encoding::write::Write;
use yrs::sync::{AwarenessUpdate, SyncMessage};

use crate::codec::{self, DecodeError};

pub const MSG_SYNC: u64 = 0;
pub const MSG_AWARENESS: u64 = 1;
pub const MSG_AUTH: u64 = 2;
pub const MSG_QUERY_AWARENESS: u64 = 3;
pub const MSG_SYNC_REPLY: u64 = 4;
pub const MSG_STATELESS: u64 = 5;
pub const MSG_BROADCAST_STATELESS: u64 = 6;
pub const MSG_CLOSE: u64 = 7;
pub const MSG_SYNC_STATUS: u64 = 8;
pub const MSG_PING: u8 = 9;
pub const MSG_PONG: u8 = 10;

const AUTH_TOKEN: u64 = 0;
const AUTH_PERMISSION_DENIED: u64 = 1;
const AUTH_AUTHENTICATED: u64 = 2;

/// Close codes Hocuspocus clients know (`@hocuspocus/common` `CloseEvents.ts`).
pub mod close_code {
    pub const MESSAGE_TOO_BIG: u16 = 1009;
    pub const RESET_CONNECTION: u16 = 4205;
    pub const UNAUTHORIZED: u16 = 4401;
    pub const FORBIDDEN: u16 = 4403;
    pub const CONNECTION_TIMEOUT: u16 = 4408;
}

/// Limits applied while decoding a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HocuspocusLimits {
    pub max_frame_bytes: usize,
    /// Longest document name (routing key), in bytes.
    pub max_name_bytes: usize,
}

impl Default for HocuspocusLimits {
    fn default() -> Self {
        Self { max_frame_bytes: 16 * 1024 * 1024, max_name_bytes: 1024 }
    }
}

/// Access a document was granted (`AuthorizedScope` in the provider).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    ReadOnly,
    ReadWrite,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::ReadOnly => "readonly",
            Scope::ReadWrite => "read-write",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthMessage {
    /// Client → server: the token (empty when the provider has none) and, since provider v3,
    /// its version.
    Token {
        token: String,
        provider_version: Option<String>,
    },
    /// Server → client: "send your token again" (the same sub-type, without payload).
    TokenRequest,
    PermissionDenied {
        reason: String,
    },
    /// The scope as sent; providers compare it with `"readonly"` / `"read-write"`.
    Authenticated {
        scope: String,
    },
}

/// One message addressed to a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Sync(SyncMessage),
    Awareness(AwarenessUpdate),
    Auth(AuthMessage),
    QueryAwareness,
    SyncReply(SyncMessage),
    Stateless(String),
    BroadcastStateless(String),
    /// From a client: no reason. From a server: why the document was closed.
    Close {
        reason: Option<String>,
    },
    SyncStatus {
        applied: bool,
    },
}

/// One WebSocket binary frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// Application-level ping (server → provider); answer with [`Frame::Pong`].
    Ping,
    Pong,
    Document {
        name: String,
        message: Message,
    },
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HocuspocusError {
    #[error("empty frame")]
    Empty,
    #[error("frame of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    #[error("document name of {len} bytes exceeds the limit of {limit} bytes")]
    NameTooLong { len: usize, limit: usize },
    #[error("truncated frame")]
    Truncated,
    #[error("malformed varint")]
    BadVarInt,
    #[error("a string is not valid UTF-8")]
    NotUtf8,
    #[error("unknown message type {0}")]
    UnknownMessageType(u64),
    #[error("unknown auth message type {0}")]
    UnknownAuthType(u64),
    #[error("sync status must be 0 or 1, got {0}")]
    BadSyncStatus(u64),
    #[error("{0} unexpected bytes after the message")]
    TrailingBytes(usize),
    /// The sync or awareness payload failed the y-protocols checks.
    #[error(transparent)]
    Payload(#[from] DecodeError),
    #[error("the decoder panicked on this frame")]
    DecoderPanicked,
}

impl HocuspocusError {
    /// A message over the size limit, which clients know as 1009; everything else is a broken
    /// frame.
    pub fn is_too_large(&self) -> bool {
        matches!(self, HocuspocusError::TooLarge { .. })
    }
}

fn read_err(error: yrs::encoding::read::Error) -> HocuspocusError {
    match DecodeError::from_read(error) {
        DecodeError::Truncated => HocuspocusError::Truncated,
        DecodeError::BadVarInt => HocuspocusError::BadVarInt,
        DecodeError::BadPayload(_) => HocuspocusError::NotUtf8,
        other => HocuspocusError::Payload(other),
    }
}

/// Decodes one frame. Never panics: yrs' readers run under `catch_unwind` as a last line of
/// defence.
pub fn decode_frame(frame: &[u8], limits: &HocuspocusLimits) -> Result<Frame, HocuspocusError> {
    if frame.len() > limits.max_frame_bytes {
        return Err(HocuspocusError::TooLarge { size: frame.len(), limit: limits.max_frame_bytes });
    }
    match frame {
        [] => return Err(HocuspocusError::Empty),
        // A named frame needs at least a length byte and a type byte, so a one-byte frame is
        // always a bare ping or pong (the provider tells them apart the same way).
        [MSG_PING] => return Ok(Frame::Ping),
        [MSG_PONG] => return Ok(Frame::Pong),
        _ => {}
    }
    catch_unwind(AssertUnwindSafe(|| decode_document_frame(frame, limits)))
        .unwrap_or(Err(HocuspocusError::DecoderPanicked))
}

fn decode_document_frame(frame: &[u8], limits: &HocuspocusLimits) -> Result<Frame, HocuspocusError> {
    let mut decoder = Cursor::new(frame);
    // Check the name's length before copying it.
    let name_bytes = decoder.read_buf().map_err(read_err)?;
    if name_bytes.len() > limits.max_name_bytes {
        return Err(HocuspocusError::NameTooLong { len: name_bytes.len(), limit: limits.max_name_bytes });
    }
    let name = std::str::from_utf8(name_bytes).map_err(|_| HocuspocusError::NotUtf8)?.to_owned();
    let tag: u64 = decoder.read_var().map_err(read_err)?;
    let message = match tag {
        MSG_SYNC => Message::Sync(codec::decode_sync(&mut decoder)?),
        MSG_SYNC_REPLY => Message::SyncReply(codec::decode_sync(&mut decoder)?),
        MSG_AWARENESS => Message::Awareness(codec::decode_awareness(&mut decoder)?),
        MSG_AUTH => {
            let auth = decode_auth(&mut decoder)?;
            // Tolerate fields a newer provider may append to its token message.
            if matches!(auth, AuthMessage::Token { .. }) {
                decoder.next = frame.len();
            }
            Message::Auth(auth)
        }
        MSG_QUERY_AWARENESS => Message::QueryAwareness,
        MSG_STATELESS => Message::Stateless(read_string(&mut decoder)?),
        MSG_BROADCAST_STATELESS => Message::BroadcastStateless(read_string(&mut decoder)?),
        MSG_CLOSE => {
            let reason = if decoder.has_content() { Some(read_string(&mut decoder)?) } else { None };
            Message::Close { reason }
        }
        MSG_SYNC_STATUS => {
            let status: u64 = decoder.read_var().map_err(read_err)?;
            match status {
                0 | 1 => Message::SyncStatus { applied: status == 1 },
                other => return Err(HocuspocusError::BadSyncStatus(other)),
            }
        }
        other => return Err(HocuspocusError::UnknownMessageType(other)),
    };
    let rest = frame.len().saturating_sub(decoder.next);
    if rest > 0 {
        return Err(HocuspocusError::TrailingBytes(rest));
    }
    Ok(Frame::Document { name, message })
}

fn decode_auth(decoder: &mut Cursor) -> Result<AuthMessage, HocuspocusError> {
    let sub: u64 = decoder.read_var().map_err(read_err)?;
    Ok(match sub {
        // The same sub-type both ways: with a token from a client, bare from a server.
        AUTH_TOKEN if !decoder.has_content() => AuthMessage::TokenRequest,
        AUTH_TOKEN => {
            let token = read_string(decoder)?;
            let provider_version = if decoder.has_content() { Some(read_string(decoder)?) } else { None };
            AuthMessage::Token { token, provider_version }
        }
        AUTH_PERMISSION_DENIED => AuthMessage::PermissionDenied { reason: read_string(decoder)? },
        AUTH_AUTHENTICATED => AuthMessage::Authenticated { scope: read_string(decoder)? },
        other => return Err(HocuspocusError::UnknownAuthType(other)),
    })
}

fn read_string(decoder: &mut Cursor) -> Result<String, HocuspocusError> {
    decoder.read_string().map(str::to_owned).map_err(read_err)
}

/// Encodes one frame.
pub fn encode_frame(frame: &Frame) -> Vec<u8> {
    match frame {
        Frame::Ping => vec![MSG_PING],
        Frame::Pong => vec![MSG_PONG],
        Frame::Document { name, message } => encode(name, message),
    }
}

/// Encodes `message` addressed to `name`.
pub fn encode(name: &str, message: &Message) -> Vec<u8> {
    let mut out = Vec::new();
    out.write_string(name);
    match message {
        Message::Sync(sync) => {
            out.write_var(MSG_SYNC);
            out.extend_from_slice(&sync_body(sync));
        }
        Message::SyncReply(sync) => {
            out.write_var(MSG_SYNC_REPLY);
            out.extend_from_slice(&sync_body(sync));
        }
        Message::Awareness(update) => {
            // The y-protocols awareness frame is `1 • varUint8Array`, the same bytes.
            out.extend_from_slice(&codec::encode_message(&yrs::sync::Message::Awareness(update.clone())));
        }
        Message::Auth(auth) => {
            out.write_var(MSG_AUTH);
            match auth {
                AuthMessage::Token { token, provider_version } => {
                    out.write_var(AUTH_TOKEN);
                    out.write_string(token);
                    if let Some(version) = provider_version {
                        out.write_string(version);
                    }
                }
                AuthMessage::TokenRequest => out.write_var(AUTH_TOKEN),
                AuthMessage::PermissionDenied { reason } => {
                    out.write_var(AUTH_PERMISSION_DENIED);
                    out.write_string(reason);
                }
                AuthMessage::Authenticated { scope } => {
                    out.write_var(AUTH_AUTHENTICATED);
                    out.write_string(scope);
                }
            }
        }
        Message::QueryAwareness => out.write_var(MSG_QUERY_AWARENESS),
        Message::Stateless(payload) => {
            out.write_var(MSG_STATELESS);
            out.write_string(payload);
        }
        Message::BroadcastStateless(payload) => {
            out.write_var(MSG_BROADCAST_STATELESS);
            out.write_string(payload);
        }
        Message::Close { reason } => {
            out.write_var(MSG_CLOSE);
            if let Some(reason) = reason {
                out.write_string(reason);
            }
        }
        Message::SyncStatus { applied } => {
            out.write_var(MSG_SYNC_STATUS);
            out.write_var(u64::from(*applied));
        }
    }
    out
}

/// The sync body without the y-protocols type byte (`[0, sub, payload]` minus the `0`).
fn sync_body(sync: &SyncMessage) -> Vec<u8> {
    let mut frame = codec::encode_message(&yrs::sync::Message::Sync(sync.clone()));
    frame.remove(0);
    frame
}

/// `varString(name)`: what goes in front of a y-protocols frame (types 0, 1 and 3 share their
/// layout) to make it a Hocuspocus frame. Computed once per document and reused per frame.
pub fn name_prefix(name: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(name.len() + 2);
    out.write_string(name);
    out
}

/// The body of a SyncStatus message (`8 • varUint`), without the name: the shape of a
/// y-protocols frame, so a room can queue it like any other and the socket prefixes the name.
pub fn sync_status_body(applied: bool) -> [u8; 2] {
    [MSG_SYNC_STATUS as u8, u8::from(applied)]
}

/// The body of a Stateless message (`5 • varString`), without the name.
pub fn stateless_body(payload: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 6);
    out.write_var(MSG_STATELESS);
    out.write_string(payload);
    out
}

/// The document part of a routing key (`documentName\0sessionId` → `documentName`).
pub fn document_name(key: &str) -> &str {
    key.split_once('\0').map_or(key, |(name, _session)| name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use yrs::sync::awareness::AwarenessUpdateEntry;
    use yrs::{ClientID, StateVector};

    fn limits() -> HocuspocusLimits {
        HocuspocusLimits::default()
    }

    fn doc(name: &str, message: Message) -> Frame {
        Frame::Document { name: name.to_owned(), message }
    }

    fn round_trip(frame: Frame) {
        let bytes = encode_frame(&frame);
        assert_eq!(decode_frame(&bytes, &limits()), Ok(frame));
    }

    #[test]
    fn every_message_type_round_trips() {
        let mut sv = StateVector::default();
        sv.set_max(ClientID::new(7), 42);
        let awareness = AwarenessUpdate {
            clients: [(ClientID::new(3), AwarenessUpdateEntry { clock: 2, json: Arc::from("{\"a\":1}") })]
                .into_iter()
                .collect(),
        };
        for message in [
            Message::Sync(SyncMessage::SyncStep1(sv.clone())),
            Message::Sync(SyncMessage::SyncStep2(vec![0, 0])),
            Message::Sync(SyncMessage::Update(vec![1, 2, 3])),
            Message::SyncReply(SyncMessage::SyncStep1(sv)),
            Message::Awareness(awareness),
            Message::Auth(AuthMessage::Token { token: "t".into(), provider_version: Some("4.8.0".into()) }),
            Message::Auth(AuthMessage::Token { token: String::new(), provider_version: None }),
            Message::Auth(AuthMessage::TokenRequest),
            Message::Auth(AuthMessage::PermissionDenied { reason: "no".into() }),
            Message::Auth(AuthMessage::Authenticated { scope: "readonly".into() }),
            Message::QueryAwareness,
            Message::Stateless("{\"x\":1}".into()),
            Message::BroadcastStateless("b".into()),
            Message::Close { reason: None },
            Message::Close { reason: Some("bye".into()) },
            Message::SyncStatus { applied: true },
            Message::SyncStatus { applied: false },
        ] {
            round_trip(doc("doc\0session", message));
        }
        round_trip(Frame::Ping);
        round_trip(Frame::Pong);
    }

    /// Bytes as `@hocuspocus/provider` 4.8.0 writes them (lib0 encoding), checked by hand.
    #[test]
    fn wire_bytes_match_the_provider() {
        // AuthenticationMessage: name, 2, 0 (token), token, version.
        assert_eq!(
            encode(
                "d",
                &Message::Auth(AuthMessage::Token { token: "t".into(), provider_version: Some("4".into()) })
            ),
            vec![1, b'd', 2, 0, 1, b't', 1, b'4']
        );
        // SyncStepOneMessage of an empty document: name, 0, 0 (step 1), sv = [0].
        assert_eq!(
            encode("d", &Message::Sync(SyncMessage::SyncStep1(StateVector::default()))),
            vec![1, b'd', 0, 0, 1, 0]
        );
        // Server: authenticated read-write, permission denied, sync status, stateless.
        let mut authenticated = vec![1, b'd', 2, 2, 10];
        authenticated.extend_from_slice(b"read-write");
        assert_eq!(
            encode(
                "d",
                &Message::Auth(AuthMessage::Authenticated { scope: Scope::ReadWrite.as_str().into() })
            ),
            authenticated
        );
        assert_eq!(
            encode("d", &Message::Auth(AuthMessage::PermissionDenied { reason: "x".into() })),
            vec![1, b'd', 2, 1, 1, b'x']
        );
        assert_eq!(encode("d", &Message::SyncStatus { applied: true }), vec![1, b'd', 8, 1]);
        let mut prefixed = name_prefix("d");
        prefixed.extend_from_slice(&sync_status_body(false));
        assert_eq!(prefixed, vec![1, b'd', 8, 0]);
        assert_eq!(stateless_body("hi"), vec![5, 2, b'h', b'i']);
        // The provider's CloseMessage and QueryAwarenessMessage carry no payload.
        assert_eq!(decode_frame(&[1, b'd', 7], &limits()), Ok(doc("d", Message::Close { reason: None })));
        assert_eq!(decode_frame(&[1, b'd', 3], &limits()), Ok(doc("d", Message::QueryAwareness)));
        assert_eq!(encode_frame(&Frame::Pong), vec![10]);
    }

    #[test]
    fn auth_tokens_may_carry_later_fields() {
        let bytes = [1, b'd', 2, 0, 1, b't', 1, b'4', 3, b'x', b'y', b'z'];
        assert_eq!(
            decode_frame(&bytes, &limits()),
            Ok(doc(
                "d",
                Message::Auth(AuthMessage::Token { token: "t".into(), provider_version: Some("4".into()) })
            ))
        );
    }

    #[test]
    fn malformed_frames_get_typed_errors() {
        let l = limits();
        assert_eq!(decode_frame(&[], &l), Err(HocuspocusError::Empty));
        assert_eq!(decode_frame(&[3], &l), Err(HocuspocusError::Truncated));
        assert_eq!(decode_frame(&[5, b'a', b'b'], &l), Err(HocuspocusError::Truncated));
        assert_eq!(decode_frame(&[1, b'd', 42], &l), Err(HocuspocusError::UnknownMessageType(42)));
        assert_eq!(decode_frame(&[1, b'd', 2, 9], &l), Err(HocuspocusError::UnknownAuthType(9)));
        assert_eq!(decode_frame(&[1, b'd', 8, 2], &l), Err(HocuspocusError::BadSyncStatus(2)));
        assert_eq!(decode_frame(&[1, 0xff, 3], &l), Err(HocuspocusError::NotUtf8));
        assert_eq!(decode_frame(&[1, b'd', 5, 1, 0xff], &l), Err(HocuspocusError::NotUtf8));
        assert_eq!(decode_frame(&[1, b'd', 3, 0], &l), Err(HocuspocusError::TrailingBytes(1)));
        assert_eq!(
            decode_frame(&[1, b'd', 0, 7, 0], &l),
            Err(HocuspocusError::Payload(DecodeError::UnknownSyncType(7)))
        );
        assert_eq!(
            decode_frame(&[1, b'd', 0, 0, 5, 0x80, 0x80, 0x80, 0x80, 0x02], &l),
            Err(HocuspocusError::Payload(DecodeError::Truncated))
        );
        let long = HocuspocusLimits { max_name_bytes: 2, ..l };
        assert_eq!(
            decode_frame(&[3, b'a', b'b', b'c', 3], &long),
            Err(HocuspocusError::NameTooLong { len: 3, limit: 2 })
        );
        let small = HocuspocusLimits { max_frame_bytes: 4, ..l };
        assert_eq!(decode_frame(&[0; 5], &small), Err(HocuspocusError::TooLarge { size: 5, limit: 4 }));
        assert!(decode_frame(&[0; 5], &small).unwrap_err().is_too_large());
    }

    #[test]
    fn routing_keys_split_at_the_first_nul() {
        assert_eq!(document_name("doc"), "doc");
        assert_eq!(document_name("doc\0abc"), "doc");
        assert_eq!(document_name("doc\0a\0b"), "doc");
    }
}
