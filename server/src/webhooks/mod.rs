//! Signed webhooks and the change feed (docs/webhooks.md).
//!
//! Whatever happens (a run or node finishes, a room changes, a user enters or leaves a room, a
//! workflow is shared) is reported with [`Webhooks::emit`]: a `try_send` into a bounded channel
//! that never waits, so a room actor or a run never slows down for webhooks (a full channel
//! drops the event and counts it in `dojo_webhook_events_dropped_total`). One writer task turns
//! each report into an event of its workflow (`workflow_events`, the change feed) with one
//! pending delivery per subscribed endpoint, in one transaction; the delivery loop
//! (`delivery.rs`) claims due deliveries, signs and sends them, and retries with backoff.
//! Rooms no workflow claims have no feed: their reports are dropped by the writer.
//!
//! Where each event comes from: `run_events.rs` wraps the run store the executor and services
//! use (a node settled, a run finished); `room_updates.rs` is the room actor's throttle; the
//! admission path holds a [`PresenceGuard`] per signed-in connection; the workflow service
//! reports sharing.

mod delivery;
mod payload;
mod presence;
mod room_updates;
mod run_events;
mod run_sweep;
pub(crate) mod target;

use std::sync::Arc;

use dojo_ids::{NodeId, RunId, UserId, WorkflowId};
use dojo_records::webhooks::WebhookStore;
use dojo_records::{AccountStore, RunStore};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::metrics::Metrics;
use crate::room_name::RoomName;

pub use crate::webhook_metrics::{OutcomeLabel, WebhookMetrics};
pub use crate::webhook_settings::WebhookSettings;
pub(crate) use presence::PresenceGuard;
pub(crate) use room_updates::RoomUpdates;
pub(crate) use run_events::RunEvents;

/// Reports waiting for the writer. Beyond it reports are dropped (and counted), never waited for.
const QUEUE: usize = 1024;

/// Something that happened, as the place it happened knows it; the writer completes it.
#[derive(Debug)]
pub(crate) enum Trigger {
    RoomUpdated {
        room: RoomName,
        state_vector: Vec<u8>,
    },
    UserEntered {
        room: RoomName,
        user: UserId,
        users: usize,
    },
    UserLeft {
        room: RoomName,
        user: UserId,
        users: usize,
    },
    RunFinished {
        run_id: RunId,
    },
    NodeFinished {
        run_id: RunId,
        node_id: NodeId,
    },
    WorkflowShared {
        workflow_id: WorkflowId,
        user: UserId,
        permission: Option<&'static str>,
        change: &'static str,
    },
}

/// The webhook machinery of this process. Cheap to clone.
#[derive(Clone)]
pub struct Webhooks {
    inner: Arc<Inner>,
}

struct Inner {
    sender: mpsc::Sender<Trigger>,
    store: Arc<dyn WebhookStore>,
    settings: WebhookSettings,
    metrics: Arc<Metrics>,
    presence: presence::Presence,
}

impl std::fmt::Debug for Webhooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhooks").finish_non_exhaustive()
    }
}

/// What the writer needs besides the reports.
pub(crate) struct Sources {
    pub accounts: Arc<dyn AccountStore>,
    /// The undecorated run store (reading a run reports nothing).
    pub runs: Arc<dyn RunStore>,
}

impl Webhooks {
    /// Starts the writer and the delivery loop on `tasks`, and with `sweep_runs` the sweep that
    /// reports run and node ends from other processes; all stop with `shutdown` (the writer
    /// first stores what is already queued).
    pub(crate) fn start(
        settings: &WebhookSettings,
        store: Arc<dyn WebhookStore>,
        sources: Sources,
        sweep_runs: bool,
        metrics: Arc<Metrics>,
        shutdown: CancellationToken,
        tasks: &TaskTracker,
    ) -> Self {
        let (sender, receiver) = mpsc::channel(QUEUE);
        let wake = Arc::new(Notify::new());
        let webhooks = Self {
            inner: Arc::new(Inner {
                sender,
                store: store.clone(),
                settings: settings.clone(),
                metrics: metrics.clone(),
                presence: presence::Presence::default(),
            }),
        };
        if sweep_runs {
            tasks.spawn(run_sweep::run(
                sources.runs.clone(),
                webhooks.inner.sender.clone(),
                shutdown.clone(),
            ));
        }
        let writer = payload::Writer {
            store: store.clone(),
            sources,
            settings: settings.clone(),
            metrics: metrics.clone(),
            wake: wake.clone(),
        };
        tasks.spawn(writer.run(receiver, shutdown.clone()));
        tasks.spawn(delivery::run(store, settings.clone(), metrics, wake, shutdown));
        webhooks
    }

    /// Reports `trigger` without waiting: dropped and counted when the writer is behind.
    pub(crate) fn emit(&self, trigger: Trigger) {
        if self.inner.sender.try_send(trigger).is_err() {
            self.inner.metrics.webhooks.events_dropped.inc();
        }
    }

    pub(crate) fn store(&self) -> &Arc<dyn WebhookStore> {
        &self.inner.store
    }

    pub(crate) fn settings(&self) -> &WebhookSettings {
        &self.inner.settings
    }

    /// Counts a signed-in user's connection to `room` until the guard drops: the first one
    /// reports `user.entered`, the end of the last one `user.left`.
    pub(crate) fn user_connected(&self, room: &RoomName, user: &UserId) -> PresenceGuard {
        PresenceGuard::new(self.clone(), room.clone(), user.clone())
    }

    /// The room actor's throttle for `room.updated`.
    pub(crate) fn room_updates(this: Option<&Self>) -> RoomUpdates {
        RoomUpdates::new(this.cloned())
    }
}
