//! The natural-language builder: text → connected nodes, added to the room's document as an
//! ordinary update, so every collaborator sees them appear. Planning is the executor's
//! deterministic composer (`dojo_executor::compose`).

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use dojo_auth::Permission;
use dojo_executor::compose::compose;
use dojo_sync_protocol::canvas::{CanvasEdge, CanvasNode, Position, read_graph, write_edge, write_node};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{ApiError, Authenticated, room_name};
use crate::app::AppState;
use crate::execution::room_writer::RoomWriter;

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
}

/// Adds the nodes a short description asks for, wired in order where their types allow.
#[utoipa::path(post, path = "/api/rooms/{room}/compose", tag = "rooms",
    params(("room" = String, Path, description = "Room name")),
    request_body = ComposeRequest,
    responses((status = 200, body = Composed), (status = 400, description = "Nothing matched, or too long"), (status = 403)),
    security(("bearer" = [])))]
pub async fn compose_nodes(
    State(state): State<AppState>,
    caller: Authenticated,
    Path(room): Path<String>,
    Json(request): Json<ComposeRequest>,
) -> Result<Json<Composed>, ApiError> {
    let room = room_name(&room)?;
    state.auth().require(&caller.0, room.as_str(), Permission::Write).await?;
    let executor = state.executor();
    let plan = compose(executor.catalog(), &request.text).map_err(|e| ApiError::BadRequest(e.to_string()))?;
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
    }))
}

fn random_suffix() -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..3).map(|_| format!("{:02x}", rng.random::<u8>())).collect()
}
