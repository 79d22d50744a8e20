use super::*;

fn catalog() -> &'static LoadedCatalog {
    LoadedCatalog::builtin().expect("catalog")
}

fn raw(nodes: &[&str], edges: &[(i64, &str, i64, &str)]) -> RawPlan {
    RawPlan {
        nodes: nodes.iter().map(|n| (*n).to_owned()).collect(),
        edges: edges
            .iter()
            .map(|(s, sh, t, th)| RawEdge {
                source: *s,
                source_handle: (*sh).to_owned(),
                target: *t,
                target_handle: (*th).to_owned(),
            })
            .collect(),
    }
}

#[test]
fn a_fitting_plan_becomes_a_composition() {
    let plan = check_plan(
        catalog(),
        raw(&["text-prompt", "flux-schnell", "blur"], &[(0, "text", 1, "prompt"), (1, "image", 2, "image")]),
        MAX_PLAN_NODES,
    )
    .expect("valid");
    assert_eq!(plan.nodes, ["text-prompt", "flux-schnell", "blur"]);
    assert_eq!(
        plan.edges[1],
        ComposedEdge { source: 1, source_handle: "image".into(), target: 2, target_handle: "image".into() }
    );
}

#[test]
fn every_kind_of_bad_plan_is_named() {
    let check = |nodes: &[&str], edges: &[(i64, &str, i64, &str)]| {
        check_plan(catalog(), raw(nodes, edges), 3).expect_err("invalid")
    };
    assert_eq!(check(&[], &[]), PlanProblem::NoNodes);
    assert_eq!(check(&["blur"; 4], &[]), PlanProblem::TooManyNodes { count: 4, max: 3 });
    assert!(matches!(check(&["blur", "frobnicate"], &[]), PlanProblem::UnknownType { index: 1, .. }));
    assert_eq!(
        check(&["text-prompt", "blur"], &[(0, "text", 5, "image")]),
        PlanProblem::NoSuchNode { edge: 0, node: 5, count: 2 }
    );
    assert_eq!(
        check(&["text-prompt", "blur"], &[(-1, "text", 1, "image")]),
        PlanProblem::NoSuchNode { edge: 0, node: -1, count: 2 }
    );
    assert_eq!(
        check(&["blur", "blur"], &[(1, "image", 1, "image")]),
        PlanProblem::SelfLoop { edge: 0, node: 1 }
    );
    let unknown = check(&["text-prompt", "blur"], &[(0, "text", 1, "picture")]);
    assert_eq!(
        unknown.to_string(),
        "edge 0: node 1 (blur) has no input \"picture\"; it has: image",
        "{unknown:?}"
    );
    assert!(matches!(
        check(&["text-prompt", "blur"], &[(0, "prompt", 1, "image")]),
        PlanProblem::UnknownHandle { direction: "output", .. }
    ));
    let mismatch = check(&["text-prompt", "blur"], &[(0, "text", 1, "image")]);
    assert_eq!(
        mismatch.to_string(),
        "edge 0: input image of node 1 takes image, but output text of node 0 is text"
    );
    assert_eq!(
        check(&["dev-image", "dev-image", "blur"], &[(0, "image", 2, "image"), (1, "image", 2, "image")]),
        PlanProblem::InputWiredTwice { node: 2, input: "image".into() }
    );
    assert_eq!(
        check(&["blur", "blur"], &[(0, "image", 1, "image"), (1, "image", 0, "image")]),
        PlanProblem::Cycle
    );
}

#[test]
fn refusals_and_cut_off_answers_are_told_apart() {
    let refusal = json!({"choices": [{"message": {"role": "assistant", "content": null, "refusal": "I can't help with that."}, "finish_reason": "stop"}]});
    assert_eq!(
        read_answer(&refusal).expect_err("refused"),
        LlmError::Refused("I can't help with that.".into())
    );
    let cut = json!({"choices": [{"message": {"content": "{\"nodes\": [\"bl", "refusal": null}, "finish_reason": "length"}]});
    assert_eq!(
        read_answer(&cut).expect_err("cut"),
        LlmError::Malformed("it was cut off at the token limit".into())
    );
    let empty = json!({"choices": []});
    assert!(matches!(read_answer(&empty), Err(LlmError::Malformed(_))));
}

#[test]
fn the_prompt_lists_every_node_type_with_typed_handles() {
    let prompt = system_prompt(catalog(), MAX_PLAN_NODES);
    for node in catalog().nodes() {
        assert!(prompt.contains(&format!("\n{} | {} |", node.id, node.name)), "{} missing", node.id);
    }
    assert!(
        prompt.contains("composite | Composite | tool | background:image*, foreground:image* | image:image")
    );
    assert!(prompt.contains("text-prompt | Text prompt | text | - | text:text"));
}
