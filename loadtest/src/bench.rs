//! Timestamps carried inside the document, and the receiving side that turns them into latencies.
//!
//! Every edit also writes `bench[{client_id}] = "dojo-lt:{client_id}:{n}:{sent_us};"` (a root
//! `Y.Map`) in the same transaction, so the timestamp travels in the very update it measures.
//! yrs encodes a string value as its length and its UTF-8 bytes, so the stamp appears verbatim in
//! the update's bytes: the receiving client finds it there ([`record_stamps`]) the moment the frame
//! arrives, without decoding or applying the update. The time between the stamp and that moment
//! is the edit's end-to-end propagation latency (client → server → store → broadcast → client).
//! All clients live in this process and share one clock.
//!
//! Each client overwrites its own key rather than adding one key per edit, so the live map holds
//! one entry per client however long the run. The overwritten values stay in the document's
//! history as deleted items, as every canvas edit does.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use yrs::{Map, TransactionMut, WriteTxn};

/// The root map holding the timestamps.
pub const BENCH: &str = "bench";
/// What every stamp starts with; the rest is `{sender}:{n}:{sent_us};`.
const STAMP_MARK: &[u8] = b"dojo-lt:";
/// Largest latency the histogram tells apart: one hour, in microseconds; longer ones count as that.
const MAX_LATENCY_US: u64 = 3_600_000_000;

/// Microseconds since the Unix epoch, read from a monotonic clock: the wall clock at start-up
/// plus the time elapsed since, so a wall-clock step during a run does not distort latencies.
#[derive(Debug, Clone, Copy)]
pub struct BenchClock {
    origin: Instant,
    origin_us: u64,
}

impl BenchClock {
    pub fn start() -> Self {
        let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        Self { origin: Instant::now(), origin_us: saturating_micros(since_epoch.as_micros()) }
    }

    pub fn now_us(&self) -> u64 {
        self.origin_us.saturating_add(saturating_micros(self.origin.elapsed().as_micros()))
    }

    /// When this clock started: earlier stamps are not from this run.
    pub fn origin_us(&self) -> u64 {
        self.origin_us
    }
}

fn saturating_micros(micros: u128) -> u64 {
    u64::try_from(micros).unwrap_or(u64::MAX)
}

/// A latency histogram in microseconds (1 µs to 1 h, three significant digits).
pub fn latency_histogram() -> Histogram<u64> {
    // Constant bounds that hdrhistogram accepts; this cannot fail at run time.
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("valid constant histogram bounds")
}

/// What one client received from the others.
#[derive(Debug)]
pub struct Received {
    /// Propagation latency of every stamp seen, in microseconds.
    pub latency_us: Histogram<u64>,
    /// Edits of other clients applied here. A server that merges several updates of one sender
    /// into one broadcast (Hocuspocus batches per event-loop turn) delivers several edits in one
    /// transaction, where only the last stamp is visible: the edit numbers tell how many arrived,
    /// and the latency is sampled once, for the newest.
    pub deliveries: u64,
    /// Stamps from before this run (a reused `--room-prefix`): not counted.
    pub stale: u64,
    /// The newest edit number seen from each sender (by client id).
    newest: HashMap<u64, u64>,
}

impl Default for Received {
    fn default() -> Self {
        Self { latency_us: latency_histogram(), deliveries: 0, stale: 0, newest: HashMap::new() }
    }
}

impl Received {
    /// Records `sender`'s `n`th edit, sent at `sent_us`, seen at `now_us`. An edit seen before
    /// (it came again in a merged or resent update) is neither a delivery nor a latency.
    pub fn record(&mut self, sender: u64, n: u64, sent_us: u64, now_us: u64, clock_origin_us: u64) {
        if sent_us < clock_origin_us {
            self.stale += 1;
            return;
        }
        let newest = self.newest.entry(sender).or_default();
        if n <= *newest {
            return;
        }
        self.deliveries += n - *newest;
        *newest = n;
        self.latency_us.saturating_record(now_us.saturating_sub(sent_us).max(1));
    }

    /// The latencies and deliveries recorded so far, leaving this empty (the newest edit numbers
    /// stay, so the next interval counts from there).
    pub fn take(&mut self) -> (Histogram<u64>, u64) {
        let latency = std::mem::replace(&mut self.latency_us, latency_histogram());
        (latency, std::mem::take(&mut self.deliveries))
    }
}

