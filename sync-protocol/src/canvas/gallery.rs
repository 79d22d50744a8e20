//! A node's gallery: the outputs its batch runs produced, newest last, kept under
//! `results[nodeId].gallery` as a `Y.Array` of plain objects (see docs/document-schema.md).
//!
//! A `Y.Array` rather than a plain value because the members of a batch finish on several
//! workers at once, each writing from its own replica of the document: appends to one array
//! merge, where replacing a plain list would keep only one writer's entry.

use serde_json::Value;
use yrs::types::ToJson;
use yrs::{Array, ArrayPrelim, Map, MapPrelim, ReadTxn, TransactionMut, WriteTxn};

use super::write::to_any;
use super::{RESULTS, SchemaError};

/// The key of the gallery in a node's `results` entry.
pub const GALLERY: &str = "gallery";
/// Most entries a node's gallery keeps: older ones are removed as new ones arrive.
pub const MAX_GALLERY_ENTRIES: u32 = 50;

/// Makes sure the node has a gallery (an empty one if none), without touching one it has.
///
/// Called before a batch's members are queued: each member's worker writes from a replica of
/// the document loaded when it starts, and a replica that had no gallery would create its own
/// `Y.Array` under the same key, which concurrent creators then lose to one another (a map key
/// keeps one value). Created once up front, every replica appends to the same array.
pub fn ensure_gallery(txn: &mut TransactionMut, node_id: &str) {
    let results = txn.get_or_insert_map(RESULTS);
    let node = match results.get(txn, node_id) {
        Some(yrs::Out::YMap(map)) => map,
        _ => results.insert(txn, node_id, MapPrelim::default()),
    };
    if !matches!(node.get(txn, GALLERY), Some(yrs::Out::YArray(_))) {
        node.insert(txn, GALLERY, ArrayPrelim::default());
    }
}

/// Appends `entry` (an object with a `runId`) to the node's gallery, unless an entry of that
/// run is there already (a write retried after a reload, a resumed run reporting the node
/// again), then trims the gallery to [`MAX_GALLERY_ENTRIES`], oldest first.
pub fn push_gallery_entry(txn: &mut TransactionMut, node_id: &str, entry: &Value) -> Result<(), SchemaError> {
    let run_id = entry.get("runId").and_then(Value::as_str).unwrap_or_default().to_owned();
    let value = to_any(entry)?;
    let results = txn.get_or_insert_map(RESULTS);
    let node = match results.get(txn, node_id) {
        Some(yrs::Out::YMap(map)) => map,
        _ => results.insert(txn, node_id, MapPrelim::default()),
    };
    let gallery = match node.get(txn, GALLERY) {
        Some(yrs::Out::YArray(array)) => array,
        _ => node.insert(txn, GALLERY, ArrayPrelim::default()),
    };
    let seen = {
        let read = &*txn;
        !run_id.is_empty()
            && gallery.iter(read).any(|item| run_of(&item.to_json(read)) == Some(run_id.as_str()))
    };
    if !seen {
        gallery.push_back(txn, value);
    }
    let len = gallery.len(txn);
    if len > MAX_GALLERY_ENTRIES {
        gallery.remove_range(txn, 0, len - MAX_GALLERY_ENTRIES);
    }
    Ok(())
}

/// The node's gallery as JSON (empty without one).
pub fn read_gallery<T: ReadTxn>(txn: &T, node_id: &str) -> Vec<Value> {
    let Some(results) = txn.get_map(RESULTS) else { return Vec::new() };
    let Some(yrs::Out::YMap(node)) = results.get(txn, node_id) else { return Vec::new() };
    let Some(yrs::Out::YArray(gallery)) = node.get(txn, GALLERY) else { return Vec::new() };
    gallery.iter(txn).map(|item| serde_json::to_value(item.to_json(txn)).unwrap_or(Value::Null)).collect()
}

fn run_of(entry: &yrs::Any) -> Option<&str> {
    match entry {
        yrs::Any::Map(fields) => match fields.get("runId") {
            Some(yrs::Any::String(id)) => Some(&**id),
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use yrs::{Doc, Transact};

    use super::*;

    #[test]
    fn replicas_that_share_the_gallery_created_up_front_all_keep_their_entries() {
        use yrs::updates::decoder::Decode;
        use yrs::{StateVector, Update};
        let origin = Doc::new();
        ensure_gallery(&mut origin.transact_mut(), "n1");
        let state = origin.transact().encode_state_as_update_v1(&StateVector::default());
        // Two workers load the room, then each appends without seeing the other.
        let replicas: Vec<Doc> = (0..2).map(|_| Doc::new()).collect();
        for replica in &replicas {
            replica
                .transact_mut()
                .apply_update(Update::decode_v1(&state).expect("an update"))
                .expect("applied");
        }
        for (i, replica) in replicas.iter().enumerate() {
            let entry = json!({"runId": format!("r{i}")});
            push_gallery_entry(&mut replica.transact_mut(), "n1", &entry).expect("written");
            ensure_gallery(&mut replica.transact_mut(), "n1");
        }
        for replica in &replicas {
            let update = replica.transact().encode_state_as_update_v1(&StateVector::default());
            origin
                .transact_mut()
                .apply_update(Update::decode_v1(&update).expect("an update"))
                .expect("applied");
        }
        assert_eq!(read_gallery(&origin.transact(), "n1").len(), 2);
    }

    #[test]
    fn the_gallery_keeps_the_newest_entries_once_per_run() {
        let doc = Doc::new();
        let mut txn = doc.transact_mut();
        for i in 0..60 {
            let entry = json!({"runId": format!("r{i}"), "outputs": {}});
            push_gallery_entry(&mut txn, "n1", &entry).expect("written");
        }
        push_gallery_entry(&mut txn, "n1", &json!({"runId": "r59", "outputs": {}})).expect("written");
        drop(txn);
        let txn = doc.transact();
        let gallery = read_gallery(&txn, "n1");
        assert_eq!(gallery.len(), 50);
        assert_eq!(gallery[0]["runId"], "r10");
        assert_eq!(gallery[49]["runId"], "r59");
        assert!(read_gallery(&txn, "n2").is_empty());
    }
}
