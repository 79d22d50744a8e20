//! When a queued run should start: pure arithmetic over the queue's slots, the runs executing
//! now and the recent average run time (docs/queue.md), kept apart from the reads so it can be
//! tested on its own.

/// What an estimate is made from.
#[derive(Debug, Clone, Copy)]
pub struct QueueClock<'a> {
    /// Runs executing at once across every worker.
    pub slots: i64,
    /// The mean execution time of recent runs, in milliseconds.
    pub average_ms: i64,
    /// When the runs executing now started (milliseconds since the epoch), earliest first.
    pub running_started: &'a [i64],
    pub now: i64,
}

impl QueueClock<'_> {
    /// When the run at `position` (1 is next) should start. Each slot frees at `now` when idle,
    /// or when its run should end (its start plus the average, never before now); the runs
    /// ahead then take the slots in turn, a round of `slots` runs lasting one average. `None`
    /// without slots.
    pub fn start_of(&self, position: i64) -> Option<i64> {
        if self.slots <= 0 || position < 1 {
            return None;
        }
        let average = self.average_ms.max(0);
        let ahead = position - 1;
        let (rounds, slot) = (ahead / self.slots, ahead % self.slots);
        // Busy slots are the runs executing now, earliest started first: those free first. More
        // runs than slots (a misconfigured slot count) leave no idle slot.
        let busy = i64::try_from(self.running_started.len()).unwrap_or(i64::MAX).min(self.slots);
        let idle = self.slots - busy;
        let frees_at = if slot < idle {
            self.now
        } else {
            let started = usize::try_from(slot - idle)
                .ok()
                .and_then(|i| self.running_started.get(i))
                .copied()
                .unwrap_or(self.now);
            started.saturating_add(average).max(self.now)
        };
        Some(frees_at.saturating_add(rounds.saturating_mul(average)))
    }
}

#[cfg(test)]
mod tests {
    use super::QueueClock;

    const NOW: i64 = 1_000_000;

    fn clock(slots: i64, running_started: &[i64]) -> QueueClock<'_> {
        QueueClock { slots, average_ms: 60_000, running_started, now: NOW }
    }

    #[test]
    fn idle_slots_start_the_first_runs_now() {
        let clock = clock(2, &[]);
        assert_eq!(clock.start_of(1), Some(NOW));
        assert_eq!(clock.start_of(2), Some(NOW));
        assert_eq!(clock.start_of(3), Some(NOW + 60_000));
        assert_eq!(clock.start_of(5), Some(NOW + 120_000));
    }

    #[test]
    fn a_busy_slot_frees_when_its_run_should_end() {
        // One slot, its run started 45 s ago: the next run starts in 15 s, the one after a
        // minute later.
        let running = [NOW - 45_000];
        let clock = clock(1, &running);
        assert_eq!(clock.start_of(1), Some(NOW + 15_000));
        assert_eq!(clock.start_of(2), Some(NOW + 75_000));
    }

    #[test]
    fn idle_slots_come_before_busy_ones_and_busy_ones_in_order() {
        // Three slots: one idle, runs started 50 s and 10 s ago.
        let running = [NOW - 50_000, NOW - 10_000];
        let clock = clock(3, &running);
        assert_eq!(clock.start_of(1), Some(NOW));
        assert_eq!(clock.start_of(2), Some(NOW + 10_000));
        assert_eq!(clock.start_of(3), Some(NOW + 50_000));
        assert_eq!(clock.start_of(4), Some(NOW + 60_000));
    }

    #[test]
    fn an_overdue_run_frees_its_slot_now_not_in_the_past() {
        let running = [NOW - 600_000];
        assert_eq!(clock(1, &running).start_of(1), Some(NOW));
    }

    #[test]
    fn more_runs_than_slots_leave_no_idle_slot() {
        let running = [NOW - 30_000, NOW - 20_000, NOW - 10_000];
        let clock = clock(2, &running);
        assert_eq!(clock.start_of(1), Some(NOW + 30_000));
        assert_eq!(clock.start_of(2), Some(NOW + 40_000));
    }

    #[test]
    fn no_slots_or_no_position_is_no_estimate() {
        assert_eq!(clock(0, &[]).start_of(1), None);
        assert_eq!(clock(2, &[]).start_of(0), None);
        let huge = QueueClock { slots: i64::MAX, average_ms: i64::MAX, running_started: &[], now: i64::MAX };
        assert_eq!(huge.start_of(i64::MAX), Some(i64::MAX));
    }
}
