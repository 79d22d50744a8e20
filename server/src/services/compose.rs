//! The natural-language builder: text → connected nodes, added to the room's document as an
//! ordinary update, so every collaborator sees them appear. Planning is the executor's
//! (`dojo_executor::compose`): OpenAI's plan, checked against the catalog, when `OPENAI_API_KEY`
//! is set, and the deterministic parser otherwise or whenever the model fails.

use std::collections::BTreeMap;

use dojo_auth::Permission;
use dojo_executor::compose::ComposeError as PlanError;
use dojo_executor::compose::llm::{Planner, compose_with};
use dojo_executor::worker::DocumentError;
use dojo_sync_protocol::canvas::{CanvasEdge, CanvasNode, Position, read_graph, write_edge, write_node};

use super::access::{self, AccessError, RoomAccess};
use crate::caller::Caller;
use crate::execution::room_writer::RoomWriter;
use crate::room_registry::OpenRefused;
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
    #[error(transparent)]
    Open(#[from] OpenRefused),
    /// The room could not be loaded, or did not store the new nodes.
    #[error("{0}")]
    Unavailable(#[source] DocumentError),
}

/// What was added to the room.
#[derive(Debug)]
pub struct Composed {
    /// Ids of the nodes added, in order.
    pub nodes: Vec<String>,
    /// Ids of the edges added.
    pub edges: Vec<String>,
    pub planner: Planner,
    /// Present when the LLM was asked but the parser planned: why its plan was not used.
    pub fallback: Option<String>,
}

/// Adds the nodes `text` asks for to the room, wired where their types allow, below whatever
/// is on the canvas already.
pub async fn compose(
    state: &AppState,
    caller: &Caller,
    access: &RoomAccess,
    text: &str,
) -> Result<Composed, ComposeError> {
    access.require(Permission::Write)?;
    let room = access.room();
    let executor = state.executor();
    let planned = compose_with(executor.composer(), executor.catalog(), text).await?;
    if let Some(reason) = &planned.fallback {
        tracing::warn!(room = %room.as_str(), reason = %reason.detail(), "compose: the LLM's plan was not used; the parser planned");
    }
    let plan = planned.composition;
    // Opened as the caller's, so it counts against their share of rooms.
    access::open_room(state, caller, room)?;
    let writer =
        RoomWriter::open(executor.rooms().clone(), room.clone()).await.map_err(ComposeError::Unavailable)?;
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
        .map_err(ComposeError::Unavailable)?;
    Ok(Composed {
        nodes: nodes.into_iter().map(|n| n.id).collect(),
        edges: edges.into_iter().map(|e| e.id).collect(),
        planner: planned.planner,
        fallback: planned.fallback.map(|reason| reason.to_string()),
    })
}

fn random_suffix() -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..3).map(|_| format!("{:02x}", rng.random::<u8>())).collect()
}
