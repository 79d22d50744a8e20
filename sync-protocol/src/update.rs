//! Applying client updates to a document, guarded.
//!
//! yrs validates much of an update while decoding it, but it is still known to panic while
//! integrating some malformed or unusual updates (y-crdt issues #391, #404, #415). A panic on
//! a server thread would take down every room on it, so decode and integration both run under
//! `catch_unwind`, and the caller closes the offending connection on any error.
//!
//! Some failures are out of `catch_unwind`'s reach: a reservation of hundreds of megabytes for a
//! count the sender made up, and a stack overflow (which aborts the process) on values nested
//! thousands deep. A walk over the bytes ([`scan`]) refuses those shapes before yrs sees them.

use std::panic::{AssertUnwindSafe, catch_unwind};

use yrs::updates::decoder::Decode;
use yrs::updates::encoder::Encode;
use yrs::{Doc, ReadTxn, Transact, Update};

mod nesting;
mod scan;
mod write_rules;

pub use nesting::{MAX_DELETION_PROBES, MAX_DOCUMENT_LOOKUPS, MAX_TYPE_DEPTH, NestingError};
/// Deepest nesting of plain values accepted (the schema fixture states it).
#[cfg(test)]
pub(crate) use scan::MAX_ANY_DEPTH;
pub use write_rules::WriteRules;

/// An empty v1 update: no structs, no deletions. Applying something we already have yields it.
const EMPTY_UPDATE_V1: [u8; 2] = [0, 0];

