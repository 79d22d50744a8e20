//! The one Rust y-protocols client of Dojo, over tokio-tungstenite: what the worker, the load
//! generator and the server's integration tests use to reach a room as a collaborator does.
//!
//! - [`SyncClient`]: an editing client, sync and awareness as y-websocket's
//!   provider speaks them (or Hocuspocus's, [`Framing`]); the tests' and the load generator's.
//! - [`DurableRoom`]: a replica whose writes return once the room stored them,
//!   reconnecting and resyncing across lost connections; the worker's.
//! - [`socket`]: opening the WebSocket (tokens, frame limits, timeouts) and reading close codes.
//! - [`hocuspocus`]: Hocuspocus framing, sans-IO.
//!
//! The same client drives the server's integration tests and the load generator, so what the
//! benchmarks measure is what the tests prove correct.

mod client;
mod deferred;
mod durable;
mod framing;
pub mod hocuspocus;
mod peer;
pub mod socket;

pub use client::{Applying, ClientError, ClientOptions, SyncClient};
pub use deferred::{CatchUp, MAX_DEFERRED_BYTES};
pub use durable::{DurableRoom, DurableSettings, RoomError, Tokens};
pub use framing::Framing;
pub use peer::{ClientStatus, UpdateTap};
