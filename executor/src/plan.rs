//! Execution planning: which nodes of a canvas run, and in what order.
//!
//! An edge `source → target` means the target consumes an output of the source, so the source
//! must finish first. A plan is a topological order of the nodes to run, grouped into levels so
//! that a worker can run every node of a level at once.
//!
//! Planning is deterministic (the same graph always gives the same plan, whatever order its
//! nodes and edges are listed in), so that a run can be re-planned after a restart and reported
//! consistently to every editor watching it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use dojo_sync_protocol::canvas::CanvasGraph;

/// The nodes to run, grouped into levels.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Every dependency of a node in `levels[i]` is in some `levels[j]` with `j < i`, and each
    /// node sits in the earliest level that allows. Within a level, nodes are sorted by id.
    pub levels: Vec<Vec<String>>,
}

impl Plan {
    /// All planned nodes, in an order that runs every node after its dependencies: the levels
    /// one after the other.
    pub fn order(&self) -> impl Iterator<Item = &str> {
        self.levels.iter().flatten().map(String::as_str)
    }
}

/// Which end of an edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EdgeEnd {
    Source,
    Target,
}

impl fmt::Display for EdgeEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EdgeEnd::Source => "source",
            EdgeEnd::Target => "target",
        })
    }
}

/// Why a graph cannot be planned. Each variant names what the editor has to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// An edge whose source or target node is not on the canvas.
    #[error("edge {edge_id} has a {end} node {node_id} that is not on the canvas")]
    DanglingEdge { edge_id: String, end: EdgeEnd, node_id: String },
    /// A requested target that is not on the canvas.
    #[error("target node {0} is not on the canvas")]
    UnknownTarget(String),
    /// Nodes that depend on each other in a loop, in edge direction, starting with the smallest
    /// id: `[a, b]` means `a → b → a`, a self-loop is `[a]`.
    #[error("the graph has a cycle: {} → {}", .nodes.join(" → "), .nodes.first().map_or("", String::as_str))]
    Cycle { nodes: Vec<String> },
}

/// Plans a run of `graph`: all of it when `targets` is `None`; otherwise the targets and every
/// node they depend on, directly or transitively (an empty target list plans nothing).
///
/// Every edge must connect two existing nodes, even one outside the planned part: a dangling
/// edge means the document is inconsistent (typically a connection made concurrently with the
/// deletion of one of its nodes), and running a graph that may have been misread is worse than
/// asking for it to be fixed. A cycle, on the other hand, is only an error when the planned part
/// contains it, because only then is there no valid order.
pub fn plan(graph: &CanvasGraph, targets: Option<&[&str]>) -> Result<Plan, PlanError> {
    let deps = dependencies(graph)?;
    let planned = match targets {
        None => deps.keys().copied().collect(),
        Some(targets) => upstream_closure(&deps, targets)?,
    };
    levels(&deps, &planned)
}

/// Node id → ids of the nodes it consumes from. A pair joined by several edges (different
/// handles) is one dependency.
type Dependencies<'g> = BTreeMap<&'g str, BTreeSet<&'g str>>;

fn dependencies(graph: &CanvasGraph) -> Result<Dependencies<'_>, PlanError> {
    let mut deps: Dependencies = graph.nodes.iter().map(|n| (n.id.as_str(), BTreeSet::new())).collect();
    let mut edges: Vec<_> = graph.edges.iter().collect();
    // Sorted so that, of several dangling edges, the same one is always reported.
    edges.sort_by(|a, b| a.id.cmp(&b.id));
    for edge in edges {
        for (end, node_id) in [(EdgeEnd::Source, &edge.source), (EdgeEnd::Target, &edge.target)] {
            if !deps.contains_key(node_id.as_str()) {
                return Err(PlanError::DanglingEdge {
                    edge_id: edge.id.clone(),
                    end,
                    node_id: node_id.clone(),
                });
            }
        }
        deps.get_mut(edge.target.as_str()).expect("checked above").insert(edge.source.as_str());
    }
    Ok(deps)
}

