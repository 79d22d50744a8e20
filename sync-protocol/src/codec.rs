//! Frame codec: one WebSocket binary frame ↔ y-protocols messages.
//!
//! Decoding is strict where a lenient decoder would let one client hurt the others: unknown
//! message types, trailing garbage and awareness states that are not JSON are rejected (stock
//! JavaScript clients `JSON.parse` every relayed awareness state, so one bad string would break
//! every peer's message handler). Encoding always writes exactly one message per frame, because
//! y-websocket clients before v4 read only the first message of a frame.

use std::panic::{AssertUnwindSafe, catch_unwind};

use yrs::StateVector;
use yrs::encoding::read::{Cursor, Error as ReadError, Read};
use yrs::encoding::varint::VarInt;
use yrs::encoding::write::Write;
use yrs::sync::protocol::{MSG_AUTH, MSG_AWARENESS, MSG_QUERY_AWARENESS, MSG_SYNC};
use yrs::sync::{AwarenessUpdate, Message, SyncMessage};
use yrs::updates::decoder::Decode;
use yrs::updates::encoder::{Encode, Encoder, EncoderV1};

/// Limits applied while decoding a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameLimits {
    /// Largest accepted frame, in bytes.
    pub max_frame_bytes: usize,
    /// Most messages accepted in one frame. Stock clients send one; yrs-based clients may pack
    /// sync step 1 and awareness together.
    pub max_messages_per_frame: usize,
}

impl Default for FrameLimits {
    fn default() -> Self {
        Self { max_frame_bytes: 16 * 1024 * 1024, max_messages_per_frame: 16 }
    }
}

/// Why a frame was rejected. Every variant means the peer is not speaking y-protocols correctly;
/// the caller should close that connection and nobody else's.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("empty frame")]
    Empty,
    #[error("frame of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    #[error("unknown message type {0}")]
    UnknownMessageType(u64),
    #[error("unknown sync message type {0}")]
    UnknownSyncType(u64),
    #[error("truncated frame: a varint or length prefix runs past the end")]
    Truncated,
    #[error("malformed varint")]
    BadVarInt,
    #[error("malformed payload: {0}")]
    BadPayload(String),
    #[error("awareness state for client {client} is not valid JSON")]
    BadAwarenessJson { client: u64 },
    #[error("more than {0} messages in one frame")]
    TooManyMessages(usize),
    #[error("the decoder panicked on this frame")]
    DecoderPanicked,
}

impl DecodeError {
    pub(crate) fn from_read(err: ReadError) -> Self {
        match err {
            ReadError::EndOfBuffer(_) => DecodeError::Truncated,
            ReadError::InvalidVarInt => DecodeError::BadVarInt,
            other => DecodeError::BadPayload(other.to_string()),
        }
    }
}

/// Decodes every message of one binary frame.
///
/// Never panics: yrs' decoders are run under `catch_unwind` as a last line of defence, so that a
/// decoder bug becomes [`DecodeError::DecoderPanicked`] instead of a dead server thread.
pub fn decode_frame(frame: &[u8], limits: &FrameLimits) -> Result<Vec<Message>, DecodeError> {
    if frame.is_empty() {
        return Err(DecodeError::Empty);
    }
    if frame.len() > limits.max_frame_bytes {
        return Err(DecodeError::TooLarge { size: frame.len(), limit: limits.max_frame_bytes });
    }
    catch_unwind(AssertUnwindSafe(|| decode_messages(frame, limits)))
        .unwrap_or(Err(DecodeError::DecoderPanicked))
}

fn decode_messages(frame: &[u8], limits: &FrameLimits) -> Result<Vec<Message>, DecodeError> {
    let mut decoder = Cursor::new(frame);
    let mut messages = Vec::with_capacity(1);
    loop {
        if messages.len() == limits.max_messages_per_frame {
            return Err(DecodeError::TooManyMessages(limits.max_messages_per_frame));
        }
        messages.push(decode_one(&mut decoder)?);
        if !decoder.has_content() {
            return Ok(messages);
        }
    }
}

fn decode_one(decoder: &mut Cursor) -> Result<Message, DecodeError> {
    let read = DecodeError::from_read;
    // Read the tag as u64 so that any varint (not just < 256) gets a precise "unknown type".
    let tag: u64 = decoder.read_var().map_err(read)?;
    match tag {
        t if t == u64::from(MSG_SYNC) => Ok(Message::Sync(decode_sync(decoder)?)),
        t if t == u64::from(MSG_AWARENESS) => Ok(Message::Awareness(decode_awareness(decoder)?)),
        t if t == u64::from(MSG_AUTH) => {
            let sub: u64 = decoder.read_var().map_err(read)?;
            let reason = if sub == 0 { Some(decoder.read_string().map_err(read)?.to_owned()) } else { None };
            Ok(Message::Auth(reason))
        }
        t if t == u64::from(MSG_QUERY_AWARENESS) => Ok(Message::AwarenessQuery),
        other => Err(DecodeError::UnknownMessageType(other)),
    }
}

