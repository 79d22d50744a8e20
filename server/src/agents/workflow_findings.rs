//! The workflow agent's rules, pure: from a workflow's latest graph and its recent runs' node
//! records, what its owner might want to change. Failing nodes, slow nodes, branches that lead
//! nowhere, and models with a cheaper equivalent in the catalog (same category, same input and
//! output types, fewer credits).

use std::collections::{BTreeMap, BTreeSet};

use dojo_executor::LoadedCatalog;
use dojo_records::{RunNode, RunNodeState};
use dojo_sync_protocol::canvas::CanvasGraph;
use serde::Serialize;

/// Characters kept of a node's last error.
const ERROR_CHARS: usize = 200;
/// Findings kept per workflow: a canvas of 500 nodes yields a readable list, not 500 lines.
pub const MAX_FINDINGS: usize = 20;

/// Thresholds (a review job's payload may set them; camelCase).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct ReviewRules {
    /// How far back runs are read.
    pub lookback_days: u32,
    /// Failures (at least this many, and at least half the node's executions) that make a node
    /// "failing".
    pub min_failures: u32,
    /// Mean execution time, in seconds, that makes a node "slow" (with at least two samples).
    pub slow_secs: u32,
    /// Rooms reviewed per job, most recently run first.
    pub limit: u32,
}

impl Default for ReviewRules {
    fn default() -> Self {
        Self { lookback_days: 7, min_failures: 2, slow_secs: 60, limit: 100 }
    }
}

impl ReviewRules {
    pub fn check(&self) -> Result<(), &'static str> {
        if !(1..=90).contains(&self.lookback_days) {
            return Err("lookbackDays must be 1-90");
        }
        if !(1..=1_000).contains(&self.min_failures) {
            return Err("minFailures must be 1-1000");
        }
        if !(1..=86_400).contains(&self.slow_secs) {
            return Err("slowSecs must be 1-86400");
        }
        if !(1..=dojo_records::suggestions::MAX_REVIEW_ROOMS).contains(&self.limit) {
            return Err("limit must be 1-500");
        }
        Ok(())
    }
}

/// One suggestion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    /// `failing`, `slow`, `unused` or `cheaper`.
    pub kind: &'static str,
    pub node: String,
    pub node_type: String,
    /// One sentence for the owner.
    pub message: String,
    /// For `cheaper`: the catalog node to try instead.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alternative: Option<String>,
}

/// What the runs say about one node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct NodeRecord {
    node_type: String,
    executions: u32,
    failures: u32,
    last_error: Option<String>,
    durations_ms: Vec<i64>,
}

/// The findings for `graph` given its recent runs' `nodes` (newest run first).
pub fn review(
    catalog: &LoadedCatalog,
    graph: &CanvasGraph,
    nodes: &[RunNode],
    rules: &ReviewRules,
) -> Vec<Finding> {
    let mut records: BTreeMap<&str, NodeRecord> = BTreeMap::new();
    for node in nodes {
        let record = records.entry(node.node_id.as_str()).or_default();
        record.node_type.clone_from(&node.node_type);
        match node.state {
            RunNodeState::Succeeded => record.executions += 1,
            RunNodeState::Failed => {
                record.executions += 1;
                record.failures += 1;
                if record.last_error.is_none() {
                    record.last_error = node.error.as_deref().map(|e| e.chars().take(ERROR_CHARS).collect());
                }
            }
            _ => {}
        }
        if node.state == RunNodeState::Succeeded
            && let (Some(start), Some(end)) = (node.started_at, node.finished_at)
        {
            record.durations_ms.push(end.saturating_sub(start).max(0));
        }
    }
    let in_graph: BTreeSet<&str> = graph.nodes.iter().map(|n| n.id.as_str()).collect();
    let mut found = Vec::new();
    for (id, record) in records.iter().filter(|(id, _)| in_graph.contains(*id)) {
        if record.failures >= rules.min_failures && record.failures * 2 >= record.executions {
            let reason = record.last_error.as_deref().unwrap_or("no reason given");
            found.push(Finding {
                kind: "failing",
                node: (*id).to_owned(),
                node_type: record.node_type.clone(),
                message: format!(
                    "\"{id}\" failed {} of its last {} runs; the last time: {reason}",
                    record.failures, record.executions
                ),
                alternative: None,
            });
        }
        if record.durations_ms.len() >= 2 {
            let mean = record.durations_ms.iter().sum::<i64>()
                / i64::try_from(record.durations_ms.len()).unwrap_or(1);
            if mean >= i64::from(rules.slow_secs) * 1000 {
                found.push(Finding {
                    kind: "slow",
                    node: (*id).to_owned(),
                    node_type: record.node_type.clone(),
                    message: format!("\"{id}\" takes {} s on average", mean / 1000),
                    alternative: None,
                });
            }
        }
    }
    found.extend(unused(catalog, graph));
    found.extend(cheaper(catalog, graph));
    found.truncate(MAX_FINDINGS);
    found
}

