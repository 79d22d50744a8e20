//! The natural-language builder: text → connected nodes, added to the room's document as an
//! ordinary update, so every collaborator sees them appear. Planning is the executor's
//! (`dojo_executor::compose`): OpenAI's plan, checked against the catalog, when `OPENAI_API_KEY`
//! is set, and the deterministic parser otherwise or whenever the model fails.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use dojo_auth::Permission;
use dojo_executor::compose::llm::{Planner, compose_with};
use dojo_sync_protocol::canvas::{CanvasEdge, CanvasNode, Position, read_graph, write_edge, write_node};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{ApiError, Authenticated};
use crate::execution::room_writer::RoomWriter;
use crate::state::AppState;

/// Horizontal distance between composed nodes, and below the existing canvas.
const STEP_X: f64 = 280.0;
const GAP_Y: f64 = 200.0;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ComposeRequest {
    /// e.g. "prompt, flux image, then upscale".
    pub text: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Composed {
    /// Ids of the nodes added, in order.
    pub nodes: Vec<String>,
    /// Ids of the edges added.
    pub edges: Vec<String>,
    /// Who planned them: the LLM (OpenAI, when configured) or the deterministic parser.
    pub planner: PlannerName,
    /// Present when the LLM was asked but the parser planned: why its plan was not used
    /// (no answer in time, an error status, a refusal, a plan that does not fit the catalog…).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fallback: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PlannerName {
    Llm,
    Parser,
}

impl From<Planner> for PlannerName {
    fn from(planner: Planner) -> Self {
        match planner {
            Planner::Llm => PlannerName::Llm,
            Planner::Parser => PlannerName::Parser,
        }
    }
}

/// Adds the nodes a short description asks for, wired where their types allow. Planned by
/// OpenAI when it is configured (the plan checked against the catalog), by the deterministic
/// parser otherwise or when the model fails; `planner` and `fallback` say which and why.
#[utoipa::path(post, path = "/api/rooms/{room}/compose", tag = "rooms",
    params(("room" = String, Path, description = "Room name")),
    request_body = ComposeRequest,
    responses((status = 200, body = Composed), (status = 400, description = "Nothing matched, or too long"), (status = 403), (status = 404)),
    security(("bearer" = [])))]
pub async fn compose_nodes(
    State(state): State<AppState>,
    caller: Authenticated,
    Path(room): Path<String>,
    Json(request): Json<ComposeRequest>,
) -> Result<Json<Composed>, ApiError> {
    let (room, _) = super::access::room_for(&state, &caller.0, &room, Permission::Write).await?;
    let executor = state.executor();
    let planned = compose_with(executor.composer(), executor.catalog(), &request.text)
        .await
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    if let Some(reason) = &planned.fallback {
        tracing::warn!(room = %room.as_str(), reason = %reason.detail(), "compose: the LLM's plan was not used; the parser planned");
    }
    let plan = planned.composition;
    // Opened as the caller's, so it counts against their share of rooms.
    super::access::open_room(&state, &caller.0, &room)?;
    let writer = RoomWriter::open(executor.rooms().clone(), room.clone())
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    // Below whatever is on the canvas already, so nothing lands on top of existing nodes.
    let top = writer
        .read(|txn| read_graph(txn).ok())
        .await
        .map(|g| g.nodes.iter().map(|n| n.position.y).fold(f64::NEG_INFINITY, f64::max))
        .filter(|y| y.is_finite())
        .map_or(0.0, |y| y + GAP_Y);
    let suffix = random_suffix();
    let nodes: Vec<CanvasNode> = plan
        .nodes
        .iter()
        .enumerate()
        .map(|(i, node_type)| CanvasNode {
            id: format!("{node_type}-{suffix}-{i}"),
            node_type: node_type.clone(),
            position: Position { x: STEP_X * i as f64, y: top },
            data: BTreeMap::new(),
        })
        .collect();
    let edges: Vec<CanvasEdge> = plan
        .edges
        .iter()
        .filter_map(|e| {
            let (source, target) = (nodes.get(e.source)?, nodes.get(e.target)?);
            Some(CanvasEdge {
                id: format!("{}.{}-{}.{}", source.id, e.source_handle, target.id, e.target_handle),
                source: source.id.clone(),
                source_handle: Some(e.source_handle.clone()),
                target: target.id.clone(),
                target_handle: Some(e.target_handle.clone()),
            })
        })
        .collect();
    writer
        .write(|txn| {
            for node in &nodes {
                write_node(txn, node)?;
            }
            for edge in &edges {
                write_edge(txn, edge)?;
            }
            Ok(())
        })
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    Ok(Json(Composed {
        nodes: nodes.into_iter().map(|n| n.id).collect(),
        edges: edges.into_iter().map(|e| e.id).collect(),
        planner: planned.planner.into(),
        fallback: planned.fallback.map(|reason| reason.to_string()),
    }))
}

fn random_suffix() -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..3).map(|_| format!("{:02x}", rng.random::<u8>())).collect()
}
