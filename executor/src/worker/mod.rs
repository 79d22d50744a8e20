//! Executing accepted runs, in `dojo-server` (the embedded default) or in `dojo-worker`
//! processes (with Redis). The pieces, in the order a run meets them:
//!
//! - [`relay`]: outbox rows and orphaned runs from the database to a [`queue`];
//! - [`queue`]: [`MemoryQueue`] inside one process, [`StreamQueue`] (Redis Streams, a consumer
//!   group with `XAUTOCLAIM` for stalled entries) across processes;
//! - [`pool`]: takes runs from the queue, at most N at once;
//! - [`driver`]: claims a run (a lease in the database, with a per-user limit), executes it with
//!   the [`Engine`](crate::Engine), resumes what a dead worker left without re-running or
//!   re-charging finished nodes;
//! - [`observer`]: every node state into the database (money) and then the room's document;
//! - [`document`]: the seam to the room; [`room_client`] joins it over the WebSocket protocol
//!   with a service token, as a collaborator would;
//! - [`store_cache`]: the node cache in the database, shared by every worker;
//! - [`asset_access`]: which assets a run may read (its user's, now);
//! - [`team_keys`]: the provider keys of a run's team, opened per node with the worker's KEKs.

pub mod asset_access;
pub mod document;
pub mod driver;
pub mod observer;
pub mod pool;
pub mod queue;
pub mod relay;
pub mod room_client;
pub mod store_cache;
pub mod stream;
pub mod team_keys;

pub use asset_access::{RunAssetAccess, UnclaimedRooms};
pub use document::{DocumentError, Edit, RoomDocument, RoomDocuments, run_summary_json, write_summary};
pub use driver::{DriverError, DriverSettings, Execution, RoomReaders, RunDriver};
pub use observer::{DocumentObserver, document_outputs};
pub use queue::{Delivery, MemoryQueue, QueueError, RunQueue};
pub use relay::{Relay, RelaySettings};
pub use room_client::{RemoteRooms, TokenSource};
pub use store_cache::StoreCache;
pub use stream::{StreamQueue, StreamSettings};
pub use team_keys::TeamKeySource;

/// Milliseconds since the epoch (0 if the clock is before it).
pub fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A random name for this process in the lease column and the consumer group.
pub fn worker_name(kind: &str) -> String {
    use std::fmt::Write;
    let bytes: [u8; 8] = rand::random();
    let mut name = format!("{kind}-");
    for byte in bytes {
        let _ = write!(name, "{byte:02x}");
    }
    name
}
