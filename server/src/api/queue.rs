//! The run queue: list where the caller's (or a team's) runs stand, move a run to the front,
//! pause and resume a queue. `crate::services::queue`'s operations, parsed, called and mapped
//! (docs/queue.md).

use axum::Json;
use axum::extract::State;
use dojo_ids::{RunId, TeamId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::{ApiPath, ApiQuery, ClientIp};
use super::responses::{BadRequest, Forbidden, NotFound, TooManyRequests, Unauthorized};
use super::runs::{RunBody, run_body};
use super::{ApiError, Authenticated};
use crate::services::queue::{Placed, QueueError, QueueService};
use crate::state::AppState;

/// Longest team id accepted in `?team=`; longer names no team.
const MAX_TEAM_PARAM: usize = 64;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct QueueQuery {
    /// A team's queue (any member may read it) instead of the caller's.
    pub team: Option<String>,
    /// At most this many runs (default 100, at most 200).
    pub limit: Option<u32>,
}

/// The runs of a queue, running first, then queued in the order they will be claimed.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct QueueList {
    pub runs: Vec<RunBody>,
    /// Whether this queue is paused (its queued runs wait until it is resumed).
    pub paused: bool,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct QueueState {
    pub paused: bool,
}

impl From<QueueError> for ApiError {
    fn from(error: QueueError) -> Self {
        match error {
            QueueError::Run(error) => error.into(),
            QueueError::Team(error) => error.into(),
            QueueError::SignIn(error) => error.into(),
            QueueError::Forbidden => ApiError::Forbidden(error.to_string()),
            QueueError::NotQueued(_) => ApiError::NotQueued(error.to_string()),
            QueueError::Accounts(error) => error.into(),
        }
    }
}

pub(super) fn placed_body(placed: &Placed) -> RunBody {
    let mut body = run_body(&placed.run);
    body.queue_position = placed.position;
    body.estimated_start_at = placed.estimated_start_at;
    body
}

/// The caller's queued and running runs (or, with `?team=`, the team's), each queued one with
/// its position and estimated start.
#[utoipa::path(get, path = "/api/queue", tag = "queue", operation_id = "getQueue",
    params(QueueQuery),
    responses((status = 200, description = "The queue", body = QueueList),
        (status = 400, response = BadRequest), (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden), (status = 404, response = NotFound),
        (status = 429, response = TooManyRequests)),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    ClientIp(addr): ClientIp,
    caller: Authenticated,
    ApiQuery(query): ApiQuery<QueueQuery>,
) -> Result<Json<QueueList>, ApiError> {
    let team = match query.team {
        Some(team) if team.is_empty() || team.len() > MAX_TEAM_PARAM => {
            return Err(ApiError::NotFound(format!(
                "no team {:?}",
                team.chars().take(MAX_TEAM_PARAM).collect::<String>()
            )));
        }
        Some(team) => Some(TeamId::from(team.as_str())),
        None => None,
    };
    let limit = query.limit.unwrap_or(100).clamp(1, 200);
    let (runs, paused) = QueueService::new(&state, addr).list(&caller.0, team.as_ref(), limit).await?;
    Ok(Json(QueueList { runs: runs.iter().map(placed_body).collect(), paused }))
}

/// Moves a queued run before every other queued run of its priority: the run's own user, a
/// team's owners and admins for the team's runs, and queue admins (`DOJO_QUEUE_ADMINS`).
#[utoipa::path(post, path = "/api/runs/{id}/move-to-front", tag = "queue", operation_id = "moveRunToFront",
    params(("id" = String, Path, description = "Run id")),
    responses((status = 200, description = "The run, with its new position", body = RunBody),
        (status = 401, response = Unauthorized), (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, description = "`not_queued`: the run is running or finished", body = super::responses::ErrorBody),
        (status = 429, response = TooManyRequests)),
    security(("bearer" = [])))]
pub async fn move_to_front(
    State(state): State<AppState>,
    ClientIp(addr): ClientIp,
    caller: Authenticated,
    ApiPath(id): ApiPath<RunId>,
) -> Result<Json<RunBody>, ApiError> {
    let placed = QueueService::new(&state, addr).move_to_front(&caller.0, &id).await?;
    Ok(Json(placed_body(&placed)))
}

/// Pauses the caller's queue: their queued runs stay queued (running ones go on) until resumed.
#[utoipa::path(post, path = "/api/queue/pause", tag = "queue", operation_id = "pauseQueue",
    responses((status = 200, description = "Paused", body = QueueState),
        (status = 401, response = Unauthorized), (status = 429, response = TooManyRequests)),
    security(("bearer" = [])))]
pub async fn pause(
    State(state): State<AppState>,
    ClientIp(addr): ClientIp,
    caller: Authenticated,
) -> Result<Json<QueueState>, ApiError> {
    let paused = QueueService::new(&state, addr).set_mine_paused(&caller.0, true).await?;
    Ok(Json(QueueState { paused }))
}

/// Resumes the caller's queue.
#[utoipa::path(post, path = "/api/queue/resume", tag = "queue", operation_id = "resumeQueue",
    responses((status = 200, description = "Resumed", body = QueueState),
        (status = 401, response = Unauthorized), (status = 429, response = TooManyRequests)),
    security(("bearer" = [])))]
pub async fn resume(
    State(state): State<AppState>,
    ClientIp(addr): ClientIp,
    caller: Authenticated,
) -> Result<Json<QueueState>, ApiError> {
    let paused = QueueService::new(&state, addr).set_mine_paused(&caller.0, false).await?;
    Ok(Json(QueueState { paused }))
}

/// Pauses the team's queue (owners and admins; audited).
#[utoipa::path(post, path = "/api/teams/{team}/queue/pause", tag = "queue", operation_id = "pauseTeamQueue",
    params(("team" = String, Path, description = "Team id")),
    responses((status = 200, description = "Paused", body = QueueState),
        (status = 401, response = Unauthorized), (status = 403, response = Forbidden),
        (status = 404, response = NotFound), (status = 429, response = TooManyRequests)),
    security(("bearer" = [])))]
pub async fn pause_team(
    State(state): State<AppState>,
    ClientIp(addr): ClientIp,
    caller: Authenticated,
    ApiPath(team): ApiPath<TeamId>,
) -> Result<Json<QueueState>, ApiError> {
    let paused = QueueService::new(&state, addr).set_team_paused(&caller.0, &team, true).await?;
    Ok(Json(QueueState { paused }))
}

/// Resumes the team's queue (owners and admins; audited).
#[utoipa::path(post, path = "/api/teams/{team}/queue/resume", tag = "queue", operation_id = "resumeTeamQueue",
    params(("team" = String, Path, description = "Team id")),
    responses((status = 200, description = "Resumed", body = QueueState),
        (status = 401, response = Unauthorized), (status = 403, response = Forbidden),
        (status = 404, response = NotFound), (status = 429, response = TooManyRequests)),
    security(("bearer" = [])))]
pub async fn resume_team(
    State(state): State<AppState>,
    ClientIp(addr): ClientIp,
    caller: Authenticated,
    ApiPath(team): ApiPath<TeamId>,
) -> Result<Json<QueueState>, ApiError> {
    let paused = QueueService::new(&state, addr).set_team_paused(&caller.0, &team, false).await?;
    Ok(Json(QueueState { paused }))
}
