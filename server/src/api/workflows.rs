//! Workflows: a workflow is a room with an owner, a title, collaborators and a public flag.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use dojo_accounts::{AccountError, CollaboratorPermission, Workflow, WorkflowPatch, WorkflowSummary};
use dojo_auth::Permission;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{ApiError, Authenticated, room_name};
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
    /// What the caller may do: `read`, `write` or `admin` (the owner).
    #[schema(value_type = String)]
    pub permission: Permission,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
    pub updated_at: i64,
}

impl WorkflowBody {
    fn new(workflow: Workflow, permission: Permission) -> Self {
        Self {
            id: workflow.id,
            room: workflow.room,
            owner_id: workflow.owner_id,
            title: workflow.title,
            public: workflow.public,
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
    pub permission: String,
    pub added_at: i64,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateWorkflow {
    pub title: String,
    /// A room name of your choice; by default the workflow's id.
    #[serde(default)]
    pub room: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct UpdateWorkflow {
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub public: Option<bool>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct SetCollaborator {
    /// `read` or `write`.
    pub permission: String,
}

/// The workflow and what the caller may do in it; not found for those who may not see it,
/// so that a private workflow's existence does not leak.
async fn visible(
    state: &AppState,
    caller: &Authenticated,
    id: &str,
) -> Result<(Workflow, Permission), ApiError> {
    let not_found = || ApiError::NotFound(format!("no workflow {id:?}"));
    let workflow = state.auth().accounts().workflow(id).await?.ok_or_else(not_found)?;
    match state.auth().room_permission(&caller.0, &workflow.room).await {
        Ok(permission) => {
            let permission = super::access::workflow_permission(&caller.0, &workflow, permission);
            Ok((workflow, permission))
        }
        Err(crate::auth::AuthError::Forbidden) => Err(not_found()),
        Err(error) => Err(error.into()),
    }
}

/// Connections already open in the room (on any instance) were let in under the old rules:
/// make them reconnect.
async fn revalidate_connections(state: &AppState, room: &str) {
    let Ok(room) = room_name(room) else { return };
    state.rooms().permissions_changed(&room).await;
}

async fn owned(state: &AppState, caller: &Authenticated, id: &str) -> Result<Workflow, ApiError> {
    let (workflow, permission) = visible(state, caller, id).await?;
    if permission < Permission::Admin {
        return Err(ApiError::Forbidden("only the workflow's owner may do this".into()));
    }
    Ok(workflow)
}

/// The caller's workflows: owned and shared with them, most recently updated first.
#[utoipa::path(get, path = "/api/workflows", tag = "workflows",
    responses((status = 200, body = Vec<WorkflowBody>), (status = 401)), security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Authenticated,
) -> Result<Json<Vec<WorkflowBody>>, ApiError> {
    let user = caller.user()?;
    let workflows = state.auth().accounts().list_workflows(&user.id).await?;
    Ok(Json(workflows.into_iter().map(WorkflowBody::from).collect()))
}

/// Creates a private workflow owned by the caller.
#[utoipa::path(post, path = "/api/workflows", tag = "workflows", request_body = CreateWorkflow,
    responses((status = 201, body = WorkflowBody),
        (status = 409, description = "`room_taken`: a workflow has the room, or it is in use and the token has no grant on it"),
        (status = 429, description = "`quota_exceeded`: the caller owns the most workflows one user may")),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    caller: Authenticated,
    Json(body): Json<CreateWorkflow>,
) -> Result<(StatusCode, Json<WorkflowBody>), ApiError> {
    let user = caller.user()?;
    let room = body.room.as_deref().map(room_name).transpose()?;
    if let Some(room) = &room {
        super::claim::ensure_claimable(&state, &caller.0, room).await?;
    }
    let quota = Some(state.config().limits.max_workflows_per_user).filter(|&max| max > 0);
    let workflow = state
        .auth()
        .accounts()
        .create_workflow_within(&user.id, &body.title, body.room.as_deref(), quota)
        .await
        .map_err(|error| match (error, &room) {
            (AccountError::RoomTaken(_), Some(room)) => super::claim::taken(room),
            (error, _) => error.into(),
        })?;
    Ok((StatusCode::CREATED, Json(WorkflowBody::new(workflow, Permission::Admin))))
}

#[utoipa::path(get, path = "/api/workflows/{id}", tag = "workflows",
    params(("id" = String, Path)), responses((status = 200, body = WorkflowDetail), (status = 404)),
    security(("bearer" = [])))]
pub async fn get(
    State(state): State<AppState>,
    caller: Authenticated,
    Path(id): Path<String>,
) -> Result<Json<WorkflowDetail>, ApiError> {
    let (workflow, permission) = visible(&state, &caller, &id).await?;
    let collaborators = if permission >= Permission::Admin {
        state
            .auth()
            .accounts()
            .collaborators(&workflow.id)
            .await?
            .into_iter()
            .map(|c| CollaboratorBody {
                user_id: c.user_id,
                permission: c.permission.as_str().to_owned(),
                added_at: c.added_at,
            })
            .collect()
    } else {
        Vec::new()
    };
    Ok(Json(WorkflowDetail { workflow: WorkflowBody::new(workflow, permission), collaborators }))
}

/// Renames the workflow or makes it public or private (owner only).
#[utoipa::path(patch, path = "/api/workflows/{id}", tag = "workflows", request_body = UpdateWorkflow,
    params(("id" = String, Path)), responses((status = 200, body = WorkflowBody), (status = 403), (status = 404)),
    security(("bearer" = [])))]