/// Source nodes (a type with no inputs: a prompt, an image input) wired to nothing: whatever
/// they hold goes nowhere.
fn unused(catalog: &LoadedCatalog, graph: &CanvasGraph) -> Vec<Finding> {
    let feeding: BTreeSet<&str> = graph.edges.iter().map(|e| e.source.as_str()).collect();
    graph
        .nodes
        .iter()
        .filter(|node| !feeding.contains(node.id.as_str()))
        .filter(|node| catalog.get(&node.node_type).is_some_and(|t| t.inputs.is_empty()))
        .map(|node| Finding {
            kind: "unused",
            node: node.id.clone(),
            node_type: node.node_type.clone(),
            message: format!("\"{}\" is not wired to anything: connect it or remove it", node.id),
            alternative: None,
        })
        .collect()
}

/// Provider nodes for which the catalog has a provider node of the same category with the same
/// input and output types that costs less: the cheapest such is suggested.
fn cheaper(catalog: &LoadedCatalog, graph: &CanvasGraph) -> Vec<Finding> {
    let signature = |t: &dojo_executor::catalog::NodeType| {
        let mut inputs: Vec<String> = t.inputs.iter().map(|p| format!("{:?}", p.port_type)).collect();
        let mut outputs: Vec<String> = t.outputs.iter().map(|p| format!("{:?}", p.port_type)).collect();
        inputs.sort();
        outputs.sort();
        (t.category, inputs, outputs)
    };
    let mut found = Vec::new();
    let mut seen_types = BTreeSet::new();
    for node in &graph.nodes {
        let Some(used) = catalog.get(&node.node_type).filter(|t| !t.is_builtin()) else { continue };
        let key = signature(used);
        let best = catalog
            .nodes()
            .iter()
            .filter(|other| !other.is_builtin() && other.cost < used.cost && signature(other) == key)
            .min_by_key(|other| (other.cost, other.id.clone()));
        if let Some(best) = best
            && seen_types.insert((node.id.clone(), best.id.clone()))
        {
            found.push(Finding {
                kind: "cheaper",
                node: node.id.clone(),
                node_type: node.node_type.clone(),
                message: format!(
                    "\"{}\" uses {} ({} credits); {} takes the same inputs for {} credits",
                    node.id, used.name, used.cost, best.name, best.cost
                ),
                alternative: Some(best.id.clone()),
            });
        }
    }
    found
}