fn upstream_closure<'g>(deps: &Dependencies<'g>, targets: &[&str]) -> Result<BTreeSet<&'g str>, PlanError> {
    let mut stack = Vec::with_capacity(targets.len());
    for &target in targets {
        let (&id, _) =
            deps.get_key_value(target).ok_or_else(|| PlanError::UnknownTarget(target.to_owned()))?;
        stack.push(id);
    }
    let mut planned = BTreeSet::new();
    while let Some(id) = stack.pop() {
        if planned.insert(id) {
            stack.extend(&deps[id]);
        }
    }
    Ok(planned)
}

/// Kahn's algorithm, one round per level: a round takes every node whose dependencies have all
/// been taken, in id order. Nodes never taken are stuck behind a cycle.
///
/// `planned` must be closed under dependencies (it is: either every node, or an upstream closure).
fn levels(deps: &Dependencies<'_>, planned: &BTreeSet<&str>) -> Result<Plan, PlanError> {
    let mut unmet: BTreeMap<&str, usize> = planned.iter().map(|&id| (id, deps[id].len())).collect();
    let mut dependents: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for &id in planned {
        for &dep in &deps[id] {
            dependents.entry(dep).or_default().push(id);
        }
    }

    let mut ready: Vec<&str> = unmet.iter().filter(|&(_, &n)| n == 0).map(|(&id, _)| id).collect();
    let mut levels = Vec::new();
    while !ready.is_empty() {
        let mut next = Vec::new();
        for id in &ready {
            for &dependent in dependents.get(id).into_iter().flatten() {
                let count = unmet.get_mut(dependent).expect("dependents are planned");
                *count -= 1;
                if *count == 0 {
                    next.push(dependent);
                }
            }
        }
        next.sort_unstable();
        levels.push(ready.iter().map(|&id| id.to_owned()).collect());
        ready = next;
    }

    let stuck: BTreeSet<&str> = unmet.into_iter().filter(|&(_, n)| n > 0).map(|(id, _)| id).collect();
    if stuck.is_empty() {
        Ok(Plan { levels })
    } else {
        Err(PlanError::Cycle { nodes: find_cycle(deps, &stuck) })
    }
}

/// Finds one cycle among the nodes Kahn's algorithm could not take.
///
/// Each stuck node waits on at least one other stuck node, so walking from any of them to a stuck
/// dependency must eventually revisit a node; the revisited stretch is a cycle. Always starting
/// from the smallest id and stepping to the smallest stuck dependency keeps the report stable.
fn find_cycle(deps: &Dependencies<'_>, stuck: &BTreeSet<&str>) -> Vec<String> {
    let mut walk: Vec<&str> = Vec::new();
    let mut position: BTreeMap<&str, usize> = BTreeMap::new();
    let mut current = *stuck.first().expect("called with stuck nodes");
    let start = loop {
        if let Some(&start) = position.get(current) {
            break start;
        }
        position.insert(current, walk.len());
        walk.push(current);
        current =
            deps[current].iter().copied().find(|dep| stuck.contains(dep)).expect("a stuck node waits on one");
    };
    // The walk went from consumers to producers: reverse it into edge direction.
    let mut cycle: Vec<String> = walk[start..].iter().rev().map(|&id| id.to_owned()).collect();
    let smallest = cycle.iter().enumerate().min_by(|a, b| a.1.cmp(b.1)).map_or(0, |(i, _)| i);
    cycle.rotate_left(smallest);
    cycle
}

#[cfg(test)]
mod tests {
    use super::*;
    use dojo_sync_protocol::canvas::{CanvasEdge, CanvasNode, Position};

    fn graph(nodes: &[&str], edges: &[(&str, &str)]) -> CanvasGraph {
        CanvasGraph {
            nodes: nodes
                .iter()
                .map(|&id| CanvasNode {
                    id: id.into(),
                    node_type: "tool".into(),
                    position: Position { x: 0.0, y: 0.0 },
                    data: Default::default(),
                })
                .collect(),
            edges: edges
                .iter()
                .map(|&(source, target)| CanvasEdge {
                    id: format!("{source}-{target}"),
                    source: source.into(),
                    source_handle: None,
                    target: target.into(),
                    target_handle: None,
                })
                .collect(),
        }
    }

