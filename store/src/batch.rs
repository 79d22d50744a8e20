//! Group commit across rooms: every room's appends go to one writer per store (a task on the
//! runtime for PostgreSQL and in-memory SQLite; a thread with its own connection for the SQLite
//! file, which also carries its compaction snapshots: `writer_thread.rs`), which commits whatever
//! has queued while its previous transaction ran, all rooms together, in a handful of statements
//! (one upsert of the rooms' sequence counters, then the rows).
//!
//! Why a task of its own: the statements of a busy server are then few per commit rather than
//! several per room (each is a round trip to PostgreSQL or to sqlx's SQLite thread, which is where
//! the CPU went in the profile in BENCHMARKS.md), and a transaction is never abandoned half-way
//! by a caller that stops waiting: the writer always finishes what it started.
//!
//! A batch that fails is not the end of its appends: each room's is then committed on its own,
//! so one bad append (a constraint, a deadlock with another instance) fails only itself.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot};

use crate::{CompactOutcome, NewSnapshot, Seq, StoreError};

/// Appends waiting for the writer, at most; a room has one append in flight at a time, so only a
/// server with more busy rooms than this waits for room in the queue.
pub(crate) const QUEUE_APPENDS: usize = 4096;
/// Bytes of updates committed in one transaction at most (at least one append always goes in,
/// whatever its size).
const MAX_BATCH_BYTES: usize = 32 << 20;

/// One room's updates in a batch, with the rooms in name order and each room once: every writer
/// then takes the rooms' row locks in the same order, so two instances' batches cannot deadlock.
#[derive(Debug)]
pub(crate) struct RoomAppend<'a> {
    pub room: &'a str,
    pub updates: Vec<&'a [u8]>,
}

/// What a store does with a batch: write every room's updates in one transaction and return the
/// sequence of each room's last update, in the order given. All or nothing.
#[async_trait::async_trait]
pub(crate) trait BatchWrite: Send + Sync + 'static {
    async fn write_batch(&self, rooms: &[RoomAppend<'_>]) -> Result<Vec<Seq>, StoreError>;

    /// Batches committed at once: 1 where the database has one writer anyway (SQLite); more
    /// where a commit waits on a round trip and a flush that another transaction can overlap.
    fn max_in_flight(&self) -> usize {
        1
    }
}

/// An append waiting for the writer.
pub(crate) struct PendingAppend {
    room: String,
    updates: Vec<Vec<u8>>,
    pub(crate) done: oneshot::Sender<Result<Seq, StoreError>>,
}

/// A snapshot waiting for the writer.
#[derive(Debug)]
pub(crate) struct PendingSnapshot {
    pub room: String,
    pub data: Vec<u8>,
    pub state_vector: Vec<u8>,
    pub covers_seq: Seq,
    pub keep: usize,
    pub done: oneshot::Sender<Result<CompactOutcome, StoreError>>,
}

/// What a writer is asked to do. Only a writer thread writes snapshots
/// ([`AppendQueue::writes_snapshots`]).
#[derive(Debug)]
pub(crate) enum Request {
    Append(PendingAppend),
    Snapshot(PendingSnapshot),
}

impl PendingAppend {
    fn bytes(&self) -> usize {
        self.updates.iter().map(Vec::len).sum()
    }
}

/// The way in to a store's writer task. Clones share the task; it ends when the last is dropped.
#[derive(Clone)]
pub(crate) struct AppendQueue {
    tx: mpsc::Sender<Request>,
    /// Whether snapshots go through the writer too (a writer thread's do).
    writes_snapshots: bool,
    /// The writer and its queue until the first append starts the task, on the caller's runtime
    /// (so that making a store needs none).
    idle: Arc<Mutex<Option<IdleWriter>>>,
}

type IdleWriter = (Arc<dyn BatchWrite>, mpsc::Receiver<Request>);

impl std::fmt::Debug for AppendQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppendQueue").field("queued", &(QUEUE_APPENDS - self.tx.capacity())).finish()
    }
}

impl std::fmt::Debug for PendingAppend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingAppend")
            .field("room", &self.room)
            .field("updates", &self.updates.len())
            .finish()
    }
}

