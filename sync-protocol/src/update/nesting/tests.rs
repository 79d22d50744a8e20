use yrs::updates::decoder::Decode;
use yrs::{Array, ArrayPrelim, Doc, Map, MapPrelim, MapRef, Transact, Update, WriteTxn};

use super::*;
use crate::update::{ApplyError, apply_client_update};

const TOO_DEEP: ApplyError = ApplyError::Nesting(NestingError::TooDeep { limit: MAX_TYPE_DEPTH });

/// Nests `levels` maps under `map`, each at key "k", in one transaction; returns the update
/// and the innermost map.
fn nest_maps(doc: &Doc, map: &MapRef, levels: usize) -> (Vec<u8>, MapRef) {
    let mut txn = doc.transact_mut();
    let mut inner = map.clone();
    for _ in 0..levels {
        inner = inner.insert(&mut txn, "k", MapPrelim::default());
    }
    (txn.encode_update_v1(), inner)
}

#[test]
fn a_chain_of_maps_in_one_update_is_refused_past_the_limit() {
    for (levels, accepted) in [(MAX_TYPE_DEPTH, true), (MAX_TYPE_DEPTH + 1, false), (5_000, false)] {
        let source = Doc::new();
        let root = source.get_or_insert_map("nodes");
        let (update, _) = nest_maps(&source, &root, levels);
        let server = Doc::new();
        let result = apply_client_update(&server, &update);
        if accepted {
            assert!(result.expect("at the limit").is_some(), "{levels} levels");
        } else {
            assert_eq!(result, Err(TOO_DEEP), "{levels} levels");
            assert_eq!(server.transact().state_vector(), Default::default(), "nothing integrated");
        }
    }
}

#[test]
fn a_chain_continued_from_the_document_counts_the_levels_already_there() {
    let source = Doc::new();
    let root = source.get_or_insert_map("nodes");
    let server = Doc::new();
    let (first, inner) = nest_maps(&source, &root, MAX_TYPE_DEPTH - 2);
    apply_client_update(&server, &first).expect("applies");
    let (second, inner) = nest_maps(&source, &inner, 2);
    apply_client_update(&server, &second).expect("reaches the limit exactly");
    let (third, _) = nest_maps(&source, &inner, 1);
    assert_eq!(apply_client_update(&server, &third), Err(TOO_DEEP));
    // The document still takes shallow edits (from another client: the refused update's
    // author would now send updates that depend on it, which wait for it).
    let other = Doc::new();
    let (shallow, _) = nest_maps(&other, &other.get_or_insert_map("edges"), 3);
    assert!(apply_client_update(&server, &shallow).expect("applies").is_some());
}

#[test]
fn a_type_placed_by_its_neighbours_gets_their_parent_level() {
    // Arrays: a new element names only its left neighbour, whose parent is the array.
    let source = Doc::new();
    let root = source.get_or_insert_map("nodes");
    let server = Doc::new();
    let (first, inner) = nest_maps(&source, &root, MAX_TYPE_DEPTH - 1);
    let array = {
        let mut txn = source.transact_mut();
        let array = inner.insert(&mut txn, "list", ArrayPrelim::default());
        array.push_back(&mut txn, 1);
        array
    };
    let with_array = source.transact().encode_state_as_update_v1(&Default::default());
    apply_client_update(&server, &first).expect("applies");
    apply_client_update(&server, &with_array).expect("the array is at the limit");
    let (scalar, nested) = {
        let mut txn = source.transact_mut();
        let before = txn.state_vector();
        array.push_back(&mut txn, 2);
        let scalar = txn.encode_diff_v1(&before);
        let before = txn.state_vector();
        array.push_back(&mut txn, ArrayPrelim::default());
        (scalar, txn.encode_diff_v1(&before))
    };
    assert!(apply_client_update(&server, &scalar).expect("a value next to the others").is_some());
    let decoded = Update::decode_v1(&nested).expect("decodes");
    assert!(!decoded.is_empty());
    assert_eq!(apply_client_update(&server, &nested), Err(TOO_DEEP));
    // Replacing a map entry: the new value names the old one as its origin.
    let (overwrite, _) = nest_maps(&source, &root, 1);
    assert!(apply_client_update(&server, &overwrite).expect("a shallow overwrite").is_some());
}

#[test]
fn a_type_whose_parent_has_not_arrived_is_refused_but_plain_content_waits() {
    let source = Doc::new();
    let root = source.get_or_insert_map("nodes");
    let (parent, inner) = nest_maps(&source, &root, 1);
    let (child, inner) = nest_maps(&source, &inner, 1);
    let server = Doc::new();
    assert_eq!(apply_client_update(&server, &child), Err(ApplyError::Nesting(NestingError::UnknownParent)));
    let value = {
        let mut txn = source.transact_mut();
        inner.insert(&mut txn, "v", 1);
        txn.encode_update_v1()
    };
    let fresh = Doc::new();
    apply_client_update(&fresh, &parent).expect("applies");
    assert_eq!(apply_client_update(&fresh, &value), Ok(None), "held back, not refused");
    apply_client_update(&fresh, &child).expect("its parent is there now");
}

#[test]
fn stored_parts_with_an_unknown_parent_count_from_the_root() {
    let source = Doc::new();
    let root = source.get_or_insert_map("nodes");
    let (_, inner) = nest_maps(&source, &root, 1);
    let (shallow, inner) = nest_maps(&source, &inner, 2);
    let (deep, _) = nest_maps(&source, &inner, MAX_TYPE_DEPTH + 1);
    let doc = Doc::new();
    let txn = doc.transact_mut();
    assert_eq!(crate::update::check_stored_update(&txn, &shallow), Ok(()));
    assert_eq!(crate::update::check_stored_update(&txn, &deep), Err(TOO_DEEP));
}

#[test]
fn nested_arrays_in_arrays_are_counted_too() {
    let source = Doc::new();
    let mut txn = source.transact_mut();
    let mut array = txn.get_or_insert_array("a");
    for _ in 0..=MAX_TYPE_DEPTH {
        array.push_back(&mut txn, 0);
        array = array.push_back(&mut txn, ArrayPrelim::default());
    }
    let update = txn.encode_update_v1();
    drop(txn);
    assert_eq!(apply_client_update(&Doc::new(), &update), Err(TOO_DEEP));
}
