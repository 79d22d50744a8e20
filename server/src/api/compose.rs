//! The natural-language builder over HTTP: text → connected nodes, added to the room's
//! document (`crate::services::compose`).

use axum::Json;
use axum::extract::State;
use dojo_auth::Permission;
use dojo_executor::compose::llm::Planner;
use dojo_sync_protocol::canvas::edits::EditOp;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::{ApiJson, ApiPath, ApiQuery};
use super::responses::{ErrorBody, Forbidden, NotFound, TooManyRequests, Unauthorized, Unavailable};
use super::{ApiError, Authenticated};
use crate::services::{access, compose};
use crate::state::AppState;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ComposeRequest {
    /// e.g. "prompt, flux image, then upscale".
    pub text: String,
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ComposeQuery {
    /// `false`: only plan; the answer's `ops` are for the caller to apply (the editor applies
    /// them in one transaction of its own, so its Undo takes them back). Default `true`.
    pub apply: Option<bool>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Composed {
    /// Ids of the nodes added, in order.
    pub nodes: Vec<String>,
    /// Ids of the edges added.
    pub edges: Vec<String>,
    /// The graph edit (`POST /api/rooms/{room}/edits` operations) that adds them: applied
    /// already, or with `apply=false` for the caller to apply.
    pub ops: Vec<EditOp>,
    /// The applied edit: `POST /api/rooms/{room}/edits/{editId}/undo` takes it back. Absent
    /// when only planned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub edit_id: Option<String>,
    /// Who planned them: the LLM (OpenAI, when configured) or the deterministic parser.
    pub planner: PlannerName,
    /// Present when the LLM was asked but the parser planned: why its plan was not used
    /// (no answer in time, an error status, a refusal, a plan that does not fit the catalog…).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fallback: Option<String>,
    /// Steps that named a node this server cannot run (its provider has no key), and the
    /// runnable node planned in its place. Never a node that cannot run.
    pub substitutions: Vec<ComposeSubstitution>,
}

/// A node the text named that cannot run here, and the one used instead.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ComposeSubstitution {
    /// The node type the text named.
    pub asked: String,
    /// The node type planned instead.
    pub used: String,
    /// Why the named one cannot run here.
    pub reason: String,
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
/// parser otherwise or when the model fails; `planner` and `fallback` say which and why. The
/// nodes are added as one graph edit (`editId`, undoable); `?apply=false` only plans. Only
/// node types this server can run are planned: a step naming one whose provider has no key gets
/// a runnable stand-in (`substitutions`), or is refused (400) when nothing here does its job.
#[utoipa::path(post, path = "/api/rooms/{room}/compose", tag = "rooms", operation_id = "composeNodes",
    params(("room" = String, Path, description = "Room name"), ComposeQuery),
    request_body = ComposeRequest,
    responses((status = 200, description = "The nodes and edges added", body = Composed),
        (status = 400, description = "Nothing matched, or too long (`bad_request`)", body = ErrorBody),
        (status = 401, response = Unauthorized), (status = 403, response = Forbidden),
        (status = 404, response = NotFound), (status = 429, response = TooManyRequests),
        (status = 503, response = Unavailable)),
    security(("bearer" = [])))]
pub async fn compose_nodes(
    State(state): State<AppState>,
    caller: Authenticated,
    ApiPath(room): ApiPath<String>,
    ApiQuery(query): ApiQuery<ComposeQuery>,
    ApiJson(request): ApiJson<ComposeRequest>,
) -> Result<Json<Composed>, ApiError> {
    let access = access::room_for(&state, &caller.0, &room, Permission::Write).await?;
    let apply = query.apply.unwrap_or(true);
    let composed = compose::compose(&state, &caller.0, &access, &request.text, apply).await?;
    Ok(Json(Composed {
        nodes: composed.nodes,
        edges: composed.edges,
        ops: composed.ops,
        edit_id: composed.edit_id.map(|id| id.into_string()),
        planner: composed.planner.into(),
        fallback: composed.fallback,
        substitutions: composed
            .substitutions
            .into_iter()
            .map(|s| ComposeSubstitution { asked: s.asked, used: s.used, reason: s.reason })
            .collect(),
    }))
}
