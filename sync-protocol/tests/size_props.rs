//! Property: a size limit enforced through `apply_client_update_within` (as the server's
//! `DOJO_MAX_DOCUMENT_BYTES` is) holds for any mix of inserts, including ones that split
//! existing text and ones that resend known content: the document never encodes larger than
//! the limit plus what one refused-or-accepted update's bookkeeping can add, refused updates
//! change nothing, and updates that add nothing are never refused.

use dojo_sync_protocol::update::{ApplyError, WriteRules, apply_client_update_within, growth_bound};
use dojo_sync_protocol::yrs::{Doc, GetString, ReadTxn, StateVector, Text, Transact};
use proptest::prelude::*;

const LIMIT: usize = 4096;

fn encoded(doc: &Doc) -> usize {
    doc.transact().encode_state_as_update_v1(&StateVector::default()).len()
}

/// The server's rule (`server/src/document_size.rs`): an estimate that is exact at the start and
/// grows by `growth_bound` of each change, measured exactly only when it says no.
fn apply_limited(doc: &Doc, estimate: &mut usize, update: &[u8]) -> Result<Option<Vec<u8>>, ApplyError> {
    let result = apply_client_update_within(doc, update, WriteRules::ANYTHING, |incoming| {
        if *estimate + incoming.update_len() <= LIMIT {
            return true;
        }
        let Some(new) = incoming.new_bytes() else { return true };
        if *estimate + new <= LIMIT {
            return true;
        }
        *estimate = incoming.document_bytes();
        *estimate + new <= LIMIT
    });
    if let Ok(Some(changes)) = &result {
        *estimate += growth_bound(changes);
    }
    result
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn the_document_stays_within_the_limit(
        edits in prop::collection::vec((any::<prop::sample::Index>(), prop_oneof![Just(1usize), 1usize..400], any::<bool>()), 1..200),
    ) {
        let client = Doc::with_client_id(3);
        let text = client.get_or_insert_text("t");
        let server = Doc::new();
        let mut estimate = encoded(&server);
        for (at, len, resend) in edits {
            let update = {
                let mut txn = client.transact_mut();
                let here = at.index(text.len(&txn) as usize + 1) as u32;
                text.insert(&mut txn, here, &"x".repeat(len));
                txn.encode_update_v1()
            };
            let before = (encoded(&server), server.transact().state_vector());
            match apply_limited(&server, &mut estimate, &update) {
                Ok(_) => {
                    prop_assert!(encoded(&server) <= LIMIT, "{} > {}", encoded(&server), LIMIT);
                    prop_assert!(estimate >= encoded(&server), "the estimate errs on the safe side");
                }
                Err(error) => {
                    prop_assert_eq!(error, ApplyError::DocumentTooLarge);
                    prop_assert_eq!((encoded(&server), server.transact().state_vector()), before);
                    // The client's later edits depend on the refused one: stop.
                    break;
                }
            }
            if resend {
                // Everything again, as a reconnecting client's sync step 2 may: adds nothing.
                let state = client.transact().encode_state_as_update_v1(&StateVector::default());
                prop_assert!(apply_limited(&server, &mut estimate, &state).is_ok());
            }
        }
        let _ = server.get_or_insert_text("t").get_string(&server.transact());
    }
}
