//! Validation of a run before anything executes (or any credit moves).
//!
//! Modelled on ComfyUI's `node_errors`: every problem is reported at once, keyed by the node the
//! editor should highlight, each with a machine-readable type and a readable message. Only the
//! part of the graph that would run is checked (the targets and their ancestors), so a broken
//! node elsewhere on the canvas does not block a partial run.
//!
//! What passes becomes an [`ExecutionPlan`]: the levels from [`crate::plan`], and per node its
//! resolved parameters (defaults filled in, values canonicalised) and which output feeds each
//! input. The engine needs nothing else from the canvas.

use std::collections::{BTreeMap, BTreeSet};

use dojo_ids::NodeId;
use dojo_sync_protocol::canvas::{CanvasEdge, CanvasGraph};
use serde::Serialize;
use serde_json::Value;

use crate::availability::Availability;
use crate::catalog::{LoadedCatalog, NodeType, ValueProblem, check_value};
use crate::plan::{PlanError, plan};

/// Bounds on what one run may contain: graphs come from users.
#[derive(Debug, Clone, Copy)]
pub struct GraphLimits {
    pub max_nodes: usize,
    pub max_edges: usize,
}

impl Default for GraphLimits {
    fn default() -> Self {
        Self { max_nodes: 500, max_edges: 2_000 }
    }
}

/// ComfyUI-style error types (snake_case on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IssueType {
    // Per node.
    UnknownNodeType,
    RequiredInputMissing,
    RequiredParamMissing,
    UnknownHandle,
    AmbiguousHandle,
    TypeMismatch,
    MultipleLinks,
    DanglingEdge,
    Cycle,
    ValueWrongType,
    ValueOutOfRange,
    ValueNotInList,
    ValueTooLong,
    /// The node's provider has no key on this server: it cannot run here.
    ProviderUnavailable,
    // Whole graph.
    TooManyNodes,
    TooManyEdges,
    DuplicateNodeId,
    UnknownTarget,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Issue {
    #[serde(rename = "type")]
    pub issue_type: IssueType,
    pub message: String,
    /// The handle, parameter or edge concerned, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<String>,
}

/// The errors of one node, as ComfyUI reports them (with the API's camelCase keys).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeErrors {
    /// The node's type, as on the canvas.
    pub class_type: String,
    pub errors: Vec<Issue>,
}

/// Why a run was refused: problems with the graph as a whole, and problems per node.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, thiserror::Error)]
#[serde(rename_all = "camelCase")]
#[error("the run is invalid: {} graph error(s), {} node(s) with errors", .errors.len(), .node_errors.len())]
pub struct ValidationErrors {
    pub errors: Vec<Issue>,
    pub node_errors: BTreeMap<NodeId, NodeErrors>,
}

impl ValidationErrors {
    pub fn is_empty(&self) -> bool {
        self.errors.is_empty() && self.node_errors.is_empty()
    }

    /// The error types reported for `node`, in order (handy in tests and logs).
    pub fn types_for(&self, node: &str) -> Vec<IssueType> {
        self.node_errors.get(node).map_or_else(Vec::new, |n| n.errors.iter().map(|e| e.issue_type).collect())
    }

    fn node(&mut self, graph: &CanvasGraph, node_id: &str, issue: Issue) {
        let class_type =
            graph.nodes.iter().find(|n| n.id == node_id).map_or_else(String::new, |n| n.node_type.clone());
        self.node_errors
            .entry(NodeId::from(node_id))
            .or_insert_with(|| NodeErrors { class_type, errors: Vec::new() })
            .errors
            .push(issue);
    }
}

fn issue(issue_type: IssueType, message: impl Into<String>, details: Option<&str>) -> Issue {
    Issue { issue_type, message: message.into(), details: details.map(str::to_owned) }
}

/// Where an input's value comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InputLink {
    pub source: NodeId,
    pub output: String,
}

/// One node ready to run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlannedNode {
    pub id: NodeId,
    pub node_type: String,
    /// Every catalog parameter, defaults filled in, in canonical form. Keys in the node's
    /// `data` that the catalog does not know (editor state such as labels) are left out.
    pub params: BTreeMap<String, Value>,
    /// Wired inputs: input name → producing node and output.
    pub inputs: BTreeMap<String, InputLink>,
}

