//! Group commit for one room: the write path that makes "stored before broadcast" cheap.
//!
//! The room applies a client's update to its document (which validates it), then hands the
//! change to the journal. Changes are written in batches: while one batch is being written, new
//! changes queue, and all of them go out together in the next transaction (one multi-row insert).
//! A busy room therefore costs about one commit per database round trip, not one per keystroke.
//! Nothing a change carries is shown to anyone until its batch is stored: broadcasts, and replies
//! that were computed from a document holding unstored changes, wait for `durable` to pass them.
//!
//! The journal itself is bookkeeping only (no I/O, no runtime): the room's core asks it for the
//! next batch, the room's actor writes it (`append_with_retry`), and the core reports back.

use std::collections::VecDeque;
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

/// A batch handed out for writing and not answered yet.
struct InFlight {
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
    pub fn new(max_batch: usize) -> Self {
        Self {
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

    /// The next batch to write (everything queued, up to the batch size), unless a write is
    /// already under way or nothing is queued. Its outcome goes to [`stored`](Self::stored).
    pub fn next_batch(&mut self) -> Option<Vec<Vec<u8>>> {
        if self.in_flight.is_some() || self.queued.is_empty() {
            return None;
        }
        let rest = self.queued.split_off(self.max_batch.min(self.queued.len()));
        let changes = std::mem::replace(&mut self.queued, rest);
        self.queued_bytes -= changes.iter().map(Vec::len).sum::<usize>();
        let up_to = self.applied - self.queued.len() as Generation;
        self.in_flight = Some(InFlight { changes: changes.clone(), up_to });
        Some(changes)
    }

    /// The batch under way is stored, its last change at `last_seq`; `None` if there was none.
    pub fn stored(&mut self, last_seq: Seq) -> Option<Written<T>> {
        let InFlight { changes, up_to } = self.in_flight.take()?;
        self.durable = up_to;
        let mut released = Vec::new();
        while self.waiting.front().is_some_and(|(generation, _)| *generation <= self.durable) {
            if let Some((_, item)) = self.waiting.pop_front() {
                released.push(item);
            }
        }
        Some(Written { changes, last_seq, released })
    }

    /// Gives back the memory of queues that grew while the room was busy (it is going idle).
    pub fn shrink(&mut self) {
        self.queued.shrink_to_fit();
        self.waiting.shrink_to_fit();
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

/// Appends one batch, retrying with backoff (see `RETRY_BACKOFF`).
pub async fn append_with_retry(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_wait_for_the_batch_holding_what_they_depend_on() {
        let mut journal = Journal::new(2);
        assert_eq!(journal.after_durable("now"), Some("now"), "nothing unstored: at once");
        journal.record(vec![1]);
        assert_eq!(journal.after_durable("a"), None);
        journal.record(vec![2]);
        journal.record(vec![3]);
        assert_eq!(journal.after_durable("b"), None);
        assert_eq!(journal.next_batch(), Some(vec![vec![1], vec![2]]), "at most two per batch");
        assert_eq!(journal.next_batch(), None, "one write at a time");
        let written = journal.stored(7).expect("a batch was under way");
        assert_eq!(written.released, vec!["a"]);
        assert_eq!(journal.next_batch(), Some(vec![vec![3]]));
        assert_eq!(journal.stored(8).expect("under way").released, vec!["b"]);
        assert!(journal.is_quiet());
        assert!(journal.stored(9).is_none(), "nothing under way");
    }

    #[test]
    fn abandoning_gives_back_everything_waiting() {
        let mut journal = Journal::new(8);
        journal.record(vec![1]);
        assert_eq!(journal.after_durable(1), None);
        let _ = journal.next_batch();
        journal.record(vec![2]);
        assert_eq!(journal.after_durable(2), None);
        assert_eq!(journal.abandon(), vec![1, 2]);
        assert!(journal.is_quiet());
    }
}
