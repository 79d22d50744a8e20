//! Batches of runs: submit a room's graph over a list of parameter sets, read a batch's progress,
//! cancel it, list a room's batches (docs/batches.md). What each does is
//! `crate::services::batches`'s; a handler parses, authorizes, calls it and maps its error.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use dojo_auth::Permission;
use dojo_ids::BatchId;
use dojo_records::RunStatus;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::extract::{ApiJson, ApiPath, ApiQuery};
use super::responses::{
    BadRequest, ErrorBody, Forbidden, NotFound, TooManyRequests, Unauthorized, Unavailable,
};
use super::runs::{ListQuery, RunBody, RunStatusName, idempotency_key, run_body, submit_refused};
use super::{ApiError, Authenticated};
use crate::error_code::ErrorCode;
use crate::services::access;
use crate::services::batches::{BatchError, BatchRequest, BatchService, BatchView, Sweep, expand};
use crate::state::AppState;

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SubmitBatch {
    /// One run per set: node id → parameter → value, applied to a copy of the room's graph
    /// (1 to 100 sets). Excludes `sweeps`.
    #[serde(default)]
    pub sets: Option<Vec<BTreeMap<String, BTreeMap<String, Value>>>>,
    /// One run per combination of the sweeps' values (a grid; the last sweep varies fastest;
    /// 1 to 4 sweeps, at most 100 combinations). Excludes `sets`.
    #[serde(default)]
    pub sweeps: Option<Vec<Sweep>>,
    /// As for a run: node ids to run, with what they depend on.
    #[serde(default)]
    pub targets: Option<Vec<String>>,
    /// As for a run: this node and everything downstream of it. Excludes `targets`.
    #[serde(default)]
    pub from: Option<String>,
}

/// How many members stand where.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BatchCounts {
    pub queued: usize,
    pub running: usize,
    pub succeeded: usize,
    pub failed: usize,
    pub cancelled: usize,
}

/// One member: its run and its parameter set.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BatchMemberBody {
    /// Its place in the batch, 0-based.
    pub index: i64,
    /// Its parameter set: node id → parameter → value.
    #[schema(required = true)]
    pub params: Option<Value>,
    pub run: RunBody,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BatchBody {
    pub id: String,
    pub room: String,
    pub user_id: String,
    /// `queued` (no member started), `running`, then `succeeded` (every member), `failed`
    /// (at least one member failed) or `cancelled`.
    #[schema(value_type = RunStatusName)]
    pub status: String,
    pub size: i64,
    /// Credits the members held together when accepted.
    pub estimate: i64,
    /// Credits the members were charged so far.
    pub charged: i64,
    pub counts: BatchCounts,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
    /// In batch order.
    pub members: Vec<BatchMemberBody>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BatchList {
    pub batches: Vec<BatchBody>,
}

/// Runs the room's graph once per parameter set, as one batch: every member validated, all
/// their credits held and all queued in one step, or none (`402` with the whole batch's cost,
/// `429 queue_full` when the members would overflow the plan's queue).
#[utoipa::path(post, path = "/api/rooms/{room}/batches", tag = "runs", operation_id = "submitBatch",
    params(("room" = String, Path, description = "Room name"),
        ("Idempotency-Key" = Option<String>, Header, description = "The same key returns the same batch, accepting nothing again")),
    request_body(content = SubmitBatch, description = "The parameter sets, or sweeps"),
    responses((status = 202, description = "Every member validated, held and queued", body = BatchBody),
        (status = 400, response = BadRequest), (status = 401, response = Unauthorized),
        (status = 402, description = "`insufficient_credits` (`balance`, `cost`: the whole batch) or `spending_limit_reached`", body = ErrorBody),
        (status = 403, response = Forbidden), (status = 404, response = NotFound),
        (status = 422, description = "`batch_too_large`: over 100 members or 256 KiB of sets; `invalid_batch`: a set names no node or parameter, or sets and sweeps together; `invalid_graph`: a member's graph fails validation (with `member`, its index); `empty_graph`, `unknown_target`", body = ErrorBody),
        (status = 429, description = "`queue_full` (`limit`, `position`), `quota_exceeded` or `rate_limited`", body = ErrorBody),
        (status = 503, response = Unavailable)),
    security(("bearer" = [])))]
pub async fn submit(
    State(state): State<AppState>,
    caller: Authenticated,
    ApiPath(room): ApiPath<String>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<SubmitBatch>,
) -> Result<Response, ApiError> {
    let access = access::room_for(&state, &caller.0, &room, Permission::Write).await?;
    caller.user()?;
    let idempotency_key = idempotency_key(&headers)?;
    let sets = match expand(body.sets, body.sweeps) {
        Ok(sets) => sets,
        Err(error) => return refused(error),
    };
    let request = BatchRequest { targets: body.targets, from: body.from, sets, idempotency_key };
    match BatchService::new(&state).submit(&caller.0, &access, request).await {
        Ok(view) => Ok((StatusCode::ACCEPTED, Json(batch_body(&view))).into_response()),
        Err(error) => refused(error),
    }
}