/// Shared between a client's observer (which runs while its reader applies an update) and the run.
pub type SharedReceived = Arc<Mutex<Received>>;

pub fn lock(received: &SharedReceived) -> MutexGuard<'_, Received> {
    received.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Where a client records the stamps of other clients' edits it receives.
#[derive(Debug, Clone)]
pub struct StampSink {
    pub received: SharedReceived,
    pub clock: BenchClock,
    /// This client's id: its own edits, echoed back by the server, are not deliveries.
    pub own: u64,
}

impl StampSink {
    pub fn new(clock: BenchClock, own: u64) -> Self {
        Self { received: SharedReceived::default(), clock, own }
    }

    /// Records every other client's stamp found in `update` (the bytes of a Yjs update, as
    /// received), timed now.
    pub fn record(&self, update: &[u8]) {
        let now_us = self.clock.now_us();
        let mut stamps = Stamps::new(update).filter(|stamp| stamp.sender != self.own).peekable();
        if stamps.peek().is_none() {
            return;
        }
        let mut received = lock(&self.received);
        for stamp in stamps {
            received.record(stamp.sender, stamp.n, stamp.sent_us, now_us, self.clock.origin_us());
        }
    }
}

impl dojo_room_client::UpdateTap for StampSink {
    fn received(&self, update: &[u8]) {
        self.record(update);
    }
}

/// Writes this client's stamp for its `n`th edit, sent now, into the transaction.
pub fn stamp(txn: &mut TransactionMut, own: u64, n: u64, clock: BenchClock) {
    let bench = txn.get_or_insert_map(BENCH);
    bench.insert(txn, own.to_string(), format_stamp(own, n, clock.now_us()));
}

pub fn format_stamp(sender: u64, n: u64, sent_us: u64) -> String {
    format!("dojo-lt:{sender}:{n}:{sent_us};")
}

/// One stamp found in an update's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub sender: u64,
    pub n: u64,
    pub sent_us: u64,
}

/// The stamps in a byte string, in order. Anything that looks like the start of a stamp but
/// does not parse is skipped (a stamp cut by a malformed frame, say).
pub struct Stamps<'a> {
    bytes: &'a [u8],
    finder: memchr::memmem::Finder<'static>,
}

impl<'a> Stamps<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, finder: memchr::memmem::Finder::new(STAMP_MARK) }
    }
}

impl Iterator for Stamps<'_> {
    type Item = Stamp;

    fn next(&mut self) -> Option<Stamp> {
        loop {
            let at = self.finder.find(self.bytes)?;
            self.bytes = &self.bytes[at + STAMP_MARK.len()..];
            if let Some((stamp, rest)) = parse_stamp_body(self.bytes) {
                self.bytes = rest;
                return Some(stamp);
            }
        }
    }
}

/// `{sender}:{n}:{sent_us};` at the start of `bytes`, and what follows it.
fn parse_stamp_body(bytes: &[u8]) -> Option<(Stamp, &[u8])> {
    let (sender, rest) = parse_number(bytes, b':')?;
    let (n, rest) = parse_number(rest, b':')?;
    let (sent_us, rest) = parse_number(rest, b';')?;
    Some((Stamp { sender, n, sent_us }, rest))
}

/// Decimal digits (at most 20) up to `end`, and what follows `end`.
fn parse_number(bytes: &[u8], end: u8) -> Option<(u64, &[u8])> {
    let digits = bytes.iter().take(21).take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || bytes.get(digits) != Some(&end) {
        return None;
    }
    let mut value: u64 = 0;
    for digit in &bytes[..digits] {
        value = value.checked_mul(10)?.checked_add(u64::from(digit - b'0'))?;
    }
    Some((value, &bytes[digits + 1..]))
}