impl AppendQueue {
    /// A queue whose writer task starts with the first append.
    pub fn new(writer: impl BatchWrite) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE_APPENDS);
        Self { tx, writes_snapshots: false, idle: Arc::new(Mutex::new(Some((Arc::new(writer), rx)))) }
    }

    /// A queue whose requests `tx`'s receiver, a writer thread, serves: it writes snapshots
    /// too (`writer_thread::spawn`).
    pub(crate) fn served_by_thread(tx: mpsc::Sender<Request>) -> Self {
        Self { tx, writes_snapshots: true, idle: Arc::new(Mutex::new(None)) }
    }

    /// Requests waiting in the queue.
    #[cfg(test)]
    pub(crate) fn queued(&self) -> usize {
        QUEUE_APPENDS - self.tx.capacity()
    }

    /// Whether [`write_snapshot`](Self::write_snapshot) may be called: the writer is a thread.
    pub fn writes_snapshots(&self) -> bool {
        self.writes_snapshots
    }

    /// Has the writer thread store `snapshot` for `room` (a compaction: see `compaction_sql.rs`)
    /// in one of its next commits. A caller that stops waiting does not stop the write.
    pub async fn write_snapshot(
        &self,
        room: &str,
        snapshot: NewSnapshot<'_>,
    ) -> Result<CompactOutcome, StoreError> {
        let (done, answer) = oneshot::channel();
        let request = PendingSnapshot {
            room: room.to_owned(),
            data: snapshot.data.to_vec(),
            state_vector: snapshot.state_vector.to_vec(),
            covers_seq: snapshot.covers_seq,
            keep: snapshot.keep,
            done,
        };
        self.tx.send(Request::Snapshot(request)).await.map_err(|_| writer_gone())?;
        answer.await.unwrap_or_else(|_| Err(writer_gone()))
    }

    /// Appends `updates` to `room` in the writer's next transaction; the sequence of the last.
    /// A caller that stops waiting does not stop the append.
    pub async fn append(&self, room: &str, updates: &[&[u8]]) -> Result<Seq, StoreError> {
        let idle = self.idle.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take();
        if let Some((writer, queue)) = idle {
            tokio::spawn(run(writer, queue));
        }
        let (done, answer) = oneshot::channel();
        let request = PendingAppend {
            room: room.to_owned(),
            updates: updates.iter().map(|u| u.to_vec()).collect(),
            done,
        };
        self.tx.send(Request::Append(request)).await.map_err(|_| writer_gone())?;
        answer.await.unwrap_or_else(|_| Err(writer_gone()))
    }
}

fn writer_gone() -> StoreError {
    StoreError::Interrupted("the store's writer has stopped".into())
}

/// Takes what queued, commits it, and again; with up to `max_in_flight` commits at once, a new
/// batch starts only while fewer are under way, so the rest queue and go in together.
async fn run(writer: Arc<dyn BatchWrite>, mut queue: mpsc::Receiver<Request>) {
    let max_in_flight = writer.max_in_flight().max(1);
    let mut in_flight = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            first = queue.recv(), if in_flight.len() < max_in_flight => {
                let Some(first) = first else { break };
                // Nothing sends this writer a snapshot (`writes_snapshots` is false); were one
                // sent, it is refused rather than dropped unanswered.
                let batch = gather_appends(first, &mut queue, |snapshot| {
                    let _ = snapshot.done.send(Err(StoreError::Interrupted(
                        "this store writes snapshots in transactions of their own".into(),
                    )));
                });
                let writer = writer.clone();
                in_flight.spawn(async move { commit(&*writer, batch).await });
            }
            Some(_) = in_flight.join_next(), if !in_flight.is_empty() => {}
        }
    }
    // The queue is closed (the store is gone): finish what was started.
    while in_flight.join_next().await.is_some() {}
}

/// The appends of `first` and of whatever else has queued behind it, up to [`MAX_BATCH_BYTES`];
/// each snapshot among them goes to `snapshot`.
pub(crate) fn gather_appends(
    first: Request,
    queue: &mut mpsc::Receiver<Request>,
    mut snapshot: impl FnMut(PendingSnapshot),
) -> Vec<PendingAppend> {
    let (mut batch, mut bytes) = (Vec::new(), 0);
    let mut next = Some(first);
    while let Some(request) = next {
        match request {
            Request::Append(append) => {
                bytes += append.bytes();
                batch.push(append);
            }
            Request::Snapshot(pending) => snapshot(pending),
        }
        if bytes >= MAX_BATCH_BYTES {
            break;
        }
        next = queue.try_recv().ok();
    }
    batch
}

/// Answers every request of `batch` from the outcome of writing it together (each request's
/// answer), or hands the batch back when it must be retried one append at a time.
fn settle(
    batch: Vec<PendingAppend>,
    outcome: Result<Vec<Result<Seq, StoreError>>, StoreError>,
) -> Option<Vec<PendingAppend>> {
    let error = match outcome {
        Ok(answers) => {
            for (request, answer) in batch.into_iter().zip(answers) {
                let _ = request.done.send(answer);
            }
            return None;
        }
        Err(error) => error,
    };
    if batch.len() == 1 {
        if let Some(request) = batch.into_iter().next() {
            let _ = request.done.send(Err(error));
        }
        return None;
    }
    tracing::warn!(%error, appends = batch.len(), "a shared commit failed; committing its appends one by one");
    Some(batch)
}

/// The one sequence a single room's write returns.
pub(crate) fn last_seq(written: Result<Vec<Seq>, StoreError>) -> Result<Seq, StoreError> {
    written.and_then(|seqs| {
        seqs.first().copied().ok_or_else(|| StoreError::Interrupted("the write returned no sequence".into()))
    })
}