    fn levels(plan: &Plan) -> Vec<Vec<&str>> {
        plan.levels.iter().map(|level| level.iter().map(String::as_str).collect()).collect()
    }

    /// The plan's defining property, checked on every successful plan below.
    fn assert_dependencies_come_first(graph: &CanvasGraph, plan: &Plan) {
        let level_of: BTreeMap<&str, usize> = plan
            .levels
            .iter()
            .enumerate()
            .flat_map(|(i, l)| l.iter().map(move |id| (id.as_str(), i)))
            .collect();
        assert_eq!(level_of.len(), plan.order().count(), "no node is planned twice");
        for edge in &graph.edges {
            if let Some(&target_level) = level_of.get(edge.target.as_str()) {
                let source_level = level_of.get(edge.source.as_str()).expect("dependencies are planned");
                assert!(*source_level < target_level, "{} must run before {}", edge.source, edge.target);
            }
        }
    }

    fn planned(graph: &CanvasGraph, targets: Option<&[&str]>) -> Plan {
        let plan = plan(graph, targets).expect("plans");
        assert_dependencies_come_first(graph, &plan);
        plan
    }

    fn diamond() -> CanvasGraph {
        // prompt → (image, caption) → compose
        graph(
            &["compose", "caption", "image", "prompt"],
            &[("prompt", "image"), ("prompt", "caption"), ("image", "compose"), ("caption", "compose")],
        )
    }

    #[test]
    fn a_diamond_runs_its_middle_in_parallel() {
        let plan = planned(&diamond(), None);
        assert_eq!(levels(&plan), [vec!["prompt"], vec!["caption", "image"], vec!["compose"]]);
        assert_eq!(plan.order().collect::<Vec<_>>(), ["prompt", "caption", "image", "compose"]);
    }

    #[test]
    fn nodes_sit_in_the_earliest_level_their_dependencies_allow() {
        // a → b → c, and a → c directly: c still waits for b.
        let plan = planned(&graph(&["a", "b", "c"], &[("a", "b"), ("b", "c"), ("a", "c")]), None);
        assert_eq!(levels(&plan), [vec!["a"], vec!["b"], vec!["c"]]);
    }

    #[test]
    fn disconnected_components_share_levels() {
        let g = graph(&["a", "b", "lonely", "x", "y", "z"], &[("a", "b"), ("x", "y"), ("y", "z")]);
        let plan = planned(&g, None);
        assert_eq!(levels(&plan), [vec!["a", "lonely", "x"], vec!["b", "y"], vec!["z"]]);
    }

    #[test]
    fn an_empty_graph_is_an_empty_plan() {
        assert_eq!(planned(&CanvasGraph::default(), None), Plan::default());
    }

    #[test]
    fn targets_bring_only_what_they_depend_on() {
        let g = diamond();
        assert_eq!(levels(&planned(&g, Some(&["image"]))), [vec!["prompt"], vec!["image"]]);
        assert_eq!(levels(&planned(&g, Some(&["prompt"]))), [vec!["prompt"]]);
        assert_eq!(planned(&g, Some(&["compose"])), planned(&g, None));
        assert_eq!(
            levels(&planned(&g, Some(&["caption", "image", "caption"]))),
            [vec!["prompt"], vec!["caption", "image"]]
        );
        assert_eq!(planned(&g, Some(&[])), Plan::default());
    }

    #[test]
    fn targets_ignore_other_components() {
        let g = graph(&["a", "b", "x", "y"], &[("a", "b"), ("x", "y")]);
        assert_eq!(levels(&planned(&g, Some(&["y"]))), [vec!["x"], vec!["y"]]);
    }

    #[test]
    fn an_unknown_target_is_reported() {
        assert_eq!(
            plan(&diamond(), Some(&["image", "ghost"])),
            Err(PlanError::UnknownTarget("ghost".into()))
        );
    }

