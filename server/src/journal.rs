//! Group commit for one room: the write path that makes "stored before broadcast" cheap.
//!
//! The room applies a client's update to its document (which validates it), then hands the
//! change to the journal. Changes are written in batches: while one batch is being written, new
//! changes queue, and all of them go out together in the next transaction (one multi-row insert).
//! A busy room therefore costs about one commit per database round trip, not one per keystroke.
//! Nothing a change carries is shown to anyone until its batch is stored: broadcasts, and replies
//! that were computed from a document holding unstored changes, wait for `durable` to pass them.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use dojo_store::{DocumentStore, Seq, StoreError};

use crate::room_name::RoomName;

/// Queued-but-unwritten bytes past which the room stops taking commands until a write finishes
/// (its senders then wait): a slow database slows the room down instead of growing memory.
pub const MAX_QUEUED_BYTES: usize = 32 * 1024 * 1024;

/// Waits between attempts of one batch. Appending twice is harmless (Yjs updates are
/// idempotent), so a write whose commit acknowledgement was lost can be retried.
const RETRY_BACKOFF: [Duration; 3] =
    [Duration::from_millis(50), Duration::from_millis(250), Duration::from_secs(1)];

/// Marks how far the document has moved: each applied change bumps it by one.
pub type Generation = u64;

pub struct Journal<T> {
    store: Arc<dyn DocumentStore>,
    room: RoomName,
    /// Most changes per write (1: one insert per update, for comparison benchmarks).
    max_batch: usize,
    queued: Vec<Vec<u8>>,
    queued_bytes: usize,
    in_flight: Option<InFlight>,
    applied: Generation,
    durable: Generation,
    /// Things to release once `durable` reaches their generation, in order.
    waiting: VecDeque<(Generation, T)>,
}

/// A write under way. Polled by the room itself rather than spawned: the store's writer task
/// does the work, so this only waits for its answer, and a task per write would cost a spawn
/// and a cross-thread wake-up for nothing.
struct InFlight {
    write: Pin<Box<dyn Future<Output = Result<Seq, StoreError>> + Send>>,
    changes: Vec<Vec<u8>>,
    up_to: Generation,
}

/// A batch that has been stored.
pub struct Written<T> {
    pub changes: Vec<Vec<u8>>,
    pub last_seq: Seq,
    /// Things that waited for these changes, now free to go.
    pub released: Vec<T>,
}

impl<T> Journal<T> {
    pub fn new(store: Arc<dyn DocumentStore>, room: RoomName, max_batch: usize) -> Self {
        Self {
            store,
            room,
            max_batch: max_batch.max(1),
            queued: Vec::new(),
            queued_bytes: 0,
            in_flight: None,
            applied: 0,
            durable: 0,
            waiting: VecDeque::new(),
        }
    }

    /// Records a change already applied to the document; it will be written and then released.
    pub fn record(&mut self, change: Vec<u8>) {
        self.queued_bytes += change.len();
        self.queued.push(change);
        self.applied += 1;
    }

    /// Holds `item` until everything applied so far is stored; returns it at once if it already is.
    pub fn after_durable(&mut self, item: T) -> Option<T> {
        if self.applied == self.durable {
            return Some(item);
        }
        self.waiting.push_back((self.applied, item));
        None
    }

    /// True when the document holds nothing unstored.
    pub fn is_quiet(&self) -> bool {
        self.queued.is_empty() && self.in_flight.is_none()
    }

    pub fn is_full(&self) -> bool {
        self.queued_bytes >= MAX_QUEUED_BYTES
    }

    pub fn is_writing(&self) -> bool {
        self.in_flight.is_some()
    }

    /// Starts writing everything queued, unless a write is already under way.
    pub fn start_write(&mut self) {
        if self.in_flight.is_some() || self.queued.is_empty() {
            return;
        }
        let rest = self.queued.split_off(self.max_batch.min(self.queued.len()));
        let changes = std::mem::replace(&mut self.queued, rest);
        self.queued_bytes -= changes.iter().map(Vec::len).sum::<usize>();
        let store = self.store.clone();
        let room = self.room.clone();
        let batch = changes.clone();
        let write = Box::pin(async move { append_with_retry(&*store, &room, &batch).await });
        let up_to = self.applied - self.queued.len() as Generation;
        self.in_flight = Some(InFlight { write, changes, up_to });
    }

    /// Waits for the write under way (pending forever if there is none: guard with `is_writing`).
    /// Cancel-safe: if this future is dropped, the write stays under way and is awaited next time.
    pub async fn written(&mut self) -> Result<Written<T>, WriteError> {
        let Some(in_flight) = self.in_flight.as_mut() else { return std::future::pending().await };
        let outcome = in_flight.write.as_mut().await;
        let Some(InFlight { changes, up_to, .. }) = self.in_flight.take() else {
            return Err(WriteError::Task("the write vanished".into()));
        };
        let last_seq = outcome?;
        self.durable = up_to;
        let mut released = Vec::new();
        while self.waiting.front().is_some_and(|(generation, _)| *generation <= self.durable) {
            if let Some((_, item)) = self.waiting.pop_front() {
                released.push(item);
            }
        }
        Ok(Written { changes, last_seq, released })
    }

    /// Everything still waiting, for a room that is failing.
    pub fn abandon(&mut self) -> Vec<T> {
        // The store may still commit the batch; appending twice is harmless, and the room
        // reloads from the store.
        self.in_flight = None;
        self.queued.clear();
        self.queued_bytes = 0;
        self.waiting.drain(..).map(|(_, item)| item).collect()
    }
}

async fn append_with_retry(
    store: &dyn DocumentStore,
    room: &RoomName,
    batch: &[Vec<u8>],
) -> Result<Seq, StoreError> {
    let slices: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
    let mut attempt = 0;
    loop {
        match store.append(room.as_str(), &slices).await {
            Ok(seq) => return Ok(seq),
            Err(error) if attempt < RETRY_BACKOFF.len() => {
                tracing::warn!(%room, %error, attempt, "storing updates failed; retrying");
                tokio::time::sleep(RETRY_BACKOFF[attempt]).await;
                attempt += 1;
            }
            Err(error) => return Err(error),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the storage task failed: {0}")]
    Task(String),
}
