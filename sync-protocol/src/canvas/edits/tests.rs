use std::collections::BTreeMap;

use serde_json::{Value, json};
use yrs::{Doc, Transact};

use super::*;
use crate::canvas::{CanvasGraph, read_graph};

/// Two node types: `src` (output `out: text`) and `sink` (input `in: text`, output `res`),
/// each with one integer parameter `n` in 0..=10, default 1.
struct Rules;

impl EditRules for Rules {
    fn node_type(&self, node_type: &str) -> Result<BTreeMap<String, Value>, String> {
        match node_type {
            "src" | "sink" => Ok(BTreeMap::from([("n".into(), json!(1))])),
            _ => Err(format!("unknown node type {node_type:?}")),
        }
    }
    fn param(&self, _: &str, name: &str, value: &Value) -> Result<Value, String> {
        if name != "n" {
            return Err("no such parameter".into());
        }
        match value.as_i64() {
            Some(n) if (0..=10).contains(&n) => Ok(json!(n)),
            _ => Err("expected an integer in 0..=10".into()),
        }
    }
    fn has_param(&self, _: &str, name: &str) -> bool {
        name == "n"
    }
    fn wire(&self, wire: WireEnds<'_>) -> Result<(Option<String>, Option<String>), String> {
        let out = match (wire.source_type, wire.source_handle) {
            ("src", None | Some("out")) | ("sink", None | Some("res")) => wire.source_handle.unwrap_or("out"),
            _ => return Err("no such output".into()),
        };
        match (wire.target_type, wire.target_handle) {
            ("sink", None | Some("in")) => Ok((Some(out.into()), Some("in".into()))),
            _ => Err("no such input".into()),
        }
    }
}

fn ops(value: Value) -> Vec<EditOp> {
    serde_json::from_value(value).expect("ops parse")
}

fn counter() -> impl FnMut(&str) -> String {
    let mut next = 0;
    move |prefix: &str| {
        next += 1;
        format!("{prefix}-{next}")
    }
}

/// Plans `batch` on `doc`, applies it in one transaction, and returns the plan and inverse.
fn edit(doc: &Doc, batch: Value) -> Result<(Planned, Inverse), Vec<OpError>> {
    let before = read_graph(&doc.transact()).expect("graph");
    let planned = plan(&before, &ops(batch), &Rules, &EditLimits::default(), &mut counter())?;
    apply_steps(&mut doc.transact_mut(), &planned.steps).expect("apply");
    let after = read_graph(&doc.transact()).expect("graph");
    let inverse = Inverse::compute(&before, &after, &planned);
    Ok((planned, inverse))
}

fn graph(doc: &Doc) -> CanvasGraph {
    read_graph(&doc.transact()).expect("graph")
}

fn undo(doc: &Doc, inverse: &Inverse) {
    let now = graph(doc);
    assert_eq!(inverse.conflicts(&now), vec![]);
    let planned =
        plan(&now, &inverse.ops(), &Unchecked, &EditLimits::default(), &mut counter()).expect("undo plans");
    apply_steps(&mut doc.transact_mut(), &planned.steps).expect("undo applies");
}

