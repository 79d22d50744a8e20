//! Graph edits as data: a batch of operations (add, update, remove a node; connect, disconnect;
//! move) that a backend, a script or an agent sends as JSON instead of a Yjs update, and that
//! the editor applies locally for compose.
//!
//! Everything here is pure: [`plan`] checks a whole batch against the graph it will change and
//! against [`EditRules`] (the node catalog, implemented by `dojo-executor`), and turns it into
//! [`Step`]s; [`apply_steps`] writes those into one Yjs transaction; [`Inverse::compute`] keeps
//! what an undo needs (the touched entries before and after), [`Inverse::conflicts`] says what
//! changed since, and [`Inverse::ops`] gives the batch that takes the edit back.
//!
//! A batch is all or nothing: [`plan`] reports every bad operation with its index, and a caller
//! applies nothing unless the whole batch passed.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Position;

mod apply;
mod inverse;
mod plan;
#[cfg(test)]
mod tests;

pub use apply::apply_steps;
pub use inverse::{Conflict, Inverse};
pub use plan::{Created, Planned, Step, plan};

/// One operation of a batch. JSON: `{"op": "addNode", …}`, field names in camelCase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "op", rename_all = "camelCase", deny_unknown_fields)]
pub enum EditOp {
    /// Adds a node. Without `id`, one is generated (and returned). Parameters not given take
    /// the catalog's defaults.
    AddNode {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        #[serde(rename = "type")]
        node_type: String,
        position: Position,
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        params: BTreeMap<String, Value>,
    },
    /// Sets several parameters (`null` removes one: the catalog default applies) and, when
    /// given, the position.
    UpdateNode {
        node: String,
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        params: BTreeMap<String, Value>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        position: Option<Position>,
    },
    /// Sets one parameter; `null` removes it (the catalog default applies).
    SetParam { node: String, name: String, value: Value },
    /// Removes a node with every wire attached to it (and its result), as the editor does.
    RemoveNode { node: String },
    /// Wires an output handle to an input handle. A handle left out means the node's only one.
    #[serde(rename_all = "camelCase")]
    Connect {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        source: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        source_handle: Option<String>,
        target: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        target_handle: Option<String>,
    },
    /// Removes a wire.
    Disconnect { edge: String },
    /// Moves a node (its position is replaced as a whole).
    Move { node: String, position: Position },
}

/// What the catalog says about nodes, parameters and wires. `dojo-executor` implements it for
/// its catalog; [`Unchecked`] accepts everything (an undo restores what was there, valid or
/// not).
pub trait EditRules {
    /// Refuses an unknown node type; otherwise the parameters a new node starts with.
    fn node_type(&self, node_type: &str) -> Result<BTreeMap<String, Value>, String>;
    /// Checks one parameter value of a node of `node_type`; returns it in canonical form.
    fn param(&self, node_type: &str, name: &str, value: &Value) -> Result<Value, String>;
    /// Whether a node of `node_type` has a parameter `name` (to remove it).
    fn has_param(&self, node_type: &str, name: &str) -> bool;
    /// Checks a wire; returns the handles to store (a missing one resolved to the only port).
    fn wire(&self, wire: WireEnds<'_>) -> Result<(Option<String>, Option<String>), String>;
}

/// The two ends of a proposed wire, for [`EditRules::wire`].
#[derive(Debug, Clone, Copy)]
pub struct WireEnds<'a> {
    pub source_type: &'a str,
    pub source_handle: Option<&'a str>,
    pub target_type: &'a str,
    pub target_handle: Option<&'a str>,
}

/// Rules that accept everything: used to take an edit back, which restores the graph's
/// earlier entries exactly (even values the catalog would refuse today).
#[derive(Debug, Clone, Copy, Default)]
pub struct Unchecked;

impl EditRules for Unchecked {
    fn node_type(&self, _: &str) -> Result<BTreeMap<String, Value>, String> {
        Ok(BTreeMap::new())
    }
    fn param(&self, _: &str, _: &str, value: &Value) -> Result<Value, String> {
        Ok(value.clone())
    }
    fn has_param(&self, _: &str, _: &str) -> bool {
        true
    }
    fn wire(&self, wire: WireEnds<'_>) -> Result<(Option<String>, Option<String>), String> {
        Ok((wire.source_handle.map(str::to_owned), wire.target_handle.map(str::to_owned)))
    }
}

/// Bounds on one batch: every client is hostile.
#[derive(Debug, Clone, Copy)]
pub struct EditLimits {
    /// Operations per batch.
    pub max_ops: usize,
    /// Node and edge ids, parameter and handle names, node types: bytes.
    pub max_id_len: usize,
    /// Nesting of one parameter value (arrays and objects).
    pub max_value_depth: usize,
    /// Largest |x| and |y| of a position.
    pub max_coordinate: f64,
}

impl Default for EditLimits {
    fn default() -> Self {
        Self { max_ops: 500, max_id_len: 128, max_value_depth: 16, max_coordinate: 1.0e7 }
    }
}

/// Why one operation of a batch was refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OpError {
    /// The operation's index in the batch (0-based).
    pub index: usize,
    pub message: String,
}

/// Whether `id` may name a node or an edge: 1 to `max` bytes of `A–Z a–z 0–9 - _ . :` (what
/// the editor, compose and the schema's ids use), so an id is safe in logs, URLs and messages.
pub fn valid_id(id: &str, max: usize) -> bool {
    !id.is_empty()
        && id.len() <= max
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// How deep `value` nests arrays and objects (a scalar is 0), without recursion: a hostile
/// value must not be able to overflow the stack. Stops counting past `limit`.
pub fn value_depth(value: &Value, limit: usize) -> usize {
    let mut deepest = 0;
    let mut stack: Vec<(&Value, usize)> = vec![(value, 0)];
    while let Some((value, depth)) = stack.pop() {
        deepest = deepest.max(depth);
        if deepest > limit {
            return deepest;
        }
        match value {
            Value::Array(items) => stack.extend(items.iter().map(|v| (v, depth + 1))),
            Value::Object(fields) => stack.extend(fields.values().map(|v| (v, depth + 1))),
            _ => {}
        }
    }
    deepest
}

/// Reads a batch sent as JSON values, one operation at a time, so that a malformed operation
/// is reported with its index like any other refused one (a body parsed as a whole would only
/// say where the first mistake sits). The count is checked first: a long list is refused
/// before any of it is read.
pub fn parse_ops(values: Vec<Value>, limits: &EditLimits) -> Result<Vec<EditOp>, Vec<OpError>> {
    if values.len() > limits.max_ops {
        return Err(vec![OpError {
            index: limits.max_ops,
            message: format!("{} operations; at most {} per batch", values.len(), limits.max_ops),
        }]);
    }
    let mut ops = Vec::with_capacity(values.len());
    let mut errors = Vec::new();
    for (index, value) in values.into_iter().enumerate() {
        match serde_json::from_value::<EditOp>(value) {
            Ok(op) => ops.push(op),
            Err(error) => errors.push(OpError { index, message: format!("not an operation: {error}") }),
        }
    }
    if errors.is_empty() { Ok(ops) } else { Err(errors) }
}
