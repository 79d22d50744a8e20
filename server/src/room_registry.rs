//! The registry of open rooms.
//!
//! Opening is atomic: the lookup and the insert happen under one map-shard lock, so two clients
//! that open a new room at the same instant get the same actor, and the room loads once. (A
//! check, an await, then an insert, as some servers do, lets both create one.)
//!
//! Unloading is atomic too: a room leaves the registry only while nobody but the registry and
//! the room itself holds its address (`RoomSlot::release_if_unused`, under the same lock), so a
//! connection can never join a room that is about to disappear.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use dojo_store::DocumentStore;
use futures_util::FutureExt;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::metrics::Metrics;
use crate::room::{Room, RoomHandle, RoomRegistration, RoomSettings, TaskEnd, WeakRoomHandle};
use crate::room_name::RoomName;
use crate::room_openers::{RoomOpeners, RoomQuotaFull};

/// Why a room could not be opened.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OpenRefused {
    #[error("the server holds its maximum of {0} rooms")]
    TooManyRooms(usize),
    /// The user who would open it already opened their share (`room_openers`).
    #[error(transparent)]
    UserQuota(#[from] RoomQuotaFull),
}

struct Registry {
    open: DashMap<RoomName, RoomHandle>,
    /// Slots taken, counted separately from `open.len()` so the limit holds exactly even when
    /// different shards insert at once.
    taken: AtomicUsize,
    /// Numbers each opening of a room (see `RoomSlot::generation`).
    generations: std::sync::atomic::AtomicU64,
    metrics: Arc<Metrics>,
    /// Who opened the rooms in `open`, against their per-user share.
    openers: RoomOpeners,
    quarantine: crate::quarantine::Quarantine,
    /// Every room's task, first or resumed (see `room/parking.rs`): shutdown waits for them.
    tasks: TaskTracker,
}

pub struct Rooms {
    registry: Arc<Registry>,
    max_rooms: usize,
    /// The same for every room: shared, not copied into each (idle memory).
    settings: Arc<RoomSettings>,
    store: Arc<dyn DocumentStore>,
    cluster: Option<Arc<crate::cluster::Cluster>>,
    compactions: crate::compaction::CompactionSlots,
    stop: CancellationToken,
    /// Where rooms report `room.updated` (none: webhooks off, as in unit tests).
    webhooks: Option<crate::webhooks::Webhooks>,
}

/// A room's place in the registry, held by the room itself.
pub struct RoomSlot {
    registry: Arc<Registry>,
    name: RoomName,
    mine: RoomHandle,
    /// Tells this opening of the room from earlier and later ones of the same name.
    generation: u64,
    /// The user this opening counts against (`RoomOpeners`), until it leaves the registry.
    opener: Option<String>,
}

impl RoomRegistration for RoomSlot {
    fn release_if_unused(&self) -> bool {
        // Holders: the registry's copy and this slot's.
        self.remove(|handle| handle.holders() <= 2)
    }

    fn release(&self) {
        self.remove(|_| true);
    }

    fn generation(&self) -> u64 {
        self.generation
    }

    fn set_quarantined(&self, reason: Option<&str>) {
        match reason {
            Some(reason) => self.registry.quarantine.record(&self.name, reason),
            None => self.registry.quarantine.lift(&self.name),
        }
    }

    fn weak_handle(&self) -> WeakRoomHandle {
        self.mine.downgrade()
    }

    fn respawn(self: Arc<Self>, task: Pin<Box<dyn Future<Output = TaskEnd> + Send>>) {
        let tasks = self.registry.tasks.clone();
        spawn_room(&tasks, self, task);
    }
}

/// Runs a room's task: its first (loading the room) or one resuming it from parked. A panic in a
/// room must cost that room only: the task ends, the room leaves the registry, and its clients
/// reconnect to a fresh load. A room that parked stays in the registry.
///
/// Combinators rather than an `async` block: a block would keep the room's future twice, once
/// as the captured value and once being polled (BENCHMARKS.md, idle memory).
fn spawn_room(
    tasks: &TaskTracker,
    slot: Arc<RoomSlot>,
    task: impl Future<Output = TaskEnd> + Send + 'static,
) {
    let span = tracing::info_span!("room", room = %slot.name);
    let task = guarded(task, move |ended| match ended {
        Some(TaskEnd::Parked) => {}
        Some(TaskEnd::Stopped) => slot.release(),
        None => {
            tracing::error!("room actor panicked; the room was closed");
            slot.release();
        }
    });
    tasks.spawn(task.instrument(span));
}

/// `task`, then `done` with how it ended (`None`: it panicked).
fn guarded<F: Future<Output = TaskEnd>>(
    task: F,
    done: impl FnOnce(Option<TaskEnd>),
) -> impl Future<Output = ()> {
    AssertUnwindSafe(task).catch_unwind().map(|ended| done(ended.ok()))
}

impl RoomSlot {
    fn remove(&self, also: impl FnOnce(&RoomHandle) -> bool) -> bool {
        let removed = self
            .registry
            .open
            .remove_if(&self.name, |_, handle| handle.same_room(&self.mine) && also(handle));
        if removed.is_some() {
            self.registry.taken.fetch_sub(1, Ordering::AcqRel);
            self.registry.metrics.rooms_open.dec();
            if let Some(user) = &self.opener {
                self.registry.openers.release(user);
            }
        }
        removed.is_some()
    }
}

