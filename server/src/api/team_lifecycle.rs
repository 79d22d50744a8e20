//! Renaming and deleting a team: `crate::services::team_lifecycle`'s operations, parsed, called
//! and mapped.

use axum::Json;
use axum::extract::State;
use dojo_ids::TeamId;
use dojo_records::Membership;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::{ApiJson, ApiPath, ClientIp};
use super::responses::{BadRequest, Forbidden, NotFound, TooManyRequests, Unauthorized};
use super::teams::TeamBody;
use super::{ApiError, Authenticated};
use crate::services::teams::TeamService;
use crate::state::AppState;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RenameTeam {
    /// 1–100 characters (trimmed), no control or invisible formatting characters.
    pub name: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TeamDeleted {
    /// The team's live workflows, deleted with it (their rooms stay reserved and closed).
    pub workflows_deleted: u64,
}

/// Renames the team (owners and admins).
#[utoipa::path(patch, path = "/api/teams/{team}", tag = "teams", operation_id = "renameTeam",
    request_body = RenameTeam,
    params(("team" = String, Path, description = "Team id")),
    responses((status = 200, description = "The team, renamed", body = TeamBody),
        (status = 400, response = BadRequest), (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden), (status = 404, response = NotFound),
        (status = 429, response = TooManyRequests)),
    security(("bearer" = [])))]
pub async fn rename(
    State(state): State<AppState>,
    ClientIp(addr): ClientIp,
    caller: Authenticated,
    ApiPath(team): ApiPath<TeamId>,
    ApiJson(body): ApiJson<RenameTeam>,
) -> Result<Json<TeamBody>, ApiError> {
    let service = TeamService::new(&state, addr);
    let renamed = service.rename(&caller.0, &team, &body.name).await?;
    let (_, role) = service.get(&caller.0, &team).await?;
    Ok(Json(Membership { team: renamed, role, joined_at: 0 }.into()))
}

/// Deletes the team (owners): its members, invitations and workflows go with it; anyone in
/// one of its rooms is disconnected.
#[utoipa::path(delete, path = "/api/teams/{team}", tag = "teams", operation_id = "deleteTeam",
    params(("team" = String, Path, description = "Team id")),
    responses((status = 200, description = "Deleted", body = TeamDeleted),
        (status = 401, response = Unauthorized), (status = 403, response = Forbidden),
        (status = 404, response = NotFound), (status = 429, response = TooManyRequests)),
    security(("bearer" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    ClientIp(addr): ClientIp,
    caller: Authenticated,
    ApiPath(team): ApiPath<TeamId>,
) -> Result<Json<TeamDeleted>, ApiError> {
    let workflows_deleted = TeamService::new(&state, addr).delete(&caller.0, &team).await?;
    Ok(Json(TeamDeleted { workflows_deleted }))
}
