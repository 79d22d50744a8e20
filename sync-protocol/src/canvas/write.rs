//! Writing the canvas: each helper writes its entries in their schema shape (`Y.Map`s where
//! concurrent edits must merge, plain values where they must replace each other).

use serde::Serialize;
use serde_json::Value;
use yrs::types::ToJson;
use yrs::{Any, Map, MapPrelim, MapRef, ReadTxn, TransactionMut, WriteTxn};

use super::{CanvasEdge, CanvasNode, EDGES, NODES, NodeResult, Position, RESULTS, ROOTS, RUNS, SchemaError};

/// Inserts or replaces a node. `data` becomes a `Y.Map` so parameters merge independently.
pub fn write_node(txn: &mut TransactionMut, node: &CanvasNode) -> Result<(), SchemaError> {
    let nodes = txn.get_or_insert_map(NODES);
    let data: MapPrelim =
        node.data.iter().map(|(k, v)| Ok((k.as_str(), to_any(v)?))).collect::<Result<_, SchemaError>>()?;
    let position = to_any(&serde_json::json!({ "x": node.position.x, "y": node.position.y }))?;
    let prelim = MapPrelim::from([
        ("id", yrs::In::from(node.id.as_str())),
        ("type", yrs::In::from(node.node_type.as_str())),
        ("position", yrs::In::Any(position)),
        ("data", yrs::In::Map(data)),
    ]);
    nodes.insert(txn, node.id.as_str(), prelim);
    Ok(())
}

/// Moves a node by replacing its `position` as a whole.
pub fn move_node(txn: &mut TransactionMut, node_id: &str, position: Position) -> Result<bool, SchemaError> {
    let Some(node) = nested_map(txn, NODES, node_id) else { return Ok(false) };
    let position = to_any(&serde_json::json!({ "x": position.x, "y": position.y }))?;
    node.insert(txn, "position", position);
    Ok(true)
}

/// Sets one parameter of a node, leaving the others untouched.
pub fn set_node_param(
    txn: &mut TransactionMut,
    node_id: &str,
    key: &str,
    value: &Value,
) -> Result<bool, SchemaError> {
    let Some(node) = nested_map(txn, NODES, node_id) else { return Ok(false) };
    let Some(yrs::Out::YMap(data)) = node.get(txn, "data") else { return Ok(false) };
    data.insert(txn, key, to_any(value)?);
    Ok(true)
}

/// Removes a node, the edges attached to it and its result.
pub fn remove_node(txn: &mut TransactionMut, node_id: &str) {
    let nodes = txn.get_or_insert_map(NODES);
    nodes.remove(txn, node_id);
    let edges = txn.get_or_insert_map(EDGES);
    let attached: Vec<String> = edges
        .iter(txn)
        .filter(|(_, v)| {
            let json = serde_json::to_value(v.to_json(txn)).unwrap_or(Value::Null);
            json.get("source").and_then(Value::as_str) == Some(node_id)
                || json.get("target").and_then(Value::as_str) == Some(node_id)
        })
        .map(|(k, _)| k.to_owned())
        .collect();
    for key in attached {
        edges.remove(txn, &key);
    }
    let results = txn.get_or_insert_map(RESULTS);
    results.remove(txn, node_id);
}

/// Inserts or replaces an edge.
pub fn write_edge(txn: &mut TransactionMut, edge: &CanvasEdge) -> Result<(), SchemaError> {
    let edges = txn.get_or_insert_map(EDGES);
    let fields = json_object(edge)?;
    let prelim: MapPrelim =
        fields.into_iter().map(|(k, v)| Ok((k, to_any(&v)?))).collect::<Result<_, SchemaError>>()?;
    edges.insert(txn, edge.id.as_str(), prelim);
    Ok(())
}

