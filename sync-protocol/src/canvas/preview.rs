//! A running node's live preview: `results[nodeId].preview`, a plain object `{text?, image?,
//! at}` replaced as a whole (see docs/document-schema.md). Written by the executor while the
//! node runs, removed when it ends; never part of the node's outputs.

use serde_json::Value;
use yrs::types::ToJson;
use yrs::{Map, ReadTxn, TransactionMut};

use super::write::to_any;
use super::{RESULTS, SchemaError};

/// The key of the preview in a node's `results` entry.
pub const PREVIEW: &str = "preview";

/// Sets the node's preview to `preview` (an object), if the node has a `results` entry and the
/// preview differs from the one there. Returns whether the node has an entry.
///
/// Never creates the entry: the node's `running` state writes it first, and a node removed
/// from the canvas while it runs (the editor deletes its result with it) must not get a
/// result back from a late preview.
pub fn write_node_preview(
    txn: &mut TransactionMut,
    node_id: &str,
    preview: &Value,
) -> Result<bool, SchemaError> {
    let value = to_any(preview)?;
    let Some(results) = txn.get_map(RESULTS) else { return Ok(false) };
    let Some(yrs::Out::YMap(entry)) = results.get(txn, node_id) else { return Ok(false) };
    let unchanged = entry.get(txn, PREVIEW).is_some_and(|old| old.to_json(txn) == value);
    if !unchanged {
        entry.insert(txn, PREVIEW, value);
    }
    Ok(true)
}

/// Removes the node's preview, if it has one (and changes nothing otherwise).
pub fn clear_node_preview(txn: &mut TransactionMut, node_id: &str) {
    let Some(results) = txn.get_map(RESULTS) else { return };
    let Some(yrs::Out::YMap(entry)) = results.get(txn, node_id) else { return };
    if entry.get(txn, PREVIEW).is_some() {
        entry.remove(txn, PREVIEW);
    }
}

/// The node's preview as JSON, if it has one.
pub fn read_node_preview<T: ReadTxn>(txn: &T, node_id: &str) -> Option<Value> {
    let results = txn.get_map(RESULTS)?;
    let yrs::Out::YMap(entry) = results.get(txn, node_id)? else { return None };
    let preview = entry.get(txn, PREVIEW)?;
    serde_json::to_value(preview.to_json(txn)).ok()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};

    use serde_json::json;
    use yrs::{Doc, Transact};

    use super::*;
    use crate::canvas::{NodeResult, NodeStatus, read_node_result, write_node_result};

    fn running() -> NodeResult {
        NodeResult {
            status: NodeStatus::Running,
            progress: 10.0,
            outputs: BTreeMap::new(),
            error: None,
            errors: Vec::new(),
            run_id: Some("r1".into()),
            updated_at: 1,
        }
    }

    #[test]
    fn a_preview_is_written_read_and_cleared_beside_the_result() {
        let doc = Doc::new();
        let preview = json!({"text": "step 3/20", "at": 5});
        assert!(!write_node_preview(&mut doc.transact_mut(), "n1", &preview).expect("written"));
        assert_eq!(read_node_preview(&doc.transact(), "n1"), None, "no entry: no preview");

        write_node_result(&mut doc.transact_mut(), "n1", &running()).expect("a result");
        assert!(write_node_preview(&mut doc.transact_mut(), "n1", &preview).expect("written"));
        assert_eq!(read_node_preview(&doc.transact(), "n1"), Some(preview));
        // The result still reads: the preview is a field beside it, not one of its own.
        let result = read_node_result(&doc.transact(), "n1").expect("reads").expect("present");
        assert_eq!(result.status, NodeStatus::Running);

        clear_node_preview(&mut doc.transact_mut(), "n1");
        assert_eq!(read_node_preview(&doc.transact(), "n1"), None);
        assert!(read_node_result(&doc.transact(), "n1").expect("reads").is_some());
    }

    #[test]
    fn writing_the_same_preview_again_or_clearing_none_changes_nothing() {
        let doc = Doc::new();
        write_node_result(&mut doc.transact_mut(), "n1", &running()).expect("a result");
        let preview = json!({"text": "a", "image": {"kind": "asset", "url": "/assets/x"}, "at": 1});
        write_node_preview(&mut doc.transact_mut(), "n1", &preview).expect("written");
        let updates = Arc::new(Mutex::new(0));
        let counter = updates.clone();
        doc.observe_update_v1("count", move |_, _| *counter.lock().expect("lock") += 1).expect("an observer");
        write_node_preview(&mut doc.transact_mut(), "n1", &preview).expect("written");
        clear_node_preview(&mut doc.transact_mut(), "n2");
        assert_eq!(*updates.lock().expect("lock"), 0, "no update for what did not change");
        clear_node_preview(&mut doc.transact_mut(), "n1");
        clear_node_preview(&mut doc.transact_mut(), "n1");
        assert_eq!(*updates.lock().expect("lock"), 1, "one update for the removal");
    }
}
