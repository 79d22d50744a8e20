//! The whole audit log over HTTP, for staff and admins: every team's entries and those that
//! belong to no team (agents' flags and drafts, staff's reviews, operators' grants), filtered
//! and paginated like a team's (`team_audit.rs`, whose pager it shares).

use axum::extract::State;
use axum::response::Response;
use dojo_ids::TeamId;
use dojo_records::audit::MAX_AUDIT_PAGE;
use dojo_records::{StaffAuditQuery, StaffRole};
use serde::Deserialize;

use super::extract::ApiQuery;
use super::responses::{BadRequest, Forbidden, TooManyRequests, Unauthorized};
use super::team_audit::{AuditPage, bounded_filter, jsonl_format, page_or_export};
use super::{ApiError, Authenticated};
use crate::services::jobs::require_role;
use crate::state::AppState;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StaffAuditParams {
    /// Only this team's entries.
    pub team: Option<String>,
    /// Only entries by this actor (a user id, `agent:fraud`, `stripe`…).
    pub actor: Option<String>,
    /// Only entries with this action (`fraud.flagged`).
    pub action: Option<String>,
    /// Only entries about this target (a user id, a flag or ticket id…).
    pub target: Option<String>,
    /// Only entries written at or after this time (milliseconds since the Unix epoch).
    pub since: Option<i64>,
    /// Only entries written before this time (milliseconds since the Unix epoch).
    pub until: Option<i64>,
    /// Entries older than this (the previous page's `nextCursor`).
    pub cursor: Option<i64>,
    /// At most this many per page (default 100, at most 1000).
    pub limit: Option<u32>,
    /// `json` (a page, the default) or `jsonl` (at most 10,000 lines; `Dojo-Next-Cursor` names
    /// where the rest begins).
    pub format: Option<String>,
}

/// The whole audit log, newest first (staff and admins).
#[utoipa::path(get, path = "/api/audit", tag = "agents", operation_id = "listAudit",
    params(StaffAuditParams),
    responses((status = 200, description = "A page of entries (`format=json`), or JSON lines (`format=jsonl`)",
            content((AuditPage = "application/json"), (String = "application/x-ndjson")),
            headers(("Dojo-Next-Cursor" = i64, description = "JSON lines only: the cursor of the entries not exported"))),
        (status = 400, response = BadRequest), (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden), (status = 429, response = TooManyRequests)),
    security(("bearer" = [])))]
pub async fn audit(
    State(state): State<AppState>,
    caller: Authenticated,
    ApiQuery(params): ApiQuery<StaffAuditParams>,
) -> Result<Response, ApiError> {
    require_role(&state, &caller.0, StaffRole::Staff).await?;
    let jsonl = jsonl_format(params.format.as_deref())?;
    let query = StaffAuditQuery {
        team_id: bounded_filter("team", params.team)?.map(TeamId::from),
        actor_id: bounded_filter("actor", params.actor)?,
        action: bounded_filter("action", params.action)?,
        target_id: bounded_filter("target", params.target)?,
        since: params.since,
        until: params.until,
        before: params.cursor,
        limit: params.limit.unwrap_or(100).clamp(1, MAX_AUDIT_PAGE),
    };
    let audit = state.audit();
    let fetch = |before: Option<i64>, limit: u32| {
        let query = StaffAuditQuery { before, limit, ..query.clone() };
        async move { audit.all_entries(&query).await.map_err(ApiError::from) }
    };
    page_or_export(jsonl, query.before, query.limit, fetch).await
}
