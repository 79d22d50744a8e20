//! Support tickets over HTTP: any signed-in user opens tickets and reads their own (with the
//! answer once staff gave it); staff read the queue with the support agent's drafts and answer.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use dojo_records::{Ticket, TicketStatus};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::extract::{ApiJson, ApiPath, ApiQuery, ClientIp};
use super::responses::{BadRequest, ErrorBody, Forbidden, NotFound, TooManyRequests, Unauthorized};
use super::{ApiError, Authenticated};
use crate::services::support::{SupportError, SupportService};
use crate::state::AppState;

/// Longest ticket id in a path.
const MAX_ID: usize = 64;

/// A ticket. `draft`, `draftSource`, `userId` and `answeredBy` are shown to staff only.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TicketBody {
    pub id: String,
    /// The canvas's room, when one was attached.
    pub room: Option<String>,
    pub subject: String,
    pub body: String,
    /// `open` (waiting for a draft), `drafted` (waiting for staff) or `answered`.
    pub status: String,
    /// Staff's answer: all the asker ever sees of the support agent's work.
    pub answer: Option<String>,
    pub answered_at: Option<i64>,
    pub created_at: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub draft: Option<String>,
    /// `model` or `fallback` (the deterministic template).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub draft_source: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answered_by: Option<String>,
}

