//! The caller's rights over their data (`docs/data-rights.md`): `GET /api/me/export`, the
//! two-step account deletion (`POST /api/me/deletion` hands out a confirmation token and says
//! what would be deleted; `DELETE /api/me` with that token deletes), and the analytics opt-out
//! (`GET`/`PUT /api/me/privacy`). The operations are `crate::services::data_rights`'s.

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use dojo_records::DeletionPlan;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::ApiJson;
use super::responses::{BadRequest, ErrorBody, TooManyRequests, Unauthorized};
use super::{ApiError, Authenticated};
use crate::metrics::ReasonLabel;
use crate::services::data_rights::{self, DataRightsError};
use crate::state::AppState;

impl From<DataRightsError> for ApiError {
    fn from(error: DataRightsError) -> Self {
        match error {
            DataRightsError::SignInRequired => ApiError::Unauthorized(error.to_string()),
            DataRightsError::TooLarge { .. } => ApiError::ExportTooLarge(error.to_string()),
            DataRightsError::Accounts(error) => error.into(),
            DataRightsError::Archive(_) => ApiError::Internal(error.to_string()),
        }
    }
}

/// A tar.gz archive.
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
#[allow(dead_code)] // a description only: the body is raw bytes
pub struct ExportArchive(Vec<u8>);

/// Everything about the caller, as one tar.gz archive: `profile.json`, `workflows.json` and per
/// workflow its document as JSON (`document.json`) and as a Yjs v1 update (`document.yjs`) and
/// its webhooks, `runs.json` (with nodes), `ledger.json`, `assets.json` and `assets/<id>`,
/// `teams.json`, `invitations.json`, and a `README.txt` that lists them. Once per
/// `DOJO_EXPORT_INTERVAL_SECS` per user; refused past `DOJO_EXPORT_MAX_BYTES`.
#[utoipa::path(get, path = "/api/me/export", tag = "data-rights", operation_id = "exportMyData",
    responses((status = 200, description = "A tar.gz archive", content_type = "application/gzip", body = ExportArchive),
        (status = 401, response = Unauthorized),
        (status = 413, description = "Larger than the server allows (`export_too_large`)", body = ErrorBody),
        (status = 429, response = TooManyRequests)),
    security(("bearer" = [])))]
pub async fn export(State(state): State<AppState>, caller: Authenticated) -> Result<Response, ApiError> {
    let user = caller.user()?;
    let limiter = state.export_limiter();
    if let Err(not_until) = limiter.check_key(&user.id) {
        state.metrics().rate_limited.get_or_create(&ReasonLabel { reason: "export" }).inc();
        return Err(ApiError::TooManyRequests {
            retry_after_s: crate::rate::retry_after_secs(limiter, &not_until),
        });
    }
    let archive = data_rights::export(&state, &caller.0).await?;
    let name = format!("attachment; filename=\"dojo-export-{}.tar.gz\"", user.id.as_str());
    let disposition = header::HeaderValue::from_str(&name)
        .unwrap_or_else(|_| header::HeaderValue::from_static("attachment; filename=\"dojo-export.tar.gz\""));
    Ok((
        [
            (header::CONTENT_TYPE, header::HeaderValue::from_static("application/gzip")),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        archive,
    )
        .into_response())
}

/// What an account deletion would do (and, once confirmed, did).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeletionSummary {
    /// Workflows they own outside any team that keeps other members: deleted, documents too.
    pub workflows_deleted: i64,
    /// Workflows they own in a team that keeps other members: stay with the team.
    pub workflows_kept_for_teams: i64,
    /// Teams they are the only member of: deleted.
    pub teams_deleted: i64,
    pub team_memberships: i64,
    pub runs: i64,
    pub assets: i64,
    pub webhooks: i64,
    /// Kept under a pseudonym (accounting law).
    pub ledger_entries: i64,
    /// The balance given up; the ledger's last entry records it.
    pub credits_forfeited: i64,
}

