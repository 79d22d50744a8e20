//! Workflows: a workflow is a room with an owner, a title, collaborators and a public flag.
//! The operations are `crate::services::workflows`'s; these handlers parse, call and map.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use dojo_auth::Permission;
use dojo_ids::{TeamId, UserId, WorkflowId};
use dojo_records::{Collaborator, CollaboratorPermission, Workflow, WorkflowPatch, WorkflowSummary};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::{ApiJson, ApiPath, ClientIp};
use super::responses::{BadRequest, ErrorBody, Forbidden, NotFound, TooManyRequests, Unauthorized};
use super::{ApiError, Authenticated};
use crate::services::workflows::WorkflowService;
use crate::state::AppState;

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowBody {
    pub id: String,
    /// The room the canvas lives in: connect to `/rooms/{room}`.
    pub room: String,
    pub owner_id: String,
    pub title: String,
    pub public: bool,
    /// The team the workflow belongs to (its members get the access their role implies), or
    /// absent: its owner's alone.
    pub team_id: Option<String>,
    /// What the caller may do: `read`, `write` or `admin` (the owner, or a team owner or
    /// admin).
    #[schema(value_type = PermissionName)]
    pub permission: Permission,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
    pub updated_at: i64,
}

impl WorkflowBody {
    fn new(workflow: Workflow, permission: Permission) -> Self {
        Self {
            id: workflow.id.into_string(),
            room: workflow.room.into(),
            owner_id: workflow.owner_id.into_string(),
            title: workflow.title,
            public: workflow.public,
            team_id: workflow.team_id.map(TeamId::into_string),
            permission,
            created_at: workflow.created_at,
            updated_at: workflow.updated_at,
        }
    }
}