impl TicketBody {
    fn shown(ticket: Ticket, staff: bool) -> Self {
        Self {
            id: ticket.id,
            room: ticket.room,
            subject: ticket.subject,
            body: ticket.body,
            status: ticket.status.as_str().to_owned(),
            answer: ticket.answer,
            answered_at: ticket.answered_at,
            created_at: ticket.created_at,
            user_id: staff.then(|| ticket.user_id.to_string()),
            draft: ticket.draft.filter(|_| staff),
            draft_source: ticket.draft_source.filter(|_| staff),
            answered_by: ticket.answered_by.filter(|_| staff),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TicketList {
    pub tickets: Vec<TicketBody>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OpenTicket {
    /// One line, 1-200 bytes.
    pub subject: String,
    /// 1-5,000 bytes.
    pub body: String,
    /// A room (canvas) the caller can read, to attach.
    pub room: Option<String>,
}

impl From<SupportError> for ApiError {
    fn from(error: SupportError) -> Self {
        match error {
            SupportError::Staff(error) => error.into(),
            SupportError::NotFound(_) => ApiError::NotFound(error.to_string()),
            SupportError::Answered => ApiError::Conflict(error.to_string()),
            SupportError::Access(error) => error.into(),
            SupportError::Records(error) => error.into(),
        }
    }
}

/// Ask for help (any signed-in user), optionally with a canvas attached. The support agent
/// drafts an answer; staff approve or edit it before the asker sees it.
#[utoipa::path(post, path = "/api/support/tickets", tag = "support", operation_id = "openSupportTicket",
    request_body = OpenTicket,
    responses((status = 201, description = "Opened", body = TicketBody),
        (status = 400, response = BadRequest), (status = 401, response = Unauthorized),
        (status = 404, description = "`room_not_found`: the attached room is not one the caller can read", body = ErrorBody),
        (status = 429, description = "`quota_exceeded`: 10 tickets wait for an answer already; or `rate_limited`", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn open(
    State(state): State<AppState>,
    ClientIp(addr): ClientIp,
    caller: Authenticated,
    ApiJson(body): ApiJson<OpenTicket>,
) -> Result<(StatusCode, Json<TicketBody>), ApiError> {
    let service = SupportService::new(&state, addr);
    let ticket = service.open(&caller.0, &body.subject, &body.body, body.room.as_deref()).await?;
    Ok((StatusCode::CREATED, Json(TicketBody::shown(ticket, false))))
}

/// The caller's tickets, newest first (at most 200).
#[utoipa::path(get, path = "/api/support/tickets", tag = "support", operation_id = "listMySupportTickets",
    responses((status = 200, description = "The caller's tickets", body = TicketList),
        (status = 401, response = Unauthorized), (status = 429, response = TooManyRequests)),
    security(("bearer" = [])))]
pub async fn mine(
    State(state): State<AppState>,
    caller: Authenticated,
) -> Result<Json<TicketList>, ApiError> {
    let tickets = SupportService::new(&state, None).mine(&caller.0, 200).await?;
    Ok(Json(TicketList { tickets: tickets.into_iter().map(|t| TicketBody::shown(t, false)).collect() }))
}

/// One ticket, to its asker or to staff (who also see the draft).
#[utoipa::path(get, path = "/api/support/tickets/{id}", tag = "support", operation_id = "getSupportTicket",
    params(("id" = String, Path, description = "Ticket id")),
    responses((status = 200, description = "The ticket", body = TicketBody),
        (status = 401, response = Unauthorized), (status = 404, response = NotFound),
        (status = 429, response = TooManyRequests)),
    security(("bearer" = [])))]
pub async fn get(
    State(state): State<AppState>,
    caller: Authenticated,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<TicketBody>, ApiError> {
    if id.len() > MAX_ID {
        return Err(ApiError::NotFound("no such ticket".into()));
    }
    let visible = SupportService::new(&state, None).get(&caller.0, &id).await?;
    Ok(Json(TicketBody::shown(visible.ticket, visible.staff)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct QueueParams {
    /// `open`, `drafted` or `answered`; all when absent.
    pub status: Option<String>,
    /// At most this many (default 100, at most 200).
    pub limit: Option<u32>,
}

/// The staff's queue: tickets oldest first, with the support agent's drafts (staff).
#[utoipa::path(get, path = "/api/support/queue", tag = "support", operation_id = "supportQueue",
    params(QueueParams),
    responses((status = 200, description = "Tickets, oldest first", body = TicketList),
        (status = 400, response = BadRequest), (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden), (status = 429, response = TooManyRequests)),
    security(("bearer" = [])))]
pub async fn queue(
    State(state): State<AppState>,
    caller: Authenticated,
    ApiQuery(params): ApiQuery<QueueParams>,
) -> Result<Json<TicketList>, ApiError> {
    let status = match params.status.as_deref() {
        None => None,
        Some(text) => Some(
            TicketStatus::parse(text)
                .ok_or_else(|| ApiError::BadRequest("`status` is one of open, drafted, answered".into()))?,
        ),
    };
    let limit = params.limit.unwrap_or(100);
    let tickets = SupportService::new(&state, None).queue(&caller.0, status, limit).await?;
    Ok(Json(TicketList { tickets: tickets.into_iter().map(|t| TicketBody::shown(t, true)).collect() }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AnswerTicket {
    /// The answer the asker will see: the draft as it is, or edited (1-20,000 bytes).
    pub answer: String,
}

/// Answer a ticket (staff). The asker sees the answer from now on.
#[utoipa::path(post, path = "/api/support/tickets/{id}/answer", tag = "support", operation_id = "answerSupportTicket",
    request_body = AnswerTicket,
    params(("id" = String, Path, description = "Ticket id")),
    responses((status = 200, description = "Answered", body = TicketBody),
        (status = 400, response = BadRequest), (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden), (status = 404, response = NotFound),
        (status = 409, description = "`conflict`: answered already", body = ErrorBody),
        (status = 429, response = TooManyRequests)),
    security(("bearer" = [])))]
pub async fn answer(
    State(state): State<AppState>,
    ClientIp(addr): ClientIp,
    caller: Authenticated,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<AnswerTicket>,
) -> Result<Json<TicketBody>, ApiError> {
    if id.len() > MAX_ID {
        return Err(ApiError::NotFound("no such ticket".into()));
    }
    let ticket = SupportService::new(&state, addr).answer(&caller.0, &id, &body.answer).await?;
    Ok(Json(TicketBody::shown(ticket, true)))
}
