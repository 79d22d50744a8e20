//! Runs of a room's graph: submit (validated, priced and held before anything is queued), read,
//! cancel, list. The live per-node states travel in the room's document (`results`, `runs`);
//! these routes are the authoritative record.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use dojo_accounts::{AccountError, NewRun, NewRunNode, Run, RunNode, Submission};
use dojo_auth::Permission;
use dojo_executor::{GraphLimits, ValidationErrors, validate};
use dojo_sync_protocol::canvas::{NodeResult, NodeStatus, read_graph, write_node_result};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::{ApiError, Authenticated, access, room_name};
use crate::execution::room_writer::RoomWriter;
use crate::execution::{Executor, now_millis, write_summary};
use crate::state::AppState;

const MAX_IDEMPOTENCY_KEY: usize = 128;
const MAX_TARGETS: usize = 256;

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitRun {
    /// Node ids to run, with what they depend on. Absent or empty: the whole graph.
    #[serde(default)]
    pub targets: Option<Vec<String>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Submitted {
    pub run_id: String,
    pub status: String,
    /// Credits held: the most the run can cost.
    pub estimate: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RunBody {
    pub id: String,
    pub room: String,
    pub user_id: String,
    pub status: String,
    pub estimate: i64,
    pub charged: i64,
    pub targets: Option<Vec<String>>,
    pub attempts: i64,
    pub error: Option<String>,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    /// Per node: state, cost, charge, outputs, error, parameters and timings (the generation
    /// history). Only in `GET /api/runs/{id}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub nodes: Option<serde_json::Map<String, Value>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RunList {
    pub runs: Vec<RunBody>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct ListQuery {
    /// At most this many (default 50, at most 200).
    pub limit: Option<u32>,
}

fn executor(state: &AppState) -> &std::sync::Arc<Executor> {
    state.executor()
}

/// Runs the room's graph (or the targets and what they need): validated, priced, credits held,
/// queued. Per-node validation errors come back as `422` and are also written on the nodes.
#[utoipa::path(post, path = "/api/rooms/{room}/runs", tag = "runs",
    params(("room" = String, Path, description = "Room name"),
        ("Idempotency-Key" = Option<String>, Header, description = "The same key returns the same run")),
    request_body(content = SubmitRun, description = "Optional targets"),
    responses((status = 202, body = Submitted),
        (status = 422, description = "`{error, code: invalid_graph, errors, node_errors}`", body = Object),
        (status = 402, description = "`{error, code: insufficient_credits, balance, cost}`", body = Object),
        (status = 429, description = "`quota_exceeded`: the caller has the most runs queued or running one user may"),
        (status = 401), (status = 403), (status = 404)),
    security(("bearer" = [])))]
pub async fn submit(
    State(state): State<AppState>,
    caller: Authenticated,
    Path(room): Path<String>,
    headers: HeaderMap,
    body: Option<Json<SubmitRun>>,
) -> Result<Response, ApiError> {
    let (room, _) = access::room_for(&state, &caller.0, &room, Permission::Write).await?;
    let user = caller.user()?.clone();
    let key = idempotency_key(&headers)?;
    let targets = body.map(|Json(b)| b.targets).unwrap_or_default().filter(|t| !t.is_empty());
    if let Some(targets) = &targets
        && targets.len() > MAX_TARGETS
    {
        return Err(ApiError::BadRequest(format!("at most {MAX_TARGETS} targets")));
    }
    let executor = executor(&state);
    crate::api::account::dev_welcome(&state, &user.id).await;

    // Opened as the caller's, so it counts against their share of rooms.
    access::open_room(&state, &caller.0, &room)?;
    let writer = RoomWriter::open(executor.rooms().clone(), room.clone())
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    let graph = writer
        .read(|txn| read_graph(txn))
        .await
        .map_err(|e| ApiError::BadRequest(format!("the canvas does not follow the document schema: {e}")))?;
    let target_refs: Option<Vec<&str>> = targets.as_ref().map(|t| t.iter().map(String::as_str).collect());
    let plan = match validate(executor.catalog(), &graph, target_refs.as_deref(), &GraphLimits::default()) {
        Ok(plan) => plan,
        Err(errors) => {
            mark_invalid(&writer, &errors).await;
            return Ok(invalid_graph(&errors));
        }
    };
    let run_id = format!("run_{}", random_hex(12));
    let nodes = plan
        .order()
        .map(|node| NewRunNode {
            node_id: node.id.clone(),
            node_type: node.node_type.clone(),
            cost: i64::try_from(executor.catalog().cost(&node.node_type).unwrap_or(0)).unwrap_or(i64::MAX),
            params: serde_json::to_string(&node.params).unwrap_or_else(|_| "{}".into()),
        })
        .collect::<Vec<_>>();
    let node_ids: Vec<String> = nodes.iter().map(|n| n.node_id.clone()).collect();
    let new_run = NewRun {
        id: run_id,
        room: room.as_str().to_owned(),
        user_id: user.id.clone(),
        graph: serde_json::to_string(&graph).map_err(|e| ApiError::Internal(e.to_string()))?,
        targets: targets.as_ref().and_then(|t| serde_json::to_string(t).ok()),
        idempotency_key: key,
        nodes,
        hold_expires_at: executor.hold_expiry(&plan),
        max_unfinished: Some(state.config().limits.max_queued_runs_per_user).filter(|&max| max > 0),
    };
    let submission = match executor.runs().create_run(new_run).await {
        Ok(submission) => submission,
        Err(AccountError::InsufficientCredits { balance, requested }) => {
            let body = json!({
                "error": format!("this run costs {requested} credits; the balance is {balance}"),
                "code": "insufficient_credits",
                "balance": balance,
                "cost": requested,
            });
            return Ok((StatusCode::PAYMENT_REQUIRED, Json(body)).into_response());
        }
        Err(error) => return Err(error.into()),
    };
    let run = match submission {
        Submission::Existing(run) => return Ok(accepted(&run)),
        Submission::Created(run) => run,
    };
    // Everyone sees the nodes queued at once, before a worker picks the run up.
    let queued_at = now_millis().max(0).unsigned_abs();
    let run_id = run.id.clone();
    let queued = node_ids.clone();
    if let Err(error) = writer
        .write(|txn| {
            for node in &queued {
                write_node_result(
                    txn,
                    node,
                    &node_result(NodeStatus::Queued, None, Vec::new(), Some(&run_id), queued_at),
                )?;
            }
            Ok(())
        })
        .await
    {
        tracing::warn!(run = %run.id, %error, "could not mark a run's nodes queued");
    }
    write_summary(&writer, &run, &node_ids).await;
    executor.wake();
    tracing::info!(run = %run.id, room = %room, estimate = run.estimate, nodes = node_ids.len(), "run accepted");
    Ok(accepted(&run))
}

#[utoipa::path(get, path = "/api/runs/{id}", tag = "runs",
    params(("id" = String, Path, description = "Run id")),
    responses((status = 200, body = RunBody), (status = 404)),
    security(("bearer" = [])))]
