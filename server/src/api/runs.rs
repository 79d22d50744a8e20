//! Runs of a room's graph: submit (validated, priced and held before anything is queued), read,
//! cancel, list. The live per-node states travel in the room's document (`results`, `runs`);
//! these routes are the authoritative record. What each does is `crate::services::runs`'s; a
//! handler parses, authorizes, calls it and maps its error.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use dojo_auth::Permission;
use dojo_executor::worker::document_outputs;
use dojo_executor::{Outputs, ValidationErrors};
use dojo_ids::RunId;
use dojo_records::{Run, RunNode, RunNodeState};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::extract::{ApiJson, ApiPath, ApiQuery};
use super::responses::{
    BadRequest, ErrorBody, Forbidden, InsufficientCreditsBody, InvalidGraphBody, NotFound, TooManyRequests,
    Unauthorized, Unavailable,
};
use super::{ApiError, Authenticated};
use crate::error_code::ErrorCode;
use crate::services::access;
use crate::services::runs::{RunService, SubmitError, SubmitRequest};
use crate::state::AppState;

const MAX_IDEMPOTENCY_KEY: usize = 128;

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SubmitRun {
    /// Node ids to run, with what they depend on. Absent or empty: the whole graph.
    #[serde(default)]
    pub targets: Option<Vec<String>>,
    /// "Run from here": this node and everything downstream of it, with what they need
    /// upstream (from the cache when unchanged, so neither run nor charged again). Excludes
    /// `targets`.
    #[serde(default)]
    pub from: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Submitted {
    pub run_id: String,
    #[schema(value_type = RunStatusName)]
    pub status: String,
    /// Credits held: the most the run can cost.
    pub estimate: i64,
}

/// A run. Nullable fields that are always sent say `required = true`, so that generated clients
/// type them `T | null` rather than "maybe absent".
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunBody {
    pub id: String,
    pub room: String,
    pub user_id: String,
    #[schema(value_type = RunStatusName)]
    pub status: String,
    pub estimate: i64,
    pub charged: i64,
    #[schema(required = true)]
    pub targets: Option<Vec<String>>,
    pub attempts: i64,
    #[schema(required = true)]
    pub error: Option<String>,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
    #[schema(required = true)]
    pub started_at: Option<i64>,
    #[schema(required = true)]
    pub finished_at: Option<i64>,
    /// While queued: 1-based among the runs that will be claimed before it (docs/queue.md).
    #[schema(required = true)]
    pub queue_position: Option<i64>,
    /// While queued: when it should start, in milliseconds since the Unix epoch (null when
    /// unknown).
    #[schema(required = true)]
    pub estimated_start_at: Option<i64>,
    /// Node id → its state, cost, charge, outputs, error, parameters and timings (the
    /// generation history). Only in `GET /api/runs/{id}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nodes: Option<BTreeMap<String, RunNodeBody>>,
}

/// One node of a run.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunNodeBody {
    /// The node's type (catalog id).
    #[serde(rename = "type")]
    pub node_type: String,
    #[schema(value_type = RunNodeStateName)]
    pub state: RunNodeState,
    /// Credits the node may cost (held while it runs).
    pub cost: i64,
    /// Credits captured: 0 unless it succeeded at a cost.
    pub charged: i64,
    /// `none`, `pending`, `captured` or `released`.
    pub hold: String,
    /// Every catalog parameter as the node ran with it.
    #[schema(value_type = Option<Object>, required = true)]
    pub params: Option<Value>,
    /// What it produced (asset URLs, text), once succeeded or cached.
    #[schema(value_type = Option<Object>, required = true)]
    pub outputs: Option<Value>,
    #[schema(required = true)]
    pub error: Option<String>,
    /// Milliseconds since the Unix epoch.
    #[schema(required = true)]
    pub started_at: Option<i64>,
    #[schema(required = true)]
    pub finished_at: Option<i64>,
    #[schema(required = true)]
    pub duration_ms: Option<i64>,
}

/// A run's lifecycle.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)] // a description only: bodies carry `RunStatus::as_str`
pub enum RunStatusName {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

/// Where a node of a run stands.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)] // a description only: bodies carry `RunNodeState`, which serialises the same
pub enum RunNodeStateName {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
    Cached,
    Skipped,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunList {
    pub runs: Vec<RunBody>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
// Said outright: utoipa infers it only from axum's own `Query`, not from `ApiQuery`.
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// At most this many (default 50, at most 200).
    pub limit: Option<u32>,
}

/// Runs the room's graph (or the targets and what they need): validated, priced, credits held,
/// queued. Per-node validation errors come back as `422` and are also written on the nodes.
#[utoipa::path(post, path = "/api/rooms/{room}/runs", tag = "runs", operation_id = "submitRun",
    params(("room" = String, Path, description = "Room name"),
        ("Idempotency-Key" = Option<String>, Header, description = "The same key returns the same run")),
    request_body(content = Option<SubmitRun>, description = "Optional targets"),
    responses((status = 202, description = "Validated, credits held, queued", body = Submitted),
        (status = 400, response = BadRequest), (status = 401, response = Unauthorized),
        (status = 402, description = "`insufficient_credits`: the balance (the team's, with `teamId`, for a team's workflow) is short of the run's cost; `spending_limit_reached`: the caller's monthly limit in the team would be passed (`limit`, `spent`, `requested`)", body = InsufficientCreditsBody),
        (status = 403, description = "`forbidden`: the caller may not write in the room; `account_under_review`: a fraud flag holds the caller's paid runs until staff review it", body = ErrorBody),
        (status = 404, response = NotFound),
        (status = 422, description = "`invalid_graph`: the graph's errors, per node; `empty_graph`: nothing to run; `unknown_target`: a target that is not a node id", body = InvalidGraphBody),
        (status = 429, description = "`queue_full`: the caller's plan queue is full (the body carries `limit` and the `position` the run would have had); `quota_exceeded`: the caller has the most runs queued or running one user may; or `rate_limited`", body = ErrorBody),
        (status = 503, response = Unavailable)),
    security(("bearer" = [])))]
