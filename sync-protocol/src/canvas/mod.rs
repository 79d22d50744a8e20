//! The canvas document schema: how a node graph lives in a Yjs document.
//!
//! The layout mirrors what a React Flow (XYFlow) editor keeps in memory, so an editor can bind
//! to it without a translation layer (see `docs/document-schema.md`):
//!
//! | root `Y.Map` | key     | value                                                                  |
//! |--------------|---------|------------------------------------------------------------------------|
//! | `nodes`      | node id | `Y.Map` { `id`, `type`, `position` {x, y}, `data`: `Y.Map` of params } |
//! | `edges`      | edge id | `Y.Map` { `id`, `source`, `sourceHandle`, `target`, `targetHandle` }   |
//! | `results`    | node id | `Y.Map` { `status`, `progress`, `outputs`, `error`, `runId`, `updatedAt`, `preview`? } |
//! | `runs`       | run id  | plain object: [`RunSummary`]                                           |
//!
//! `position` is a plain object replaced as a whole, so concurrent moves resolve last-writer-wins
//! instead of mixing one user's x with another's y. `data` is a `Y.Map`, so two people editing
//! different parameters of one node both keep their change. `results` and `runs` are written by
//! the executor only (the server refuses other clients' inserts there: `update::WriteRules`).
//!
//! The readers here use yrs' `to_json`, and `remove_node`/`replace_canvas` its deletes, which
//! recurse once per level of nesting. That is safe because every document the server, the HTTP
//! API and the executor build takes content only through `update::apply_client_update` (or
//! `check_stored_update` when loading), which refuses shared types nested deeper than
//! `update::MAX_TYPE_DEPTH` and values deeper than 128 levels before yrs integrates them. Do not
//! call these on a `Doc` filled any other way.
//!
//! The web editor keeps its own description of this schema (`web/src/doc/schema.ts`); both are
//! checked against one fixture, `sync-protocol/schema/canvas-schema.json` (here by
//! `schema_fixture`, there by `schema.fixture.test.ts`), so the two cannot drift apart.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub mod edits;
mod gallery;
mod preview;
mod read;
#[cfg(test)]
mod schema_fixture;
#[cfg(test)]
mod tests;
mod write;

pub use gallery::{GALLERY, MAX_GALLERY_ENTRIES, ensure_gallery, push_gallery_entry, read_gallery};
pub use preview::{PREVIEW, clear_node_preview, read_node_preview, write_node_preview};
pub use read::{canvas_json, read_graph, read_node_result};
pub use write::{
    move_node, remove_node, replace_canvas, set_node_param, write_edge, write_node, write_node_result,
    write_run_summary,
};

pub const NODES: &str = "nodes";
pub const EDGES: &str = "edges";
pub const RESULTS: &str = "results";
pub const RUNS: &str = "runs";
/// The four root maps, in the order readers and restores visit them.
pub const ROOTS: [&str; 4] = [NODES, EDGES, RESULTS, RUNS];

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Position {
    pub x: f64,
    pub y: f64,
}

/// One node of the canvas: a tool or AI model with its parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CanvasNode {
    pub id: String,
    #[serde(rename = "type")]
    pub node_type: String,
    pub position: Position,
    /// Parameters (prompt, model, strength…), free-form JSON per parameter.
    #[serde(default)]
    pub data: BTreeMap<String, Value>,
}

/// A wire from one node's output handle to another node's input handle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CanvasEdge {
    pub id: String,
    pub source: String,
    #[serde(default)]
    pub source_handle: Option<String>,
    pub target: String,
    #[serde(default)]
    pub target_handle: Option<String>,
}

/// The graph part of a canvas (nodes and edges), sorted by id for stable output.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CanvasGraph {
    pub nodes: Vec<CanvasNode>,
    pub edges: Vec<CanvasEdge>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeStatus {
    Idle,
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
    /// Reused from an earlier identical execution: no provider call, no charge.
    Cached,
    /// Not run because a node it depends on failed.
    Skipped,
    /// Refused by validation before the run (the error says why).
    Invalid,
    /// Older names of `succeeded` and `failed`, still read from existing documents.
    Done,
    Error,
}

impl NodeStatus {
    /// Every status, the older names last.
    pub const ALL: [NodeStatus; 11] = [
        NodeStatus::Idle,
        NodeStatus::Queued,
        NodeStatus::Running,
        NodeStatus::Succeeded,
        NodeStatus::Failed,
        NodeStatus::Cancelled,
        NodeStatus::Cached,
        NodeStatus::Skipped,
        NodeStatus::Invalid,
        NodeStatus::Done,
        NodeStatus::Error,
    ];

    /// The status under its current name: `done` is `succeeded`, `error` is `failed`.
    pub fn current(self) -> NodeStatus {
        match self {
            NodeStatus::Done => NodeStatus::Succeeded,
            NodeStatus::Error => NodeStatus::Failed,
            // Listed rather than `_`, so that a new status has to be placed here and in `ALL`.
            NodeStatus::Idle
            | NodeStatus::Queued
            | NodeStatus::Running
            | NodeStatus::Succeeded
            | NodeStatus::Failed
            | NodeStatus::Cancelled
            | NodeStatus::Cached
            | NodeStatus::Skipped
            | NodeStatus::Invalid => self,
        }
    }
}

/// The executor's view of one node, written into `results`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeResult {
    pub status: NodeStatus,
    /// 0 ..= 100
    #[serde(default)]
    pub progress: f64,
    /// Output handle → value (a URL, text, numbers…).
    #[serde(default)]
    pub outputs: BTreeMap<String, Value>,
    #[serde(default)]
    pub error: Option<String>,
    /// Validation errors (`[{"type", "message"}]`) when `status` is `invalid`; empty otherwise.
    #[serde(default)]
    pub errors: Vec<Value>,
    #[serde(default)]
    pub run_id: Option<String>,
    /// Milliseconds since the Unix epoch.
    #[serde(default)]
    pub updated_at: u64,
}

/// A run's summary as the `runs` map holds it (a plain object, replaced as a whole), written
/// by the executor with [`write_run_summary`]. The authoritative record is the database's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunSummary {
    pub id: String,
    /// `queued | running | succeeded | failed | cancelled`.
    pub status: String,
    /// Credits held for the run.
    pub estimate: i64,
    /// Credits captured so far.
    pub charged: i64,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
    #[serde(default)]
    pub finished_at: Option<i64>,
    pub user_id: String,
    /// The planned node ids.
    #[serde(default)]
    pub nodes: Vec<String>,
}

/// A document entry that does not follow the schema.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("{root}[{key}] does not match the schema: {reason}")]
    InvalidEntry { root: &'static str, key: String, reason: String },
    #[error("{root}[{key}]: the entry's id field says {found:?}")]
    IdMismatch { root: &'static str, key: String, found: String },
    #[error("value cannot be stored in a Yjs document: {0}")]
    Unrepresentable(String),
}
