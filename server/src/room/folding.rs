//! Folding the room's live document into a snapshot (see `schedule.rs` for when).
//!
//! Compaction used to read the room's log back from the store and rebuild the document it
//! describes, about 5 ms of CPU for a 500-row log, although the room already holds that
//! document. It may fold its own document instead when the document holds exactly the stored
//! log up to a known sequence, which this file decides, so the snapshot still never contains a
//! change that was not stored.

use yrs::updates::encoder::Encode;
use yrs::{ReadTxn, StateVector, Transact};

use super::core::RoomCore;
use super::effects::Compaction;
use super::schedule::LiveDocument;

/// Documents up to this size are folded on the room's task (encoding one takes well under a
/// millisecond); bigger ones are compacted from the store, off the room's task, so that no
/// room pauses for its own compaction.
const MAX_FOLDED_BYTES: usize = 256 * 1024;

impl RoomCore {
    /// Whether the live document holds exactly what the store holds up to
    /// `replication.seen()`:
    /// - nothing unstored: no change queued or being written (the journal is quiet);
    /// - nothing missing: every sequence up to `seen` is in it, none ahead of a gap (sequences
    ///   are handed out per room, so another writer's rows show up as a gap in ours);
    /// - nothing held back: yrs keeps updates with missing dependencies apart, and a stored row
    ///   whose content is held back would be lost from the snapshot;
    /// - not being replaced (a reload) nor asleep.
    pub(super) fn live_document(&self) -> LiveDocument {
        if self.reload
            || self.size.estimate() > MAX_FOLDED_BYTES
            || dojo_sync_protocol::update::has_pending_updates(&self.doc)
        {
            LiveDocument::Unsuitable
        } else if !self.journal.is_quiet()
            || self.is_hibernating()
            || self.catching_up
            || self.replication.has_gap()
        {
            LiveDocument::Busy
        } else {
            LiveDocument::Ready
        }
    }

    /// The live document as a snapshot covering the log up to what the room has seen, when
    /// [`Self::live_document`] says `Ready`; compaction from the store when the encoding shows
    /// gaps in a client's clocks.
    ///
    /// yrs integrates a block past a gap in its author's clocks (Yjs would hold it back) and
    /// marks the gap as a skip. Content that later fills the gap is integrated without moving
    /// the state vector, so the transaction's own update, which is what the room stores, does not
    /// carry it: the document then holds content the log does not (the randomized test found
    /// this, seed 6, after a failed write made a client's edit arrive before what it built on).
    /// Folding would store that content without it ever being broadcast; compacting from the
    /// store keeps the snapshot equal to the log, as before folding existed. A gap filled
    /// completely leaves no skip to see; such content was already served to joining clients
    /// from the document (a sync step 2) without being stored, which is the skip problem itself,
    /// not folding's, and wants fixing where updates are applied.
    pub(super) fn fold(&mut self) -> Compaction {
        let txn = self.doc.transact();
        // `encode_diff_v1` rather than `encode_state_as_update_v1`: the latter merges in
        // updates held back for missing dependencies (none here) with an `unwrap`.
        let data = txn.encode_diff_v1(&StateVector::default());
        let state_vector = txn.state_vector().encode_v1();
        drop(txn);
        if dojo_sync_protocol::update::holds_skips(&data) {
            return Compaction::FromStore;
        }
        self.size.measured(data.len());
        Compaction::Snapshot { data, state_vector, covers_seq: self.replication.seen() }
    }
}