/// The deterministic summary of `findings` (when no language model writes one).
pub fn template_summary(title: &str, findings: &[Finding]) -> String {
    if findings.is_empty() {
        return String::new();
    }
    let mut text = format!("{} suggestion(s) for \"{title}\":", findings.len());
    for finding in findings {
        text.push_str("\n- ");
        text.push_str(&finding.message);
    }
    text
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use dojo_ids::{NodeId, RunId};
    use dojo_records::HoldState;
    use dojo_sync_protocol::canvas::{CanvasEdge, CanvasNode, Position};

    use super::*;

    fn node(id: &str, node_type: &str) -> CanvasNode {
        CanvasNode {
            id: id.into(),
            node_type: node_type.into(),
            position: Position { x: 0.0, y: 0.0 },
            data: BTreeMap::new(),
        }
    }

    fn wire(source: &str, target: &str) -> CanvasEdge {
        CanvasEdge {
            id: format!("{source}-{target}"),
            source: source.into(),
            source_handle: None,
            target: target.into(),
            target_handle: None,
        }
    }

    fn record(id: &str, node_type: &str, state: RunNodeState, ms: i64, error: Option<&str>) -> RunNode {
        RunNode {
            run_id: RunId::from("run_1"),
            node_id: NodeId::from(id),
            node_type: node_type.into(),
            state,
            cost: 0,
            charged: 0,
            hold_state: HoldState::None,
            params: "{}".into(),
            outputs: None,
            error: error.map(str::to_owned),
            started_at: Some(1_000),
            finished_at: Some(1_000 + ms),
        }
    }

    fn catalog() -> &'static LoadedCatalog {
        LoadedCatalog::builtin().expect("the built-in catalog loads")
    }

    #[test]
    fn a_node_failing_half_its_runs_is_named_with_its_last_error() {
        let graph = CanvasGraph {
            nodes: vec![node("p", "text-prompt"), node("f", "flux-schnell")],
            edges: vec![wire("p", "f")],
        };
        let runs = [
            record("f", "flux-schnell", RunNodeState::Failed, 10, Some("NSFW content detected")),
            record("f", "flux-schnell", RunNodeState::Failed, 10, Some("older")),
            record("f", "flux-schnell", RunNodeState::Succeeded, 10, None),
            record("f", "flux-schnell", RunNodeState::Succeeded, 10, None),
        ];
        let found = review(catalog(), &graph, &runs, &ReviewRules::default());
        let failing: Vec<&Finding> = found.iter().filter(|f| f.kind == "failing").collect();
        assert_eq!(failing.len(), 1, "{found:?}");
        assert!(failing[0].message.contains("failed 2 of its last 4") && failing[0].message.contains("NSFW"));
        // One failure in four is not "failing".
        let found =
            review(catalog(), &graph, &runs[1..], &ReviewRules { min_failures: 2, ..ReviewRules::default() });
        assert!(found.iter().all(|f| f.kind != "failing"), "{found:?}");
    }

    #[test]
    fn slow_nodes_need_two_samples_over_the_threshold() {
        let graph = CanvasGraph { nodes: vec![node("b", "blur")], edges: vec![] };
        let slow = [
            record("b", "blur", RunNodeState::Succeeded, 90_000, None),
            record("b", "blur", RunNodeState::Succeeded, 70_000, None),
        ];
        let found = review(catalog(), &graph, &slow, &ReviewRules::default());
        assert_eq!(found.iter().filter(|f| f.kind == "slow").count(), 1, "{found:?}");
        let found = review(catalog(), &graph, &slow[..1], &ReviewRules::default());
        assert!(found.iter().all(|f| f.kind != "slow"), "{found:?}");
    }

    #[test]
    fn a_prompt_wired_to_nothing_is_unused() {
        let graph = CanvasGraph {
            nodes: vec![node("p1", "text-prompt"), node("p2", "text-prompt"), node("img", "dev-image")],
            edges: vec![wire("p1", "img")],
        };
        let found = review(catalog(), &graph, &[], &ReviewRules::default());
        let unused: Vec<&str> =
            found.iter().filter(|f| f.kind == "unused").map(|f| f.node.as_str()).collect();
        assert_eq!(unused, ["p2"]);
    }

    #[test]
    fn an_expensive_model_gets_the_cheapest_equivalent() {
        let graph =
            CanvasGraph { nodes: vec![node("d", "dall-e-3"), node("s", "flux-schnell")], edges: vec![] };
        let found = review(catalog(), &graph, &[], &ReviewRules::default());
        let cheaper: Vec<(&str, Option<&str>)> = found
            .iter()
            .filter(|f| f.kind == "cheaper")
            .map(|f| (f.node.as_str(), f.alternative.as_deref()))
            .collect();
        // DALL-E 3 (text in, image out, 8 credits): flux-schnell does it for 1; flux-schnell
        // itself is already the cheapest.
        assert_eq!(cheaper, [("d", Some("flux-schnell"))]);
    }

    #[test]
    fn rules_out_of_range_are_refused() {
        assert!(ReviewRules::default().check().is_ok());
        assert!(ReviewRules { lookback_days: 0, ..ReviewRules::default() }.check().is_err());
        assert!(ReviewRules { limit: 501, ..ReviewRules::default() }.check().is_err());
    }

    #[test]
    fn the_summary_lists_every_finding() {
        let finding = Finding {
            kind: "unused",
            node: "p".into(),
            node_type: "text-prompt".into(),
            message: "m1".into(),
            alternative: None,
        };
        assert_eq!(
            template_summary("Fox", &[finding.clone(), finding]),
            "2 suggestion(s) for \"Fox\":\n- m1\n- m1"
        );
        assert_eq!(template_summary("Fox", &[]), "");
    }
}
