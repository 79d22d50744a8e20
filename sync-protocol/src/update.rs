//! Applying client updates to a document, guarded.
//!
//! yrs validates much of an update while decoding it, but it is still known to panic while
//! integrating some malformed or unusual updates (y-crdt issues #391, #404, #415). A panic on
//! a server thread would take down every room on it, so decode and integration both run under
//! `catch_unwind`, and the caller closes the offending connection on any error.

use std::panic::{AssertUnwindSafe, catch_unwind};

use yrs::encoding::read::{Cursor, Read};
use yrs::updates::decoder::Decode;
use yrs::updates::encoder::Encode;
use yrs::{Doc, ReadTxn, Transact, Update};

/// An empty v1 update: no structs, no deletions. Applying something we already have yields it.
const EMPTY_UPDATE_V1: [u8; 2] = [0, 0];

/// Why a client update was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ApplyError {
    #[error("not a valid Yjs update: {0}")]
    Malformed(String),
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
    check_client_count(update)?;
    let decoded = catch_unwind(|| decode_re_encodable(update)).map_err(|_| ApplyError::Panicked)??;
    let applied = catch_unwind(AssertUnwindSafe(|| {
        let mut txn = doc.transact_mut();
        txn.apply_update(decoded).map(|()| txn.encode_update_v1())
    }));
    match applied {
        Ok(Ok(changes)) if changes == EMPTY_UPDATE_V1 => Ok(None),
        Ok(Ok(changes)) => Ok(Some(changes)),
        Ok(Err(e)) => Err(ApplyError::Rejected(e.to_string())),
        Err(_) => Err(ApplyError::Panicked),
    }
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

/// Refuses an update whose leading client count its bytes cannot hold.
///
/// yrs reserves a hash map for the declared number of clients before reading any, and the count
/// is the sender's to choose: 5 bytes declaring 2^28 clients made it allocate and clear about
/// 512 MiB, for half a second, before failing (`try_reserve` only stops reservations that fail,
/// not ones that are merely huge). Each client section takes at least 3 bytes (block count,
/// client id, clock). Counts nested deeper, such as the key count of an embedded JSON object, are
/// not checked here; they need the same bound inside yrs.
fn check_client_count(update: &[u8]) -> Result<(), ApplyError> {
    let mut cursor = Cursor::new(update);
    // Read as yrs reads it (a u32 varint), so that both see the same number.
    let declared: u32 = cursor.read_var().map_err(|e| ApplyError::Malformed(e.to_string()))?;
    let room = (update.len() - cursor.next) / 3;
    if declared as usize > room {
        return Err(ApplyError::Malformed(format!("declares {declared} clients in {} bytes", update.len())));
    }
    Ok(())
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
            Err(ApplyError::Malformed(_) | ApplyError::Rejected(_))
        ));
        // The document still works afterwards.
        assert!(apply_client_update(&doc, &update_inserting("ok")).expect("applies").is_some());
    }

    #[test]
    fn a_client_count_the_update_cannot_hold_is_refused_before_yrs_reserves_for_it() {
        let doc = Doc::new();
        for update in [&[0x80, 0x80, 0x80, 0x80, 0x01][..], &[0xff, 0xff, 0xff, 0xff, 0x0f]] {
            let err = apply_client_update(&doc, update).unwrap_err();
            // yrs itself would fail later: after a huge reservation, or on a failed one.
            assert!(matches!(&err, ApplyError::Malformed(m) if m.starts_with("declares")), "{err}");
        }
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
