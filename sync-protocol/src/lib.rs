//! Sans-IO y-protocols support for Dojo.
//!
//! This crate turns WebSocket frame payloads into typed y-protocols messages and back, applies
//! client updates to a document without letting a malformed update take the process down, and
//! defines the canvas document schema shared by the server, the executor and the web editor.
//!
//! It knows nothing about sockets, runtimes or storage (no tokio, axum or sqlx): bytes in,
//! typed values and bytes out. The wire types themselves come from [`yrs::sync`]; this crate adds
//! what yrs leaves to the caller: a frame-size limit, typed errors for every way a frame can be
//! wrong, JSON validation of awareness states, and panic isolation around decode and apply.

pub mod canvas;
pub mod codec;
pub mod hocuspocus;
pub mod update;

pub use codec::{
    DecodeError, FrameLimits, decode_frame, encode_message, encode_permission_denied, encode_sync_step1,
    encode_sync_step2, encode_update,
};
pub use update::{ApplyError, apply_client_update, apply_client_update_within};

/// Re-exported so that users of this crate name one yrs version.
pub use yrs;
pub use yrs::sync::{Awareness, AwarenessUpdate, Message, SyncMessage};
