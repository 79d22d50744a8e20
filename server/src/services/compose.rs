//! The natural-language builder: text → connected nodes, added to the room's document as one
//! graph edit (`services::edits`), so every collaborator sees them appear and the edit can be
//! undone as one step; or only planned, for the editor to apply in its own undo history.
//! Planning is the executor's (`dojo_executor::compose`): OpenAI's plan, checked against the
//! catalog, when `OPENAI_API_KEY` is set, and the deterministic parser otherwise or whenever
//! the model fails.

use dojo_auth::Permission;
use dojo_executor::compose::ComposeError as PlanError;
use dojo_executor::compose::llm::{Planner, compose_with};
use dojo_ids::EditId;
use dojo_sync_protocol::canvas::Position;
use dojo_sync_protocol::canvas::edits::EditOp;

use super::access::{AccessError, RoomAccess};
use super::edits::{self, EditError};
use crate::caller::Caller;
use crate::state::AppState;

/// Horizontal distance between composed nodes, and below the existing canvas.
const STEP_X: f64 = 280.0;
const GAP_Y: f64 = 200.0;

#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    #[error(transparent)]
    Access(#[from] AccessError),
    /// Nothing in the text matched, or it is too long.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// Reading the room, or applying the composed nodes to it, failed.
    #[error(transparent)]
    Edit(#[from] EditError),
}

/// What compose planned, and added to the room unless it only planned.
#[derive(Debug)]
pub struct Composed {
    /// Ids of the nodes, in order.
    pub nodes: Vec<String>,
    /// Ids of the edges.
    pub edges: Vec<String>,
    /// The graph edit that adds them (`services::edits`): what was applied, or, when only
    /// planning, what the editor applies itself (one step of its own undo).
    pub ops: Vec<EditOp>,
    /// The applied edit, to undo over HTTP (none when only planning).
    pub edit_id: Option<EditId>,
    pub planner: Planner,
    /// Present when the LLM was asked but the parser planned: why its plan was not used.
    pub fallback: Option<String>,
    /// Steps that named a node this server cannot run, and what was planned instead.
    pub substitutions: Vec<dojo_executor::compose::Substitution>,
}

/// Plans the nodes `text` asks for, wired where their types allow, below whatever is on the
/// canvas already, as one graph edit; applies it (checked against the catalog like any edit)
/// when `apply` is set.
pub async fn compose(
    state: &AppState,
    caller: &Caller,
    access: &RoomAccess,
    text: &str,
    apply: bool,
) -> Result<Composed, ComposeError> {
    access.require(Permission::Write)?;
    let room = access.room();
    let executor = state.executor();
    let planned =
        compose_with(executor.composer(), executor.catalog(), &executor.availability(), text).await?;
    if let Some(reason) = &planned.fallback {
        tracing::warn!(room = %room.as_str(), reason = %reason.detail(), "compose: the LLM's plan was not used; the parser planned");
    }
    let plan = planned.composition;
    // Below whatever is on the canvas already, so nothing lands on top of existing nodes.
    // (Reading opens the room as the caller's, so it counts against their share of rooms.)
    let graph = edits::graph(state, caller, access).await?;
    let top = graph.nodes.iter().map(|n| n.position.y).fold(f64::NEG_INFINITY, f64::max);
    let top = if top.is_finite() { top + GAP_Y } else { 0.0 };
    let suffix = random_suffix();
    let nodes: Vec<String> =
        plan.nodes.iter().enumerate().map(|(i, node_type)| format!("{node_type}-{suffix}-{i}")).collect();
    let mut ops: Vec<EditOp> = plan
        .nodes
        .iter()
        .zip(&nodes)
        .enumerate()
        .map(|(i, (node_type, id))| EditOp::AddNode {
            id: Some(id.clone()),
            node_type: node_type.clone(),
            position: Position { x: STEP_X * i as f64, y: top },
            params: Default::default(),
        })
        .collect();
    let mut edges = Vec::new();
    for e in &plan.edges {
        let (Some(source), Some(target)) = (nodes.get(e.source), nodes.get(e.target)) else { continue };
        let id = format!("{source}.{}-{target}.{}", e.source_handle, e.target_handle);
        ops.push(EditOp::Connect {
            id: Some(id.clone()),
            source: source.clone(),
            source_handle: Some(e.source_handle.clone()),
            target: target.clone(),
            target_handle: Some(e.target_handle.clone()),
        });
        edges.push(id);
    }
    let edit_id = if apply { edits::apply(state, caller, access, ops.clone()).await?.edit_id } else { None };
    Ok(Composed {
        nodes,
        edges,
        ops,
        edit_id,
        planner: planned.planner,
        fallback: planned.fallback.map(|reason| reason.to_string()),
        substitutions: plan.substitutions,
    })
}

fn random_suffix() -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..3).map(|_| format!("{:02x}", rng.random::<u8>())).collect()
}
