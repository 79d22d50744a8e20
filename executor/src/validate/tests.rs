use super::*;
use dojo_sync_protocol::canvas::{CanvasNode, Position};
use serde_json::json;

fn catalog() -> &'static LoadedCatalog {
    LoadedCatalog::builtin().expect("catalog")
}

pub(crate) fn node(id: &str, node_type: &str, data: Value) -> CanvasNode {
    let data = match data {
        Value::Object(map) => map.into_iter().collect(),
        _ => BTreeMap::new(),
    };
    CanvasNode { id: id.into(), node_type: node_type.into(), position: Position { x: 0.0, y: 0.0 }, data }
}

pub(crate) fn edge(source: &str, sh: &str, target: &str, th: &str) -> CanvasEdge {
    CanvasEdge {
        id: format!("{source}.{sh}-{target}.{th}"),
        source: source.into(),
        source_handle: Some(sh.into()),
        target: target.into(),
        target_handle: Some(th.into()),
    }
}

fn story() -> CanvasGraph {
    CanvasGraph {
        nodes: vec![
            node("prompt", "text-prompt", json!({"text": "a red fox", "label": "ignored"})),
            node("gen", "dev-image", json!({"seed": 7.0})),
            node("blur", "blur", json!({"sigma": 1.5})),
            node("up", "resize", json!({})),
        ],
        edges: vec![
            edge("prompt", "text", "gen", "prompt"),
            edge("gen", "image", "blur", "image"),
            edge("blur", "image", "up", "image"),
        ],
    }
}

fn check(graph: &CanvasGraph, targets: Option<&[&str]>) -> Result<ExecutionPlan, ValidationErrors> {
    validate(catalog(), graph, targets, &GraphLimits::default())
}

#[test]
fn a_valid_graph_becomes_a_plan_with_resolved_params_and_inputs() {
    let plan = check(&story(), None).expect("valid");
    assert_eq!(plan.levels, [vec!["prompt"], vec!["gen"], vec!["blur"], vec!["up"]]);
    let gen_node = &plan.nodes["gen"];
    // Defaults filled in, `7.0` canonicalised to the integer 7.
    assert_eq!(gen_node.params["seed"], json!(7));
    assert_eq!(gen_node.params["width"], json!(512));
    assert_eq!(gen_node.inputs["prompt"], InputLink { source: "prompt".into(), output: "text".into() });
    // Editor-only keys are not parameters.
    assert!(!plan.nodes["prompt"].params.contains_key("label"));
    assert_eq!(plan.order().map(|n| n.id.as_str()).collect::<Vec<_>>(), ["prompt", "gen", "blur", "up"]);
}

#[test]
fn edges_without_handles_use_the_only_port() {
    let mut g = story();
    for e in &mut g.edges {
        e.source_handle = None;
        e.target_handle = None;
    }
    assert!(check(&g, None).is_ok());
    // composite has two inputs: no handle is ambiguous.
    g.nodes.push(node("comp", "composite", json!({})));
    g.edges.push(CanvasEdge {
        id: "x".into(),
        source: "blur".into(),
        source_handle: None,
        target: "comp".into(),
        target_handle: None,
    });
    let errs = check(&g, None).unwrap_err();
    assert_eq!(
        errs.types_for("comp"),
        [IssueType::AmbiguousHandle, IssueType::RequiredInputMissing, IssueType::RequiredInputMissing]
    );
}

#[test]
fn every_problem_is_reported_per_node() {
    let g = CanvasGraph {
        nodes: vec![
            node("prompt", "text-prompt", json!({"text": 5})),
            node("mystery", "no-such-model", json!({})),
            node("blur", "blur", json!({"sigma": 500})),
            node("dalle", "dall-e-3", json!({"size": "640x480"})),
            node("input", "image-input", json!({})),
            node("desc", "describe-image", json!({})),
            node("crop", "crop", json!({})),
            node("long", "text-prompt", json!({"text": "x".repeat(9000)})),
        ],
        edges: vec![
            // text into an image input
            edge("prompt", "text", "blur", "image"),
            // an output that does not exist
            edge("input", "mask", "desc", "image"),
            // a node that does not exist
            edge("ghost", "image", "crop", "image"),
        ],
    };
    let errs = check(&g, None).unwrap_err();
    assert!(errs.errors.is_empty());
    assert_eq!(errs.types_for("prompt"), [IssueType::ValueWrongType]);
    assert_eq!(errs.types_for("mystery"), [IssueType::UnknownNodeType]);
    assert_eq!(errs.types_for("blur"), [IssueType::ValueOutOfRange, IssueType::TypeMismatch]);
    assert_eq!(errs.types_for("dalle"), [IssueType::ValueNotInList, IssueType::RequiredInputMissing]);
    assert_eq!(errs.types_for("input"), [IssueType::RequiredParamMissing]);
    assert_eq!(errs.types_for("desc"), [IssueType::UnknownHandle, IssueType::RequiredInputMissing]);
    assert_eq!(errs.types_for("crop"), [IssueType::DanglingEdge, IssueType::RequiredInputMissing]);
    assert_eq!(errs.types_for("long"), [IssueType::ValueTooLong]);
    assert_eq!(errs.node_errors["mystery"].class_type, "no-such-model");
    let mismatch = &errs.node_errors["blur"].errors[1].message;
    assert!(mismatch.contains("takes image") && mismatch.contains("brings text"), "{mismatch}");

    // The shape the API will return.
    let json = serde_json::to_value(&errs).unwrap();
    assert_eq!(json["nodeErrors"]["blur"]["classType"], "blur");
    assert_eq!(json["nodeErrors"]["blur"]["errors"][0]["type"], "value_out_of_range");
    assert_eq!(json["nodeErrors"]["blur"]["errors"][0]["details"], "sigma");
}

