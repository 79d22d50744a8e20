//! When a room asks for compaction: once its stored log since the last snapshot passes the
//! policy's thresholds, and never while a compaction is under way. Pure bookkeeping; the actor
//! runs the compaction (`crate::compaction::compact`).

use crate::compaction::CompactionPolicy;

#[derive(Debug)]
pub(crate) struct CompactionSchedule {
    policy: CompactionPolicy,
    /// Log rows and bytes since the last snapshot: what compaction would fold.
    log_rows: usize,
    log_bytes: usize,
    running: bool,
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

    /// Whether to start a compaction now. Compaction works from what is stored, not from the
    /// live document, so it never waits for the room to be quiet and never blocks it.
    pub(crate) fn poll(&mut self) -> bool {
        if self.running || !self.policy.is_due(self.log_rows, self.log_bytes) {
            return false;
        }
        self.log_rows = 0;
        self.log_bytes = 0;
        self.running = true;
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
        let policy = CompactionPolicy { after_rows: 3, after_bytes: 1000, keep_versions: 1 };
        let mut schedule = CompactionSchedule::new(policy, 1, 10);
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
}
