//! A team's audit log over HTTP, for its owners and admins: filtered, paginated by cursor
//! (newest first), or exported as JSON lines (`?format=jsonl`, bounded per request, with the
//! cursor of the rest in `Dojo-Next-Cursor`).

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use dojo_ids::TeamId;
use dojo_records::audit::{MAX_AUDIT_PAGE, MAX_FIELD_LEN};
use dojo_records::{AuditEntry, AuditQuery};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::{ApiPath, ApiQuery};
use super::responses::{BadRequest, Forbidden, NotFound, TooManyRequests, Unauthorized};
use super::{ApiError, Authenticated};
use crate::services::teams::TeamService;
use crate::state::AppState;

/// Entries one JSON-lines export holds at most; the rest is asked for with the cursor.
const MAX_EXPORT: usize = 10_000;

/// One audit entry.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntryBody {
    /// The entry's cursor: entries are listed newest (highest) first.
    pub seq: i64,
    /// `user`, `service`, `operator` or `system`.
    pub actor_type: String,
    /// A user id, a service token's subject, an operator's OS user, or `stripe`.
    pub actor_id: String,
    /// `team.created`, `member.role_changed`, `workflow.shared`, … (docs/api.md lists them).
    pub action: String,
    pub target_type: String,
    pub target_id: String,
    pub team_id: Option<String>,
    /// The client's address, when the action came over HTTP.
    pub client_addr: Option<String>,
    /// What changed: ids, roles, amounts (never a secret).
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
}

impl From<AuditEntry> for AuditEntryBody {
    fn from(entry: AuditEntry) -> Self {
        Self {
            seq: entry.seq,
            actor_type: entry.actor_kind.as_str().to_owned(),
            actor_id: entry.actor_id,
            action: entry.action,
            target_type: entry.target_type,
            target_id: entry.target_id,
            team_id: entry.team_id.map(TeamId::into_string),
            client_addr: entry.client_addr,
            detail: entry.detail,
            created_at: entry.created_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditPage {
    /// Newest first.
    pub entries: Vec<AuditEntryBody>,
    /// Pass as `cursor` for the next (older) page; absent on the last.
    pub next_cursor: Option<i64>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    /// Only entries by this actor (a user id, a service's subject…).
    pub actor: Option<String>,
    /// Only entries with this action (`member.removed`).
    pub action: Option<String>,
    /// Only entries written at or after this time (milliseconds since the Unix epoch).
    pub since: Option<i64>,
    /// Only entries written before this time (milliseconds since the Unix epoch).
    pub until: Option<i64>,
    /// Entries older than this (the previous page's `nextCursor`).
    pub cursor: Option<i64>,
    /// At most this many per page (default 100, at most 1000).
    pub limit: Option<u32>,
    /// `json` (the default: a page) or `jsonl` (JSON lines, one entry per line, newest first,
    /// at most 10,000; `Dojo-Next-Cursor` names where the rest begins).
    pub format: Option<String>,
}

pub(super) fn bounded_filter(name: &str, value: Option<String>) -> Result<Option<String>, ApiError> {
    match value {
        Some(value) if value.len() > MAX_FIELD_LEN => {
            Err(ApiError::BadRequest(format!("`{name}` is longer than {MAX_FIELD_LEN} bytes")))
        }
        value => Ok(value),
    }
}

/// The team's audit log, newest first (owners and admins).
#[utoipa::path(get, path = "/api/teams/{team}/audit", tag = "teams", operation_id = "listTeamAudit",
    params(("team" = String, Path, description = "Team id"), AuditParams),
    responses((status = 200, description = "A page of entries (`format=json`), or JSON lines (`format=jsonl`)",
            content((AuditPage = "application/json"), (String = "application/x-ndjson")),
            headers(("Dojo-Next-Cursor" = i64, description = "JSON lines only: the cursor of the entries not exported"))),
        (status = 400, response = BadRequest), (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden), (status = 404, response = NotFound),
        (status = 429, response = TooManyRequests)),
    security(("bearer" = [])))]
pub async fn audit(
    State(state): State<AppState>,
    caller: Authenticated,
    ApiPath(team): ApiPath<TeamId>,
    ApiQuery(params): ApiQuery<AuditParams>,
) -> Result<Response, ApiError> {
    let jsonl = jsonl_format(params.format.as_deref())?;
    let query = AuditQuery {
        team_id: team,
        actor_id: bounded_filter("actor", params.actor)?,
        action: bounded_filter("action", params.action)?,
        since: params.since,
        until: params.until,
        before: params.cursor,
        limit: params.limit.unwrap_or(100).clamp(1, MAX_AUDIT_PAGE),
    };
    let service = TeamService::new(&state, None);
    let caller = &caller.0;
    let fetch = |before: Option<i64>, limit: u32| {
        let query = AuditQuery { before, limit, ..query.clone() };
        let service = &service;
        async move { service.audit_entries(caller, &query).await.map_err(ApiError::from) }
    };
    page_or_export(jsonl, query.before, query.limit, fetch).await
}

/// `true` for `format=jsonl`, `false` for `json` or none.
pub(super) fn jsonl_format(format: Option<&str>) -> Result<bool, ApiError> {
    match format {
        None | Some("json") => Ok(false),
        Some("jsonl") => Ok(true),
        Some(_) => Err(ApiError::BadRequest("`format` must be `json` or `jsonl`".into())),
    }
}

/// One page of entries older than `before` (`jsonl == false`), or JSON lines of pages of the
/// store's largest size until the export's bound: a bounded body, and a cursor for whoever
/// wants more. `fetch(before, limit)` reads one page, newest first.
pub(super) async fn page_or_export<F, Fut>(
    jsonl: bool,
    before: Option<i64>,
    limit: u32,
    fetch: F,
) -> Result<Response, ApiError>
where
    F: Fn(Option<i64>, u32) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<AuditEntry>, ApiError>>,
{
    if !jsonl {
        let entries = fetch(before, limit).await?;
        let full = entries.len() >= limit as usize;
        let next_cursor = entries.last().filter(|_| full).map(|entry| entry.seq);
        let entries = entries.into_iter().map(AuditEntryBody::from).collect();
        return Ok(Json(AuditPage { entries, next_cursor }).into_response());
    }
    let mut lines = String::new();
    let (mut exported, mut next_cursor, mut before) = (0usize, None, before);
    while exported < MAX_EXPORT {
        let page = fetch(before, MAX_AUDIT_PAGE).await?;
        let full = page.len() >= MAX_AUDIT_PAGE as usize;
        exported += page.len();
        for entry in page {
            before = Some(entry.seq);
            let line = serde_json::to_string(&AuditEntryBody::from(entry))
                .map_err(|error| ApiError::Internal(format!("serialising an audit entry: {error}")))?;
            lines.push_str(&line);
            lines.push('\n');
        }
        next_cursor = before.filter(|_| full);
        if !full {
            break;
        }
    }
    let mut response = ([(header::CONTENT_TYPE, "application/x-ndjson")], lines).into_response();
    if let Some(cursor) = next_cursor {
        response.headers_mut().insert("dojo-next-cursor", HeaderValue::from(cursor));
    }
    Ok(response)
}