#[test]
fn an_input_takes_one_wire() {
    let mut g = story();
    g.nodes.push(node("prompt2", "text-prompt", json!({})));
    g.edges.push(edge("prompt2", "text", "gen", "prompt"));
    let errs = check(&g, None).unwrap_err();
    assert_eq!(errs.types_for("gen"), [IssueType::MultipleLinks]);
}

#[test]
fn every_cycle_is_reported_on_its_nodes() {
    let mut g = story();
    // blur → blur2 → blur (a loop), and a second loop x ⇄ y.
    g.nodes.push(node("blur2", "blur", json!({})));
    g.edges.retain(|e| e.target != "blur");
    g.edges.push(edge("blur", "image", "blur2", "image"));
    g.edges.push(edge("blur2", "image", "blur", "image"));
    g.nodes.push(node("x", "invert", json!({})));
    g.nodes.push(node("y", "invert", json!({})));
    g.edges.push(edge("x", "image", "y", "image"));
    g.edges.push(edge("y", "image", "x", "image"));
    let errs = check(&g, None).unwrap_err();
    for id in ["blur", "blur2", "x", "y"] {
        assert_eq!(errs.types_for(id), [IssueType::Cycle], "{id}");
    }
    assert!(errs.node_errors["x"].errors[0].message.contains("x → y → x"));
    assert!(!errs.node_errors.contains_key("up"), "downstream of a cycle is not on it");
}

#[test]
fn partial_runs_check_only_what_runs() {
    let mut g = story();
    g.nodes.push(node("broken", "blur", json!({"sigma": "lots"})));
    g.edges.push(edge("gen", "image", "broken", "image"));
    assert!(check(&g, None).is_err());
    let plan = check(&g, Some(&["blur"])).expect("the broken node is not part of this run");
    assert_eq!(plan.levels, [vec!["prompt"], vec!["gen"], vec!["blur"]]);
    assert_eq!(plan.len(), 3);
    let errs = check(&g, Some(&["blur", "ghost"])).unwrap_err();
    assert_eq!(errs.errors[0].issue_type, IssueType::UnknownTarget);
    assert!(check(&g, Some(&[])).expect("nothing to run").is_empty());
}

#[test]
fn oversized_graphs_are_refused_before_any_work() {
    let g = story();
    let limits = GraphLimits { max_nodes: 3, max_edges: 2 };
    let errs = validate(catalog(), &g, None, &limits).unwrap_err();
    let types: Vec<_> = errs.errors.iter().map(|e| e.issue_type).collect();
    assert_eq!(types, [IssueType::TooManyNodes, IssueType::TooManyEdges]);
    assert!(errs.node_errors.is_empty());
}

#[test]
fn any_accepts_every_type_and_null_means_default() {
    let g = CanvasGraph { nodes: vec![node("p", "text-prompt", json!({"text": null}))], edges: vec![] };
    let plan = check(&g, None).unwrap();
    assert_eq!(plan.nodes["p"].params["text"], json!(""));
    assert!(crate::catalog::PortType::Any.fits(crate::catalog::PortType::Mesh));
    assert!(crate::catalog::PortType::Image.fits(crate::catalog::PortType::Any));
    assert!(!crate::catalog::PortType::Image.fits(crate::catalog::PortType::Video));
}

#[test]
fn a_node_whose_provider_has_no_key_is_refused_by_name_and_only_when_it_would_run() {
    let graph = CanvasGraph {
        nodes: vec![
            node("prompt", "text-prompt", json!({"text": "a red fox"})),
            node("flux", "flux-schnell", json!({})),
            node("gen", "dev-image", json!({})),
        ],
        edges: vec![edge("prompt", "text", "flux", "prompt"), edge("prompt", "text", "gen", "prompt")],
    };
    let none = Availability::builtin_only();
    let errs =
        validate_runnable(catalog(), &none, &graph, None, &GraphLimits::default()).expect_err("refused");
    assert_eq!(errs.types_for("flux"), [IssueType::ProviderUnavailable]);
    assert!(errs.node_errors["flux"].errors[0].message.contains("REPLICATE_API_TOKEN"));
    assert_eq!(errs.node_errors.len(), 1, "only the unavailable node: {errs:?}");
    // A partial run that does not include it is fine.
    assert!(validate_runnable(catalog(), &none, &graph, Some(&["gen"]), &GraphLimits::default()).is_ok());
    // With the provider's key, the whole graph runs.
    let replicate = Availability::with_providers([crate::ProviderName::Replicate]);
    assert!(validate_runnable(catalog(), &replicate, &graph, None, &GraphLimits::default()).is_ok());
}
