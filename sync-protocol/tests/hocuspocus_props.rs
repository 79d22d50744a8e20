//! Property tests for the Hocuspocus frame decoder, which reads untrusted bytes from every
//! `/collab` connection: no panic escapes, what decodes re-encodes to the same meaning, and a
//! frame cut short is never mistaken for a valid one.

use dojo_sync_protocol::SyncMessage;
use dojo_sync_protocol::hocuspocus::{
    AuthMessage, Frame, HocuspocusError, HocuspocusLimits, Message, decode_frame, encode_frame,
};
use dojo_sync_protocol::yrs::{ClientID, StateVector};
use proptest::collection::vec;
use proptest::prelude::*;

fn limits() -> HocuspocusLimits {
    HocuspocusLimits::default()
}

fn name() -> impl Strategy<Value = String> {
    prop_oneof!["[a-z0-9:._-]{0,20}", "[a-z]{1,8}\u{0}[a-z0-9]{1,8}", any::<String>()]
}

fn sync() -> impl Strategy<Value = SyncMessage> {
    prop_oneof![
        vec((0..1000u64, 0..1000u32), 0..4).prop_map(|entries| {
            let mut sv = StateVector::default();
            for (client, clock) in entries {
                sv.set_max(ClientID::new(client), clock);
            }
            SyncMessage::SyncStep1(sv)
        }),
        vec(any::<u8>(), 0..64).prop_map(SyncMessage::SyncStep2),
        vec(any::<u8>(), 0..64).prop_map(SyncMessage::Update),
    ]
}

fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        sync().prop_map(Message::Sync),
        sync().prop_map(Message::SyncReply),
        (any::<String>(), proptest::option::of(any::<String>())).prop_map(|(token, provider_version)| {
            Message::Auth(AuthMessage::Token { token, provider_version })
        }),
        Just(Message::Auth(AuthMessage::TokenRequest)),
        any::<String>().prop_map(|reason| Message::Auth(AuthMessage::PermissionDenied { reason })),
        any::<String>().prop_map(|scope| Message::Auth(AuthMessage::Authenticated { scope })),
        Just(Message::QueryAwareness),
        any::<String>().prop_map(Message::Stateless),
        any::<String>().prop_map(Message::BroadcastStateless),
        proptest::option::of(any::<String>()).prop_map(|reason| Message::Close { reason }),
        any::<bool>().prop_map(|applied| Message::SyncStatus { applied }),
    ]
}

fn frame() -> impl Strategy<Value = Frame> {
    prop_oneof![
        1 => Just(Frame::Ping),
        1 => Just(Frame::Pong),
        20 => (name(), message()).prop_map(|(name, message)| Frame::Document { name, message }),
    ]
}

/// Real frames with a few bytes flipped: closer to valid than uniform noise.
fn mutated_frame() -> impl Strategy<Value = Vec<u8>> {
    (frame(), vec((any::<prop::sample::Index>(), any::<u8>()), 1..4)).prop_map(|(frame, flips)| {
        let mut bytes = encode_frame(&frame);
        for (at, byte) in flips {
            let i = at.index(bytes.len());
            bytes[i] = byte;
        }
        bytes
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in prop_oneof![vec(any::<u8>(), 0..2048), mutated_frame()]) {
        if let Ok(frame) = decode_frame(&bytes, &limits()) {
            let again = decode_frame(&encode_frame(&frame), &limits());
            prop_assert_eq!(again, Ok(frame));
        }
    }

    #[test]
    fn valid_frames_round_trip(frame in frame()) {
        prop_assert_eq!(decode_frame(&encode_frame(&frame), &limits()), Ok(frame));
    }

    /// Every message is self-delimiting, so a cut is an error, except where the cut leaves a
    /// shorter message that is also complete (a close without its optional reason, an auth
    /// token without its optional version, a one-byte frame that reads as ping or pong). Such
    /// a prefix must never decode to the original frame.
    #[test]
    fn truncated_frames_never_decode_to_the_original(frame in frame()) {
        let bytes = encode_frame(&frame);
        for cut in 0..bytes.len() {
            match decode_frame(&bytes[..cut], &limits()) {
                Ok(decoded) => prop_assert_ne!(decoded, frame.clone()),
                Err(error) => prop_assert!(!matches!(error, HocuspocusError::DecoderPanicked)),
            }
        }
    }
}
