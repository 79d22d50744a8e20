//! Feeds arbitrary bytes to the frame decoder, as a hostile client would.
//!
//! `decode_frame` catches panics, but libfuzzer-sys installs a panic hook that aborts first, so a
//! panic anywhere in the decoders (ours or yrs') is reported as a crash instead of being hidden
//! behind `DecodeError::DecoderPanicked`.
#![no_main]

use dojo_sync_protocol::{FrameLimits, decode_frame, encode_message};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = FrameLimits::default();
    if let Ok(messages) = decode_frame(data, &limits) {
        // Whatever is accepted must re-encode to a frame that decodes to the same message.
        for message in messages {
            let again = decode_frame(&encode_message(&message), &limits);
            assert_eq!(again, Ok(vec![message]));
        }
    }
});
