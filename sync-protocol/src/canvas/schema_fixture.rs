//! This crate's description of the canvas schema, checked against the fixture the web editor's
//! tests read too (`sync-protocol/schema/canvas-schema.json`). The description is derived from
//! what the code does: entries written by the helpers here and read back from a document, the
//! root and status constants, and the limits `update` enforces. Nothing is listed by hand.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use yrs::{Any, Doc, Map, MapRef, Out, ReadTxn, Transact};

use super::*;
use crate::update::{MAX_ANY_DEPTH, MAX_TYPE_DEPTH, WriteRules};

const FIXTURE: &str = include_str!("../../schema/canvas-schema.json");

/// A document holding one entry of each root, every optional field present.
fn sample_document() -> Doc {
    let doc = Doc::new();
    let mut txn = doc.transact_mut();
    let node = CanvasNode {
        id: "n1".into(),
        node_type: "flux-schnell".into(),
        position: Position { x: 1.0, y: 2.0 },
        data: BTreeMap::from([("prompt".into(), json!("a red fox"))]),
    };
    write_node(&mut txn, &node).expect("a node");
    let edge = CanvasEdge {
        id: "e1".into(),
        source: "n1".into(),
        source_handle: Some("image".into()),
        target: "n2".into(),
        target_handle: Some("image".into()),
    };
    write_edge(&mut txn, &edge).expect("an edge");
    let result = NodeResult {
        status: NodeStatus::Failed,
        progress: 100.0,
        outputs: BTreeMap::from([("text".into(), json!({"kind": "text", "text": "hi"}))]),
        error: Some("it broke".into()),
        errors: vec![json!({"type": "x", "message": "y"})],
        run_id: Some("r1".into()),
        updated_at: 1,
    };
    write_node_result(&mut txn, "n1", &result).expect("a result");
    push_gallery_entry(&mut txn, "n1", &json!({"runId": "r1", "outputs": {}})).expect("a gallery entry");
    write_node_preview(&mut txn, "n1", &json!({"text": "step 1", "at": 1})).expect("a preview");
    let summary = RunSummary {
        id: "r1".into(),
        status: "failed".into(),
        estimate: 3,
        charged: 1,
        created_at: 1,
        finished_at: Some(2),
        user_id: "u1".into(),
        nodes: vec!["n1".into()],
    };
    let summary = serde_json::to_value(&summary).expect("a summary serializes");
    write_run_summary(&mut txn, "r1", &summary).expect("a summary");
    drop(txn);
    doc
}

fn any_kind(value: &Any) -> &'static str {
    match value {
        Any::String(_) => "string",
        Any::Number(_) => "number",
        Any::Array(_) => "array",
        Any::Map(fields) if fields.len() == 2 && fields.contains_key("x") && fields.contains_key("y") => {
            "position"
        }
        Any::Map(_) => "object",
        Any::Null | Any::Undefined => "null",
        Any::Bool(_) => "boolean",
        Any::Buffer(_) => "buffer",
    }
}

fn out_kind(value: &Out) -> &'static str {
    match value {
        Out::Any(any) => any_kind(any),
        Out::YMap(_) => "Y.Map",
        Out::YArray(_) => "Y.Array",
        _ => "another shared type",
    }
}

/// `{"entry": …, "fields": {name: kind}}` of the one entry under `root`.
fn describe_entry<T: ReadTxn>(txn: &T, root: &str) -> Value {
    let map = txn.get_map(root).expect("the sample writes every root");
    let (_, entry) = map.iter(txn).next().expect("the sample writes an entry in every root");
    let (kind, fields): (&str, BTreeMap<String, &str>) = match &entry {
        Out::YMap(fields) => ("Y.Map", fields.iter(txn).map(|(k, v)| (k.to_owned(), out_kind(&v))).collect()),
        Out::Any(Any::Map(fields)) => {
            ("object", fields.iter().map(|(k, v)| (k.clone(), any_kind(v))).collect())
        }
        other => (out_kind(other), BTreeMap::new()),
    };
    json!({ "entry": kind, "fields": fields })
}

/// How deep shared types nest under `map` (a root is at 0).
fn type_depth<T: ReadTxn>(txn: &T, map: &MapRef) -> usize {
    map.iter(txn)
        .map(|(_, value)| match value {
            Out::YMap(inner) => 1 + type_depth(txn, &inner),
            _ => 0,
        })
        .max()
        .unwrap_or(0)
}

fn sorted(names: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut names: Vec<String> = names.into_iter().collect();
    names.sort();
    names
}

fn status_name(status: NodeStatus) -> String {
    match serde_json::to_value(status) {
        Ok(Value::String(name)) => name,
        other => panic!("{status:?} serializes as {other:?}"),
    }
}

fn describe() -> Value {
    let doc = sample_document();
    let txn = doc.transact();
    let entries: serde_json::Map<String, Value> =
        ROOTS.iter().map(|&root| (root.to_owned(), describe_entry(&txn, root))).collect();
    let canvas_type_depth =
        ROOTS.iter().filter_map(|&root| txn.get_map(root)).map(|m| type_depth(&txn, &m)).max();
    let position = match serde_json::to_value(Position { x: 0.0, y: 0.0 }) {
        Ok(Value::Object(fields)) => sorted(fields.keys().cloned()),
        other => panic!("a position serializes as {other:?}"),
    };
    let current = NodeStatus::ALL.into_iter().filter(|s| s.current() == *s);
    let legacy: BTreeMap<String, String> = NodeStatus::ALL
        .into_iter()
        .filter(|s| s.current() != *s)
        .map(|s| (status_name(s), status_name(s.current())))
        .collect();
    json!({
        "roots": sorted(ROOTS.iter().map(|r| r.to_string())),
        "executorOnlyRoots": sorted(WriteRules::NOT_EXECUTOR_MAPS.protected_roots.iter().map(|r| r.to_string())),
        "entries": entries,
        "position": position,
        "nodeStatuses": sorted(current.map(status_name)),
        "legacyNodeStatuses": legacy,
        "limits": {
            "canvasTypeDepth": canvas_type_depth,
            "maxTypeDepth": MAX_TYPE_DEPTH,
            "maxValueDepth": MAX_ANY_DEPTH,
        },
    })
}

#[test]
fn the_schema_here_is_the_shared_fixture_exactly() {
    let mut fixture: Value = serde_json::from_str(FIXTURE).expect("the fixture is JSON");
    if let Some(fields) = fixture.as_object_mut() {
        fields.remove("$comment");
    }
    let described = describe();
    assert_eq!(
        described,
        fixture,
        "the Rust schema and sync-protocol/schema/canvas-schema.json disagree; described here:\n{}",
        serde_json::to_string_pretty(&described).unwrap_or_default()
    );
}

#[test]
fn every_status_is_listed_and_reads_back() {
    // `ALL` is what the fixture check derives statuses from: it must hold each variant once.
    for status in NodeStatus::ALL {
        assert_eq!(NodeStatus::ALL.iter().filter(|s| **s == status).count(), 1, "{status:?}");
        let name = status_name(status);
        assert_eq!(serde_json::from_value::<NodeStatus>(json!(name)).ok(), Some(status));
    }
}