impl From<WorkflowSummary> for WorkflowBody {
    fn from(summary: WorkflowSummary) -> Self {
        Self::new(summary.workflow, summary.permission)
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowDetail {
    #[serde(flatten)]
    pub workflow: WorkflowBody,
    /// Listed for the owner only.
    pub collaborators: Vec<CollaboratorBody>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CollaboratorBody {
    pub user_id: String,
    /// `read` or `write`.
    #[schema(value_type = CollaboratorPermissionName)]
    pub permission: String,
    pub added_at: i64,
}

impl From<Collaborator> for CollaboratorBody {
    fn from(collaborator: Collaborator) -> Self {
        Self {
            user_id: collaborator.user_id.into_string(),
            permission: collaborator.permission.as_str().to_owned(),
            added_at: collaborator.added_at,
        }
    }
}

/// A collaborator's permission as a body names it (`read` or `write`).
pub(super) fn parse_permission(text: &str) -> Result<CollaboratorPermission, ApiError> {
    text.parse().map_err(|e: dojo_auth::UnknownPermission| ApiError::BadRequest(e.to_string()))
}

/// What a caller may do with a workflow's room.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)] // a description only: the body carries `dojo_auth::Permission`
pub enum PermissionName {
    Read,
    Write,
    Admin,
}

/// What a collaborator may do.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)] // a description only: the body carries the permission as text
pub enum CollaboratorPermissionName {
    Read,
    Write,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateWorkflow {
    pub title: String,
    /// A room name of your choice; by default the workflow's id.
    #[serde(default)]
    pub room: Option<String>,
    /// Create it in this team (the caller must be its owner, admin or member); by default it
    /// is the caller's own.
    #[serde(default)]
    pub team_id: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdateWorkflow {
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub public: Option<bool>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SetCollaborator {
    /// `read` or `write`.
    #[schema(value_type = CollaboratorPermissionName)]
    pub permission: String,
}

/// The caller's workflows: owned and shared with them, most recently updated first.
#[utoipa::path(get, path = "/api/workflows", tag = "workflows", operation_id = "listWorkflows",
    responses((status = 200, description = "The caller's workflows", body = Vec<WorkflowBody>),
        (status = 401, response = Unauthorized), (status = 429, response = TooManyRequests)),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Authenticated,
) -> Result<Json<Vec<WorkflowBody>>, ApiError> {
    let workflows = WorkflowService::new(&state).list(&caller.0).await?;
    Ok(Json(workflows.into_iter().map(WorkflowBody::from).collect()))
}

/// Creates a private workflow owned by the caller, or by one of their teams (`teamId`).
#[utoipa::path(post, path = "/api/workflows", tag = "workflows", operation_id = "createWorkflow",
    request_body = CreateWorkflow,
    responses((status = 201, description = "Created", body = WorkflowBody),
        (status = 400, response = BadRequest), (status = 401, response = Unauthorized),
        (status = 403, description = "`forbidden`: the caller is a viewer of the team", body = ErrorBody),
        (status = 404, description = "`not_found`: no such team visible to the caller", body = ErrorBody),
        (status = 409, description = "`room_taken`: a workflow has the room, or it is in use and the token has no grant on it", body = ErrorBody),
        (status = 429, description = "`quota_exceeded`: the caller owns the most workflows one user may, or the team holds the most one team may; or `rate_limited`", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    caller: Authenticated,
    ApiJson(body): ApiJson<CreateWorkflow>,
) -> Result<(StatusCode, Json<WorkflowBody>), ApiError> {
    let team = body.team_id.map(TeamId::from);
    let service = WorkflowService::new(&state);
    let workflow = service.create(&caller.0, &body.title, body.room.as_deref(), team.as_ref()).await?;
    Ok((StatusCode::CREATED, Json(WorkflowBody::new(workflow, Permission::Admin))))
}

#[utoipa::path(get, path = "/api/workflows/{id}", tag = "workflows", operation_id = "getWorkflow",
    params(("id" = String, Path, description = "Workflow id")),
    responses((status = 200, description = "The workflow", body = WorkflowDetail),
        (status = 401, response = Unauthorized), (status = 404, response = NotFound),
        (status = 429, response = TooManyRequests)),
    security(("bearer" = [])))]
pub async fn get(
    State(state): State<AppState>,
    caller: Authenticated,
    ApiPath(id): ApiPath<WorkflowId>,
) -> Result<Json<WorkflowDetail>, ApiError> {
    let detail = WorkflowService::new(&state).detail(&caller.0, &id).await?;
    let collaborators = detail.collaborators.into_iter().map(CollaboratorBody::from).collect();
    let (workflow, permission) = (detail.workflow, detail.permission);
    Ok(Json(WorkflowDetail { workflow: WorkflowBody::new(workflow, permission), collaborators }))
}

/// Renames the workflow or makes it public or private (owner only).
#[utoipa::path(patch, path = "/api/workflows/{id}", tag = "workflows", operation_id = "updateWorkflow",
    request_body = UpdateWorkflow, params(("id" = String, Path, description = "Workflow id")),
    responses((status = 200, description = "The workflow as changed", body = WorkflowBody),
        (status = 400, response = BadRequest), (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden), (status = 404, response = NotFound),
        (status = 429, response = TooManyRequests)),
    security(("bearer" = [])))]
pub async fn update(
    State(state): State<AppState>,
    ClientIp(addr): ClientIp,
    caller: Authenticated,
    ApiPath(id): ApiPath<WorkflowId>,
    ApiJson(body): ApiJson<UpdateWorkflow>,
) -> Result<Json<WorkflowBody>, ApiError> {
    let service = WorkflowService::from_addr(&state, addr);
    let owned = service.owned(&caller.0, &id).await?;
    let patch = WorkflowPatch { title: body.title, public: body.public };
    let workflow = service.update(&owned, patch).await?;
    Ok(Json(WorkflowBody::new(workflow, Permission::Admin)))
}

/// Deletes the workflow (owner only). Soft: its room stays reserved and closed to everyone.
#[utoipa::path(delete, path = "/api/workflows/{id}", tag = "workflows", operation_id = "deleteWorkflow",
    params(("id" = String, Path, description = "Workflow id")),
    responses((status = 204, description = "Deleted"), (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden), (status = 404, response = NotFound),
        (status = 429, response = TooManyRequests)),
    security(("bearer" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    ClientIp(addr): ClientIp,
    caller: Authenticated,
    ApiPath(id): ApiPath<WorkflowId>,
) -> Result<StatusCode, ApiError> {
    let service = WorkflowService::from_addr(&state, addr);
    service.delete(service.owned(&caller.0, &id).await?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Shares the workflow with a user, or changes what they may do (owner only).
#[utoipa::path(put, path = "/api/workflows/{id}/collaborators/{user}", tag = "workflows",
    operation_id = "setCollaborator", request_body = SetCollaborator,
    params(("id" = String, Path, description = "Workflow id"), ("user" = String, Path, description = "User id")),
    responses((status = 200, description = "The collaborator as now shared", body = CollaboratorBody),
        (status = 400, response = BadRequest), (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden), (status = 404, response = NotFound),
        (status = 409, description = "The owner cannot be a collaborator (`conflict`)", body = ErrorBody),
        (status = 429, response = TooManyRequests)),
    security(("bearer" = [])))]
pub async fn set_collaborator(
    State(state): State<AppState>,
    ClientIp(addr): ClientIp,
    caller: Authenticated,
    ApiPath((id, user)): ApiPath<(WorkflowId, UserId)>,
    ApiJson(body): ApiJson<SetCollaborator>,
) -> Result<Json<CollaboratorBody>, ApiError> {
    let service = WorkflowService::from_addr(&state, addr);
    let owned = service.owned(&caller.0, &id).await?;
    let permission = parse_permission(&body.permission)?;
    let collaborator = service.set_collaborator(&owned, &user, permission).await?;
    Ok(Json(collaborator.into()))
}

/// Stops sharing the workflow with a user (owner only).
#[utoipa::path(delete, path = "/api/workflows/{id}/collaborators/{user}", tag = "workflows",
    operation_id = "removeCollaborator",
    params(("id" = String, Path, description = "Workflow id"), ("user" = String, Path, description = "User id")),
    responses((status = 204, description = "No longer shared"), (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden), (status = 404, response = NotFound),
        (status = 429, response = TooManyRequests)),
    security(("bearer" = [])))]
pub async fn remove_collaborator(
    State(state): State<AppState>,
    ClientIp(addr): ClientIp,
    caller: Authenticated,
    ApiPath((id, user)): ApiPath<(WorkflowId, UserId)>,
) -> Result<StatusCode, ApiError> {
    let service = WorkflowService::from_addr(&state, addr);
    service.remove_collaborator(&service.owned(&caller.0, &id).await?, &user).await?;
    Ok(StatusCode::NO_CONTENT)
}
