//! When a room asks for compaction, and from what: once its stored log since the last snapshot
//! passes the policy's thresholds, and never while a compaction is under way. Pure bookkeeping;
//! the actor runs the compaction (`crate::compaction`).
//!
//! A room folds its live document when that holds exactly what is stored (nothing unstored,
//! held back or missing; see `RoomCore::live_compaction`): encoding a small document costs a
//! fraction of reading the log back and rebuilding it, which is what made compaction the limit
//! of a server with many small busy rooms (BENCHMARKS.md). A room that is between writes waits
//! for a quiet moment, up to twice the thresholds, then falls back to the store.

use crate::compaction::CompactionPolicy;

#[derive(Debug)]
pub(crate) struct CompactionSchedule {
    policy: CompactionPolicy,
    /// Log rows and bytes since the last snapshot: what compaction would fold.
    log_rows: usize,
    log_bytes: usize,
    running: bool,
}

/// Whether the room's live document may be folded, as the room sees it now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LiveDocument {
    /// It holds exactly the stored log: fold it.
    Ready,
    /// Not at this moment (a write is under way, or sequences from other instances are
    /// missing); likely soon.
    Busy,
    /// Not for this room (the document is too big to encode on the room's task, or holds
    /// updates whose dependencies are missing): compact from the store.
    Unsuitable,
}

/// What to compact from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CompactFrom {
    /// The live document, encoded now.
    Document,
    /// What the store holds, read back and rebuilt off the room's task.
    Store,
}

impl CompactionSchedule {
    /// What the loaded document's log holds.
    pub(crate) fn new(policy: CompactionPolicy, log_rows: usize, log_bytes: usize) -> Self {
        Self { policy, log_rows, log_bytes, running: false }
    }

    /// A batch of `changes` was stored.
    pub(crate) fn stored(&mut self, changes: &[Vec<u8>]) {
        self.log_rows += changes.len();
        self.log_bytes += changes.iter().map(Vec::len).sum::<usize>();
    }

    /// Past a threshold, and none under way: [`Self::poll`] is worth asking.
    pub(crate) fn is_due(&self) -> bool {
        !self.running && self.policy.is_due(self.log_rows, self.log_bytes)
    }

    /// Whether to start a compaction now, and from what. Compacting from the store never waits
    /// for the room; folding the document waits for a quiet moment, but not past twice the
    /// thresholds, so a room that is never quiet still compacts.
    pub(crate) fn poll(&mut self, live: LiveDocument) -> Option<CompactFrom> {
        if !self.is_due() {
            return None;
        }
        let from = match live {
            LiveDocument::Ready => CompactFrom::Document,
            LiveDocument::Unsuitable => CompactFrom::Store,
            LiveDocument::Busy if self.overdue() => CompactFrom::Store,
            LiveDocument::Busy => return None,
        };
        self.log_rows = 0;
        self.log_bytes = 0;
        self.running = true;
        Some(from)
    }

    /// Past twice a threshold: long enough waited for a quiet moment.
    fn overdue(&self) -> bool {
        self.log_rows >= self.policy.after_rows.saturating_mul(2)
            || self.log_bytes >= self.policy.after_bytes.saturating_mul(2)
    }

    pub(crate) fn finished(&mut self) {
        self.running = false;
    }

    pub(crate) fn is_running(&self) -> bool {
        self.running
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> CompactionPolicy {
        CompactionPolicy { after_rows: 3, after_bytes: 1000, keep_versions: 1 }
    }

    #[test]
    fn compacts_once_due_and_not_twice_at_once() {
        let mut schedule = CompactionSchedule::new(policy(), 1, 10);
        assert_eq!(schedule.poll(LiveDocument::Ready), None);
        schedule.stored(&[vec![1], vec![2]]);
        assert_eq!(schedule.poll(LiveDocument::Ready), Some(CompactFrom::Document), "three rows");
        schedule.stored(&[vec![0; 2000]]);
        assert_eq!(schedule.poll(LiveDocument::Ready), None, "one is under way");
        schedule.finished();
        assert_eq!(schedule.poll(LiveDocument::Unsuitable), Some(CompactFrom::Store), "due by bytes");
        schedule.finished();
        assert_eq!(schedule.poll(LiveDocument::Ready), None, "nothing since");
    }

    #[test]
    fn a_busy_room_waits_for_a_quiet_moment_up_to_twice_the_threshold() {
        let mut schedule = CompactionSchedule::new(policy(), 3, 30);
        assert_eq!(schedule.poll(LiveDocument::Busy), None, "due, but a write is under way");
        schedule.stored(&[vec![1], vec![2]]);
        assert_eq!(schedule.poll(LiveDocument::Busy), None, "five rows: still waiting");
        assert_eq!(schedule.poll(LiveDocument::Ready), Some(CompactFrom::Document), "quiet at last");
        schedule.finished();
        schedule.stored(&vec![vec![1]; 6]);
        assert_eq!(schedule.poll(LiveDocument::Busy), Some(CompactFrom::Store), "six rows: overdue");
    }
}
