//! Running Dojo canvases.
//!
//! This crate will hold the worker that executes a canvas: it will read the graph from a room's
//! document, run each node's tool or model, and write progress and outputs back into the
//! document's `results` map. That worker is not built yet.
//!
//! What exists today is its first step, [`plan`]: given a canvas graph (as read by
//! [`dojo_sync_protocol::canvas::read_graph`]) and optionally the nodes a user asked to run, the
//! order in which nodes must run, grouped into levels that can run in parallel, or a typed error
//! saying why the graph cannot run (a cycle, an edge to a missing node, an unknown target).

pub mod plan;

pub use plan::{EdgeEnd, Plan, PlanError, plan};