    #[test]
    fn dangling_edges_are_reported_with_the_missing_end() {
        let missing_source = graph(&["b"], &[("gone", "b")]);
        assert_eq!(
            plan(&missing_source, None),
            Err(PlanError::DanglingEdge {
                edge_id: "gone-b".into(),
                end: EdgeEnd::Source,
                node_id: "gone".into()
            })
        );
        let missing_target = graph(&["a"], &[("a", "gone")]);
        let err = plan(&missing_target, None).unwrap_err();
        assert_eq!(
            err,
            PlanError::DanglingEdge {
                edge_id: "a-gone".into(),
                end: EdgeEnd::Target,
                node_id: "gone".into()
            }
        );
        assert_eq!(err.to_string(), "edge a-gone has a target node gone that is not on the canvas");
        // Even when the edge is outside the part being planned.
        let elsewhere = graph(&["a", "b"], &[("a", "b"), ("b", "gone")]);
        assert!(matches!(plan(&elsewhere, Some(&["a"])), Err(PlanError::DanglingEdge { .. })));
    }

    #[test]
    fn a_self_loop_is_a_cycle_of_one() {
        let err = plan(&graph(&["a", "b"], &[("a", "a"), ("a", "b")]), None).unwrap_err();
        assert_eq!(err, PlanError::Cycle { nodes: vec!["a".into()] });
        assert_eq!(err.to_string(), "the graph has a cycle: a → a");
    }

    #[test]
    fn a_cycle_is_reported_in_edge_direction_without_its_neighbours() {
        // start → b → c → d → b, and d → end: only b, c, d are on the cycle.
        let g = graph(
            &["b", "c", "d", "end", "start"],
            &[("start", "b"), ("b", "c"), ("c", "d"), ("d", "b"), ("d", "end")],
        );
        let err = plan(&g, None).unwrap_err();
        assert_eq!(err, PlanError::Cycle { nodes: vec!["b".into(), "c".into(), "d".into()] });
        assert_eq!(err.to_string(), "the graph has a cycle: b → c → d → b");
        // Targets upstream of the cycle, or beside it, still plan.
        assert_eq!(levels(&planned(&g, Some(&["start"]))), [vec!["start"]]);
        // A target downstream of it does not.
        assert!(matches!(plan(&g, Some(&["end"])), Err(PlanError::Cycle { .. })));
    }

    #[test]
    fn parallel_edges_between_two_nodes_are_one_dependency() {
        let mut g = graph(&["a", "b"], &[("a", "b")]);
        let mut second = g.edges[0].clone();
        second.id = "a-b-mask".into();
        second.source_handle = Some("mask".into());
        g.edges.push(second);
        assert_eq!(levels(&planned(&g, None)), [vec!["a"], vec!["b"]]);
    }

    #[test]
    fn the_plan_does_not_depend_on_listing_order() {
        let g = graph(
            &["a", "b", "c", "d", "e", "f", "g"],
            &[("a", "d"), ("b", "d"), ("c", "e"), ("d", "f"), ("e", "f"), ("g", "f")],
        );
        let expected = planned(&g, None);
        assert_eq!(levels(&expected), [vec!["a", "b", "c", "g"], vec!["d", "e"], vec!["f"]]);
        for shift in 0..g.nodes.len() {
            let mut shuffled = g.clone();
            shuffled.nodes.rotate_left(shift);
            shuffled.nodes.reverse();
            shuffled.edges.rotate_left(shift % g.edges.len());
            assert_eq!(planned(&shuffled, None), expected);
            assert_eq!(planned(&shuffled, Some(&["f"])), expected);
        }
        // Errors too: with two dangling edges, the same one is always reported.
        let mut broken = graph(&["a"], &[("a", "x"), ("a", "y")]);
        let first = plan(&broken, None);
        broken.edges.reverse();
        assert_eq!(plan(&broken, None), first);
        assert!(matches!(first, Err(PlanError::DanglingEdge { node_id, .. }) if node_id == "x"));
    }
}