pub async fn get(
    State(state): State<AppState>,
    caller: Authenticated,
    Path(id): Path<String>,
) -> Result<Json<RunBody>, ApiError> {
    let run = visible_run(&state, &caller, &id, Permission::Read).await?;
    let nodes = executor(&state).runs().run_nodes(&run.id).await?;
    let mut body = run_body(&run);
    body.nodes = Some(nodes.iter().map(|n| (n.node_id.clone(), node_json(n))).collect());
    Ok(Json(body))
}

/// Stops a run: nodes not finished become `cancelled`, remote jobs are cancelled, holds of
/// nodes that did not succeed are released.
#[utoipa::path(post, path = "/api/runs/{id}/cancel", tag = "runs",
    params(("id" = String, Path, description = "Run id")),
    responses((status = 202, body = RunBody), (status = 404), (status = 403)),
    security(("bearer" = [])))]
pub async fn cancel(
    State(state): State<AppState>,
    caller: Authenticated,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<RunBody>), ApiError> {
    let run = visible_run(&state, &caller, &id, Permission::Write).await?;
    let executor = executor(&state);
    let now = executor.runs().request_cancel(&run.id).await?.ok_or_else(|| not_found(&id))?;
    executor.cancel_local(&run.id);
    if now.status.is_final() && !run.status.is_final() {
        // Cancelled before any worker started it: nobody else will tell the room.
        let nodes = executor.runs().run_nodes(&run.id).await?;
        if let Ok(room) = room_name(&run.room)
            && let Ok(writer) = RoomWriter::open(executor.rooms().clone(), room).await
        {
            let at = now_millis().max(0).unsigned_abs();
            let ids: Vec<String> = nodes.iter().map(|n| n.node_id.clone()).collect();
            let _ = writer
                .write(|txn| {
                    for node in &ids {
                        write_node_result(
                            txn,
                            node,
                            &node_result(NodeStatus::Cancelled, None, Vec::new(), Some(&run.id), at),
                        )?;
                    }
                    Ok(())
                })
                .await;
            write_summary(&writer, &now, &ids).await;
        }
    }
    Ok((StatusCode::ACCEPTED, Json(run_body(&now))))
}

