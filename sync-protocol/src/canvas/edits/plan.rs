//! Checking a batch against the graph it changes: each operation is tried on a working copy
//! of the graph in order, so a later operation sees what earlier ones did (a node added, then
//! wired), and a refused one changes nothing in the copy.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde_json::Value;

use super::{EditLimits, EditOp, EditRules, OpError, WireEnds, valid_id, value_depth};
use crate::canvas::{CanvasEdge, CanvasGraph, CanvasNode, Position};

/// One write into the document, in the order [`super::apply_steps`] makes them.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    PutNode(CanvasNode),
    /// `None` removes the parameter.
    SetParam {
        node: String,
        name: String,
        value: Option<Value>,
    },
    Move {
        node: String,
        position: Position,
    },
    /// The node, the wires attached to it and its result.
    RemoveNode(String),
    PutEdge(CanvasEdge),
    RemoveEdge(String),
}

/// Ids the batch created, in the order of its operations.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Created {
    pub nodes: Vec<String>,
    pub edges: Vec<String>,
}

/// A batch that passed: what to write, what it creates, and what it touches (for the undo).
#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    pub steps: Vec<Step>,
    pub created: Created,
    pub touched_nodes: BTreeSet<String>,
    pub touched_edges: BTreeSet<String>,
}

/// Checks `ops` against `graph`, `rules` and `limits`. Every refused operation is reported (by
/// index), not only the first; nothing is planned unless all pass. `new_id(prefix)` makes an
/// id for a node (`"n"`) or edge (`"e"`) the batch did not name; a clash with an existing id
/// asks again, a few times.
pub fn plan(
    graph: &CanvasGraph,
    ops: &[EditOp],
    rules: &dyn EditRules,
    limits: &EditLimits,
    new_id: &mut dyn FnMut(&str) -> String,
) -> Result<Planned, Vec<OpError>> {
    if ops.is_empty() {
        return Err(vec![OpError { index: 0, message: "the batch has no operations".into() }]);
    }
    if ops.len() > limits.max_ops {
        return Err(vec![OpError {
            index: limits.max_ops,
            message: format!("{} operations; at most {} per batch", ops.len(), limits.max_ops),
        }]);
    }
    let mut work = Working {
        nodes: graph.nodes.iter().map(|n| (n.id.clone(), n.clone())).collect(),
        edges: graph.edges.iter().map(|e| (e.id.clone(), e.clone())).collect(),
        planned: Planned {
            steps: Vec::new(),
            created: Created::default(),
            touched_nodes: BTreeSet::new(),
            touched_edges: BTreeSet::new(),
        },
        rules,
        limits,
    };
    let mut errors = Vec::new();
    for (index, op) in ops.iter().enumerate() {
        if let Err(message) = work.apply(op, new_id) {
            errors.push(OpError { index, message });
        }
    }
    if errors.is_empty() { Ok(work.planned) } else { Err(errors) }
}

struct Working<'a> {
    nodes: BTreeMap<String, CanvasNode>,
    edges: BTreeMap<String, CanvasEdge>,
    planned: Planned,
    rules: &'a dyn EditRules,
    limits: &'a EditLimits,
}

