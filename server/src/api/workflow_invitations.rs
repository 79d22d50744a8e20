//! Sharing a workflow by email: `crate::services::workflow_invitations`'s operations, parsed,
//! called and mapped.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use dojo_ids::WorkflowId;
use dojo_records::{EmailShare, WorkflowInvitation};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::{ApiJson, ApiPath, ClientIp};
use super::responses::{BadRequest, ErrorBody, Forbidden, NotFound, TooManyRequests, Unauthorized};
use super::workflows::{CollaboratorBody, CollaboratorPermissionName, parse_permission};
use super::{ApiError, Authenticated};
use crate::services::workflows::WorkflowService;
use crate::state::AppState;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ShareByEmail {
    /// The address to share with (at most 254 bytes; compared case-insensitively).
    pub email: String,
    /// `read` or `write`.
    #[schema(value_type = CollaboratorPermissionName)]
    pub permission: String,
}

/// An address invited to a workflow that no account has yet.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowInvitationBody {
    /// Lower case.
    pub email: String,
    /// `read` or `write`.
    #[schema(value_type = CollaboratorPermissionName)]
    pub permission: String,
    pub invited_by: String,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
    /// Past this, signing in with the address no longer shares the workflow.
    pub expires_at: i64,
}

impl From<WorkflowInvitation> for WorkflowInvitationBody {
    fn from(invitation: WorkflowInvitation) -> Self {
        Self {
            email: invitation.email,
            permission: invitation.permission.as_str().to_owned(),
            invited_by: invitation.invited_by.into_string(),
            created_at: invitation.created_at,
            expires_at: invitation.expires_at,
        }
    }
}

/// What sharing with an address did: `shared` (an account has it: `collaborator`) or
/// `pending` (nobody has it yet: `invitation`, claimed when someone signs in with it).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EmailShareBody {
    /// `shared` or `pending`.
    pub status: String,
    pub collaborator: Option<CollaboratorBody>,
    pub invitation: Option<WorkflowInvitationBody>,
}

impl From<EmailShare> for EmailShareBody {
    fn from(share: EmailShare) -> Self {
        match share {
            EmailShare::Shared(collaborator) => {
                Self { status: "shared".into(), collaborator: Some(collaborator.into()), invitation: None }
            }
            EmailShare::Pending(invitation) => {
                Self { status: "pending".into(), collaborator: None, invitation: Some(invitation.into()) }
            }
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowInvitationList {
    /// Oldest first; at most 50 wait at once.
    pub invitations: Vec<WorkflowInvitationBody>,
}

/// Shares the workflow with an email address (owner only): its account at once, or whoever
/// signs in with it (a verified email) within 30 days.
#[utoipa::path(post, path = "/api/workflows/{id}/invitations", tag = "workflows",
    operation_id = "shareWorkflowByEmail", request_body = ShareByEmail,
    params(("id" = String, Path, description = "Workflow id")),
    responses((status = 200, description = "Shared, or waiting for the address to sign in", body = EmailShareBody),
        (status = 400, response = BadRequest), (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden), (status = 404, response = NotFound),
        (status = 409, description = "The address is the owner's own, or several accounts' (`conflict`)", body = ErrorBody),
        (status = 429, description = "Too many requests, or 50 invitations already wait (`quota_exceeded`)", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn share(
    State(state): State<AppState>,
    ClientIp(addr): ClientIp,
    caller: Authenticated,
    ApiPath(id): ApiPath<WorkflowId>,
    ApiJson(body): ApiJson<ShareByEmail>,
) -> Result<Json<EmailShareBody>, ApiError> {
    let service = WorkflowService::from_addr(&state, addr);
    let owned = service.owned(&caller.0, &id).await?;
    let permission = parse_permission(&body.permission)?;
    Ok(Json(service.share_by_email(&caller.0, &owned, &body.email, permission).await?.into()))
}

/// The invitations waiting for their address to sign in (owner only).
#[utoipa::path(get, path = "/api/workflows/{id}/invitations", tag = "workflows",
    operation_id = "listWorkflowInvitations",
    params(("id" = String, Path, description = "Workflow id")),
    responses((status = 200, description = "Pending invitations", body = WorkflowInvitationList),
        (status = 401, response = Unauthorized), (status = 403, response = Forbidden),
        (status = 404, response = NotFound), (status = 429, response = TooManyRequests)),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Authenticated,
    ApiPath(id): ApiPath<WorkflowId>,
) -> Result<Json<WorkflowInvitationList>, ApiError> {
    let service = WorkflowService::new(&state);
    let owned = service.owned(&caller.0, &id).await?;
    let invitations = service.invitations(&owned).await?.into_iter().map(Into::into).collect();
    Ok(Json(WorkflowInvitationList { invitations }))
}

/// Withdraws the invitation of an address (owner only).
#[utoipa::path(delete, path = "/api/workflows/{id}/invitations/{email}", tag = "workflows",
    operation_id = "revokeWorkflowInvitation",
    params(("id" = String, Path, description = "Workflow id"), ("email" = String, Path, description = "The invited address")),
    responses((status = 204, description = "Withdrawn"), (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized), (status = 403, response = Forbidden),
        (status = 404, response = NotFound), (status = 429, response = TooManyRequests)),
    security(("bearer" = [])))]
pub async fn revoke(
    State(state): State<AppState>,
    ClientIp(addr): ClientIp,
    caller: Authenticated,
    ApiPath((id, email)): ApiPath<(WorkflowId, String)>,
) -> Result<StatusCode, ApiError> {
    let service = WorkflowService::from_addr(&state, addr);
    let owned = service.owned(&caller.0, &id).await?;
    service.revoke_invitation(&owned, &email).await?;
    Ok(StatusCode::NO_CONTENT)
}
