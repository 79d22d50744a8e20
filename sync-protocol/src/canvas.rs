//! The canvas document schema: how a node graph lives in a Yjs document.
//!
//! The layout mirrors what a React Flow (XYFlow) editor keeps in memory, so an editor can bind
//! to it without a translation layer (see `docs/document-schema.md`):
//!
//! | root `Y.Map` | key     | value                                                                  |
//! |--------------|---------|------------------------------------------------------------------------|
//! | `nodes`      | node id | `Y.Map` { `id`, `type`, `position` {x, y}, `data`: `Y.Map` of params } |
//! | `edges`      | edge id | `Y.Map` { `id`, `source`, `sourceHandle`, `target`, `targetHandle` }   |
//! | `results`    | node id | `Y.Map` { `status`, `progress`, `outputs`, `error`, `runId`, `updatedAt` } |
//! | `runs`       | run id  | plain object: run summary                                              |
//!
//! `position` is a plain object replaced as a whole, so concurrent moves resolve last-writer-wins
//! instead of mixing one user's x with another's y. `data` is a `Y.Map`, so two people editing
//! different parameters of one node both keep their change. `results` and `runs` are written by
//! the executor only (the server refuses other clients' inserts there: `update::WriteRules`).
//!
//! The readers here use yrs' `to_json`, and `remove_node`/`replace_canvas` its deletes, which
//! recurse once per level of nesting. That is safe because every document the server, the HTTP
//! API and the executor build takes content only through `update::apply_client_update` (or
//! `check_stored_update` when loading), which refuses shared types nested deeper than
//! `update::MAX_TYPE_DEPTH` and values deeper than 128 levels before yrs integrates them. Do not
//! call these on a `Doc` filled any other way.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use yrs::types::ToJson;
use yrs::{Any, Map, MapPrelim, MapRef, ReadTxn, TransactionMut, WriteTxn};

pub const NODES: &str = "nodes";
pub const EDGES: &str = "edges";
pub const RESULTS: &str = "results";
pub const RUNS: &str = "runs";

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Position {
    pub x: f64,
    pub y: f64,
}

/// One node of the canvas: a tool or AI model with its parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CanvasNode {
    pub id: String,
    #[serde(rename = "type")]
    pub node_type: String,
    pub position: Position,
    /// Parameters (prompt, model, strength…), free-form JSON per parameter.
    #[serde(default)]
    pub data: BTreeMap<String, Value>,
}

/// A wire from one node's output handle to another node's input handle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CanvasEdge {
    pub id: String,
    pub source: String,
    #[serde(default)]
    pub source_handle: Option<String>,
    pub target: String,
    #[serde(default)]
    pub target_handle: Option<String>,
}

/// The graph part of a canvas (nodes and edges), sorted by id for stable output.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CanvasGraph {
    pub nodes: Vec<CanvasNode>,
    pub edges: Vec<CanvasEdge>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeStatus {
    Idle,
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
    /// Reused from an earlier identical execution: no provider call, no charge.
    Cached,
    /// Not run because a node it depends on failed.
    Skipped,
    /// Refused by validation before the run (the error says why).
    Invalid,
    /// Older names of `succeeded` and `failed`, still read from existing documents.
    Done,
    Error,
}

/// The executor's view of one node, written into `results`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeResult {
    pub status: NodeStatus,
    /// 0 ..= 100
    #[serde(default)]
    pub progress: f64,
    /// Output handle → value (a URL, text, numbers…).
    #[serde(default)]
    pub outputs: BTreeMap<String, Value>,
    #[serde(default)]
    pub error: Option<String>,
    /// Validation errors (`[{"type", "message"}]`) when `status` is `invalid`; empty otherwise.
    #[serde(default)]
    pub errors: Vec<Value>,
    #[serde(default)]
    pub run_id: Option<String>,
    /// Milliseconds since the Unix epoch.
    #[serde(default)]
    pub updated_at: u64,
}