/// A stamp parsed from its text form, as [`format_stamp`] writes it.
pub fn parse_stamp(text: &str) -> Option<Stamp> {
    let body = text.as_bytes().strip_prefix(STAMP_MARK)?;
    match parse_stamp_body(body) {
        Some((stamp, [])) => Some(stamp),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use yrs::updates::decoder::Decode;
    use yrs::{Doc, ReadTxn, Transact, Update};

    #[test]
    fn stamps_round_trip_and_garbage_is_refused() {
        let stamp = Stamp { sender: 42, n: 7, sent_us: 1_700_000_000_123_456 };
        assert_eq!(parse_stamp(&format_stamp(42, 7, 1_700_000_000_123_456)), Some(stamp));
        for bad in [
            "",
            "dojo-lt:",
            "dojo-lt:1:7",
            "dojo-lt:1:7:5",
            "dojo-lt::7:5;",
            "dojo-lt:a:7:5;",
            "dojo-lt:1:7:-5;",
            "dojo-lt:1:7:5;x",
            "dojo-lt:1:7:99999999999999999999999;",
            "7:5",
        ] {
            assert_eq!(parse_stamp(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn stamps_are_found_among_other_bytes_and_broken_ones_skipped() {
        let mut bytes = b"\x00\x02junk dojo-lt:1:2:3; more dojo-lt:9:x:1; dojo-lt:".to_vec();
        bytes.extend_from_slice(b"4:5:6;dojo-lt:7:8:9");
        let found: Vec<Stamp> = Stamps::new(&bytes).collect();
        assert_eq!(found, vec![Stamp { sender: 1, n: 2, sent_us: 3 }, Stamp { sender: 4, n: 5, sent_us: 6 }]);
    }

    #[test]
    fn the_clock_is_epoch_microseconds_and_does_not_go_back() {
        let clock = BenchClock::start();
        let a = clock.now_us();
        let b = clock.now_us();
        assert!(b >= a && a >= clock.origin_us());
        // After 2020 and before 2100.
        assert!((1_577_836_800_000_000..4_102_444_800_000_000).contains(&a), "{a}");
    }

    #[test]
    fn stamps_from_before_the_run_are_not_latencies() {
        let mut received = Received::default();
        received.record(1, 1, 1_000, 3_500, 1_000);
        received.record(1, 2, 999, 3_500, 1_000);
        assert_eq!((received.deliveries, received.stale), (1, 1));
        let max = received.latency_us.max();
        assert!(received.latency_us.equivalent(max, 2_500), "{max}");
    }

    #[test]
    fn merged_updates_count_every_edit_they_carry_and_repeats_count_nothing() {
        let mut received = Received::default();
        received.record(1, 1, 1_000, 2_000, 0);
        // Edits 2 and 3 of client 1 arrived merged: only 3 is visible.
        received.record(1, 3, 1_500, 2_000, 0);
        received.record(2, 1, 1_500, 2_000, 0);
        // A stamp seen again (a resync) is neither a delivery nor a latency.
        received.record(1, 3, 1_500, 9_000, 0);
        assert_eq!(received.deliveries, 4);
        let (latency, deliveries) = received.take();
        assert_eq!((latency.len(), deliveries), (3, 4));
        assert_eq!(latency.max(), latency.highest_equivalent(1_000));
        assert_eq!((received.latency_us.len(), received.deliveries), (0, 0));
        received.record(1, 4, 1_500, 2_000, 0);
        assert_eq!(received.deliveries, 1);
    }

    #[test]
    fn a_receiver_finds_the_stamps_of_others_in_real_updates_but_not_its_own() {
        let clock = BenchClock::start();
        let alice = Doc::new();
        let bob = Doc::new();
        let (alice_id, bob_id) = (alice.client_id().get(), bob.client_id().get());
        let alice_sink = StampSink::new(clock, alice_id);
        let bob_sink = StampSink::new(clock, bob_id);

        for n in 1..=3 {
            let update = {
                let mut txn = alice.transact_mut();
                stamp(&mut txn, alice_id, n, clock);
                txn.encode_update_v1()
            };
            alice_sink.record(&update);
            bob_sink.record(&update);
            bob.transact_mut().apply_update(Update::decode_v1(&update).unwrap()).unwrap();
        }
        assert_eq!(lock(&alice_sink.received).deliveries, 0);
        {
            let received = lock(&bob_sink.received);
            assert_eq!((received.deliveries, received.latency_us.len()), (3, 3));
        }
        // The live map holds one entry per writer, not one per edit.
        let txn = bob.transact();
        assert_eq!(txn.get_map(BENCH).unwrap().len(&txn), 1);
        // A full-state update (what a resync sends) repeats the newest stamp: nothing new.
        let state = txn.encode_state_as_update_v1(&yrs::StateVector::default());
        let repeat = StampSink { own: bob_id, ..bob_sink.clone() };
        repeat.record(&state);
        assert_eq!(lock(&bob_sink.received).deliveries, 3);
    }
}
