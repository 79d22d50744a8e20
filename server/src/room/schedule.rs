//! When a room asks for compaction: once its stored log since the last snapshot passes the
//! policy's thresholds, and never while a compaction is under way. Pure bookkeeping; the actor
//! runs the compaction (`crate::compaction::compact`).

use std::hash::{DefaultHasher, Hash, Hasher};

use crate::compaction::CompactionPolicy;

#[derive(Debug)]
pub(crate) struct CompactionSchedule {
    policy: CompactionPolicy,
    /// Log rows and bytes since the last snapshot: what compaction would fold.
    log_rows: usize,
    log_bytes: usize,
    /// Rows at which the next compaction starts (the policy's threshold, spread per room).
    rows_due: usize,
    /// Where this room's spread comes from; advanced at each compaction.
    draw: u64,
    running: bool,
}

impl CompactionSchedule {
    /// What the loaded document's log holds; `room` seeds its spread, so that rooms differ.
    pub(crate) fn new(policy: CompactionPolicy, room: &str, log_rows: usize, log_bytes: usize) -> Self {
        let mut hasher = DefaultHasher::new();
        room.hash(&mut hasher);
        let draw = hasher.finish();
        Self { policy, log_rows, log_bytes, rows_due: policy.rows_due(draw), draw, running: false }
    }

    /// A batch of `changes` was stored.
    pub(crate) fn stored(&mut self, changes: &[Vec<u8>]) {
        self.log_rows += changes.len();
        self.log_bytes += changes.iter().map(Vec::len).sum::<usize>();
    }

    /// Whether to start a compaction now. Compaction works from what is stored, not from the
    /// live document, so it never waits for the room to be quiet and never blocks it.
    pub(crate) fn poll(&mut self) -> bool {
        let due = self.log_rows > 0
            && (self.log_rows >= self.rows_due || self.log_bytes >= self.policy.after_bytes);
        if self.running || !due {
            return false;
        }
        self.log_rows = 0;
        self.log_bytes = 0;
        self.running = true;
        // The next threshold from the next draw (a 64-bit LCG step: any spread will do).
        self.draw = self.draw.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        self.rows_due = self.policy.rows_due(self.draw >> 11);
        true
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

    #[test]
    fn compacts_once_due_and_not_twice_at_once() {
        let policy =
            CompactionPolicy { after_rows: 3, after_bytes: 1000, keep_versions: 1, spread_percent: 0 };
        let mut schedule = CompactionSchedule::new(policy, "room", 1, 10);
        assert!(!schedule.poll());
        schedule.stored(&[vec![1], vec![2]]);
        assert!(schedule.poll(), "three rows");
        schedule.stored(&[vec![0; 2000]]);
        assert!(!schedule.poll(), "one is under way");
        schedule.finished();
        assert!(schedule.poll(), "due by bytes");
        schedule.finished();
        assert!(!schedule.poll(), "nothing since");
    }

    #[test]
    fn rooms_spread_their_thresholds_within_the_percent() {
        let policy = CompactionPolicy {
            after_rows: 500,
            after_bytes: usize::MAX,
            keep_versions: 1,
            spread_percent: 25,
        };
        let mut seen = std::collections::BTreeSet::new();
        for room in 0..200 {
            let mut schedule = CompactionSchedule::new(policy, &format!("room-{room}"), 0, 0);
            for _ in 0..3 {
                assert!((500..=625).contains(&schedule.rows_due), "{}", schedule.rows_due);
                seen.insert(schedule.rows_due);
                schedule.stored(&vec![vec![0]; schedule.rows_due - 1]);
                assert!(!schedule.poll(), "one row short of its threshold");
                schedule.stored(&[vec![0]]);
                assert!(schedule.poll(), "at its threshold");
                schedule.finished();
            }
        }
        // 600 thresholds over 126 possible values: spread, not one or two.
        assert!(seen.len() > 60, "{seen:?}");
        // No spread: exactly the threshold.
        let exact = CompactionPolicy { spread_percent: 0, ..policy };
        assert_eq!(CompactionSchedule::new(exact, "any", 0, 0).rows_due, 500);
        assert_eq!(exact.rows_due(u64::MAX), 500);
    }
}