/// A validated run: what executes, in which order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExecutionPlan {
    /// As in [`crate::plan::Plan`]: every node after its dependencies, levels run in parallel.
    pub levels: Vec<Vec<NodeId>>,
    pub nodes: BTreeMap<NodeId, PlannedNode>,
}

impl ExecutionPlan {
    pub fn order(&self) -> impl Iterator<Item = &PlannedNode> {
        self.levels.iter().flatten().filter_map(|id| self.nodes.get(id))
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }
}

/// Validates the part of `graph` that a run of `targets` (all nodes when `None`) executes, and
/// plans it.
pub fn validate(
    catalog: &LoadedCatalog,
    graph: &CanvasGraph,
    targets: Option<&[&str]>,
    limits: &GraphLimits,
) -> Result<ExecutionPlan, ValidationErrors> {
    validate_runnable(catalog, &Availability::all(), graph, targets, limits)
}

/// [`validate`], and every node that would run must be one this process can run
/// (`provider_unavailable` otherwise): what the server checks before it holds any credit.
pub fn validate_runnable(
    catalog: &LoadedCatalog,
    availability: &Availability,
    graph: &CanvasGraph,
    targets: Option<&[&str]>,
    limits: &GraphLimits,
) -> Result<ExecutionPlan, ValidationErrors> {
    let mut errs = ValidationErrors::default();
    if graph.nodes.len() > limits.max_nodes {
        errs.errors.push(issue(
            IssueType::TooManyNodes,
            format!("the graph has {} nodes; at most {} can run", graph.nodes.len(), limits.max_nodes),
            None,
        ));
    }
    if graph.edges.len() > limits.max_edges {
        errs.errors.push(issue(
            IssueType::TooManyEdges,
            format!("the graph has {} edges; at most {} can run", graph.edges.len(), limits.max_edges),
            None,
        ));
    }
    if !errs.is_empty() {
        // Nothing more is examined: the bound exists so a huge graph costs little to refuse.
        return Err(errs);
    }

    let mut ids = BTreeSet::new();
    for node in &graph.nodes {
        if !ids.insert(node.id.as_str()) {
            errs.errors.push(issue(
                IssueType::DuplicateNodeId,
                format!("node id {} is used twice", node.id),
                Some(&node.id),
            ));
        }
    }

    let mut edges: Vec<&CanvasEdge> = graph.edges.iter().collect();
    edges.sort_by(|a, b| a.id.cmp(&b.id));
    let valid_edge = |e: &CanvasEdge| ids.contains(e.source.as_str()) && ids.contains(e.target.as_str());

    // The nodes that run: the targets and everything upstream of them.
    let selected: BTreeSet<&str> = match targets {
        None => ids.clone(),
        Some(targets) => {
            let mut stack = Vec::new();
            for &t in targets {
                match ids.get(t) {
                    Some(&id) => stack.push(id),
                    None => errs.errors.push(issue(
                        IssueType::UnknownTarget,
                        format!("target node {t} is not on the canvas"),
                        Some(t),
                    )),
                }
            }
            let mut upstream: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
            for e in edges.iter().filter(|e| valid_edge(e)) {
                upstream.entry(e.target.as_str()).or_default().push(e.source.as_str());
            }
            let mut selected = BTreeSet::new();
            while let Some(id) = stack.pop() {
                if selected.insert(id) {
                    stack.extend(upstream.get(id).into_iter().flatten());
                }
            }
            selected
        }
    };

    // Types and parameters.
    let mut planned: BTreeMap<&str, PlannedNode> = BTreeMap::new();
    let mut types: BTreeMap<&str, &NodeType> = BTreeMap::new();
    for node in graph.nodes.iter().filter(|n| selected.contains(n.id.as_str())) {
        let Some(node_type) = catalog.get(&node.node_type) else {
            errs.node(
                graph,
                &node.id,
                issue(
                    IssueType::UnknownNodeType,
                    format!("node type {:?} is not in the catalog", node.node_type),
                    Some(&node.node_type),
                ),
            );
            continue;
        };
        types.insert(&node.id, node_type);
        if let Some(reason) = availability.unavailable_reason(node_type) {
            errs.node(graph, &node.id, issue(IssueType::ProviderUnavailable, reason, Some(&node.node_type)));
        }
        let mut params = BTreeMap::new();
        for param in &node_type.params {
            let given = node.data.get(&param.name).filter(|v| !v.is_null());
            let Some(value) = given.or(param.default.as_ref()) else {
                errs.node(
                    graph,
                    &node.id,
                    issue(
                        IssueType::RequiredParamMissing,
                        format!("parameter {} is required", param.name),
                        Some(&param.name),
                    ),
                );
                continue;
            };
            match check_value(param, value, true) {
                Ok(value) => {
                    params.insert(param.name.clone(), value);
                }
                Err(problem) => {
                    let issue_type = match &problem {
                        ValueProblem::WrongType(_) => IssueType::ValueWrongType,
                        ValueProblem::OutOfRange(_) => IssueType::ValueOutOfRange,
                        ValueProblem::NotInList(_) => IssueType::ValueNotInList,
                        ValueProblem::TooLong(_) => IssueType::ValueTooLong,
                    };
                    let message = format!("parameter {}: {problem}", param.name);
                    errs.node(graph, &node.id, issue(issue_type, message, Some(&param.name)));
                }
            }
        }
        planned.insert(
            &node.id,
            PlannedNode {
                id: NodeId::from(node.id.as_str()),
                node_type: node.node_type.clone(),
                params,
                inputs: BTreeMap::new(),
            },
        );
    }

    // Edges into (or out of) the selected nodes.
    for edge in &edges {
        let source_known = ids.contains(edge.source.as_str());
        let target_known = ids.contains(edge.target.as_str());
        match (source_known, target_known) {
            (true, true) => {}
            (false, true) if selected.contains(edge.target.as_str()) => {
                errs.node(
                    graph,
                    &edge.target,
                    issue(
                        IssueType::DanglingEdge,
                        format!(
                            "edge {} comes from node {}, which is not on the canvas",
                            edge.id, edge.source
                        ),
                        Some(&edge.id),
                    ),
                );
                continue;
            }
            (true, false) if selected.contains(edge.source.as_str()) => {
                errs.node(
                    graph,
                    &edge.source,
                    issue(
                        IssueType::DanglingEdge,
                        format!("edge {} goes to node {}, which is not on the canvas", edge.id, edge.target),
                        Some(&edge.id),
                    ),
                );
                continue;
            }
            _ => continue,
        }
        if !selected.contains(edge.target.as_str()) {
            continue;
        }
        // Both ends are known here; their types may not be (reported above).
        let (Some(source_type), Some(target_type)) =
            (types.get(edge.source.as_str()), types.get(edge.target.as_str()))
        else {
            continue;
        };
        let mut report = |t, m: String, d: &str| errs.node(graph, &edge.target, issue(t, m, Some(d)));
        let output = match resolve_handle(edge.source_handle.as_deref(), &source_type.outputs) {
            Ok(port) => port,
            Err(problem) => {
                let (t, m) = problem.describe("output", &edge.source, source_type);
                report(t, format!("edge {}: {m}", edge.id), &edge.id);
                continue;
            }
        };
        let input = match resolve_handle(edge.target_handle.as_deref(), &target_type.inputs) {
            Ok(port) => port,
            Err(problem) => {
                let (t, m) = problem.describe("input", &edge.target, target_type);
                report(t, format!("edge {}: {m}", edge.id), &edge.id);
                continue;
            }
        };
        if !output.port_type.fits(input.port_type) {
            report(
                IssueType::TypeMismatch,
                format!(
                    "input {} takes {}, but edge {} brings {} from output {} of {}",
                    input.name, input.port_type, edge.id, output.port_type, output.name, edge.source
                ),
                &input.name,
            );
            continue;
        }
        let Some(node) = planned.get_mut(edge.target.as_str()) else { continue };
        if node.inputs.contains_key(&input.name) {
            report(
                IssueType::MultipleLinks,
                format!("input {} is wired more than once (edge {} is extra)", input.name, edge.id),
                &input.name,
            );
            continue;
        }
        node.inputs.insert(
            input.name.clone(),
            InputLink { source: NodeId::from(edge.source.as_str()), output: output.name.clone() },
        );
    }

    for (id, node) in &planned {
        let Some(node_type) = types.get(id) else { continue };
        for input in node_type.inputs.iter().filter(|i| i.required) {
            // An input that has an error on its edge is already reported.
            let reported = errs
                .node_errors
                .get(*id)
                .is_some_and(|n| n.errors.iter().any(|e| e.details.as_deref() == Some(input.name.as_str())));
            if !node.inputs.contains_key(&input.name) && !reported {
                errs.node(
                    graph,
                    id,
                    issue(
                        IssueType::RequiredInputMissing,
                        format!("input {} ({}) must be connected", input.name, input.port_type),
                        Some(&input.name),
                    ),
                );
            }
        }
    }

    // Order, and every cycle among the selected nodes.
    let mut sub = CanvasGraph {
        nodes: graph.nodes.iter().filter(|n| selected.contains(n.id.as_str())).cloned().collect(),
        edges: edges
            .iter()
            .filter(|e| valid_edge(e) && selected.contains(e.target.as_str()))
            .map(|e| (*e).clone())
            .collect(),
    };
    // Duplicate ids would confuse the planner; they are already reported.
    sub.nodes.dedup_by(|a, b| a.id == b.id);
    let mut levels = None;
    // Each round breaks the cycle it found, so this ends within edges + 1 rounds.
    for _ in 0..=sub.edges.len() {
        match plan(&sub, None) {
            Ok(p) => {
                levels = Some(p.levels);
                break;
            }
            Err(PlanError::Cycle { nodes }) => {
                let path = format!("{} → {}", nodes.join(" → "), nodes.first().map_or("", String::as_str));
                for id in &nodes {
                    errs.node(
                        graph,
                        id,
                        issue(IssueType::Cycle, format!("node is part of a cycle: {path}"), None),
                    );
                }
                let on_cycle: BTreeSet<(&str, &str)> = nodes
                    .iter()
                    .zip(nodes.iter().cycle().skip(1))
                    .map(|(a, b)| (a.as_str(), b.as_str()))
                    .collect();
                sub.edges.retain(|e| !on_cycle.contains(&(e.source.as_str(), e.target.as_str())));
            }
            // Not reachable: dangling edges and unknown targets were filtered out above.
            Err(other) => {
                errs.errors.push(issue(IssueType::DanglingEdge, other.to_string(), None));
                break;
            }
        }
    }

    if !errs.is_empty() {
        return Err(errs);
    }
    // The canvas's ids (strings in the document) become node ids here, where the plan leaves it.
    let levels = levels
        .unwrap_or_default()
        .into_iter()
        .map(|level| level.into_iter().map(NodeId::from).collect())
        .collect();
    let nodes = planned.into_values().map(|n| (n.id.clone(), n)).collect();
    Ok(ExecutionPlan { levels, nodes })
}