impl Working<'_> {
    fn apply(&mut self, op: &EditOp, new_id: &mut dyn FnMut(&str) -> String) -> Result<(), String> {
        match op {
            EditOp::AddNode { id, node_type, position, params } => {
                let id = self.fresh_id(id.as_deref(), "n", "node", new_id)?;
                self.name(node_type, "node type")?;
                self.position(position)?;
                let mut data = self.rules.node_type(node_type)?;
                for (name, value) in params {
                    match self.param(node_type, name, value)? {
                        Some(value) => data.insert(name.clone(), value),
                        None => data.remove(name),
                    };
                }
                let node =
                    CanvasNode { id: id.clone(), node_type: node_type.clone(), position: *position, data };
                self.nodes.insert(id.clone(), node.clone());
                self.planned.touched_nodes.insert(id.clone());
                self.planned.created.nodes.push(id);
                self.planned.steps.push(Step::PutNode(node));
            }
            EditOp::UpdateNode { node, params, position } => {
                if params.is_empty() && position.is_none() {
                    return Err("nothing to update: give params or a position".into());
                }
                self.existing_node(node)?;
                if let Some(position) = position {
                    self.position(position)?;
                }
                // All checked before any is applied, so a refused op changes nothing.
                let node_type = self.nodes[node.as_str()].node_type.clone();
                let mut checked = Vec::with_capacity(params.len());
                for (name, value) in params {
                    checked.push((name.clone(), self.param(&node_type, name, value)?));
                }
                for (name, value) in checked {
                    self.set_param(node, name, value);
                }
                if let Some(position) = position {
                    self.move_node(node, *position);
                }
            }
            EditOp::SetParam { node, name, value } => {
                self.existing_node(node)?;
                let node_type = self.nodes[node.as_str()].node_type.clone();
                let value = self.param(&node_type, name, value)?;
                self.set_param(node, name.clone(), value);
            }
            EditOp::Move { node, position } => {
                self.existing_node(node)?;
                self.position(position)?;
                self.move_node(node, *position);
            }
            EditOp::RemoveNode { node } => {
                self.existing_node(node)?;
                self.nodes.remove(node.as_str());
                let attached: Vec<String> = self
                    .edges
                    .values()
                    .filter(|e| e.source == *node || e.target == *node)
                    .map(|e| e.id.clone())
                    .collect();
                for edge in attached {
                    self.edges.remove(&edge);
                    self.planned.touched_edges.insert(edge);
                }
                self.planned.touched_nodes.insert(node.clone());
                self.planned.steps.push(Step::RemoveNode(node.clone()));
            }
            EditOp::Connect { id, source, source_handle, target, target_handle } => {
                self.connect(
                    id.as_deref(),
                    source,
                    source_handle.as_deref(),
                    target,
                    target_handle.as_deref(),
                    new_id,
                )?;
            }
            EditOp::Disconnect { edge } => {
                self.name(edge, "edge id")?;
                if self.edges.remove(edge.as_str()).is_none() {
                    return Err(format!("edge {edge:?} does not exist"));
                }
                self.planned.touched_edges.insert(edge.clone());
                self.planned.steps.push(Step::RemoveEdge(edge.clone()));
            }
        }
        Ok(())
    }

    fn connect(
        &mut self,
        id: Option<&str>,
        source: &str,
        source_handle: Option<&str>,
        target: &str,
        target_handle: Option<&str>,
        new_id: &mut dyn FnMut(&str) -> String,
    ) -> Result<(), String> {
        let id = self.fresh_id(id, "e", "edge", new_id)?;
        self.existing_node(source)?;
        self.existing_node(target)?;
        for handle in [source_handle, target_handle].into_iter().flatten() {
            self.name(handle, "handle")?;
        }
        if source == target {
            return Err(format!("a wire from node {source:?} to itself would make a cycle"));
        }
        let wire = WireEnds {
            source_type: &self.nodes[source].node_type,
            source_handle,
            target_type: &self.nodes[target].node_type,
            target_handle,
        };
        let (source_handle, target_handle) = self.rules.wire(wire)?;
        // An input takes one wire (the run would refuse a second); a wire without a handle
        // names the node's only input, so it counts as the same one.
        let taken = self.edges.values().find(|e| {
            e.target == target
                && (e.target_handle.is_none() || target_handle.is_none() || e.target_handle == target_handle)
        });
        if let Some(taken) = taken {
            let input = target_handle.as_deref().unwrap_or("(only input)");
            return Err(format!(
                "input {input:?} of node {target:?} is already wired (edge {:?}); disconnect it first",
                taken.id
            ));
        }
        if self.reaches(target, source) {
            return Err(format!("a wire from {source:?} to {target:?} would make a cycle"));
        }
        let edge = CanvasEdge {
            id: id.clone(),
            source: source.to_owned(),
            source_handle,
            target: target.to_owned(),
            target_handle,
        };
        self.edges.insert(id.clone(), edge.clone());
        self.planned.touched_edges.insert(id.clone());
        self.planned.created.edges.push(id);
        self.planned.steps.push(Step::PutEdge(edge));
        Ok(())
    }

    /// Whether a path of wires leads from `from` to `to` (breadth-first, no recursion).
    fn reaches(&self, from: &str, to: &str) -> bool {
        let mut outgoing: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for edge in self.edges.values() {
            outgoing.entry(edge.source.as_str()).or_default().push(edge.target.as_str());
        }
        let mut seen = BTreeSet::from([from]);
        let mut queue = VecDeque::from([from]);
        while let Some(node) = queue.pop_front() {
            if node == to {
                return true;
            }
            for &next in outgoing.get(node).into_iter().flatten() {
                if seen.insert(next) {
                    queue.push_back(next);
                }
            }
        }
        false
    }

    fn set_param(&mut self, node: &str, name: String, value: Option<Value>) {
        if let Some(entry) = self.nodes.get_mut(node) {
            match &value {
                Some(value) => entry.data.insert(name.clone(), value.clone()),
                None => entry.data.remove(&name),
            };
        }
        self.planned.touched_nodes.insert(node.to_owned());
        self.planned.steps.push(Step::SetParam { node: node.to_owned(), name, value });
    }

    fn move_node(&mut self, node: &str, position: Position) {
        if let Some(entry) = self.nodes.get_mut(node) {
            entry.position = position;
        }
        self.planned.touched_nodes.insert(node.to_owned());
        self.planned.steps.push(Step::Move { node: node.to_owned(), position });
    }

    /// The id to create: the one given (well-formed and unused), or a generated one.
    fn fresh_id(
        &self,
        given: Option<&str>,
        prefix: &str,
        what: &str,
        new_id: &mut dyn FnMut(&str) -> String,
    ) -> Result<String, String> {
        let used =
            |id: &str| if what == "node" { self.nodes.contains_key(id) } else { self.edges.contains_key(id) };
        match given {
            Some(id) => {
                self.name(id, &format!("{what} id"))?;
                if used(id) {
                    return Err(format!("{what} {id:?} already exists"));
                }
                Ok(id.to_owned())
            }
            None => (0..8)
                .map(|_| new_id(prefix))
                .find(|id| !used(id) && valid_id(id, self.limits.max_id_len))
                .ok_or_else(|| format!("could not generate an unused {what} id")),
        }
    }

    fn existing_node(&self, node: &str) -> Result<(), String> {
        self.name(node, "node id")?;
        if self.nodes.contains_key(node) { Ok(()) } else { Err(format!("node {node:?} does not exist")) }
    }

    fn name(&self, name: &str, what: &str) -> Result<(), String> {
        if valid_id(name, self.limits.max_id_len) {
            Ok(())
        } else {
            let shown: String = name.chars().take(40).collect();
            Err(format!(
                "{what} {shown:?} is not 1-{} characters of A-Z a-z 0-9 - _ . :",
                self.limits.max_id_len
            ))
        }
    }

    fn position(&self, position: &Position) -> Result<(), String> {
        let max = self.limits.max_coordinate;
        let ok = |v: f64| v.is_finite() && v.abs() <= max;
        if ok(position.x) && ok(position.y) {
            Ok(())
        } else {
            Err(format!("a position needs finite x and y within ±{max}"))
        }
    }

    /// A parameter value checked and canonicalised; `None` for `null` (remove it).
    fn param(&self, node_type: &str, name: &str, value: &Value) -> Result<Option<Value>, String> {
        self.name(name, "parameter name")?;
        if value_depth(value, self.limits.max_value_depth) > self.limits.max_value_depth {
            return Err(format!(
                "parameter {name:?}: the value nests deeper than {} levels",
                self.limits.max_value_depth
            ));
        }
        if value.is_null() {
            // Removing a parameter: it must still be one the node type has.
            return if self.rules.has_param(node_type, name) {
                Ok(None)
            } else {
                Err(format!("parameter {name:?}: node type {node_type:?} has no such parameter"))
            };
        }
        self.rules.param(node_type, name, value).map(Some).map_err(|e| format!("parameter {name:?}: {e}"))
    }
}