#[test]
fn every_op_kind_applies_and_undoes_to_the_graph_before() {
    let doc = Doc::new();
    edit(&doc, json!([
        {"op": "addNode", "id": "a", "type": "src", "position": {"x": 0, "y": 0}},
        {"op": "addNode", "id": "b", "type": "sink", "position": {"x": 100, "y": 0}, "params": {"n": 3}},
        {"op": "addNode", "id": "c", "type": "sink", "position": {"x": 200, "y": 0}},
        {"op": "connect", "id": "ab", "source": "a", "target": "b"},
        {"op": "connect", "id": "bc", "source": "b", "sourceHandle": "res", "target": "c", "targetHandle": "in"},
    ]))
    .expect("setup");
    let start = graph(&doc);
    assert_eq!(start.nodes.len(), 3);
    assert_eq!(start.edges[0].target_handle.as_deref(), Some("in"), "a missing handle is resolved");
    assert_eq!(start.nodes[0].data["n"], json!(1), "defaults are filled in");

    let (planned, inverse) = edit(
        &doc,
        json!([
            {"op": "setParam", "node": "a", "name": "n", "value": 7},
            {"op": "updateNode", "node": "b", "params": {"n": null}, "position": {"x": 5, "y": 6}},
            {"op": "move", "node": "c", "position": {"x": -1.5, "y": 2}},
            {"op": "disconnect", "edge": "ab"},
            {"op": "removeNode", "node": "c"},
            {"op": "addNode", "type": "sink", "position": {"x": 1, "y": 1}},
            {"op": "connect", "source": "a", "target": "n-1"},
        ]),
    )
    .expect("every kind");
    assert_eq!(planned.created.nodes, vec!["n-1".to_string()]);
    assert_eq!(planned.created.edges, vec!["e-2".to_string()]);
    let after = graph(&doc);
    assert_eq!(after.nodes.iter().map(|n| n.id.as_str()).collect::<Vec<_>>(), ["a", "b", "n-1"]);
    assert_eq!(after.edges.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(), ["e-2"], "bc went with c");
    assert_eq!(after.nodes[0].data["n"], json!(7));
    assert!(!after.nodes[1].data.contains_key("n"), "null removes a parameter");

    undo(&doc, &inverse);
    assert_eq!(graph(&doc), start, "the undo restores every touched entry");
}

#[test]
fn a_batch_with_one_bad_op_is_refused_whole_with_every_message() {
    let doc = Doc::new();
    edit(&doc, json!([{"op": "addNode", "id": "a", "type": "src", "position": {"x": 0, "y": 0}}]))
        .expect("setup");
    let errors = edit(
        &doc,
        json!([
            {"op": "addNode", "id": "ok", "type": "sink", "position": {"x": 0, "y": 0}},
            {"op": "addNode", "type": "nope", "position": {"x": 0, "y": 0}},
            {"op": "setParam", "node": "a", "name": "n", "value": 11},
            {"op": "setParam", "node": "a", "name": "zzz", "value": null},
            {"op": "move", "node": "ghost", "position": {"x": 0, "y": 0}},
            {"op": "addNode", "id": "a", "type": "src", "position": {"x": 0, "y": 0}},
            {"op": "connect", "source": "ok", "target": "a"},
            {"op": "addNode", "id": "has space", "type": "src", "position": {"x": 0, "y": 0}},
            {"op": "move", "node": "a", "position": {"x": 1e300, "y": 0}},
        ]),
    )
    .unwrap_err();
    let indexes: Vec<usize> = errors.iter().map(|e| e.index).collect();
    assert_eq!(indexes, [1, 2, 3, 4, 5, 6, 7, 8], "{errors:?}");
    assert!(errors[0].message.contains("nope"), "{errors:?}");
    assert!(errors[4].message.contains("already exists"), "{errors:?}");
    assert_eq!(graph(&doc).nodes.len(), 1, "nothing was applied");
}

#[test]
fn wires_are_checked_for_cycles_and_taken_inputs() {
    let doc = Doc::new();
    edit(
        &doc,
        json!([
            {"op": "addNode", "id": "x", "type": "sink", "position": {"x": 0, "y": 0}},
            {"op": "addNode", "id": "y", "type": "sink", "position": {"x": 0, "y": 0}},
            {"op": "addNode", "id": "s", "type": "src", "position": {"x": 0, "y": 0}},
            {"op": "connect", "source": "x", "sourceHandle": "res", "target": "y"},
        ]),
    )
    .expect("setup");
    let cycle = edit(&doc, json!([{"op": "connect", "source": "y", "sourceHandle": "res", "target": "x"}]))
        .unwrap_err();
    assert!(cycle[0].message.contains("cycle"), "{cycle:?}");
    let own = edit(&doc, json!([{"op": "connect", "source": "x", "sourceHandle": "res", "target": "x"}]))
        .unwrap_err();
    assert!(own[0].message.contains("cycle"), "{own:?}");
    let taken = edit(&doc, json!([{"op": "connect", "source": "s", "target": "y"}])).unwrap_err();
    assert!(taken[0].message.contains("already wired"), "{taken:?}");
    let wrong = edit(&doc, json!([{"op": "connect", "source": "s", "target": "s"}])).unwrap_err();
    assert!(wrong[0].message.contains("cycle"), "{wrong:?}");
    let handle = edit(&doc, json!([{"op": "connect", "source": "s", "sourceHandle": "nah", "target": "x"}]))
        .unwrap_err();
    assert!(handle[0].message.contains("no such output"), "{handle:?}");
}