#[utoipa::path(get, path = "/api/rooms/{room}/runs", tag = "runs",
    params(("room" = String, Path, description = "Room name"), ListQuery),
    responses((status = 200, body = RunList), (status = 404)),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Authenticated,
    Path(room): Path<String>,
    Query(query): Query<ListQuery>,
) -> Result<Json<RunList>, ApiError> {
    let (room, _) = access::room_for(&state, &caller.0, &room, Permission::Read).await?;
    let limit = query.limit.unwrap_or(50).clamp(1, 200);
    let runs = executor(&state).runs().list_runs(room.as_str(), limit).await?;
    Ok(Json(RunList { runs: runs.iter().map(run_body).collect() }))
}

async fn visible_run(
    state: &AppState,
    caller: &Authenticated,
    id: &str,
    needed: Permission,
) -> Result<Run, ApiError> {
    if id.len() > 64 {
        return Err(not_found(id));
    }
    let run = executor(state).runs().run(id).await?.ok_or_else(|| not_found(id))?;
    // A run is as visible as its room: a stranger learns nothing, not even that it exists,
    // whatever they ask to do with it. Only someone who may read the room hears "forbidden".
    let permission = match state.auth().room_permission(&caller.0, &run.room).await {
        Ok(permission) => permission,
        Err(crate::auth::AuthError::Forbidden) => return Err(not_found(id)),
        Err(error) => return Err(error.into()),
    };
    if permission < needed {
        return Err(ApiError::Forbidden(format!("this needs {needed} access to the run's room")));
    }
    Ok(run)
}

fn not_found(id: &str) -> ApiError {
    ApiError::NotFound(format!("no run {id:?}"))
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
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

fn invalid_graph(errors: &ValidationErrors) -> Response {
    let mut body = serde_json::to_value(errors).unwrap_or_else(|_| json!({}));
    if let Value::Object(map) = &mut body {
        map.insert("error".into(), Value::String(errors.to_string()));
        map.insert("code".into(), Value::String("invalid_graph".into()));
    }
    (StatusCode::UNPROCESSABLE_ENTITY, Json(body)).into_response()
}

/// Shows each node's validation errors on the node itself.
async fn mark_invalid(writer: &RoomWriter, errors: &ValidationErrors) {
    let at = now_millis().max(0).unsigned_abs();
    let entries: Vec<(String, String, Vec<Value>)> = errors
        .node_errors
        .iter()
        .map(|(node, node_errors)| {
            let message =
                node_errors.errors.iter().map(|e| e.message.as_str()).collect::<Vec<_>>().join("; ");
            let list = node_errors.errors.iter().filter_map(|e| serde_json::to_value(e).ok()).collect();
            (node.clone(), message, list)
        })
        .collect();
    if let Err(error) = writer
        .write(|txn| {
            for (node, message, list) in &entries {
                write_node_result(
                    txn,
                    node,
                    &node_result(NodeStatus::Invalid, Some(message.clone()), list.clone(), None, at),
                )?;
            }
            Ok(())
        })
        .await
    {
        tracing::warn!(%error, "could not write validation errors into the room");
    }
}

fn node_result(
    status: NodeStatus,
    error: Option<String>,
    errors: Vec<Value>,
    run_id: Option<&str>,
    at: u64,
) -> NodeResult {
    NodeResult {
        status,
        progress: 0.0,
        outputs: Default::default(),
        error,
        errors,
        run_id: run_id.map(str::to_owned),
        updated_at: at,
    }
}

fn accepted(run: &Run) -> Response {
    let body =
        Submitted { run_id: run.id.clone(), status: run.status.as_str().to_owned(), estimate: run.estimate };
    (StatusCode::ACCEPTED, Json(body)).into_response()
}

fn run_body(run: &Run) -> RunBody {
    RunBody {
        id: run.id.clone(),
        room: run.room.clone(),
        user_id: run.user_id.clone(),
        status: run.status.as_str().to_owned(),
        estimate: run.estimate,
        charged: run.charged,
        targets: run.targets.as_deref().and_then(|t| serde_json::from_str(t).ok()),
        attempts: run.attempts,
        error: run.error.clone(),
        created_at: run.created_at,
        started_at: run.started_at,
        finished_at: run.finished_at,
        nodes: None,
    }
}

fn node_json(node: &RunNode) -> Value {
    let parse = |s: &Option<String>| s.as_deref().and_then(|s| serde_json::from_str::<Value>(s).ok());
    json!({
        "type": node.node_type,
        "state": node.state,
        "cost": node.cost,
        "charged": node.charged,
        "hold": node.hold_state.as_str(),
        "params": parse(&Some(node.params.clone())),
        "outputs": parse(&node.outputs),
        "error": node.error,
        "started_at": node.started_at,
        "finished_at": node.finished_at,
        "duration_ms": node.started_at.zip(node.finished_at).map(|(s, f)| f - s),
    })
}

fn random_hex(bytes: usize) -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..bytes).map(|_| format!("{:02x}", rng.random::<u8>())).collect()
}