/// Why a client update was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ApplyError {
    #[error("not a valid Yjs update: {0}")]
    Malformed(String),
    /// A count inside the update (of clients, blocks, values, map entries…) declares more
    /// elements than the rest of the update could hold. Refused before yrs reserves room for them.
    #[error("not a valid Yjs update: declares {declared} {what} with {remaining} bytes left")]
    CountExceedsInput { what: &'static str, declared: u64, remaining: usize },
    /// JSON-like values nested deeper than yrs' recursive decoder can be trusted with.
    #[error("refused: values nested more than {limit} levels deep")]
    TooDeep { limit: usize },
    /// Shared types nested too deep, or placed where their depth cannot be known: refused
    /// before yrs integrates them, since its JSON conversion and deletes recurse per level.
    #[error(transparent)]
    Nesting(#[from] NestingError),
    /// The caller's size check (see [`apply_client_update_within`]) refused the growth.
    #[error("refused: the document would grow past its size limit")]
    DocumentTooLarge,
    #[error("the update could not be integrated: {0}")]
    Rejected(String),
    #[error("yrs panicked while applying the update")]
    Panicked,
}

/// Applies a v1 update received from a client and returns what it changed in `doc`, encoded as
/// a v1 update ready to broadcast, or `None` when it changed nothing (already known content).
///
/// The returned bytes describe only what was integrated: parts still waiting for missing
/// dependencies are held back by yrs and broadcast once they can be integrated.
pub fn apply_client_update(doc: &Doc, update: &[u8]) -> Result<Option<Vec<u8>>, ApplyError> {
    apply_client_update_within(doc, update, WriteRules::ANYTHING, |_| true)
}

/// [`apply_client_update`] under the writer's `rules` (which roots it may not change), and with
/// a say for the caller on how much the document may grow: once the update passed every other
/// check, and before anything of it is integrated, `admit` is asked, and the update is refused
/// ([`ApplyError::DocumentTooLarge`]) when it says no.
pub fn apply_client_update_within(
    doc: &Doc,
    update: &[u8],
    rules: WriteRules<'_>,
    admit: impl FnOnce(&Admission<'_, '_>) -> bool,
) -> Result<Option<Vec<u8>>, ApplyError> {
    let placements = check_shape(update)?;
    let decoded = catch_unwind(|| decode_re_encodable(update)).map_err(|_| ApplyError::Panicked)??;
    let applied = catch_unwind(AssertUnwindSafe(|| {
        let mut txn = doc.transact_mut();
        // Deletions matter only where some root is protected, and only those the document has
        // not made yet (a client's sync step 2 repeats the whole delete set).
        let deletions = (!rules.protected_roots.is_empty() && !decoded.delete_set().is_empty())
            .then(|| decoded.delete_set().diff(&txn.snapshot().delete_set));
        nesting::check(&txn, &placements, deletions.as_ref(), nesting::Source::Client, rules)?;
        if !admit(&Admission { txn: &txn, update_len: update.len(), placements: &placements }) {
            return Err(ApplyError::DocumentTooLarge);
        }
        txn.apply_update(decoded)
            .map(|()| txn.encode_update_v1())
            .map_err(|e| ApplyError::Rejected(e.to_string()))
    }));
    match applied {
        Ok(Ok(changes)) if changes == EMPTY_UPDATE_V1 => Ok(None),
        Ok(Ok(changes)) => Ok(Some(changes)),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(ApplyError::Panicked),
    }
}

/// What [`apply_client_update_within`] tells its caller about an update it is about to apply,
/// cheapest first.
pub struct Admission<'a, 'doc> {
    txn: &'a yrs::TransactionMut<'doc>,
    update_len: usize,
    placements: &'a [scan::ItemPlacement],
}

/// Bytes one integrated block may add to a document's encoding beyond its own: inserting into
/// the middle of existing items splits up to two of them, and each new part needs a header of
/// its own (info byte, origin and right origin ids, length: at most about 32 bytes).
pub const SPLIT_SLACK: usize = 64;

/// The most that integrating `changes` (a v1 update as [`apply_client_update`] returns it)
/// added to the document's encoding: its length plus [`SPLIT_SLACK`] per block. Cheap: a walk
/// over the bytes, no allocation beyond one entry per block.
pub fn growth_bound(changes: &[u8]) -> usize {
    let blocks = scan::scan_placements_v1(changes).map_or(0, |placements| placements.len());
    changes.len().saturating_add(blocks.saturating_mul(SPLIT_SLACK))
}

impl Admission<'_, '_> {
    /// The most the update can add to the document's encoding: its length, plus
    /// [`SPLIT_SLACK`] per block for the items it may split.
    pub fn update_len(&self) -> usize {
        self.update_len.saturating_add(self.placements.len().saturating_mul(SPLIT_SLACK))
    }

    /// Bytes of the update less the blocks the document already has (plus [`SPLIT_SLACK`] per
    /// new block), or `None` when it adds no block at all (deletions only, or content already
    /// known). Still an upper bound of the growth; costs a look at the document's clocks.
    pub fn new_bytes(&self) -> Option<usize> {
        let state = self.txn.state_vector();
        let mut new_blocks = 0_usize;
        let mut known = 0;
        for block in self.placements {
            if block.id.clock.saturating_add(block.len) <= state.get(&block.id.client) {
                known += block.bytes;
            } else {
                new_blocks += 1;
            }
        }
        (new_blocks > 0).then(|| {
            self.update_len.saturating_sub(known).saturating_add(new_blocks.saturating_mul(SPLIT_SLACK))
        })
    }

    /// The document's size now, exactly: its length encoded as one v1 update, which is what a
    /// joining client receives. A pass over the whole document.
    pub fn document_bytes(&self) -> usize {
        self.txn.encode_state_as_update_v1(&yrs::StateVector::default()).len()
    }
}

/// Checks a stored part of a document (a snapshot or a log row) before it is applied to the
/// document `txn` is building: the same shape walk and nesting limit as for client updates,
/// so that a document stored before those limits existed, or written around them, is refused
/// (the caller quarantines the room) instead of overflowing the stack once it is read.
/// Parts must be checked and applied in their stored order.
pub fn check_stored_update<T: ReadTxn>(txn: &T, update: &[u8]) -> Result<(), ApplyError> {
    let placements = check_shape(update)?;
    catch_unwind(AssertUnwindSafe(|| {
        nesting::check(txn, &placements, None, nesting::Source::Stored, WriteRules::ANYTHING)
    }))
    .map_err(|_| ApplyError::Panicked)?
    .map_err(ApplyError::from)
}

/// Decodes an update, then checks that yrs can encode it and read back the same update.
///
/// Parts of an update whose dependencies are missing are kept as a pending update, and yrs
/// re-encodes and re-decodes that on every `encode_state_as_update_v1`, unwrapping the result.
/// yrs 0.28 misreads legacy JSON content (it reads one string more than the count says), so an
/// update carrying it re-encodes into bytes that decode differently or not at all. 13- and
/// 15-byte examples, found by the `apply_update` fuzz target, were accepted as pending, after which
/// every encoding of the document (each sync step 2 sent to a joining client) panicked, for good.
///
/// The comparison is of shape, not content: the same blocks (ids and the clock ranges they cover)
/// and the same deletions. That is what a misread shifts, and content cannot be compared anyway:
/// yrs compares nested types by address, and a NaN is not equal to itself.
fn decode_re_encodable(update: &[u8]) -> Result<Update, ApplyError> {
    let decoded = Update::decode_v1(update).map_err(|e| ApplyError::Malformed(e.to_string()))?;
    let again = Update::decode_v1(&decoded.encode_v1())
        .map_err(|e| ApplyError::Malformed(format!("does not survive re-encoding: {e}")))?;
    // `Update`'s own `==` compares block ids in order and the delete sets.
    if again != decoded || again.insertions(true) != decoded.insertions(true) {
        return Err(ApplyError::Malformed("changes when re-encoded".into()));
    }
    Ok(decoded)
}

/// Walks the update before yrs decodes it (see [`scan`]): refuses counts the bytes cannot hold
/// and `Any` values nested too deep, the shapes for which yrs would reserve memory or stack out of
/// all proportion to the update's size, before failing on it or not.
fn check_shape(update: &[u8]) -> Result<Vec<scan::ItemPlacement>, ApplyError> {
    match scan::scan_placements_v1(update) {
        Ok(placements) => Ok(placements),
        Err(scan::ScanError::Malformed(message)) => Err(ApplyError::Malformed(message)),
        Err(scan::ScanError::CountExceedsInput { what, declared, remaining }) => {
            Err(ApplyError::CountExceedsInput { what, declared, remaining })
        }
        Err(scan::ScanError::TooDeep) => Err(ApplyError::TooDeep { limit: scan::MAX_ANY_DEPTH }),
    }
}

/// True when applying `update` would change `doc`: it carries structs beyond the document's
/// state or deletions the document has not seen. Servers use it to answer a read-only client
/// only when it actually tried to edit: a stock client's routine sync step 2 repeats what the
/// server already has (Yjs always sends its whole delete set). Undecodable input counts as a
/// change attempt. Does not modify `doc`.
pub fn would_change(doc: &Doc, update: &[u8]) -> bool {
    if update == EMPTY_UPDATE_V1 {
        return false;
    }
    if check_shape(update).is_err() {
        return true;
    }
    catch_unwind(AssertUnwindSafe(|| {
        let Ok(update) = Update::decode_v1(update) else { return true };
        let txn = doc.transact();
        if update.extends(&txn.state_vector()) {
            return true;
        }
        !update.delete_set().diff(&txn.snapshot().delete_set).is_empty()
    }))
    .unwrap_or(true)
}

/// True when `update` leaves out clocks of a client below later ones it carries (skip blocks), or
/// cannot be read. A document encodes skips when yrs integrated a block past a gap in its
/// author's clocks (where Yjs would hold the block back): content later filling such a gap is
/// integrated without moving the state vector, so a transaction's own update does not carry it.
pub fn holds_skips(update: &[u8]) -> bool {
    scan::count_skips_v1(update).map_or(true, |skips| skips > 0)
}

/// True when `doc` holds updates whose dependencies never arrived.
pub fn has_pending_updates(doc: &Doc) -> bool {
    doc.transact().has_missing_updates()
}

/// Bytes of the updates `doc` holds back because their dependencies never arrived (0 when there
/// are none, which is cheap to find out). yrs keeps these for the life of the document, so a
/// server must bound them: an honest client only causes them briefly.
pub fn pending_bytes(doc: &Doc) -> usize {
    let txn = doc.transact();
    if !txn.has_missing_updates() {
        return 0;
    }
    let store = txn.store();
    let blocks = store.pending_update().map_or(0, |pending| pending.update.encode_v1().len());
    let deletions = store.pending_ds().map_or(0, |ds| ds.encode_v1().len());
    blocks + deletions
}

#[cfg(test)]
mod tests {
    use super::*;
    use yrs::{GetString, Text, Transact};

    fn update_inserting(text: &str) -> Vec<u8> {
        let doc = Doc::new();
        let t = doc.get_or_insert_text("t");
        let mut txn = doc.transact_mut();
        t.insert(&mut txn, 0, text);
        txn.encode_update_v1()
    }

    #[test]
    fn would_change_sees_new_content_and_new_deletions_only() {
        let server = Doc::new();
        let client = Doc::new();
        let text = client.get_or_insert_text("t");
        text.insert(&mut client.transact_mut(), 0, "hello");
        let insert = client.transact().encode_state_as_update_v1(&yrs::StateVector::default());
        assert!(would_change(&server, &insert));
        apply_client_update(&server, &insert).expect("apply");
        // What a client sends back in its sync step 2 when it has nothing new.
        let routine = client.transact().encode_state_as_update_v1(&server.transact().state_vector());
        assert!(!would_change(&server, &routine));
        text.remove_range(&mut client.transact_mut(), 0, 2);
        let routine_after_delete =
            client.transact().encode_state_as_update_v1(&server.transact().state_vector());
        assert!(would_change(&server, &routine_after_delete), "a new deletion is a change");
        apply_client_update(&server, &routine_after_delete).expect("apply");
        let routine_again = client.transact().encode_state_as_update_v1(&server.transact().state_vector());
        assert_ne!(routine_again, EMPTY_UPDATE_V1, "Yjs resends its whole delete set");
        assert!(!would_change(&server, &routine_again));
        assert!(!would_change(&server, &EMPTY_UPDATE_V1));
        assert!(would_change(&server, b"\xff\xff garbage"));
        assert_eq!(server.get_or_insert_text("t").get_string(&server.transact()), "llo");
    }

    #[test]
    fn applying_returns_what_changed_and_nothing_twice() {
        let doc = Doc::new();
        let update = update_inserting("hello");
        let changed = apply_client_update(&doc, &update).expect("applies");
        assert!(changed.is_some());
        assert_eq!(doc.get_or_insert_text("t").get_string(&doc.transact()), "hello");
        assert_eq!(apply_client_update(&doc, &update), Ok(None));
    }

    #[test]
    fn garbage_is_refused_without_panicking() {
        let doc = Doc::new();
        assert!(matches!(apply_client_update(&doc, &[0xff, 0xff, 0xff]), Err(ApplyError::Malformed(_))));
        assert!(matches!(
            apply_client_update(&doc, b"definitely not yjs"),
            Err(ApplyError::Malformed(_) | ApplyError::CountExceedsInput { .. } | ApplyError::Rejected(_))
        ));
        // The document still works afterwards.
        assert!(apply_client_update(&doc, &update_inserting("ok")).expect("applies").is_some());
    }

    /// Header of a one-block update from client 1 at clock 0: an item with no origins, in the
    /// root type named "a", whose content has tag `content` (its bytes follow).
    fn one_item(content: u8) -> Vec<u8> {
        vec![1, 1, 1, 0, content, 1, 1, b'a']
    }

    /// An `Any` content of one value nesting `depth` arrays, innermost holding `null`.
    fn nested_arrays(depth: usize) -> Vec<u8> {
        let mut update = one_item(8);
        update.push(1);
        for _ in 0..depth {
            update.extend([117, 1]);
        }
        update.extend([126, 0]);
        update
    }

    fn assert_count_refused(update: &[u8], expected_what: &str, expected_declared: u64) {
        let doc = Doc::new();
        match apply_client_update(&doc, update) {
            Err(ApplyError::CountExceedsInput { what, declared, remaining }) => {
                assert_eq!((what, declared), (expected_what, expected_declared), "{update:?}");
                assert!(remaining < update.len());
            }
            other => panic!("{update:?}: expected CountExceedsInput, got {other:?}"),
        }
        // Refused before anything reached the document.
        assert_eq!(doc.transact().state_vector(), yrs::StateVector::default());
        assert!(!has_pending_updates(&doc));
        assert!(would_change(&doc, update), "undecodable input counts as an attempt to change");
    }

    #[test]
    fn a_client_count_the_update_cannot_hold_is_refused_before_yrs_reserves_for_it() {
        // 2^28 and 2^32-1 clients in 5 bytes: yrs reserves a hash map for them first.
        assert_count_refused(&[0x80, 0x80, 0x80, 0x80, 0x01], "clients", 1 << 28);
        assert_count_refused(&[0xff, 0xff, 0xff, 0xff, 0x0f], "clients", u64::from(u32::MAX));
    }

    #[test]
    fn nested_counts_the_update_cannot_hold_are_refused_before_yrs_reserves_for_them() {
        // 2^22 as a varint.
        const HUGE: [u8; 4] = [0x80, 0x80, 0x80, 0x02];
        // The shape from the fuzz README: the key count of a JSON object inside an `Any`
        // content. For these 14 bytes yrs reserved a map of 2^22 entries, hundreds of MiB.
        assert_count_refused(&[one_item(8), vec![1, 118], HUGE.to_vec()].concat(), "map entries", 1 << 22);
        assert_count_refused(&[one_item(8), vec![1, 117], HUGE.to_vec()].concat(), "array items", 1 << 22);
        // The same one level deeper, inside an array that is itself fine.
        assert_count_refused(
            &[one_item(8), vec![1, 117, 2, 118], HUGE.to_vec(), vec![126]].concat(),
            "map entries",
            1 << 22,
        );
        // Map and array counts are u64 varints in yrs, not u32.
        assert_count_refused(
            &[one_item(8), vec![1, 118, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]].concat(),
            "map entries",
            u64::MAX >> 1,
        );
        // The value count of the `Any` content itself.
        assert_count_refused(&[one_item(8), HUGE.to_vec()].concat(), "values", 1 << 22);
        // The options of a subdocument are an `Any` too.
        assert_count_refused(
            &[one_item(9), vec![1, b'g', 118], HUGE.to_vec()].concat(),
            "map entries",
            1 << 22,
        );
        // Legacy JSON content: yrs reserves for the count (and reads one string more).
        assert_count_refused(&[one_item(2), HUGE.to_vec()].concat(), "JSON strings", (1 << 22) + 1);
        // Blocks of one client: yrs reserves a deque for them.
        assert_count_refused(&[vec![1], HUGE.to_vec(), vec![1, 0, 0]].concat(), "blocks", 1 << 22);
        // Delete set: clients, and ranges of one client.
        assert_count_refused(&[vec![0], HUGE.to_vec()].concat(), "deleting clients", 1 << 22);
        assert_count_refused(&[vec![0, 1, 5], HUGE.to_vec()].concat(), "deleted ranges", 1 << 22);
    }

    #[test]
    fn counts_that_fit_one_by_one_but_not_together_are_refused() {
        // An array of 3 items whose first item is an array of 3 items: each count alone fits the
        // 6 bytes left after it, but 2 pending outer items plus 3 inner ones need 5 bytes after
        // the inner count and only 4 are left. Nesting such counts is how a sender would make each
        // level reserve as much as the whole update again.
        let update = [one_item(8), vec![1, 117, 3, 117, 3, 126, 126, 126, 126]].concat();
        assert_count_refused(&update, "array items", 3);
        // With the missing outer items present it is an ordinary update.
        let fine = [one_item(8), vec![1, 117, 3, 117, 3, 126, 126, 126, 126, 126, 0]].concat();
        assert!(apply_client_update(&Doc::new(), &fine).expect("applies").is_some());
    }

    #[test]
    fn values_nested_deeper_than_the_limit_are_refused_instead_of_overflowing_the_stack() {
        // Without the limit, a few thousand levels (a few kilobytes of update) overflow the test
        // thread's stack inside yrs and abort the whole test binary.
        for depth in [scan::MAX_ANY_DEPTH, 5_000, 500_000] {
            let doc = Doc::new();
            let err = apply_client_update(&doc, &nested_arrays(depth)).unwrap_err();
            assert_eq!(err, ApplyError::TooDeep { limit: scan::MAX_ANY_DEPTH }, "depth {depth}");
            assert!(would_change(&doc, &nested_arrays(depth)));
        }
        // `nested_arrays(n)` holds n arrays inside the content's value, so n + 1 levels in all:
        // the deepest accepted nesting applies and reads back.
        let doc = Doc::new();
        let changed = apply_client_update(&doc, &nested_arrays(scan::MAX_ANY_DEPTH - 1)).expect("applies");
        assert!(changed.is_some());
        let state = doc.transact().encode_state_as_update_v1(&Default::default());
        assert!(apply_client_update(&Doc::new(), &state).expect("re-applies").is_some());
    }

    #[test]
    fn large_real_updates_with_many_clients_structs_and_deletions_still_apply() {
        use yrs::{Array, GetString, Map, types::ToJson};
        // 300 clients each typing, pushing and deleting in the same three shared types.
        let mut updates = Vec::new();
        for client in 1..=300_u64 {
            let peer = Doc::with_client_id(client);
            let (text, array, map) =
                (peer.get_or_insert_text("t"), peer.get_or_insert_array("a"), peer.get_or_insert_map("m"));
            let mut txn = peer.transact_mut();
            text.insert(&mut txn, 0, &format!("client {client}; "));
            for i in 0..20_i64 {
                array.insert(&mut txn, 0, i * client as i64);
            }
            array.remove_range(&mut txn, 3, 5);
            map.insert(&mut txn, format!("key{}", client % 7), client as i64);
            text.remove_range(&mut txn, 0, 2);
            updates.push(txn.encode_update_v1());
        }
        let merged = yrs::merge_updates_v1(&updates).expect("merges");
        let reference = Doc::new();
        for update in &updates {
            reference
                .transact_mut()
                .apply_update(Update::decode_v1(update).expect("decodes"))
                .expect("applies");
        }
        let doc = Doc::new();
        assert!(apply_client_update(&doc, &merged).expect("the merged update applies").is_some());
        // The same updates one by one, on another document, also apply.
        let one_by_one = Doc::new();
        for update in &updates {
            assert!(apply_client_update(&one_by_one, update).expect("applies").is_some());
        }
        let content = |doc: &Doc| {
            // Root refs first: `get_or_insert_*` takes a write transaction.
            let (text, array, map) =
                (doc.get_or_insert_text("t"), doc.get_or_insert_array("a"), doc.get_or_insert_map("m"));
            let txn = doc.transact();
            (txn.state_vector(), text.get_string(&txn), array.to_json(&txn), map.to_json(&txn))
        };
        let expected = content(&reference);
        assert_eq!(expected.2.to_string().matches(',').count() + 1, 300 * 15, "15 values left per client");
        assert_eq!(content(&doc), expected);
        assert_eq!(content(&one_by_one), expected);

        // A large update (4 MB of text in one insert), then a deletion through its middle.
        let source = Doc::with_client_id(1000);
        let text = source.get_or_insert_text("t");
        let big = {
            let mut txn = source.transact_mut();
            text.insert(&mut txn, 0, &"lorem ipsum ".repeat(350_000));
            txn.encode_update_v1()
        };
        let cut = {
            let mut txn = source.transact_mut();
            text.remove_range(&mut txn, 1_000, 2_000_000);
            txn.encode_update_v1()
        };
        assert!(big.len() > 4_000_000);
        let doc = Doc::new();
        assert!(apply_client_update(&doc, &big).expect("a 4 MB update applies").is_some());
        assert!(apply_client_update(&doc, &cut).expect("the deletion applies").is_some());
        assert_eq!(
            doc.get_or_insert_text("t").get_string(&doc.transact()),
            text.get_string(&source.transact())
        );
    }

    #[test]
    fn the_fuzz_finding_with_wrapping_clocks_is_refused() {
        // From the fuzz README: 22 bytes whose block clocks wrap a u32. yrs is built with
        // overflow checks (in tests, and in release through the root Cargo.toml), so the wrap
        // is a panic that the guard catches instead of a document that no longer encodes.
        // (`AQIAAAD//////////wEXAAAAAAAAPQ==` in base64.)
        let update = [
            0x01, 0x02, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0x17, 0x00,
            0x00, 0x00, 0x00, 0x00, 0x00, 0x3d,
        ];
        let doc = Doc::new();
        assert_eq!(apply_client_update(&doc, &update), Err(ApplyError::Panicked));
        let state = doc.transact().encode_state_as_update_v1(&Default::default());
        assert!(Update::decode_v1(&state).is_ok(), "the document still encodes");
        assert!(apply_client_update(&doc, &update_inserting("ok")).expect("applies").is_some());
    }

    #[test]
    fn an_update_that_does_not_survive_re_encoding_is_refused() {
        // Found by the `apply_update` fuzz target: it decodes, and used to be held as pending,
        // after which encoding the document panicked every time.
        let fails_to_decode = &[0x02, 0x01, 0x01, 0x20, 0x92, 0x00, 0x47, 0, 0, 0, 0, 0, 0, 0, 0][..];
        let decodes_differently = &[0x01, 0x01, 0xff, 0x30, 0x00, 0x92, 0x00, 0x04, 0, 0, 0x01, 0x7a, 0][..];
        let doc = Doc::new();
        for poison in [fails_to_decode, decodes_differently] {
            let err = apply_client_update(&doc, poison).unwrap_err();
            assert!(matches!(&err, ApplyError::Malformed(m) if m.contains("re-encod")), "{err}");
        }
        assert!(!has_pending_updates(&doc));
        let state = doc.transact().encode_state_as_update_v1(&Default::default());
        assert!(apply_client_update(&Doc::new(), &state).is_ok());
    }

    #[test]
    fn out_of_order_updates_wait_for_their_dependencies() {
        let source = Doc::new();
        let text = source.get_or_insert_text("t");
        let first = {
            let mut txn = source.transact_mut();
            text.insert(&mut txn, 0, "a");
            txn.encode_update_v1()
        };
        let second = {
            let mut txn = source.transact_mut();
            text.insert(&mut txn, 1, "b");
            txn.encode_update_v1()
        };
        let doc = Doc::new();
        assert_eq!(apply_client_update(&doc, &second), Ok(None));
        assert!(has_pending_updates(&doc));
        assert!(pending_bytes(&doc) > 0);
        let changed = apply_client_update(&doc, &first).expect("applies").expect("changes");
        assert!(!has_pending_updates(&doc));
        assert_eq!(pending_bytes(&doc), 0);
        // The broadcast carries both, so peers never see the gap either.
        let peer = Doc::new();
        peer.transact_mut().apply_update(Update::decode_v1(&changed).expect("valid")).expect("applies");
        assert_eq!(peer.get_or_insert_text("t").get_string(&peer.transact()), "ab");
    }
}
