//! Folding a room's update log into a snapshot, and rebuilding a document from storage.
//!
//! Two ways to compact, both writing a snapshot that covers exactly the log rows it replaces (the
//! store deletes them in the same transaction), so a snapshot never contains a change that was
//! not stored:
//! - from the store ([`compact`]): read the newest snapshot and later rows, merge them off the
//!   async threads. Works for any room, at any moment, from any instance;
//! - from the live document ([`CompactionSlots::store_snapshot`]): a room whose document holds
//!   exactly the stored log encodes it (`room/folding.rs` says when), which costs a fraction of
//!   reading the log back and rebuilding it.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dojo_store::{CompactOutcome, DocumentStore, NewSnapshot, StoreError, StoredDocument};
use tokio::sync::Semaphore;
use yrs::updates::decoder::Decode;
use yrs::updates::encoder::Encode;
use yrs::{Doc, ReadTxn, StateVector, Transact, Update};

#[derive(Debug, Clone, Copy)]
pub struct CompactionPolicy {
    /// Compact once the log holds this many rows since the last snapshot…
    pub after_rows: usize,
    /// …or this many bytes.
    pub after_bytes: usize,
    /// Snapshots kept as restorable versions.
    pub keep_versions: usize,
}

impl CompactionPolicy {
    pub fn is_due(&self, rows: usize, bytes: usize) -> bool {
        rows > 0 && (rows >= self.after_rows || bytes >= self.after_bytes)
    }
}

/// The longest pause after a snapshot written from a live document (see
/// [`CompactionSlots::store_snapshot`]): a slow database must not hold compactions back for long.
const MAX_PAUSE: Duration = Duration::from_millis(50);

/// How many rooms of one process compact at a time.
///
/// Compactions fall due together: rooms opened together and edited at the same pace pass the
/// threshold in the same second. Each writes its snapshot in a transaction of its own, so let
/// loose at once they queued on the store's write lock ahead of every room's appends and
/// stalled all rooms behind them (p99 10–30× that of compaction off, BENCHMARKS.md). Through
/// these slots an append waits for one compaction at most, and the merges do not crowd the
/// async threads either. Clones share the slots.
#[derive(Debug, Clone)]
pub struct CompactionSlots(Arc<Semaphore>);

impl CompactionSlots {
    pub fn new(at_once: usize) -> Self {
        Self(Arc::new(Semaphore::new(at_once.max(1))))
    }

    /// Compacts `room` from the store once a slot is free.
    pub async fn compact(
        &self,
        store: &dyn DocumentStore,
        room: &str,
        keep: usize,
    ) -> Result<Option<CompactOutcome>, CompactionError> {
        // The semaphore is never closed, so this waits rather than fails; were it closed,
        // compacting without a slot is still correct, only less polite.
        let _slot = self.0.acquire().await.ok();
        compact(store, room, keep).await
    }

    /// Stores a snapshot a room folded from its live document once a slot is free (the slots
    /// stand for the store's write lock as much as for the merging CPU).
    pub async fn store_snapshot(
        &self,
        store: &dyn DocumentStore,
        room: &str,
        snapshot: NewSnapshot<'_>,
    ) -> Result<CompactOutcome, CompactionError> {
        let _slot = self.0.acquire().await.ok();
        let covers_seq = snapshot.covers_seq;
        let started = Instant::now();
        let written = store.compact(room, snapshot).await;
        // Rooms edited at one pace fall due together, and a folded snapshot is ready at once, so
        // without a pause their writes would follow each other with only one batch of appends
        // between two: the busy-rooms p99 rose from 15–23 ms to 21–28 ms that way when each
        // snapshot had a transaction of its own (BENCHMARKS.md). Holding the slot as long again
        // spreads such a wave: on an SQLite file, where snapshots ride in the appends' commits
        // (`dojo_store`'s writer thread), about every other commit then carries one.
        tokio::time::sleep(started.elapsed().min(MAX_PAUSE)).await;
        let outcome = written?;
        tracing::debug!(room, covers_seq, deleted = outcome.deleted_updates, "compacted the live document");
        Ok(outcome)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CompactionError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the stored document does not apply: {0}")]
    Corrupt(String),
}

/// Compacts one room's log. Safe to run while the room serves, and from several instances.
pub async fn compact(
    store: &dyn DocumentStore,
    room: &str,
    keep: usize,
) -> Result<Option<CompactOutcome>, CompactionError> {
    let stored = store.load(room).await?;
    if stored.updates.is_empty() {
        return Ok(None);
    }
    let covers_seq = stored.last_seq();
    let (data, state_vector) = tokio::task::spawn_blocking(move || {
        let doc = rebuild(&stored)?;
        let txn = doc.transact();
        Ok::<_, RebuildError>((
            txn.encode_state_as_update_v1(&StateVector::default()),
            txn.state_vector().encode_v1(),
        ))
    })
    .await
    .map_err(|e| CompactionError::Corrupt(e.to_string()))?
    .map_err(|e: RebuildError| CompactionError::Corrupt(e.to_string()))?;
    let snapshot = NewSnapshot { data: &data, state_vector: &state_vector, covers_seq, keep: keep.max(1) };
    let outcome = store.compact(room, snapshot).await?;
    tracing::debug!(room, covers_seq, deleted = outcome.deleted_updates, "compacted");
    Ok(Some(outcome))
}

/// Why a stored document was not rebuilt. Either way the room must not be served from it.
#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    /// A stored part fails the checks every client update gets (shared types nested too deep,
    /// shapes yrs cannot decode safely): stored before those checks existed, or around them.
    /// Applying it could overflow the stack later, so it is not applied at all.
    #[error("stored part {part} is unsafe to load: {error}")]
    Unsafe { part: usize, error: dojo_sync_protocol::ApplyError },
    #[error("{0}")]
    Corrupt(String),
}

/// The document a stored snapshot and log describe. Blocking: call off the async threads.
pub fn rebuild(stored: &StoredDocument) -> Result<Doc, RebuildError> {
    let doc = Doc::new();
    let parts = stored
        .snapshot
        .iter()
        .map(|s| s.data.as_slice())
        .chain(stored.updates.iter().map(|u| u.data.as_slice()));
    // Everything stored was validated before it was written; the guard is for a damaged
    // database, which must stop the room from being served rather than take the process down.
    // Each part is checked against the document built so far before it is applied, so nothing
    // of a part that fails is ever integrated.
    let applied = catch_unwind(AssertUnwindSafe(|| {
        let mut txn = doc.transact_mut();
        for (part, data) in parts.enumerate() {
            dojo_sync_protocol::update::check_stored_update(&txn, data)
                .map_err(|error| RebuildError::Unsafe { part, error })?;
            let update =
                Update::decode_v1(data).map_err(|e| RebuildError::Corrupt(format!("part {part}: {e}")))?;
            txn.apply_update(update).map_err(|e| RebuildError::Corrupt(format!("part {part}: {e}")))?;
        }
        Ok(())
    }));
    match applied {
        Ok(Ok(())) => Ok(doc),
        Ok(Err(error)) => Err(error),
        Err(_) => Err(RebuildError::Corrupt("applying the stored document panicked".into())),
    }
}
