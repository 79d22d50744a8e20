//! Taking an edit back: the entries it touched as they were before and after, what changed
//! since, and the batch that restores the "before".
//!
//! Kept as before/after pairs rather than as a list of inverse operations because the pairs
//! also answer "did anyone change this since?", which decides whether an undo is safe.

use std::collections::BTreeSet;

use serde::Serialize;
use serde_json::Value;

use super::{EditOp, Planned};
use crate::canvas::{CanvasEdge, CanvasGraph, CanvasNode};

/// What an undo needs of one applied edit.
#[derive(Debug, Clone, PartialEq)]
pub struct Inverse {
    /// (id, before, after) of every node the edit touched.
    nodes: Vec<(String, Option<CanvasNode>, Option<CanvasNode>)>,
    /// (id, before, after) of every edge the edit touched, removed with a node included.
    edges: Vec<(String, Option<CanvasEdge>, Option<CanvasEdge>)>,
}

/// Something an edit touched that changed since, so that undoing it would lose that change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Conflict {
    /// `node` or `edge`.
    pub kind: &'static str,
    pub id: String,
    pub message: String,
}

impl Inverse {
    /// From the graph before the edit and the graph after it, both read back from the document
    /// (so that values compare exactly as a later read will see them).
    pub fn compute(before: &CanvasGraph, after: &CanvasGraph, planned: &Planned) -> Self {
        let node = |graph: &CanvasGraph, id: &str| graph.nodes.iter().find(|n| n.id == id).cloned();
        let edge = |graph: &CanvasGraph, id: &str| graph.edges.iter().find(|e| e.id == id).cloned();
        Self {
            nodes: planned
                .touched_nodes
                .iter()
                .map(|id| (id.clone(), node(before, id), node(after, id)))
                .filter(|(_, b, a)| b != a)
                .collect(),
            edges: planned
                .touched_edges
                .iter()
                .map(|id| (id.clone(), edge(before, id), edge(after, id)))
                .filter(|(_, b, a)| b != a)
                .collect(),
        }
    }

    /// Whether the edit changed nothing (an undo would do nothing either).
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty() && self.edges.is_empty()
    }

    /// Roughly how many bytes this holds: what a bounded history counts.
    pub fn weight(&self) -> usize {
        self.nodes.iter().map(|(id, b, a)| id.len() + weigh(b) + weigh(a)).sum::<usize>()
            + self.edges.iter().map(|(id, b, a)| id.len() + weigh(b) + weigh(a)).sum::<usize>()
    }

    /// What changed in `now` since the edit, among what it touched: each entry must still be as
    /// the edit left it, and a node the undo would remove must have gained no wire.
    pub fn conflicts(&self, now: &CanvasGraph) -> Vec<Conflict> {
        let mut conflicts = Vec::new();
        for (id, _, after) in &self.nodes {
            let current = now.nodes.iter().find(|n| n.id == *id);
            if current != after.as_ref() {
                let message = match (after, current) {
                    (Some(_), None) => format!("node {id:?} was removed since the edit"),
                    (None, Some(_)) => format!("node {id:?} was added again since the edit"),
                    _ => format!("node {id:?} was changed since the edit"),
                };
                conflicts.push(Conflict { kind: "node", id: id.clone(), message });
            }
        }
        // Edges the edit touched are checked below; each other edge is reported once.
        let mut known: BTreeSet<&str> = self.edges.iter().map(|(id, _, _)| id.as_str()).collect();
        for (id, before, after) in &self.nodes {
            if before.is_some() || after.is_none() {
                continue;
            }
            // The undo removes this node; a wire someone attached to it since would go too.
            for edge in now.edges.iter().filter(|e| e.source == *id || e.target == *id) {
                if known.insert(edge.id.as_str()) {
                    conflicts.push(Conflict {
                        kind: "edge",
                        id: edge.id.clone(),
                        message: format!("edge {:?} was wired to node {id:?} since the edit", edge.id),
                    });
                }
            }
        }
        for (id, _, after) in &self.edges {
            let current = now.edges.iter().find(|e| e.id == *id);
            if current != after.as_ref() {
                let message = match (after, current) {
                    (Some(_), None) => format!("edge {id:?} was removed since the edit"),
                    (None, Some(_)) => format!("edge {id:?} was added again since the edit"),
                    _ => format!("edge {id:?} was changed since the edit"),
                };
                conflicts.push(Conflict { kind: "edge", id: id.clone(), message });
            }
        }
        conflicts
    }

    /// The batch that makes every touched entry what it was before the edit (plan it with
    /// [`super::Unchecked`]: it restores values, it does not judge them). Wires go first and
    /// come back last, so no step depends on a node that is not there yet.
    pub fn ops(&self) -> Vec<EditOp> {
        let mut ops = Vec::new();
        for (id, before, after) in &self.edges {
            if after.is_some() && before != after {
                ops.push(EditOp::Disconnect { edge: id.clone() });
            }
        }
        // A node whose type differs (removed, then added again under its id) is replaced whole.
        let replaced = |b: &Option<CanvasNode>, a: &Option<CanvasNode>| matches!((b, a), (Some(b), Some(a)) if b.node_type != a.node_type);
        for (id, before, after) in &self.nodes {
            if after.is_some() && (before.is_none() || replaced(before, after)) {
                ops.push(EditOp::RemoveNode { node: id.clone() });
            }
        }
        for (id, before, after) in &self.nodes {
            match (before, after) {
                (Some(b), a) if a.is_none() || replaced(before, after) => ops.push(EditOp::AddNode {
                    id: Some(id.clone()),
                    node_type: b.node_type.clone(),
                    position: b.position,
                    params: b.data.clone(),
                }),
                (Some(b), Some(a)) => {
                    if b.position != a.position {
                        ops.push(EditOp::Move { node: id.clone(), position: b.position });
                    }
                    let names: BTreeSet<&String> = b.data.keys().chain(a.data.keys()).collect();
                    for name in names {
                        let (was, is) = (b.data.get(name), a.data.get(name));
                        if was != is {
                            ops.push(EditOp::SetParam {
                                node: id.clone(),
                                name: name.clone(),
                                value: was.cloned().unwrap_or(Value::Null),
                            });
                        }
                    }
                }
                _ => {}
            }
        }
        for (_, before, after) in &self.edges {
            if let Some(b) = before
                && before != after
            {
                ops.push(EditOp::Connect {
                    id: Some(b.id.clone()),
                    source: b.source.clone(),
                    source_handle: b.source_handle.clone(),
                    target: b.target.clone(),
                    target_handle: b.target_handle.clone(),
                });
            }
        }
        ops
    }
}

/// The JSON size of an optional entry, for [`Inverse::weight`].
fn weigh<T: Serialize>(entry: &Option<T>) -> usize {
    entry.as_ref().and_then(|v| serde_json::to_vec(v).ok()).map_or(0, |v| v.len())
}
