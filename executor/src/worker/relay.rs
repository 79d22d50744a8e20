//! From the database to the queue: accepted runs (outbox rows, written in the same transaction
//! as their credit hold) and orphans (runs nobody is executing: a queue entry lost to a crash,
//! a Redis restart, a stream cap). Each is pushed, and the outbox row deleted only after the
//! push, so the database and the queue can disagree only by a duplicate, which claiming makes
//! harmless.

use std::sync::Arc;
use std::time::Duration;

use dojo_ids::RunId;
use dojo_records::RunStore;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::now_millis;
use super::queue::{QueueError, RunQueue};

/// Outbox rows moved per database round trip.
const OUTBOX_BATCH: u32 = 64;
/// Orphans pushed per scan.
const ORPHAN_BATCH: u32 = 32;

#[derive(Debug, Clone)]
pub struct RelaySettings {
    /// How often the outbox is read without being woken.
    pub outbox_every: Duration,
    /// How often orphans are looked for.
    pub orphans_every: Duration,
    /// A run is an orphan when it has been queued this long, or its lease expired this long
    /// ago. With the in-process queue: the lease. With Redis, where stalled runs are taken over
    /// by `XAUTOCLAIM`, this is only the backstop for entries Redis lost: minutes.
    pub orphan_after: Duration,
}

pub struct Relay {
    runs: Arc<dyn RunStore>,
    queue: Arc<dyn RunQueue>,
    settings: RelaySettings,
    wake: Notify,
}

impl Relay {
    pub fn new(runs: Arc<dyn RunStore>, queue: Arc<dyn RunQueue>, settings: RelaySettings) -> Arc<Self> {
        Arc::new(Self { runs, queue, settings, wake: Notify::new() })
    }

    /// A run was accepted: read the outbox now rather than at the next tick.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Until `shutdown`. `skip` says which runs this process executes right now (no point in
    /// pushing those again).
    pub async fn run(self: Arc<Self>, skip: impl Fn(&RunId) -> bool + Send, shutdown: CancellationToken) {
        let mut next_orphan_scan = tokio::time::Instant::now();
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = self.wake.notified() => {}
                () = tokio::time::sleep(self.settings.outbox_every) => {}
            }
            match self.relay_outbox().await {
                // More may be waiting.
                Ok(true) => self.wake.notify_one(),
                Ok(false) => {}
                Err(error) => tracing::warn!(%error, "could not relay the run outbox"),
            }
            if tokio::time::Instant::now() >= next_orphan_scan {
                next_orphan_scan = tokio::time::Instant::now() + self.settings.orphans_every;
                self.push_orphans(&skip).await;
            }
        }
    }

    /// Moves one batch; returns whether it was full.
    async fn relay_outbox(&self) -> Result<bool, RelayError> {
        let entries = self.runs.outbox(OUTBOX_BATCH).await?;
        let full = entries.len() == OUTBOX_BATCH as usize;
        let mut relayed = Vec::with_capacity(entries.len());
        for entry in entries {
            match self.queue.push(&entry.run_id).await {
                Ok(()) => relayed.push(entry.id),
                // A full in-process queue: the row stays and is relayed once there is room.
                Err(QueueError::Full) => break,
                Err(error) => {
                    self.runs.delete_outbox(&relayed).await?;
                    return Err(error.into());
                }
            }
        }
        if !relayed.is_empty() {
            self.runs.delete_outbox(&relayed).await?;
        }
        Ok(full)
    }

    async fn push_orphans(&self, skip: &(impl Fn(&RunId) -> bool + Send)) {
        let after = i64::try_from(self.settings.orphan_after.as_millis()).unwrap_or(i64::MAX);
        match self.runs.orphaned_runs(now_millis().saturating_sub(after), ORPHAN_BATCH).await {
            Ok(orphans) => {
                for run in orphans.iter().filter(|run| !skip(&run.id)) {
                    match self.queue.push(&run.id).await {
                        Ok(()) => tracing::info!(run = %run.id, "handed an orphaned run to the queue again"),
                        // Enough work waiting; the orphan is found again next time.
                        Err(QueueError::Full) => break,
                        Err(error) => {
                            tracing::warn!(%error, "could not hand orphaned runs to the queue");
                            break;
                        }
                    }
                }
            }
            Err(error) => tracing::warn!(%error, "could not look for orphaned runs"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum RelayError {
    #[error(transparent)]
    Accounts(#[from] dojo_records::AccountError),
    #[error(transparent)]
    Queue(#[from] QueueError),
}
