//! Which store sequences a room's document holds, across instances: pure bookkeeping.
//!
//! Every change a room stores gets a sequence number from the store; instances publish what
//! they stored with its range. A room tracks the highest sequence up to which it holds
//! *everything* (`seen`), ranges that arrived ahead of a missing one, and since when such a gap
//! has been open. Messages can arrive out of order, so a gap is given `GAP_TIMEOUT` to close
//! before the room catches up from the store.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// How long a gap in the store sequences received from other instances may stay open (their
/// messages can arrive out of order) before the room catches up from the store.
pub const GAP_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Debug, Default)]
pub struct Replication {
    /// Store sequence up to which the document holds every stored change (own and others').
    seen: i64,
    /// Ranges stored elsewhere that arrived ahead of a missing one: first → last.
    ahead: BTreeMap<i64, i64>,
    /// Since when `ahead` has been waiting for the missing range.
    gap_since: Option<Instant>,
}

impl Replication {
    /// A document loaded from the store up to `seen`.
    pub fn loaded(seen: i64) -> Self {
        Self { seen, ..Self::default() }
    }

    pub fn seen(&self) -> i64 {
        self.seen
    }

    /// Whether ranges wait for a missing one.
    pub fn has_gap(&self) -> bool {
        !self.ahead.is_empty()
    }

    /// Records that sequences `first..=last` are in the document (stored here or elsewhere).
    pub fn note_stored(&mut self, first: i64, last: i64, now: Instant) {
        if last > self.seen {
            if first <= self.seen + 1 {
                self.seen = last;
            } else {
                let end = self.ahead.entry(first).or_insert(last);
                *end = (*end).max(last);
            }
        }
        self.absorb_ahead(now);
    }

    /// The document now holds everything the store held up to `last` (a catch-up read).
    pub fn caught_up(&mut self, last: i64, now: Instant) {
        self.seen = self.seen.max(last);
        self.ahead.retain(|_, end| *end > last);
        self.absorb_ahead(now);
    }

    /// A gap has stayed open for `GAP_TIMEOUT`: time to read the store.
    pub fn gap_overdue(&self, now: Instant) -> bool {
        self.gap_since.is_some_and(|since| now.saturating_duration_since(since) >= GAP_TIMEOUT)
    }

    fn absorb_ahead(&mut self, now: Instant) {
        while let Some((&first, &last)) = self.ahead.first_key_value() {
            if first > self.seen + 1 {
                break;
            }
            self.seen = self.seen.max(last);
            self.ahead.pop_first();
        }
        if self.ahead.is_empty() {
            self.gap_since = None;
        } else if self.gap_since.is_none() {
            self.gap_since = Some(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contiguous_ranges_advance_what_is_seen() {
        let now = Instant::now();
        let mut replication = Replication::loaded(4);
        replication.note_stored(5, 7, now);
        replication.note_stored(8, 8, now);
        assert_eq!(replication.seen(), 8);
        assert!(!replication.has_gap());
        replication.note_stored(3, 6, now);
        assert_eq!(replication.seen(), 8, "old ranges change nothing");
    }

    #[test]
    fn a_range_ahead_waits_for_the_missing_one_then_is_absorbed() {
        let now = Instant::now();
        let mut replication = Replication::loaded(0);
        replication.note_stored(3, 4, now);
        replication.note_stored(6, 9, now);
        assert_eq!(replication.seen(), 0);
        assert!(replication.has_gap());
        replication.note_stored(1, 2, now);
        assert_eq!(replication.seen(), 4, "3..=4 absorbed; 5 still missing");
        assert!(replication.has_gap());
        replication.note_stored(5, 5, now);
        assert_eq!(replication.seen(), 9);
        assert!(!replication.has_gap());
        assert!(!replication.gap_overdue(now + GAP_TIMEOUT));
    }

    #[test]
    fn overlapping_ranges_ahead_keep_the_furthest_end() {
        let now = Instant::now();
        let mut replication = Replication::loaded(0);
        replication.note_stored(3, 4, now);
        replication.note_stored(3, 6, now);
        replication.note_stored(3, 5, now);
        replication.note_stored(1, 2, now);
        assert_eq!(replication.seen(), 6);
    }

    #[test]
    fn a_gap_is_overdue_after_the_timeout_from_when_it_opened() {
        let start = Instant::now();
        let mut replication = Replication::loaded(0);
        replication.note_stored(2, 2, start);
        let later = start + GAP_TIMEOUT / 2;
        replication.note_stored(4, 4, later);
        assert!(!replication.gap_overdue(later));
        assert!(replication.gap_overdue(start + GAP_TIMEOUT), "timed from the first gap");
        // Closing the first gap leaves the second open: its clock keeps running from `start`
        // (as before the split: a gap that never fully closes is not given more time).
        replication.note_stored(1, 1, later);
        assert_eq!(replication.seen(), 2);
        assert!(replication.gap_overdue(start + GAP_TIMEOUT));
    }

    #[test]
    fn catching_up_drops_what_the_store_read_covered() {
        let now = Instant::now();
        let mut replication = Replication::loaded(0);
        replication.note_stored(3, 4, now);
        replication.note_stored(8, 9, now);
        replication.caught_up(5, now);
        assert_eq!(replication.seen(), 5);
        assert!(replication.has_gap(), "8..=9 is still ahead of 6..=7");
        replication.caught_up(9, now);
        assert_eq!(replication.seen(), 9);
        assert!(!replication.has_gap());
        assert!(!replication.gap_overdue(now + GAP_TIMEOUT));
    }

    #[test]
    fn an_empty_catch_up_keeps_what_is_seen() {
        let now = Instant::now();
        let mut replication = Replication::loaded(7);
        replication.caught_up(0, now);
        assert_eq!(replication.seen(), 7);
    }
}