/// Reads a sync message's body (`varUint sub-type • varUint8Array payload`), the part after the
/// message type. Shared with the Hocuspocus codec, whose sync messages carry the same body.
pub(crate) fn decode_sync(decoder: &mut Cursor) -> Result<SyncMessage, DecodeError> {
    let read = DecodeError::from_read;
    let sub: u64 = decoder.read_var().map_err(read)?;
    let payload = decoder.read_buf().map_err(read)?;
    Ok(match sub {
        0 => {
            // Entry: client id and clock varints.
            check_entry_count::<u32>(payload, 2)?;
            SyncMessage::SyncStep1(StateVector::decode_v1(payload).map_err(read)?)
        }
        1 => SyncMessage::SyncStep2(payload.to_vec()),
        2 => SyncMessage::Update(payload.to_vec()),
        other => return Err(DecodeError::UnknownSyncType(other)),
    })
}

/// Reads an awareness message's body (`varUint8Array update`), checking every state is JSON.
pub(crate) fn decode_awareness(decoder: &mut Cursor) -> Result<AwarenessUpdate, DecodeError> {
    let read = DecodeError::from_read;
    let payload = decoder.read_buf().map_err(read)?;
    // Entry: client id and clock varints, then the state's length prefix.
    check_entry_count::<usize>(payload, 3)?;
    let update = AwarenessUpdate::decode_v1(payload).map_err(read)?;
    for (client, entry) in &update.clients {
        if serde_json::from_str::<serde::de::IgnoredAny>(&entry.json).is_err() {
            return Err(DecodeError::BadAwarenessJson { client: client.get() });
        }
    }
    Ok(update)
}

/// Refuses a payload whose leading count declares more entries than its bytes can hold.
///
/// yrs reserves a hash map for the declared number of entries before reading any of them, and
/// the count is the sender's to choose: an 8-byte sync step 1 declaring 2^29 entries made the
/// decoder allocate and clear about 1 GiB, for seconds, before failing as truncated (`try_reserve`
/// only stops reservations that fail, not ones that are merely huge). Every entry takes at least
/// `min_entry_bytes`, so such a count gets the same `Truncated` answer up front. `T` is the type
/// yrs reads the count as, so that both read the same number.
fn check_entry_count<T: VarInt + TryInto<usize>>(
    payload: &[u8],
    min_entry_bytes: usize,
) -> Result<(), DecodeError> {
    let mut cursor = Cursor::new(payload);
    let declared: T = cursor.read_var().map_err(DecodeError::from_read)?;
    let room = (payload.len() - cursor.next) / min_entry_bytes;
    match declared.try_into() {
        Ok(declared) if declared <= room => Ok(()),
        _ => Err(DecodeError::Truncated),
    }
}

/// Encodes one message as one frame.
pub fn encode_message(message: &Message) -> Vec<u8> {
    let mut encoder = EncoderV1::new();
    message.encode(&mut encoder);
    encoder.to_vec()
}

/// `[0, 0, sv]`: sync step 1 carrying a state vector.
pub fn encode_sync_step1(state_vector: &StateVector) -> Vec<u8> {
    encode_message(&Message::Sync(SyncMessage::SyncStep1(state_vector.clone())))
}

/// `[0, 1, update]`: sync step 2 carrying the missing part of a document.
pub fn encode_sync_step2(update: &[u8]) -> Vec<u8> {
    encode_sync_payload(yrs::sync::protocol::MSG_SYNC_STEP_2, update)
}

/// `[0, 2, update]`: an incremental document update.
pub fn encode_update(update: &[u8]) -> Vec<u8> {
    encode_sync_payload(yrs::sync::protocol::MSG_SYNC_UPDATE, update)
}

/// `[2, 0, reason]`: y-protocols' "permission denied".
pub fn encode_permission_denied(reason: &str) -> Vec<u8> {
    encode_message(&Message::Auth(Some(reason.to_owned())))
}

