//! Property: whatever tree of shared types a client builds, in whatever transactions, the real
//! apply path accepts exactly the updates that keep every type within `MAX_TYPE_DEPTH`, refuses
//! the others with `TooDeep` before integrating anything, never panics or overflows the stack,
//! and leaves a document whose JSON conversion and deletion (yrs' recursive walks) are safe.

use dojo_sync_protocol::update::{ApplyError, MAX_TYPE_DEPTH, NestingError};
use dojo_sync_protocol::yrs::types::ToJson;
use dojo_sync_protocol::yrs::{Array, ArrayPrelim, ArrayRef, Doc, Map, MapPrelim, MapRef, ReadTxn, Transact};
use dojo_sync_protocol::{apply_client_update, yrs};
use proptest::prelude::*;

#[derive(Clone)]
enum Container {
    Map(MapRef),
    Array(ArrayRef),
}

/// One step: nest a map or an array in one of the most recently made types (biased towards the
/// deepest, so chains past the limit are common), and whether a new transaction starts after it.
#[derive(Debug, Clone)]
struct Step {
    parent_back: usize,
    map: bool,
    commit_after: bool,
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    prop::collection::vec(
        (0usize..3, any::<bool>(), prop::bool::weighted(0.2))
            .prop_map(|(parent_back, map, commit_after)| Step { parent_back, map, commit_after }),
        1..120,
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn nesting_is_refused_exactly_past_the_limit(steps in steps(), merge_all in any::<bool>()) {
        let source = Doc::with_client_id(7);
        let root = source.get_or_insert_map("nodes");
        let mut made: Vec<(Container, usize)> = vec![(Container::Map(root.clone()), 0)];
        // (update, deepest level it creates)
        let mut transactions: Vec<(Vec<u8>, usize)> = Vec::new();
        let mut txn = source.transact_mut();
        let mut deepest = 0;
        for (i, step) in steps.iter().enumerate() {
            let at = made.len() - 1 - step.parent_back.min(made.len() - 1);
            let (parent, level) = made[at].clone();
            let child = match (parent, step.map) {
                (Container::Map(map), true) => Container::Map(map.insert(&mut txn, format!("k{i}"), MapPrelim::default())),
                (Container::Map(map), false) => Container::Array(map.insert(&mut txn, format!("k{i}"), ArrayPrelim::default())),
                (Container::Array(array), true) => Container::Map(array.push_back(&mut txn, MapPrelim::default())),
                (Container::Array(array), false) => Container::Array(array.push_back(&mut txn, ArrayPrelim::default())),
            };
            made.push((child, level + 1));
            deepest = deepest.max(level + 1);
            if step.commit_after || i + 1 == steps.len() {
                transactions.push((txn.encode_update_v1(), deepest));
                drop(txn);
                txn = source.transact_mut();
                deepest = 0;
            }
        }
        drop(txn);
        if merge_all {
            let updates: Vec<&[u8]> = transactions.iter().map(|(u, _)| u.as_slice()).collect();
            let merged = yrs::merge_updates_v1(updates).expect("merges");
            let deepest = transactions.iter().map(|(_, d)| *d).max().unwrap_or(0);
            transactions = vec![(merged, deepest)];
        }

        let server = Doc::new();
        for (update, deepest) in &transactions {
            let before = server.transact().state_vector();
            match apply_client_update(&server, update) {
                Ok(_) => prop_assert!(*deepest <= MAX_TYPE_DEPTH, "accepted a type at level {}", deepest),
                Err(error) => {
                    prop_assert!(*deepest > MAX_TYPE_DEPTH, "refused level {}: {}", deepest, error);
                    prop_assert_eq!(error, ApplyError::Nesting(NestingError::TooDeep { limit: MAX_TYPE_DEPTH }));
                    prop_assert_eq!(server.transact().state_vector(), before, "nothing integrated");
                    // Later updates of this client depend on the refused one: stop here.
                    break;
                }
            }
        }
        // yrs' recursive walks are safe on what was accepted: JSON, and deleting it all.
        let nodes = server.get_or_insert_map("nodes");
        let json = nodes.to_json(&server.transact());
        prop_assert!(!json.to_string().is_empty());
        let mut txn = server.transact_mut();
        nodes.clear(&mut txn);
        drop(txn);
        prop_assert_eq!(nodes.len(&server.transact()), 0);
    }
}