impl From<DeletionPlan> for DeletionSummary {
    fn from(plan: DeletionPlan) -> Self {
        Self {
            workflows_deleted: plan.workflows_deleted,
            workflows_kept_for_teams: plan.workflows_kept_for_teams,
            teams_deleted: plan.teams_deleted,
            team_memberships: plan.team_memberships,
            runs: plan.runs,
            assets: plan.assets,
            webhooks: plan.webhooks,
            ledger_entries: plan.ledger_entries,
            credits_forfeited: plan.credits_forfeited,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeletionRequested {
    /// Send it back as `DELETE /api/me {"confirm": token}` to delete the account.
    pub confirm: String,
    /// Milliseconds since the Unix epoch; a new request replaces the token.
    pub expires_at: i64,
    pub summary: DeletionSummary,
}

/// Step one of deleting the caller's account: what would be deleted, and a confirmation token
/// good for ten minutes, for this account only. Nothing is deleted yet. Refused while the
/// caller is a team's only owner with other members (`last_owner`) or has runs in progress
/// (`runs_active`).
#[utoipa::path(post, path = "/api/me/deletion", tag = "data-rights", operation_id = "requestAccountDeletion",
    responses((status = 200, description = "The summary and the confirmation token", body = DeletionRequested),
        (status = 401, response = Unauthorized),
        (status = 409, description = "The only owner of a team with members (`last_owner`), or runs in progress (`runs_active`)", body = ErrorBody),
        (status = 429, response = TooManyRequests)),
    security(("bearer" = [])))]
pub async fn request_deletion(
    State(state): State<AppState>,
    caller: Authenticated,
) -> Result<Json<DeletionRequested>, ApiError> {
    let user = caller.user()?;
    let confirmation = data_rights::request_deletion(&state, user).await?;
    Ok(Json(DeletionRequested {
        confirm: confirmation.token,
        expires_at: confirmation.expires_at,
        summary: confirmation.plan.into(),
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConfirmDeletion {
    /// The token `POST /api/me/deletion` answered.
    pub confirm: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccountDeleted {
    pub deleted: bool,
    /// The name the kept ledger and audit entries now carry instead of the account's id.
    pub pseudonym: String,
    pub summary: DeletionSummary,
}

/// Step two: deletes the caller's account, with the token step one gave them. See
/// docs/data-rights.md for what is deleted, what stays with a team and what is kept
/// anonymised. Open connections of the account are closed.
#[utoipa::path(delete, path = "/api/me", tag = "data-rights", operation_id = "deleteMe",
    request_body = ConfirmDeletion,
    responses((status = 200, description = "Deleted", body = AccountDeleted),
        (status = 400, response = BadRequest), (status = 401, response = Unauthorized),
        (status = 403, description = "No valid confirmation of this account (`deletion_not_confirmed`)", body = ErrorBody),
        (status = 409, description = "The only owner of a team with members (`last_owner`), or runs in progress (`runs_active`)", body = ErrorBody),
        (status = 429, response = TooManyRequests)),
    security(("bearer" = [])))]
pub async fn delete_me(
    State(state): State<AppState>,
    caller: Authenticated,
    ApiJson(body): ApiJson<ConfirmDeletion>,
) -> Result<Json<AccountDeleted>, ApiError> {
    let user = caller.user()?;
    if body.confirm.is_empty() || body.confirm.len() > 128 {
        return Err(ApiError::DeletionNotConfirmed("the confirmation token is malformed".into()));
    }
    let deleted = data_rights::confirm_deletion(&state, user, &body.confirm).await?;
    Ok(Json(AccountDeleted { deleted: true, pseudonym: deleted.pseudonym, summary: deleted.plan.into() }))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Privacy {
    /// True: optional analytics and usage collection stops for this user (docs/data-rights.md).
    pub analytics_opt_out: bool,
    /// True: the re-engagement agent never sends this user tips (docs/agents.md).
    pub tips_opt_out: bool,
}

/// A change of privacy settings: an absent field keeps its value.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PrivacyChange {
    pub analytics_opt_out: Option<bool>,
    pub tips_opt_out: Option<bool>,
}

async fn read_privacy(state: &AppState, user: &dojo_records::User) -> Result<Privacy, ApiError> {
    let analytics_opt_out = state.data_rights().analytics_opt_out(&user.id).await?;
    let tips_opt_out = state.engagement().tips_opt_out(&user.id).await?;
    Ok(Privacy { analytics_opt_out, tips_opt_out })
}

/// The caller's privacy settings.
#[utoipa::path(get, path = "/api/me/privacy", tag = "data-rights", operation_id = "getPrivacy",
    responses((status = 200, description = "The settings", body = Privacy),
        (status = 401, response = Unauthorized), (status = 429, response = TooManyRequests)),
    security(("bearer" = [])))]
pub async fn privacy(
    State(state): State<AppState>,
    caller: Authenticated,
) -> Result<Json<Privacy>, ApiError> {
    let user = caller.user()?;
    Ok(Json(read_privacy(&state, user).await?))
}

/// Sets the caller's privacy settings.
#[utoipa::path(put, path = "/api/me/privacy", tag = "data-rights", operation_id = "setPrivacy",
    request_body = PrivacyChange,
    responses((status = 200, description = "The settings now", body = Privacy),
        (status = 400, response = BadRequest), (status = 401, response = Unauthorized),
        (status = 429, response = TooManyRequests)),
    security(("bearer" = [])))]
pub async fn set_privacy(
    State(state): State<AppState>,
    caller: Authenticated,
    ApiJson(body): ApiJson<PrivacyChange>,
) -> Result<Json<Privacy>, ApiError> {
    let user = caller.user()?;
    if let Some(opt_out) = body.analytics_opt_out {
        data_rights::set_analytics_opt_out(&state, user, opt_out).await?;
    }
    if let Some(opt_out) = body.tips_opt_out {
        state.engagement().set_tips_opt_out(&user.id, opt_out).await?;
    }
    Ok(Json(read_privacy(&state, user).await?))
}