/// A document entry that does not follow the schema.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("{root}[{key}] does not match the schema: {reason}")]
    InvalidEntry { root: &'static str, key: String, reason: String },
    #[error("{root}[{key}]: the entry's id field says {found:?}")]
    IdMismatch { root: &'static str, key: String, found: String },
    #[error("value cannot be stored in a Yjs document: {0}")]
    Unrepresentable(String),
}

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

/// Reads one node's result, if the executor wrote one.
/// The four root maps as plain JSON (`{"nodes": {id: …}, "edges": …, "results": …, "runs": …}`),
/// as stored, without schema checks: what an HTTP reader or an export sees, even of a document
/// that breaks the schema somewhere.
pub fn canvas_json<T: ReadTxn>(txn: &T) -> Value {
    let mut out = serde_json::Map::new();
    for root in [NODES, EDGES, RESULTS, RUNS] {
        let entries = match txn.get_map(root) {
            Some(map) => serde_json::to_value(map.to_json(txn)).unwrap_or(Value::Null),
            None => Value::Object(serde_json::Map::new()),
        };
        out.insert(root.to_owned(), entries);
    }
    Value::Object(out)
}

pub fn read_node_result<T: ReadTxn>(txn: &T, node_id: &str) -> Result<Option<NodeResult>, SchemaError> {
    let Some(results) = txn.get_map(RESULTS) else { return Ok(None) };
    let Some(value) = results.get(txn, node_id) else { return Ok(None) };
    from_any(RESULTS, node_id, value.to_json(txn)).map(Some)
}

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
    for root in [NODES, EDGES, RESULTS, RUNS] {
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

fn to_any(value: &Value) -> Result<Any, SchemaError> {
    serde_json::from_value(value.clone()).map_err(|e| SchemaError::Unrepresentable(e.to_string()))
}

fn json_object<S: Serialize>(value: &S) -> Result<serde_json::Map<String, Value>, SchemaError> {
    match serde_json::to_value(value) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(SchemaError::Unrepresentable(format!("expected an object, got {other}"))),
        Err(e) => Err(SchemaError::Unrepresentable(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use yrs::updates::decoder::Decode;
    use yrs::{Doc, Transact, Update};

    fn node(id: &str, node_type: &str, x: f64) -> CanvasNode {
        CanvasNode {
            id: id.into(),
            node_type: node_type.into(),
            position: Position { x, y: 10.0 },
            data: BTreeMap::from([("prompt".into(), json!("a red fox")), ("strength".into(), json!(0.5))]),
        }
    }

    fn edge(id: &str, source: &str, target: &str) -> CanvasEdge {
        CanvasEdge {
            id: id.into(),
            source: source.into(),
            source_handle: Some("image".into()),
            target: target.into(),
            target_handle: Some("image".into()),
        }
    }

    #[test]
    fn a_graph_written_with_the_helpers_reads_back_identically() {
        let doc = Doc::new();
        let mut txn = doc.transact_mut();
        write_node(&mut txn, &node("b", "upscale", 2.0)).unwrap();
        write_node(&mut txn, &node("a", "flux-schnell", 1.0)).unwrap();
        write_edge(&mut txn, &edge("e1", "a", "b")).unwrap();
        let graph = read_graph(&txn).unwrap();
        assert_eq!(graph.nodes, vec![node("a", "flux-schnell", 1.0), node("b", "upscale", 2.0)]);
        assert_eq!(graph.edges, vec![edge("e1", "a", "b")]);
    }

    #[test]
    fn canvas_json_shows_every_root_map() {
        let doc = Doc::new();
        let mut txn = doc.transact_mut();
        write_node(&mut txn, &node("a", "prompt", 1.0)).unwrap();
        write_edge(&mut txn, &edge("e", "a", "b")).unwrap();
        let json = canvas_json(&txn);
        assert_eq!(json["nodes"]["a"]["type"], "prompt");
        assert_eq!(json["edges"]["e"]["target"], "b");
        assert_eq!(json["results"], serde_json::json!({}));
        assert_eq!(json["runs"], serde_json::json!({}));
    }

    #[test]
    fn an_empty_document_is_an_empty_graph() {
        let doc = Doc::new();
        assert_eq!(read_graph(&doc.transact()).unwrap(), CanvasGraph::default());
    }

    #[test]
    fn concurrent_parameter_edits_on_one_node_both_survive() {
        let alice = Doc::new();
        write_node(&mut alice.transact_mut(), &node("n", "flux", 0.0)).unwrap();
        let bob = Doc::new();
        let base = alice.transact().encode_state_as_update_v1(&Default::default());
        bob.transact_mut().apply_update(Update::decode_v1(&base).unwrap()).unwrap();

        let a = {
            let mut txn = alice.transact_mut();
            assert!(set_node_param(&mut txn, "n", "prompt", &json!("a blue fox")).unwrap());
            txn.encode_update_v1()
        };
        let b = {
            let mut txn = bob.transact_mut();
            assert!(set_node_param(&mut txn, "n", "strength", &json!(0.9)).unwrap());
            txn.encode_update_v1()
        };
        alice.transact_mut().apply_update(Update::decode_v1(&b).unwrap()).unwrap();
        bob.transact_mut().apply_update(Update::decode_v1(&a).unwrap()).unwrap();
        for doc in [&alice, &bob] {
            let graph = read_graph(&doc.transact()).unwrap();
            assert_eq!(graph.nodes[0].data["prompt"], json!("a blue fox"));
            assert_eq!(graph.nodes[0].data["strength"], json!(0.9));
        }
    }

    #[test]
    fn moving_a_node_replaces_its_position() {
        let doc = Doc::new();
        let mut txn = doc.transact_mut();
        write_node(&mut txn, &node("n", "flux", 0.0)).unwrap();
        assert!(move_node(&mut txn, "n", Position { x: 5.0, y: 6.0 }).unwrap());
        assert!(!move_node(&mut txn, "missing", Position { x: 5.0, y: 6.0 }).unwrap());
        assert_eq!(read_graph(&txn).unwrap().nodes[0].position, Position { x: 5.0, y: 6.0 });
    }

    #[test]
    fn removing_a_node_removes_its_edges_and_result() {
        let doc = Doc::new();
        let mut txn = doc.transact_mut();
        write_node(&mut txn, &node("a", "flux", 0.0)).unwrap();
        write_node(&mut txn, &node("b", "upscale", 0.0)).unwrap();
        write_node(&mut txn, &node("c", "upscale", 0.0)).unwrap();
        write_edge(&mut txn, &edge("ab", "a", "b")).unwrap();
        write_edge(&mut txn, &edge("bc", "b", "c")).unwrap();
        let result = NodeResult {
            status: NodeStatus::Succeeded,
            progress: 100.0,
            outputs: BTreeMap::new(),
            error: None,
            errors: Vec::new(),
            run_id: None,
            updated_at: 1,
        };
        write_node_result(&mut txn, "b", &result).unwrap();
        remove_node(&mut txn, "b");
        let graph = read_graph(&txn).unwrap();
        assert_eq!(graph.nodes.iter().map(|n| n.id.as_str()).collect::<Vec<_>>(), ["a", "c"]);
        assert!(graph.edges.is_empty());
        assert_eq!(read_node_result(&txn, "b").unwrap(), None);
    }

    #[test]
    fn node_results_are_written_and_updated_in_place() {
        let doc = Doc::new();
        let mut result = NodeResult {
            status: NodeStatus::Running,
            progress: 25.0,
            outputs: BTreeMap::new(),
            error: None,
            errors: Vec::new(),
            run_id: Some("run-1".into()),
            updated_at: 1_700_000_000_000,
        };
        write_node_result(&mut doc.transact_mut(), "n", &result).unwrap();
        assert_eq!(read_node_result(&doc.transact(), "n").unwrap(), Some(result.clone()));

        result.status = NodeStatus::Succeeded;
        result.progress = 100.0;
        result.outputs.insert("image".into(), json!("https://cdn.example/fox.png"));
        let update = {
            let mut txn = doc.transact_mut();
            write_node_result(&mut txn, "n", &result).unwrap();
            txn.encode_update_v1()
        };
        assert_eq!(read_node_result(&doc.transact(), "n").unwrap(), Some(result));
        // Unchanged fields (runId) are not rewritten: the update stays small.
        assert!(update.len() < 200, "update was {} bytes", update.len());
        assert_eq!(read_node_result(&doc.transact(), "other").unwrap(), None);
    }

    #[test]
    fn entries_that_break_the_schema_are_reported_by_key() {
        let doc = Doc::new();
        {
            let mut txn = doc.transact_mut();
            let nodes = txn.get_or_insert_map(NODES);
            nodes.insert(&mut txn, "bad", MapPrelim::from([("id", yrs::In::from("bad"))]));
        }
        let err = read_graph(&doc.transact()).unwrap_err();
        assert!(err.to_string().contains("nodes[bad]"), "{err}");

        let doc = Doc::new();
        write_node(&mut doc.transact_mut(), &node("x", "flux", 0.0)).unwrap();
        {
            let mut txn = doc.transact_mut();
            let nodes = txn.get_or_insert_map(NODES);
            let Some(yrs::Out::YMap(x)) = nodes.get(&txn, "x") else { panic!("node map") };
            x.insert(&mut txn, "id", "y");
        }
        assert!(matches!(read_graph(&doc.transact()), Err(SchemaError::IdMismatch { .. })));
    }

    #[test]
    fn replacing_a_canvas_restores_an_old_version_as_a_normal_update() {
        let doc = Doc::new();
        write_node(&mut doc.transact_mut(), &node("a", "flux", 1.0)).unwrap();
        write_edge(&mut doc.transact_mut(), &edge("e", "a", "a")).unwrap();
        let old = Doc::new();
        let snapshot = doc.transact().encode_state_as_update_v1(&Default::default());
        old.transact_mut().apply_update(Update::decode_v1(&snapshot).unwrap()).unwrap();

        // Later: a moves, b appears, the edge goes.
        {
            let mut txn = doc.transact_mut();
            move_node(&mut txn, "a", Position { x: 9.0, y: 9.0 }).unwrap();
            write_node(&mut txn, &node("b", "upscale", 2.0)).unwrap();
            txn.get_or_insert_map(EDGES).remove(&mut txn, "e");
        }
        let peer = Doc::new();
        let before = doc.transact().encode_state_as_update_v1(&Default::default());
        peer.transact_mut().apply_update(Update::decode_v1(&before).unwrap()).unwrap();

        let restore = {
            let mut txn = doc.transact_mut();
            replace_canvas(&mut txn, &old.transact());
            txn.encode_update_v1()
        };
        assert_eq!(read_graph(&doc.transact()).unwrap(), read_graph(&old.transact()).unwrap());
        // A collaborator applying the restore update converges too, and the node's data is
        // still a Y.Map, so parameters keep merging independently afterwards.
        peer.transact_mut().apply_update(Update::decode_v1(&restore).unwrap()).unwrap();
        assert_eq!(read_graph(&peer.transact()).unwrap(), read_graph(&old.transact()).unwrap());
        assert!(set_node_param(&mut peer.transact_mut(), "a", "strength", &json!(1)).unwrap());
        // Restoring the same version again changes nothing.
        let again = {
            let mut txn = doc.transact_mut();
            replace_canvas(&mut txn, &old.transact());
            txn.encode_update_v1()
        };
        assert_eq!(again, vec![0, 0]);
    }

    #[test]
    fn run_summaries_are_stored_as_plain_objects() {
        let doc = Doc::new();
        let summary = json!({"id": "r1", "status": "running", "nodes": ["a", "b"]});
        write_run_summary(&mut doc.transact_mut(), "r1", &summary).unwrap();
        let txn = doc.transact();
        let runs = txn.get_map(RUNS).unwrap();
        let stored = serde_json::to_value(runs.get(&txn, "r1").unwrap().to_json(&txn)).unwrap();
        assert_eq!(stored, summary);
    }
}
