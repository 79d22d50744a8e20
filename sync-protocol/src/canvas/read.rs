//! Reading the canvas out of a document: strictly for the graph the executor runs, as stored
//! for HTTP readers and exports.

use serde_json::Value;
use yrs::types::ToJson;
use yrs::{Any, Map, ReadTxn};

use super::{CanvasEdge, CanvasGraph, CanvasNode, EDGES, NODES, NodeResult, RESULTS, ROOTS, SchemaError};

/// Reads nodes and edges into plain structs.
///
/// Strict: an entry that does not match the schema is an error naming that entry, because the
/// executor must not run a graph it misread.
pub fn read_graph<T: ReadTxn>(txn: &T) -> Result<CanvasGraph, SchemaError> {
    let mut nodes: Vec<CanvasNode> = read_entries(txn, NODES)?;
    let mut edges: Vec<CanvasEdge> = read_entries(txn, EDGES)?;
    nodes.sort_by(|a, b| a.id.cmp(&b.id));
    edges.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(CanvasGraph { nodes, edges })
}

/// The four root maps as plain JSON (`{"nodes": {id: …}, "edges": …, "results": …, "runs": …}`),
/// as stored, without schema checks: what an HTTP reader or an export sees, even of a document
/// that breaks the schema somewhere.
pub fn canvas_json<T: ReadTxn>(txn: &T) -> Value {
    let mut out = serde_json::Map::new();
    for root in ROOTS {
        let entries = match txn.get_map(root) {
            Some(map) => serde_json::to_value(map.to_json(txn)).unwrap_or(Value::Null),
            None => Value::Object(serde_json::Map::new()),
        };
        out.insert(root.to_owned(), entries);
    }
    Value::Object(out)
}

/// Reads one node's result, if the executor wrote one.
pub fn read_node_result<T: ReadTxn>(txn: &T, node_id: &str) -> Result<Option<NodeResult>, SchemaError> {
    let Some(results) = txn.get_map(RESULTS) else { return Ok(None) };
    let Some(value) = results.get(txn, node_id) else { return Ok(None) };
    from_any(RESULTS, node_id, value.to_json(txn)).map(Some)
}

trait HasId {
    fn id(&self) -> &str;
}
impl HasId for CanvasNode {
    fn id(&self) -> &str {
        &self.id
    }
}
impl HasId for CanvasEdge {
    fn id(&self) -> &str {
        &self.id
    }
}

fn read_entries<T: ReadTxn, E: serde::de::DeserializeOwned + HasId>(
    txn: &T,
    root: &'static str,
) -> Result<Vec<E>, SchemaError> {
    let Some(map) = txn.get_map(root) else { return Ok(Vec::new()) };
    map.iter(txn)
        .map(|(key, value)| {
            let entry: E = from_any(root, key, value.to_json(txn))?;
            if entry.id() != key {
                return Err(SchemaError::IdMismatch {
                    root,
                    key: key.to_owned(),
                    found: entry.id().to_owned(),
                });
            }
            Ok(entry)
        })
        .collect()
}

fn from_any<E: serde::de::DeserializeOwned>(
    root: &'static str,
    key: &str,
    any: Any,
) -> Result<E, SchemaError> {
    let invalid = |reason: String| SchemaError::InvalidEntry { root, key: key.to_owned(), reason };
    let json = serde_json::to_value(&any).map_err(|e| invalid(e.to_string()))?;
    serde_json::from_value(json).map_err(|e| invalid(e.to_string()))
}