impl Rooms {
    pub fn new(
        max_rooms: usize,
        max_rooms_per_user: usize,
        settings: RoomSettings,
        metrics: Arc<Metrics>,
        store: Arc<dyn DocumentStore>,
        cluster: Option<Arc<crate::cluster::Cluster>>,
        compactions: crate::compaction::CompactionSlots,
    ) -> Self {
        Self {
            registry: Arc::new(Registry {
                open: DashMap::new(),
                taken: AtomicUsize::new(0),
                generations: std::sync::atomic::AtomicU64::new(1),
                metrics,
                openers: RoomOpeners::new(max_rooms_per_user),
                quarantine: Default::default(),
                tasks: TaskTracker::new(),
            }),
            max_rooms,
            settings: Arc::new(settings),
            store,
            cluster,
            compactions,
            stop: CancellationToken::new(),
            webhooks: None,
        }
    }

    /// Rooms opened from now on report their changes (throttled) as `room.updated`.
    pub(crate) fn with_webhooks(mut self, webhooks: crate::webhooks::Webhooks) -> Self {
        self.webhooks = Some(webhooks);
        self
    }

    pub fn store(&self) -> &Arc<dyn DocumentStore> {
        &self.store
    }

    /// The room's actor, started (and loading) if the room is not open yet.
    /// The room's access rules changed: its connections here and on every other instance
    /// reconnect, and are checked again.
    pub async fn permissions_changed(&self, name: &RoomName) {
        if let Some(handle) = self.get(name) {
            let _ = handle.send(crate::room::RoomCommand::PermissionsChanged).await;
        }
        if let Some(cluster) = &self.cluster {
            cluster.publish(
                name,
                &crate::cluster::ClusterMessage::PermissionsChanged { origin: cluster.instance() },
            );
        }
    }

    /// Why the room's last load was refused as unsafe, if it was (see `quarantine.rs`).
    pub fn quarantined(&self, name: &RoomName) -> Option<String> {
        self.registry.quarantine.reason(name)
    }

    /// The room if it is open here (never opens it).
    pub fn get(&self, name: &RoomName) -> Option<RoomHandle> {
        self.registry.open.get(name).map(|handle| handle.clone())
    }

    pub fn get_or_open(&self, name: &RoomName) -> Result<RoomHandle, OpenRefused> {
        self.get_or_open_for(name, None)
    }

    /// Like [`get_or_open`](Self::get_or_open); a room this opens counts against `opener`'s
    /// share until it unloads (`None`: nobody's, for anonymous callers and the server itself).
    pub fn get_or_open_for(&self, name: &RoomName, opener: Option<&str>) -> Result<RoomHandle, OpenRefused> {
        if let Some(handle) = self.registry.open.get(name) {
            return Ok(handle.clone());
        }
        match self.registry.open.entry(name.clone()) {
            Entry::Occupied(entry) => Ok(entry.get().clone()),
            Entry::Vacant(entry) => {
                let reserved = self.registry.taken.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                    (n < self.max_rooms).then_some(n + 1)
                });
                if reserved.is_err() {
                    return Err(OpenRefused::TooManyRooms(self.max_rooms));
                }
                if let Some(user) = opener
                    && let Err(full) = self.registry.openers.try_take(user)
                {
                    self.registry.taken.fetch_sub(1, Ordering::AcqRel);
                    return Err(full.into());
                }
                let handle = self.start(name.clone(), opener.map(str::to_owned));
                entry.insert(handle.clone());
                self.registry.metrics.rooms_open.inc();
                Ok(handle)
            }
        }
    }

    fn start(&self, name: RoomName, opener: Option<String>) -> RoomHandle {
        let (handle, commands) = RoomHandle::channel(self.settings.queue, self.settings.queue_bytes);
        // The slot holds the room's only own copy of its address (see `release_if_unused`).
        let generation = self.registry.generations.fetch_add(1, Ordering::Relaxed);
        let slot = Arc::new(RoomSlot {
            registry: self.registry.clone(),
            name: name.clone(),
            mine: handle.clone(),
            generation,
            opener,
        });
        let room = Room::new(
            name.clone(),
            self.settings.clone(),
            self.registry.metrics.clone(),
            self.store.clone(),
            slot.clone(),
            self.cluster.clone(),
            self.compactions.clone(),
        )
        .with_webhooks(self.webhooks.as_ref());
        spawn_room(&self.registry.tasks, slot, room.run(commands, self.stop.clone()));
        handle
    }

    /// Stops every room actor (each stores what it holds first) and waits for them.
    pub async fn shutdown(&self) {
        self.stop.cancel();
        self.registry.tasks.close();
        self.registry.tasks.wait().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The guard around a room's task adds a few bytes, not a second copy of the room's future.
    #[test]
    fn a_room_task_holds_its_future_once() {
        let room = async {
            let held = [1u8; 1000];
            tokio::task::yield_now().await;
            if held[0] == 1 { TaskEnd::Stopped } else { TaskEnd::Parked }
        };
        let inner = std::mem::size_of_val(&room);
        let task = guarded(room, |_| {});
        assert!(
            std::mem::size_of_val(&task) <= inner + 64,
            "{} for a {inner} B future",
            std::mem::size_of_val(&task)
        );
    }
}
