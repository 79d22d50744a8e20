//! A store's writer as a thread of its own ([`spawn`], the SQLite file's): it
//! commits every room's queued appends together and, in the same transaction, at most one
//! compaction's snapshot.
//!
//! Why snapshots go through here too: written in transactions of their own, a wave of rooms
//! falling due together took the store's write lock from the appends once per snapshot, and the
//! busy-rooms p99 with compaction on stayed 4–5 ms over compaction off (BENCHMARKS.md). Riding in
//! the appends' commit, a snapshot costs no lock hand-off and no sync of its own, and a wave of
//! them goes one per commit, so appends never wait behind more than one.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::batch::{
    AppendQueue, Grouped, PendingAppend, PendingSnapshot, QUEUE_APPENDS, Request, RoomAppend, gather_appends,
    last_seq,
};
use crate::{CompactOutcome, NewSnapshot, Seq, StoreError};

/// Snapshots written in one commit at most: a compaction wave then delays each commit by one
/// snapshot's statements, and the rest wait for the next commits.
const SNAPSHOTS_PER_COMMIT: usize = 1;

/// What a blocking writer does with a batch, in one transaction: every room's appends (all or
/// nothing), then each snapshot, which on failure is undone alone (a savepoint) and answered with
/// its error. The sequence of each room's last update, in the order given, and each snapshot's
/// outcome.
pub(crate) trait BlockingBatchWrite: Send + 'static {
    fn write_batch(
        &mut self,
        rooms: &[RoomAppend<'_>],
        snapshots: &[RoomSnapshot<'_>],
    ) -> Result<BatchWritten, StoreError>;
}

/// A snapshot to write for a room.
#[derive(Debug)]
pub(crate) struct RoomSnapshot<'a> {
    pub room: &'a str,
    pub snapshot: NewSnapshot<'a>,
}

/// What a batch wrote: see [`BlockingBatchWrite`].
#[derive(Debug)]
pub(crate) struct BatchWritten {
    pub last_seqs: Vec<Seq>,
    pub snapshots: Vec<Result<CompactOutcome, StoreError>>,
}

impl PendingSnapshot {
    fn as_write(&self) -> RoomSnapshot<'_> {
        RoomSnapshot {
            room: &self.room,
            snapshot: NewSnapshot {
                data: &self.data,
                state_vector: &self.state_vector,
                covers_seq: self.covers_seq,
                keep: self.keep,
            },
        }
    }
}

/// A queue served by a thread of its own, named `name`, which runs `writer` until every clone
/// of the queue is dropped (and what was queued by then is written).
pub(crate) fn spawn(
    name: &str,
    spacing: Duration,
    writer: impl BlockingBatchWrite,
) -> Result<AppendQueue, StoreError> {
    let (tx, queue) = mpsc::channel(QUEUE_APPENDS);
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || serve(queue, spacing, writer))
        .map_err(|error| StoreError::Interrupted(format!("cannot start the {name} thread: {error}")))?;
    Ok(AppendQueue::served_by_thread(tx))
}

/// Serves `queue` on the calling thread until every sender is dropped (what was queued by then
/// is written). Commits start at least `spacing` apart: under sustained appends a batch then
/// gathers what arrives in that time instead of paying a commit (and its sync) for every one or
/// two; an append after a quiet spell is committed at once.
pub(crate) fn serve(
    mut queue: mpsc::Receiver<Request>,
    spacing: Duration,
    mut writer: impl BlockingBatchWrite,
) {
    let mut last_start: Option<Instant> = None;
    // Snapshots taken from the queue past a commit's share, oldest first. Bounded by the queue.
    let mut waiting: VecDeque<PendingSnapshot> = VecDeque::new();
    loop {
        let first = match waiting.pop_front() {
            Some(snapshot) => Request::Snapshot(snapshot),
            None => match queue.blocking_recv() {
                Some(request) => request,
                None => break,
            },
        };
        if let Some(wait) = last_start.and_then(|start| spacing.checked_sub(start.elapsed())) {
            std::thread::sleep(wait);
        }
        last_start = Some(Instant::now());
        let (appends, snapshots) = gather(first, &mut queue, &mut waiting);
        write(&mut writer, appends, snapshots);
    }
}