impl PendingAppend {
    /// This append as a batch of its own.
    pub(crate) fn alone(&self) -> [RoomAppend<'_>; 1] {
        [RoomAppend { room: &self.room, updates: self.updates.iter().map(Vec::as_slice).collect() }]
    }
}

/// Commits `batch` as one transaction; if that fails, each room's appends on their own.
async fn commit(writer: &dyn BatchWrite, batch: Vec<PendingAppend>) {
    let grouped = Grouped::new(&batch);
    let outcome = writer.write_batch(&grouped.rooms).await.map(|last_seqs| grouped.answers(&last_seqs));
    drop(grouped);
    let Some(batch) = settle(batch, outcome) else { return };
    for request in batch {
        let answer = last_seq(writer.write_batch(&request.alone()).await);
        let _ = request.done.send(answer);
    }
}

/// A batch arranged by room: the same room's appends (callers other than a room's own journal may
/// append concurrently) become one run of rows, in arrival order.
pub(crate) struct Grouped<'a> {
    pub(crate) rooms: Vec<RoomAppend<'a>>,
    /// For each request: its room's index in `rooms`, and how many of that room's rows come from
    /// it and the requests before it.
    places: Vec<(usize, usize)>,
}

impl<'a> Grouped<'a> {
    pub(crate) fn new(batch: &'a [PendingAppend]) -> Self {
        let mut by_room: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for (index, request) in batch.iter().enumerate() {
            by_room.entry(request.room.as_str()).or_default().push(index);
        }
        let mut places = vec![(0, 0); batch.len()];
        let mut rooms = Vec::with_capacity(by_room.len());
        for (room_index, (room, requests)) in by_room.into_iter().enumerate() {
            let mut updates = Vec::new();
            for index in requests {
                updates.extend(batch[index].updates.iter().map(Vec::as_slice));
                places[index] = (room_index, updates.len());
            }
            rooms.push(RoomAppend { room, updates });
        }
        Self { rooms, places }
    }

    /// Each request's last sequence, from each room's last one.
    pub(crate) fn answers(&self, last_seqs: &[Seq]) -> Vec<Result<Seq, StoreError>> {
        self.places
            .iter()
            .map(|&(room, through)| {
                let (Some(last), Some(append)) = (last_seqs.get(room), self.rooms.get(room)) else {
                    return Err(StoreError::Interrupted("the write returned too few sequences".into()));
                };
                Ok(last - crate::len_i64(append.updates.len() - through))
            })
            .collect()
    }
}

/// Row counts of the statements a store prepares once: powers of two up to [`MAX_CHUNK_ROWS`],
/// so a batch of any size runs as a few cached statements instead of one freshly parsed one.
pub(crate) const MAX_CHUNK_ROWS: usize = 256;

/// Splits `count` rows into statement sizes: the largest power of two that fits, repeatedly.
pub(crate) fn chunk_sizes(count: usize) -> impl Iterator<Item = usize> {
    let mut rest = count;
    std::iter::from_fn(move || {
        if rest == 0 {
            return None;
        }
        let size = MAX_CHUNK_ROWS.min(1 << rest.ilog2());
        rest -= size;
        Some(size)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(room: &str, updates: usize) -> PendingAppend {
        let (done, _) = oneshot::channel();
        PendingAppend { room: room.into(), updates: (0..updates).map(|i| vec![i as u8]).collect(), done }
    }

    #[test]
    fn chunk_sizes_are_powers_of_two_that_add_up() {
        assert_eq!(chunk_sizes(0).count(), 0);
        assert_eq!(chunk_sizes(1).collect::<Vec<_>>(), vec![1]);
        assert_eq!(chunk_sizes(13).collect::<Vec<_>>(), vec![8, 4, 1]);
        assert_eq!(chunk_sizes(600).collect::<Vec<_>>(), vec![256, 256, 64, 16, 8]);
        for count in 0..2000 {
            assert_eq!(chunk_sizes(count).sum::<usize>(), count);
            assert!(chunk_sizes(count).all(|size| size.is_power_of_two() && size <= MAX_CHUNK_ROWS));
        }
    }

    #[test]
    fn a_batch_is_grouped_by_room_in_name_order_and_each_append_gets_its_own_last_seq() {
        let batch = vec![pending("b", 2), pending("a", 1), pending("b", 3)];
        let grouped = Grouped::new(&batch);
        let rooms: Vec<(&str, usize)> = grouped.rooms.iter().map(|r| (r.room, r.updates.len())).collect();
        assert_eq!(rooms, vec![("a", 1), ("b", 5)]);
        // Room a's only row is 7; room b's rows end at 20: the first b append holds 16..=17.
        let answers: Vec<Seq> = grouped.answers(&[7, 20]).into_iter().map(Result::unwrap).collect();
        assert_eq!(answers, vec![17, 7, 20]);
        assert!(grouped.answers(&[7]).iter().any(Result::is_err));
    }
}