enum HandleProblem {
    Unknown(String),
    Ambiguous,
}

impl HandleProblem {
    fn describe(&self, what: &str, node: &str, node_type: &NodeType) -> (IssueType, String) {
        let ports = if what == "output" { &node_type.outputs } else { &node_type.inputs };
        let names: Vec<&str> = ports.iter().map(|p| p.name.as_str()).collect();
        match self {
            HandleProblem::Unknown(h) => (
                IssueType::UnknownHandle,
                format!(
                    "node {node} ({}) has no {what} {h:?}; it has: {}",
                    node_type.id,
                    if names.is_empty() { "none".to_owned() } else { names.join(", ") }
                ),
            ),
            HandleProblem::Ambiguous => (
                IssueType::AmbiguousHandle,
                format!("the edge names no {what} handle and node {node} has several: {}", names.join(", ")),
            ),
        }
    }
}

/// The port an edge end names; an edge without a handle means the node's only port.
fn resolve_handle<'c>(
    handle: Option<&str>,
    ports: &'c [crate::catalog::Port],
) -> Result<&'c crate::catalog::Port, HandleProblem> {
    match handle {
        Some(h) => ports.iter().find(|p| p.name == h).ok_or_else(|| HandleProblem::Unknown(h.to_owned())),
        None => match ports {
            [only] => Ok(only),
            [] => Err(HandleProblem::Unknown(String::new())),
            _ => Err(HandleProblem::Ambiguous),
        },
    }
}

#[cfg(test)]
mod tests;