pub async fn submit(
    State(state): State<AppState>,
    caller: Authenticated,
    ApiPath(room): ApiPath<String>,
    headers: HeaderMap,
    body: Option<ApiJson<SubmitRun>>,
) -> Result<Response, ApiError> {
    let access = access::room_for(&state, &caller.0, &room, Permission::Write).await?;
    caller.user()?;
    let idempotency_key = idempotency_key(&headers)?;
    let body = body.map(|ApiJson(b)| b).unwrap_or_default();
    let request = SubmitRequest { targets: body.targets, idempotency_key, from: body.from };
    match RunService::new(&state).submit(&caller.0, &access, request).await {
        Ok(run) => Ok(accepted(&run)),
        Err(error) => submit_refused(error),
    }
}

#[utoipa::path(get, path = "/api/runs/{id}", tag = "runs", operation_id = "getRun",
    params(("id" = String, Path, description = "Run id")),
    responses((status = 200, description = "The run with its nodes", body = RunBody),
        (status = 401, response = Unauthorized), (status = 404, response = NotFound),
        (status = 429, response = TooManyRequests)),
    security(("bearer" = [])))]
pub async fn get(
    State(state): State<AppState>,
    caller: Authenticated,
    ApiPath(id): ApiPath<RunId>,
) -> Result<Json<RunBody>, ApiError> {
    let (run, nodes) = RunService::new(&state).get(&caller.0, &id).await?;
    let placed = crate::services::queue::QueueService::new(&state, None).place(run).await?;
    let mut body = run_body(&placed.run);
    body.queue_position = placed.position;
    body.estimated_start_at = placed.estimated_start_at;
    body.nodes = Some(nodes.iter().map(|n| (n.node_id.to_string(), node_body(n))).collect());
    Ok(Json(body))
}

/// Stops a run: nodes not finished become `cancelled`, remote jobs are cancelled, holds of
/// nodes that did not succeed are released.
#[utoipa::path(post, path = "/api/runs/{id}/cancel", tag = "runs", operation_id = "cancelRun",
    params(("id" = String, Path, description = "Run id")),
    responses((status = 202, description = "Cancelling: the run as it stands", body = RunBody),
        (status = 401, response = Unauthorized), (status = 403, response = Forbidden),
        (status = 404, response = NotFound), (status = 429, response = TooManyRequests)),
    security(("bearer" = [])))]
pub async fn cancel(
    State(state): State<AppState>,
    caller: Authenticated,
    ApiPath(id): ApiPath<RunId>,
) -> Result<(StatusCode, Json<RunBody>), ApiError> {
    let now = RunService::new(&state).cancel(&caller.0, &id).await?;
    Ok((StatusCode::ACCEPTED, Json(run_body(&now))))
}

#[utoipa::path(get, path = "/api/rooms/{room}/runs", tag = "runs", operation_id = "listRuns",
    params(("room" = String, Path, description = "Room name"), ListQuery),
    responses((status = 200, description = "The room's runs, newest first", body = RunList),
        (status = 400, response = BadRequest), (status = 401, response = Unauthorized),
        (status = 404, response = NotFound), (status = 429, response = TooManyRequests)),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Authenticated,
    ApiPath(room): ApiPath<String>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<RunList>, ApiError> {
    let access = access::room_for(&state, &caller.0, &room, Permission::Read).await?;
    let limit = query.limit.unwrap_or(50).clamp(1, 200);
    let runs = RunService::new(&state).list(&access, limit).await?;
    Ok(Json(RunList { runs: runs.iter().map(run_body).collect() }))
}

pub(super) fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else { return Ok(None) };
    let key = value
        .to_str()
        .map_err(|_| ApiError::BadRequest("Idempotency-Key must be visible ASCII".into()))?
        .trim();
    if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY {
        return Err(ApiError::BadRequest(format!(
            "Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} characters"
        )));
    }
    Ok(Some(key.to_owned()))
}

