//! One room: its document, its peers, and the actor task that serves it.
//!
//! A room's logic is a sans-IO state machine, [`core`]: inputs in (a connection's frame, a
//! join or leave, a stored batch, a cluster message, an HTTP command, a timer tick, with the
//! current time), effects out (frames to queue, batches to store, messages to publish, reads
//! to make, answers to give). The [`actor`] (one tokio task per open room that is not parked)
//! owns the queue, the connections' send queues, the store and the timers, and only carries
//! effects out; so there are no locks around the document and every update is applied once, in
//! arrival order.
//!
//! Life of a room: it loads its document from the store once (connections wait in the queue
//! meanwhile), serves, and unloads a grace period after its last client left. Every change is
//! stored before anyone sees it (see `journal.rs`). If loading or storing fails, the room stops
//! serving: its clients are disconnected and reconnect to a fresh load, rather than being
//! served a document that disagrees with the store.
//!
//! Where things are: `handle.rs` (commands, address, settings), `protocol.rs` (y-websocket vs
//! Hocuspocus), `core.rs` (sync rules, write-before-broadcast), `presence.rs` (who owns which
//! awareness ids), `remote.rs` and `replication.rs` (other instances), `http.rs` (apply,
//! restore, state), `schedule.rs` (when to compact) and `folding.rs` (compacting
//! from the live document), `hibernation.rs` and `sleep.rs` (dropping an idle room's document),
//! `parking.rs` (and then its task and queue), `load.rs` (reading the store), `actor.rs`.

mod actor;
mod core;
mod effects;
mod folding;
mod handle;
mod hibernation;
mod http;
mod load;
mod parking;
mod presence;
mod protocol;
mod remote;
mod replication;
mod schedule;
mod sleep;
#[cfg(test)]
mod tests;

pub use actor::{Room, RoomRegistration, TaskEnd};
pub use handle::{
    ApplyError, ApplyRequest, ConnId, Peer, RestoreError, RoomCommand, RoomHandle, RoomSettings,
    WeakRoomHandle,
};
pub use protocol::PeerProtocol;