pub async fn update(
    State(state): State<AppState>,
    caller: Authenticated,
    Path(id): Path<String>,
    Json(body): Json<UpdateWorkflow>,
) -> Result<Json<WorkflowBody>, ApiError> {
    let workflow = owned(&state, &caller, &id).await?;
    let made_private = workflow.public && body.public == Some(false);
    let patch = WorkflowPatch { title: body.title, public: body.public };
    let workflow = state.auth().accounts().update_workflow(&workflow.id, patch).await?;
    if made_private {
        revalidate_connections(&state, &workflow.room).await;
    }
    Ok(Json(WorkflowBody::new(workflow, Permission::Admin)))
}

/// Deletes the workflow (owner only). Soft: its room stays reserved and closed to everyone.
#[utoipa::path(delete, path = "/api/workflows/{id}", tag = "workflows",
    params(("id" = String, Path)), responses((status = 204), (status = 403), (status = 404)),
    security(("bearer" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Authenticated,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let workflow = owned(&state, &caller, &id).await?;
    state.auth().accounts().delete_workflow(&workflow.id).await?;
    revalidate_connections(&state, &workflow.room).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Shares the workflow with a user, or changes what they may do (owner only).
#[utoipa::path(put, path = "/api/workflows/{id}/collaborators/{user}", tag = "workflows",
    request_body = SetCollaborator,
    params(("id" = String, Path), ("user" = String, Path, description = "User id")),
    responses((status = 200, body = CollaboratorBody), (status = 403), (status = 404)),
    security(("bearer" = [])))]
pub async fn set_collaborator(
    State(state): State<AppState>,
    caller: Authenticated,
    Path((id, user)): Path<(String, String)>,
    Json(body): Json<SetCollaborator>,
) -> Result<Json<CollaboratorBody>, ApiError> {
    let workflow = owned(&state, &caller, &id).await?;
    let permission: CollaboratorPermission = body
        .permission
        .parse()
        .map_err(|e: dojo_auth::UnknownPermission| ApiError::BadRequest(e.to_string()))?;
    let collaborator = state.auth().accounts().set_collaborator(&workflow.id, &user, permission).await?;
    if permission == CollaboratorPermission::Read {
        // Possibly a downgrade from write: a live write connection must not keep writing.
        revalidate_connections(&state, &workflow.room).await;
    }
    Ok(Json(CollaboratorBody {
        user_id: collaborator.user_id,
        permission: collaborator.permission.as_str().to_owned(),
        added_at: collaborator.added_at,
    }))
}

/// Stops sharing the workflow with a user (owner only).
#[utoipa::path(delete, path = "/api/workflows/{id}/collaborators/{user}", tag = "workflows",
    params(("id" = String, Path), ("user" = String, Path, description = "User id")),
    responses((status = 204), (status = 403), (status = 404)),
    security(("bearer" = [])))]
pub async fn remove_collaborator(
    State(state): State<AppState>,
    caller: Authenticated,
    Path((id, user)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let workflow = owned(&state, &caller, &id).await?;
    if state.auth().accounts().remove_collaborator(&workflow.id, &user).await? {
        revalidate_connections(&state, &workflow.room).await;
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(format!("{user:?} is not a collaborator")))
    }
}
