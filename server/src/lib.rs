//! Dojo's room server: one Yjs document per room, served over y-protocols on WebSockets.
//!
//! See `ARCHITECTURE.md` at the repository root for how a frame flows through these modules.
//! Modules are private to the crate unless the binary, the integration tests (`server/tests`)
//! or another crate name something in them.

// What the binary, the tests and other crates use.
pub mod agent_settings;
pub mod auth_settings;
pub mod cluster;
pub mod compaction;
pub mod config;
pub mod executor_settings;
pub mod hocuspocus;
pub mod key_settings;
mod memory_trim;
pub mod metrics;
pub mod plan_settings;
pub(crate) mod queue_budget;
pub(crate) mod room;
pub(crate) mod room_openers;
pub(crate) mod room_registry;
pub mod services;
pub mod sqlite_lock;
pub mod team_settings;
pub mod webhook_metrics;
pub mod webhook_settings;
pub mod webhooks;

pub(crate) mod admission;
pub(crate) mod agent_schedules;
pub(crate) mod agents;
pub(crate) mod api;
pub(crate) mod app;
pub(crate) mod caller;
pub(crate) mod client_addr;
pub(crate) mod close;
pub(crate) mod cluster_presence;
pub(crate) mod conn_id;
pub(crate) mod connection;
pub(crate) mod document_size;
pub(crate) mod edit_history;
pub(crate) mod error_body;
pub(crate) mod error_code;
pub(crate) mod execution;
pub(crate) mod executor_maps;
pub(crate) mod frame_queue;
pub(crate) mod http_server;
pub(crate) mod journal;
pub(crate) mod metrics_access;
pub(crate) mod origin;
pub(crate) mod outbound_budget;
pub(crate) mod preauth;
pub(crate) mod presence_limits;
pub(crate) mod presence_states;
pub(crate) mod public_rate;
pub(crate) mod quarantine;
pub(crate) mod queue_estimate;
pub(crate) mod rate;
pub(crate) mod room_name;
pub(crate) mod send_queue;
pub(crate) mod serve;
pub(crate) mod socket_reader;
pub(crate) mod socket_writer;
pub(crate) mod stall_guard;
pub(crate) mod state;
pub(crate) mod storage;
pub(crate) mod user_connections;
pub(crate) mod web;
pub(crate) mod y_websocket;

pub use api::openapi::document as openapi_document;
pub use app::router;
pub use config::Config;
pub use serve::{ServeError, serve};
pub use state::AppState;
pub use storage::{Storage, StorageError};

/// The size of the future `F` returns, without making one: the tests that keep an idle room's
/// and connection's futures small (BENCHMARKS.md, idle memory).
#[cfg(test)]
pub(crate) fn future_size<A, B, C, Fut, F: FnOnce(A, B, C) -> Fut>(_: &F) -> usize {
    std::mem::size_of::<Fut>()
}