#[test]
fn batches_and_values_are_bounded() {
    let graph = CanvasGraph::default();
    let limits = EditLimits { max_ops: 3, ..EditLimits::default() };
    let many = ops(
        json!([{"op": "disconnect", "edge": "e"}, {"op": "disconnect", "edge": "e"}, {"op": "disconnect", "edge": "e"}, {"op": "disconnect", "edge": "e"}]),
    );
    let errors = plan(&graph, &many, &Rules, &limits, &mut counter()).unwrap_err();
    assert!(errors[0].message.contains("at most 3"), "{errors:?}");
    assert!(plan(&graph, &[], &Rules, &limits, &mut counter()).is_err(), "an empty batch is refused");

    let mut deep = json!(1);
    for _ in 0..40 {
        deep = json!([deep]);
    }
    assert_eq!(value_depth(&deep, 16), 17, "counting stops past the limit");
    let batch = vec![EditOp::AddNode {
        id: None,
        node_type: "src".into(),
        position: crate::canvas::Position { x: 0.0, y: 0.0 },
        params: BTreeMap::from([("n".into(), deep)]),
    }];
    let errors = plan(&graph, &batch, &Rules, &EditLimits::default(), &mut counter()).unwrap_err();
    assert!(errors[0].message.contains("deeper"), "{errors:?}");
    let long = "x".repeat(129);
    let errors = plan(
        &graph,
        &ops(json!([{"op": "removeNode", "node": long}])),
        &Rules,
        &EditLimits::default(),
        &mut counter(),
    )
    .unwrap_err();
    assert!(errors[0].message.contains("1-128"), "{errors:?}");
}

#[test]
fn unknown_fields_and_ops_do_not_parse() {
    assert!(serde_json::from_value::<EditOp>(json!({"op": "explode"})).is_err());
    assert!(serde_json::from_value::<EditOp>(json!({"op": "removeNode", "node": "a", "extra": 1})).is_err());
    assert!(
        serde_json::from_value::<EditOp>(json!({"op": "move", "node": "a", "position": {"x": 1}})).is_err()
    );
    let op: EditOp =
        serde_json::from_value(json!({"op": "connect", "source": "a", "target": "b", "targetHandle": "in"}))
            .unwrap();
    assert_eq!(
        serde_json::to_value(&op).unwrap(),
        json!({"op": "connect", "source": "a", "target": "b", "targetHandle": "in"})
    );
}

#[test]
fn an_undo_refuses_what_changed_since_and_names_it() {
    let doc = Doc::new();
    let (_, added) = edit(
        &doc,
        json!([
            {"op": "addNode", "id": "a", "type": "src", "position": {"x": 0, "y": 0}},
            {"op": "addNode", "id": "b", "type": "sink", "position": {"x": 0, "y": 0}},
        ]),
    )
    .expect("add");
    let (_, set) =
        edit(&doc, json!([{"op": "setParam", "node": "a", "name": "n", "value": 4}])).expect("set");
    // Someone wires the new nodes and changes the parameter after that.
    edit(
        &doc,
        json!([
            {"op": "connect", "id": "w", "source": "a", "target": "b"},
            {"op": "setParam", "node": "a", "name": "n", "value": 5},
        ]),
    )
    .expect("later");
    let conflicts = set.conflicts(&graph(&doc));
    assert_eq!(conflicts.len(), 1, "{conflicts:?}");
    assert_eq!((conflicts[0].kind, conflicts[0].id.as_str()), ("node", "a"));
    let conflicts = added.conflicts(&graph(&doc));
    let ids: Vec<&str> = conflicts.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["a", "w"], "a changed, and w would go with the nodes: {conflicts:?}");
}