/// `first` and what else has queued: appends up to the batch's size limit, and snapshots up to
/// [`SNAPSHOTS_PER_COMMIT`] (those past it join `waiting`).
fn gather(
    first: Request,
    queue: &mut mpsc::Receiver<Request>,
    waiting: &mut VecDeque<PendingSnapshot>,
) -> (Vec<PendingAppend>, Vec<PendingSnapshot>) {
    let mut snapshots = Vec::new();
    let appends = gather_appends(first, queue, |snapshot| {
        if snapshots.len() < SNAPSHOTS_PER_COMMIT {
            snapshots.push(snapshot);
        } else {
            waiting.push_back(snapshot);
        }
    });
    (appends, snapshots)
}

/// Writes a batch as one transaction and answers each request; if the transaction fails, each
/// room's appends and each snapshot are written on their own, so one bad request fails only itself.
fn write(writer: &mut impl BlockingBatchWrite, appends: Vec<PendingAppend>, snapshots: Vec<PendingSnapshot>) {
    let written = {
        let grouped = Grouped::new(&appends);
        let writes: Vec<RoomSnapshot<'_>> = snapshots.iter().map(PendingSnapshot::as_write).collect();
        writer
            .write_batch(&grouped.rooms, &writes)
            .map(|written| (grouped.answers(&written.last_seqs), written.snapshots))
    };
    let error = match written {
        Ok((answers, outcomes)) => {
            for (append, answer) in appends.into_iter().zip(answers) {
                let _ = append.done.send(answer);
            }
            for (snapshot, outcome) in snapshots.into_iter().zip(outcomes) {
                let _ = snapshot.done.send(outcome);
            }
            return;
        }
        Err(error) => error,
    };
    if appends.len() + snapshots.len() == 1 {
        if let Some(append) = appends.into_iter().next() {
            let _ = append.done.send(Err(error));
        } else if let Some(snapshot) = snapshots.into_iter().next() {
            let _ = snapshot.done.send(Err(error));
        }
        return;
    }
    tracing::warn!(%error, appends = appends.len(), snapshots = snapshots.len(),
        "a shared commit failed; writing its parts one by one");
    for append in appends {
        let written = writer.write_batch(&append.alone(), &[]).map(|written| written.last_seqs);
        let _ = append.done.send(last_seq(written));
    }
    for snapshot in snapshots {
        let outcome = writer.write_batch(&[], &[snapshot.as_write()]).and_then(|written| {
            written.snapshots.into_iter().next().unwrap_or_else(|| {
                Err(StoreError::Interrupted("the write returned no snapshot outcome".into()))
            })
        });
        let _ = snapshot.done.send(outcome);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// The rooms of one `write_batch` call: appended, snapshotted.
    type Call = (Vec<String>, Vec<String>);

    /// Records each call; the first says so on `started` and waits for `gate`, so that what
    /// follows queues up behind it. Any call holding room "bad" fails.
    struct Recording {
        calls: Arc<Mutex<Vec<Call>>>,
        started: std::sync::mpsc::Sender<()>,
        gate: Option<std::sync::mpsc::Receiver<()>>,
    }

    impl BlockingBatchWrite for Recording {
        fn write_batch(
            &mut self,
            rooms: &[RoomAppend<'_>],
            snapshots: &[RoomSnapshot<'_>],
        ) -> Result<BatchWritten, StoreError> {
            if let Some(gate) = self.gate.take() {
                let _ = self.started.send(());
                let _ = gate.recv();
            }
            let call: Call = (
                rooms.iter().map(|r| r.room.to_owned()).collect(),
                snapshots.iter().map(|s| s.room.to_owned()).collect(),
            );
            let bad = call.0.iter().chain(&call.1).any(|room| room == "bad");
            self.calls.lock().unwrap().push(call);
            if bad {
                return Err(StoreError::Interrupted("room bad fails".into()));
            }
            Ok(BatchWritten {
                last_seqs: rooms.iter().map(|r| crate::len_i64(r.updates.len())).collect(),
                snapshots: snapshots
                    .iter()
                    .map(|_| Ok(CompactOutcome { deleted_updates: 1, deleted_snapshots: 0 }))
                    .collect(),
            })
        }
    }

    enum Asked {
        Append(&'static str),
        Snapshot(&'static str),
    }

    /// Runs `asked` through a writer thread, all queued behind a first append the writer holds
    /// until they are: the calls the writer saw and each request's answer (Ok: succeeded).
    async fn run(asked: Vec<Asked>) -> (Vec<Call>, Vec<bool>) {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let (open, gate) = std::sync::mpsc::channel();
        let (started, writing) = std::sync::mpsc::channel();
        let writer = Recording { calls: calls.clone(), started, gate: Some(gate) };
        let queue = spawn("test-writer", Duration::ZERO, writer).expect("thread");
        let first = tokio::spawn({
            let queue = queue.clone();
            async move { queue.append("first", &[b"1"]).await.is_ok() }
        });
        while writing.try_recv().is_err() {
            tokio::task::yield_now().await;
        }
        let mut answers = Vec::new();
        let count = asked.len();
        for request in asked {
            let queue = queue.clone();
            answers.push(tokio::spawn(async move {
                match request {
                    Asked::Append(room) => queue.append(room, &[b"u"]).await.is_ok(),
                    Asked::Snapshot(room) => {
                        let snapshot = NewSnapshot { data: b"s", state_vector: b"", covers_seq: 1, keep: 1 };
                        queue.write_snapshot(room, snapshot).await.is_ok()
                    }
                }
            }));
        }
        // Everything queued (the first append is taken off the queue by the held writer).
        while queue.queued() < count {
            tokio::task::yield_now().await;
        }
        open.send(()).expect("the writer waits");
        assert!(first.await.expect("first"));
        let mut outcomes = Vec::new();
        for answer in answers {
            outcomes.push(answer.await.expect("answer"));
        }
        let calls = calls.lock().unwrap().clone();
        (calls, outcomes)
    }

    #[tokio::test]
    async fn a_commit_carries_every_queued_append_and_at_most_one_snapshot() {
        use Asked::*;
        let (calls, outcomes) =
            run(vec![Snapshot("s1"), Append("a"), Snapshot("s2"), Append("b"), Snapshot("s3")]).await;
        assert!(outcomes.iter().all(|ok| *ok), "every request succeeds: {outcomes:?}");
        assert_eq!(calls[0], (vec!["first".to_owned()], vec![]));
        // The next commit takes both appends and the first snapshot; the others follow, one each.
        assert_eq!(calls[1], (vec!["a".to_owned(), "b".to_owned()], vec!["s1".to_owned()]));
        assert_eq!(calls[2..], [(vec![], vec!["s2".to_owned()]), (vec![], vec!["s3".to_owned()])]);
    }

    #[tokio::test]
    async fn a_failed_commit_writes_its_parts_one_by_one_so_only_the_bad_one_fails() {
        use Asked::*;
        let (calls, outcomes) = run(vec![Append("bad"), Append("good"), Snapshot("s")]).await;
        assert_eq!(outcomes, vec![false, true, true]);
        let alone: Vec<Call> = vec![
            (vec!["bad".to_owned()], vec![]),
            (vec!["good".to_owned()], vec![]),
            (vec![], vec!["s".to_owned()]),
        ];
        assert_eq!(calls[1], (vec!["bad".to_owned(), "good".to_owned()], vec!["s".to_owned()]));
        assert_eq!(calls[2..], alone[..]);
    }
}
