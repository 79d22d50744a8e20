use super::*;
use serde_json::json;
use yrs::types::ToJson;
use yrs::updates::decoder::Decode;
use yrs::{Doc, Map, MapPrelim, ReadTxn, Transact, Update, WriteTxn};

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

/// The editor keeps text parameters (prompts, system messages) as shared text: a `Y.Text` in the
/// node's `data`. Older documents hold plain strings. The graph the executor runs reads both as
/// the same string, and two people typing into one text both keep their characters.
#[test]
fn text_parameters_are_read_from_shared_text_and_from_plain_strings() {
    use yrs::{GetString, Text, TextPrelim, TextRef};
    let shared = Doc::new();
    {
        let mut txn = shared.transact_mut();
        let mut prompt = node("p", "text-prompt", 0.0);
        prompt.data = BTreeMap::from([("seed".into(), json!(3))]);
        write_node(&mut txn, &prompt).unwrap();
        // The text as the editor writes it: a Y.Text in the node's `data` map.
        let data = txn
            .get_map(NODES)
            .and_then(|nodes| nodes.get(&txn, "p"))
            .and_then(|node| node.cast::<yrs::MapRef>().ok())
            .and_then(|node| node.get(&txn, "data"))
            .and_then(|data| data.cast::<yrs::MapRef>().ok())
            .expect("the node's data map");
        data.insert(&mut txn, "text", TextPrelim::new("a red fox"));
    }
    let text_of = |doc: &Doc| -> Option<TextRef> {
        let txn = doc.transact();
        let node = txn.get_map(NODES)?.get(&txn, "p")?.cast::<yrs::MapRef>().ok()?;
        let data = node.get(&txn, "data")?.cast::<yrs::MapRef>().ok()?;
        data.get(&txn, "text")?.cast::<TextRef>().ok()
    };
    // Someone else, typing at the same time from the same starting point.
    let other = Doc::new();
    {
        let update = shared.transact().encode_state_as_update_v1(&yrs::StateVector::default());
        other.transact_mut().apply_update(Update::decode_v1(&update).unwrap()).unwrap();
    }
    let mine = text_of(&shared).expect("shared text");
    let theirs = text_of(&other).expect("their copy");
    mine.insert(&mut shared.transact_mut(), 9, " at dusk");
    theirs.insert(&mut other.transact_mut(), 0, "Wide shot: ");
    let update = other.transact().encode_state_as_update_v1(&shared.transact().state_vector());
    shared.transact_mut().apply_update(Update::decode_v1(&update).unwrap()).unwrap();
    assert_eq!(mine.get_string(&shared.transact()), "Wide shot: a red fox at dusk");

    let graph = read_graph(&shared.transact()).unwrap();
    assert_eq!(graph.nodes[0].data["text"], json!("Wide shot: a red fox at dusk"));
    assert_eq!(graph.nodes[0].data["seed"], json!(3));

    // An older document's plain string reads the same way.
    let plain = Doc::new();
    let mut old = node("p", "text-prompt", 0.0);
    old.data = BTreeMap::from([("text".into(), json!("Wide shot: a red fox at dusk"))]);
    write_node(&mut plain.transact_mut(), &old).unwrap();
    assert_eq!(read_graph(&plain.transact()).unwrap().nodes[0].data["text"], graph.nodes[0].data["text"]);
}