/// A refused submission: the graph's errors (`422`) and a short balance (`402`) say more than
/// the usual body; everything else is the usual error.
pub(super) fn submit_refused(error: SubmitError) -> Result<Response, ApiError> {
    let message = error.to_string();
    match error {
        SubmitError::InvalidGraph(errors) => Ok(invalid_graph(&errors)),
        SubmitError::InsufficientCredits { balance, requested } => {
            let code = ErrorCode::InsufficientCredits;
            let body = json!({
                "error": message,
                "code": code.as_str(),
                "balance": balance,
                "cost": requested,
            });
            Ok((code.status(), Json(body)).into_response())
        }
        SubmitError::InsufficientTeamCredits { team, balance, requested } => {
            let code = ErrorCode::InsufficientCredits;
            let body = json!({
                "error": message,
                "code": code.as_str(),
                "balance": balance,
                "cost": requested,
                "teamId": team,
            });
            Ok((code.status(), Json(body)).into_response())
        }
        SubmitError::SpendingLimitReached { limit, spent, requested } => {
            let code = ErrorCode::SpendingLimitReached;
            let body = json!({
                "error": message,
                "code": code.as_str(),
                "limit": limit,
                "spent": spent,
                "requested": requested,
            });
            Ok((code.status(), Json(body)).into_response())
        }
        SubmitError::QueueFull { limit, position } => {
            let code = ErrorCode::QueueFull;
            let body = json!({"error": message, "code": code.as_str(), "limit": limit, "position": position});
            Ok((code.status(), Json(body)).into_response())
        }
        SubmitError::RoomNotFound(_) => Err(ApiError::RoomNotFound(message)),
        SubmitError::EmptyGraph(_) => Err(ApiError::EmptyGraph(message)),
        SubmitError::UnknownTarget { .. } => Err(ApiError::UnknownTarget(message)),
        SubmitError::Store(error) => Err(ApiError::Storage(error)),
        SubmitError::Access(error) => Err(error.into()),
        SubmitError::SignIn(error) => Err(error.into()),
        SubmitError::TooManyTargets | SubmitError::FromWithTargets | SubmitError::NotSchema(_) => {
            Err(ApiError::BadRequest(message))
        }
        SubmitError::Open(error) => Err(error.into()),
        SubmitError::RoomUnavailable(_) => Err(ApiError::Unavailable(message)),
        SubmitError::Encode(_) => Err(ApiError::Internal(message)),
        SubmitError::Accounts(error) => Err(error.into()),
    }
}

fn invalid_graph(errors: &ValidationErrors) -> Response {
    (ErrorCode::InvalidGraph.status(), Json(invalid_graph_body(errors))).into_response()
}

/// The body of `422 invalid_graph`: the errors in ComfyUI's shape, with `error` and `code`.
pub(super) fn invalid_graph_body(errors: &ValidationErrors) -> Value {
    let mut body = serde_json::to_value(errors).unwrap_or_else(|_| json!({}));
    if let Value::Object(map) = &mut body {
        map.insert("error".into(), Value::String(errors.to_string()));
        map.insert("code".into(), Value::String(ErrorCode::InvalidGraph.as_str().into()));
    }
    body
}

fn accepted(run: &Run) -> Response {
    let body = Submitted {
        run_id: run.id.to_string(),
        status: run.status.as_str().to_owned(),
        estimate: run.estimate,
    };
    (StatusCode::ACCEPTED, Json(body)).into_response()
}

pub(super) fn run_body(run: &Run) -> RunBody {
    RunBody {
        id: run.id.to_string(),
        room: run.room.clone(),
        user_id: run.user_id.to_string(),
        status: run.status.as_str().to_owned(),
        estimate: run.estimate,
        charged: run.charged,
        targets: run.targets.as_deref().and_then(|t| serde_json::from_str(t).ok()),
        attempts: run.attempts,
        error: run.error.clone(),
        created_at: run.created_at,
        started_at: run.started_at,
        finished_at: run.finished_at,
        queue_position: None,
        estimated_start_at: None,
        nodes: None,
    }
}

/// A node's stored outputs as the room's `results` map shows them: assets with the `url` to
/// download them from (see docs/document-schema.md). Outputs that do not read as the executor's
/// (written by an older version) are passed on as they are.
fn outputs_json(stored: Option<&str>) -> Option<Value> {
    let stored = stored?;
    match serde_json::from_str::<Outputs>(stored) {
        Ok(outputs) => Some(json!(document_outputs(&outputs))),
        Err(_) => serde_json::from_str(stored).ok(),
    }
}

fn node_body(node: &RunNode) -> RunNodeBody {
    let parse = |s: Option<&str>| s.and_then(|s| serde_json::from_str::<Value>(s).ok());
    RunNodeBody {
        node_type: node.node_type.clone(),
        state: node.state,
        cost: node.cost,
        charged: node.charged,
        hold: node.hold_state.as_str().to_owned(),
        params: parse(Some(&node.params)),
        outputs: outputs_json(node.outputs.as_deref()),
        error: node.error.clone(),
        started_at: node.started_at,
        finished_at: node.finished_at,
        duration_ms: node.started_at.zip(node.finished_at).map(|(s, f)| f - s),
    }
}