/// Writes a node's result, field by field, into its `results` entry (created if missing).
///
/// Fields are set individually rather than replacing the entry so that a progress tick does not
/// rewrite a large `outputs` value that did not change.
pub fn write_node_result(
    txn: &mut TransactionMut,
    node_id: &str,
    result: &NodeResult,
) -> Result<(), SchemaError> {
    let results = txn.get_or_insert_map(RESULTS);
    let entry = match results.get(txn, node_id) {
        Some(yrs::Out::YMap(map)) => map,
        _ => results.insert(txn, node_id, MapPrelim::default()),
    };
    for (key, value) in json_object(result)? {
        let value = to_any(&value)?;
        let unchanged = entry.get(txn, &key).is_some_and(|old| old.to_json(txn) == value);
        if !unchanged {
            entry.insert(txn, key, value);
        }
    }
    Ok(())
}

/// Writes a run summary (a plain object) under `runs[run_id]`.
pub fn write_run_summary(txn: &mut TransactionMut, run_id: &str, summary: &Value) -> Result<(), SchemaError> {
    let runs = txn.get_or_insert_map(RUNS);
    runs.insert(txn, run_id, to_any(summary)?);
    Ok(())
}

/// Makes the canvas in `txn` equal to the canvas in `source` (another document), changing only
/// what differs. Used to restore an old version: the result is an ordinary update, so everyone
/// in the room sees the restore live and nothing of the history is rewritten.
///
/// Covers the four schema roots (`nodes`, `edges`, `results`, `runs`) and recreates each entry
/// in its schema shape: entries are `Y.Map`s (a node's `data` too), run summaries plain objects.
pub fn replace_canvas<S: ReadTxn>(txn: &mut TransactionMut, source: &S) {
    for root in ROOTS {
        let wanted: Vec<(String, Any)> = match source.get_map(root) {
            Some(map) => map.iter(source).map(|(k, v)| (k.to_owned(), v.to_json(source))).collect(),
            None => Vec::new(),
        };
        let current = txn.get_or_insert_map(root);
        let stale: Vec<String> = current
            .keys(txn)
            .filter(|key| !wanted.iter().any(|(k, _)| k == key))
            .map(str::to_owned)
            .collect();
        for key in stale {
            current.remove(txn, &key);
        }
        for (key, value) in wanted {
            if current.get(txn, &key).is_some_and(|old| old.to_json(txn) == value) {
                continue;
            }
            current.insert(txn, key, entry_prelim(root, value));
        }
    }
}

fn entry_prelim(root: &str, value: Any) -> yrs::In {
    match (root, value) {
        (RUNS, value) => yrs::In::Any(value),
        (_, Any::Map(fields)) => {
            let prelim: MapPrelim = fields
                .iter()
                .map(|(field, value)| {
                    let value = match (root, field.as_str(), value) {
                        (NODES, "data", Any::Map(params)) => yrs::In::Map(
                            params.iter().map(|(k, v)| (k.as_str(), yrs::In::Any(v.clone()))).collect(),
                        ),
                        // A node's gallery stays a Y.Array, so later appends keep merging.
                        (RESULTS, super::GALLERY, Any::Array(items)) => {
                            yrs::In::Array(items.iter().cloned().map(yrs::In::Any).collect())
                        }
                        (_, _, value) => yrs::In::Any(value.clone()),
                    };
                    (field.as_str(), value)
                })
                .collect();
            yrs::In::Map(prelim)
        }
        (_, other) => yrs::In::Any(other),
    }
}

fn nested_map(txn: &mut TransactionMut, root: &str, key: &str) -> Option<MapRef> {
    let root = txn.get_map(root)?;
    match root.get(txn, key)? {
        yrs::Out::YMap(map) => Some(map),
        _ => None,
    }
}

pub(super) fn to_any(value: &Value) -> Result<Any, SchemaError> {
    serde_json::from_value(value.clone()).map_err(|e| SchemaError::Unrepresentable(e.to_string()))
}

fn json_object<S: Serialize>(value: &S) -> Result<serde_json::Map<String, Value>, SchemaError> {
    match serde_json::to_value(value) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(SchemaError::Unrepresentable(format!("expected an object, got {other}"))),
        Err(e) => Err(SchemaError::Unrepresentable(e.to_string())),
    }
}