#[utoipa::path(get, path = "/api/batches/{id}", tag = "runs", operation_id = "getBatch",
    params(("id" = String, Path, description = "Batch id")),
    responses((status = 200, description = "The batch, its counts and its members", body = BatchBody),
        (status = 401, response = Unauthorized), (status = 404, response = NotFound),
        (status = 429, response = TooManyRequests)),
    security(("bearer" = [])))]
pub async fn get(
    State(state): State<AppState>,
    caller: Authenticated,
    ApiPath(id): ApiPath<BatchId>,
) -> Result<Json<BatchBody>, ApiError> {
    let view = BatchService::new(&state).get(&caller.0, &id).await?;
    Ok(Json(batch_body(&view)))
}

/// Cancels every member still queued or running; their holds are released.
#[utoipa::path(post, path = "/api/batches/{id}/cancel", tag = "runs", operation_id = "cancelBatch",
    params(("id" = String, Path, description = "Batch id")),
    responses((status = 202, description = "Cancelling: the batch as it stands", body = BatchBody),
        (status = 401, response = Unauthorized), (status = 403, response = Forbidden),
        (status = 404, response = NotFound), (status = 429, response = TooManyRequests)),
    security(("bearer" = [])))]
pub async fn cancel(
    State(state): State<AppState>,
    caller: Authenticated,
    ApiPath(id): ApiPath<BatchId>,
) -> Result<(StatusCode, Json<BatchBody>), ApiError> {
    let view = BatchService::new(&state).cancel(&caller.0, &id).await?;
    Ok((StatusCode::ACCEPTED, Json(batch_body(&view))))
}

#[utoipa::path(get, path = "/api/rooms/{room}/batches", tag = "runs", operation_id = "listBatches",
    params(("room" = String, Path, description = "Room name"), ListQuery),
    responses((status = 200, description = "The room's batches, newest first", body = BatchList),
        (status = 400, response = BadRequest), (status = 401, response = Unauthorized),
        (status = 404, response = NotFound), (status = 429, response = TooManyRequests)),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Authenticated,
    ApiPath(room): ApiPath<String>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<BatchList>, ApiError> {
    let access = access::room_for(&state, &caller.0, &room, Permission::Read).await?;
    // Each batch brings up to 100 members: fewer batches per page than runs.
    let limit = query.limit.unwrap_or(20).clamp(1, 50);
    let views = BatchService::new(&state).list(&access, limit).await?;
    Ok(Json(BatchList { batches: views.iter().map(batch_body).collect() }))
}

fn refused(error: BatchError) -> Result<Response, ApiError> {
    let message = error.to_string();
    let coded = |code: ErrorCode| {
        (code.status(), Json(json!({"error": message, "code": code.as_str()}))).into_response()
    };
    match error {
        BatchError::Submit(error) => submit_refused(error),
        BatchError::TooLarge(_) => Ok(coded(ErrorCode::BatchTooLarge)),
        BatchError::Invalid(_) => Ok(coded(ErrorCode::InvalidBatch)),
        BatchError::Member { index, errors } => {
            let mut response = super::runs::invalid_graph_body(&errors);
            if let Value::Object(map) = &mut response {
                map.insert("member".into(), json!(index));
                map.insert("error".into(), Value::String(message.clone()));
            }
            Ok((ErrorCode::InvalidGraph.status(), Json(response)).into_response())
        }
    }
}

fn batch_body(view: &BatchView) -> BatchBody {
    let batch = &view.batch;
    BatchBody {
        id: batch.id.to_string(),
        room: batch.room.clone(),
        user_id: batch.user_id.to_string(),
        status: view.status().as_str().to_owned(),
        size: batch.size,
        estimate: batch.estimate,
        charged: view.runs.iter().map(|run| run.charged).sum(),
        counts: BatchCounts {
            queued: view.count(RunStatus::Queued),
            running: view.count(RunStatus::Running),
            succeeded: view.count(RunStatus::Succeeded),
            failed: view.count(RunStatus::Failed),
            cancelled: view.count(RunStatus::Cancelled),
        },
        created_at: batch.created_at,
        members: view
            .runs
            .iter()
            .map(|run| BatchMemberBody {
                index: run.batch_index.unwrap_or(0),
                params: run.batch_params.as_deref().and_then(|p| serde_json::from_str(p).ok()),
                run: run_body(run),
            })
            .collect(),
    }
}