// Writes the sync envelope around a borrowed payload, avoiding the copy that building a
// `SyncMessage` (which owns a `Vec`) would need on the broadcast hot path.
fn encode_sync_payload(sub_type: u8, payload: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(payload.len() + 7);
    frame.write_var(MSG_SYNC);
    frame.write_var(sub_type);
    frame.write_buf(payload);
    frame
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use yrs::ClientID;
    use yrs::sync::awareness::AwarenessUpdateEntry;

    fn limits() -> FrameLimits {
        FrameLimits::default()
    }

    fn round_trip(message: Message) {
        let bytes = encode_message(&message);
        let decoded = decode_frame(&bytes, &limits()).expect("decodes");
        assert_eq!(decoded, vec![message]);
    }

    fn awareness_update(entries: &[(u64, u32, &str)]) -> AwarenessUpdate {
        AwarenessUpdate {
            clients: entries
                .iter()
                .map(|&(id, clock, json)| {
                    (ClientID::new(id), AwarenessUpdateEntry { clock, json: Arc::from(json) })
                })
                .collect(),
        }
    }

    #[test]
    fn every_message_type_round_trips() {
        let mut sv = StateVector::default();
        sv.set_max(ClientID::new(7), 42);
        round_trip(Message::Sync(SyncMessage::SyncStep1(sv)));
        round_trip(Message::Sync(SyncMessage::SyncStep2(vec![0, 0])));
        round_trip(Message::Sync(SyncMessage::Update(vec![1, 2, 3])));
        round_trip(Message::Awareness(awareness_update(&[
            (1, 3, r#"{"user":{"name":"A"}}"#),
            (2, 4, "null"),
        ])));
        round_trip(Message::Auth(Some("room is read-only".into())));
        round_trip(Message::AwarenessQuery);
    }

    #[test]
    fn borrowed_encoders_match_the_owned_encoder() {
        let update = vec![9, 8, 7];
        assert_eq!(
            encode_update(&update),
            encode_message(&Message::Sync(SyncMessage::Update(update.clone())))
        );
        assert_eq!(
            encode_sync_step2(&update),
            encode_message(&Message::Sync(SyncMessage::SyncStep2(update)))
        );
        assert_eq!(encode_permission_denied("no"), vec![2, 0, 2, b'n', b'o']);
    }

    #[test]
    fn wire_bytes_match_y_protocols() {
        // Byte layouts from y-protocols' PROTOCOL.md.
        assert_eq!(encode_update(&[0, 0]), vec![0, 2, 2, 0, 0]);
        assert_eq!(encode_message(&Message::AwarenessQuery), vec![3]);
        assert_eq!(encode_sync_step1(&StateVector::default()), vec![0, 0, 1, 0]);
    }

    #[test]
    fn several_messages_in_one_frame_are_all_decoded() {
        let mut frame = encode_sync_step1(&StateVector::default());
        frame.extend(encode_message(&Message::AwarenessQuery));
        let decoded = decode_frame(&frame, &limits()).expect("decodes");
        assert_eq!(decoded.len(), 2);
        assert_eq!(decoded[1], Message::AwarenessQuery);
    }

    #[test]
    fn malformed_frames_get_typed_errors() {
        let l = limits();
        assert_eq!(decode_frame(&[], &l), Err(DecodeError::Empty));
        assert_eq!(decode_frame(&[99], &l), Err(DecodeError::UnknownMessageType(99)));
        assert_eq!(decode_frame(&[0, 7, 0], &l), Err(DecodeError::UnknownSyncType(7)));
        // A varint whose continuation bit promises a byte that never comes.
        assert_eq!(decode_frame(&[0x80], &l), Err(DecodeError::Truncated));
        // Length prefix says 10 bytes, 2 follow.
        assert_eq!(decode_frame(&[0, 2, 10, 1, 2], &l), Err(DecodeError::Truncated));
        let big = vec![0u8; 65];
        assert_eq!(
            decode_frame(&big, &FrameLimits { max_frame_bytes: 64, ..l }),
            Err(DecodeError::TooLarge { size: 65, limit: 64 })
        );
        let bad_json = encode_message(&Message::Awareness(awareness_update(&[(5, 1, "{not json")])));
        assert_eq!(decode_frame(&bad_json, &l), Err(DecodeError::BadAwarenessJson { client: 5 }));
        // A valid message followed by garbage is rejected as a whole.
        let mut trailing = encode_message(&Message::AwarenessQuery);
        trailing.push(0x80);
        assert_eq!(decode_frame(&trailing, &l), Err(DecodeError::Truncated));
    }

    #[test]
    fn entry_counts_a_payload_cannot_hold_are_refused_before_yrs_reserves_for_them() {
        let l = limits();
        // Sync step 1 whose state vector declares 2^29 entries: 8 bytes that used to cost ~1 GiB.
        assert_eq!(decode_frame(&[0, 0, 5, 0x80, 0x80, 0x80, 0x80, 0x02], &l), Err(DecodeError::Truncated));
        // Counts too large to reserve at all made yrs report an allocation failure; refusing them
        // as truncated shows that the check runs first.
        assert_eq!(decode_frame(&[0, 0, 5, 0xff, 0xff, 0xff, 0xff, 0x0f], &l), Err(DecodeError::Truncated));
        assert_eq!(
            decode_frame(&[1, 6, 0x80, 0x80, 0x80, 0x80, 0x80, 0x20], &l),
            Err(DecodeError::Truncated)
        );
        // A count that fits still decodes.
        let mut sv = StateVector::default();
        sv.set_max(ClientID::new(1), 2);
        sv.set_max(ClientID::new(3), 4);
        assert_eq!(
            decode_frame(&encode_sync_step1(&sv), &l),
            Ok(vec![Message::Sync(SyncMessage::SyncStep1(sv))])
        );
    }

    #[test]
    fn message_count_per_frame_is_bounded() {
        let frame = vec![3u8; 5];
        let l = FrameLimits { max_messages_per_frame: 4, ..limits() };
        assert_eq!(decode_frame(&frame, &l), Err(DecodeError::TooManyMessages(4)));
    }
}
