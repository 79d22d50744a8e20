//! Webhook endpoints of a workflow, their delivery log, replays, and the workflow's change feed
//! (docs/webhooks.md). The operations are `crate::services::webhooks`'s; these handlers parse,
//! call and map.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use dojo_ids::{WebhookId, WorkflowId};
use dojo_records::webhooks::{Delivery, Endpoint, Event};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::extract::{ApiJson, ApiPath, ApiQuery};
use super::responses::{ErrorBody, Unauthorized};
use super::{ApiError, Authenticated};
use crate::services::webhooks::{EndpointRequest, WebhookError, WebhookService};
use crate::state::AppState;

const MAX_PAGE: u32 = 200;

impl From<WebhookError> for ApiError {
    fn from(error: WebhookError) -> Self {
        match error {
            WebhookError::Workflow(error) => error.into(),
            WebhookError::Target(_) => ApiError::BadRequest(error.to_string()),
            WebhookError::NotFound(_) | WebhookError::DeliveryNotFound(_) => {
                ApiError::NotFound(error.to_string())
            }
            WebhookError::Records(error) => error.into(),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhook {
    /// Where to POST events: `http` or `https`, at most 2048 bytes, a public address unless the
    /// server allows private ones.
    pub url: String,
    /// Event types: `run.finished`, `node.finished`, `room.updated`, `user.entered`,
    /// `user.left`, `workflow.shared`.
    pub events: Vec<String>,
    /// At most 200 characters.
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookBody {
    /// `wh_…`.
    pub id: String,
    pub workflow_id: String,
    pub url: String,
    pub events: Vec<String>,
    pub description: Option<String>,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
    /// The signing secret (`whsec_…`): in the answer to creation only, never again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

impl WebhookBody {
    fn new(endpoint: Endpoint, show_secret: bool) -> Self {
        Self {
            id: endpoint.id.into_string(),
            workflow_id: endpoint.workflow_id.into_string(),
            url: endpoint.url,
            events: endpoint.events,
            description: endpoint.description,
            created_at: endpoint.created_at,
            secret: show_secret.then_some(endpoint.secret),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryBody {
    pub id: i64,
    pub event_id: String,
    pub event_type: String,
    /// `pending`, `succeeded` or `failed`.
    pub status: String,
    pub attempts: i64,
    /// When a pending delivery is tried next (milliseconds since the Unix epoch).
    pub next_attempt_at: i64,
    /// The receiver's last HTTP status.
    pub response_status: Option<i64>,
    /// The start of the receiver's last answer (at most 4 KiB).
    pub response_body: Option<String>,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl From<Delivery> for DeliveryBody {
    fn from(d: Delivery) -> Self {
        Self {
            id: d.id,
            event_id: d.event_id.into_string(),
            event_type: d.event_type,
            status: d.status.as_str().to_owned(),
            attempts: d.attempts,
            next_attempt_at: d.next_attempt_at,
            response_status: d.response_status,
            response_body: d.response_body,
            last_error: d.last_error,
            created_at: d.created_at,
            updated_at: d.updated_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryPage {
    /// Newest first.
    pub deliveries: Vec<DeliveryBody>,
    /// Pass as `before` for the next (older) page; absent on the last page.
    pub next_before: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FeedEvent {
    /// The event's place in the feed: pass the last one seen as `after`.
    pub cursor: i64,
    /// The event exactly as webhooks deliver it: `{id, type, createdAt, workflowId, room, data}`.
    #[schema(value_type = Object)]
    pub event: Value,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventPage {
    /// Oldest first.
    pub events: Vec<FeedEvent>,
    /// The cursor to ask from next (`after`): the last event's, or the one asked with.
    pub next_cursor: i64,
    /// Whether more events may follow right away (the page was full).
    pub has_more: bool,
}

impl From<Event> for FeedEvent {
    fn from(event: Event) -> Self {
        let body = serde_json::from_str(&event.payload).unwrap_or(Value::Null);
        Self { cursor: event.cursor, event: body }
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveryQuery {
    /// Deliveries with ids below this (the previous page's `nextBefore`).
    pub before: Option<i64>,
    /// At most this many (default 50, at most 200).
    pub limit: Option<u32>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FeedQuery {
    /// Events after this cursor (default 0: from the oldest kept).
    pub after: Option<i64>,
    /// At most this many (default 100, at most 200).
    pub limit: Option<u32>,
}

fn page(limit: Option<u32>, default: u32) -> u32 {
    limit.unwrap_or(default).clamp(1, MAX_PAGE)
}

/// Registers a webhook endpoint (workflow admin only). The answer carries its signing secret,
/// shown this once.
#[utoipa::path(post, path = "/api/workflows/{id}/webhooks", tag = "webhooks", operation_id = "createWebhook", request_body = CreateWebhook,
    params(("id" = String, Path, description = "Workflow id")),
    responses(
        (status = 201, description = "The endpoint, with its secret (shown once)", body = WebhookBody),
        (status = 400, description = "`bad_request`: a URL that is not http(s), points to a private address, does not resolve, is too long, or an unknown event type", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 403, description = "`forbidden`: the caller may see the workflow but does not administer it", body = ErrorBody),
        (status = 404, description = "`not_found`: no such workflow visible to the caller", body = ErrorBody),
        (status = 429, description = "`quota_exceeded`: the workflow has the most endpoints allowed", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    caller: Authenticated,
    ApiPath(id): ApiPath<WorkflowId>,
    ApiJson(body): ApiJson<CreateWebhook>,
) -> Result<(StatusCode, Json<WebhookBody>), ApiError> {
    let request = EndpointRequest { url: body.url, events: body.events, description: body.description };
    let endpoint = WebhookService::new(&state).create(&caller.0, &id, request).await?;
    Ok((StatusCode::CREATED, Json(WebhookBody::new(endpoint, true))))
}

/// The workflow's webhook endpoints, oldest first (secrets are never shown again).
#[utoipa::path(get, path = "/api/workflows/{id}/webhooks", tag = "webhooks", operation_id = "listWebhooks",
    params(("id" = String, Path, description = "Workflow id")),
    responses(
        (status = 200, description = "The endpoints, without their secrets", body = Vec<WebhookBody>),
        (status = 401, response = Unauthorized),
        (status = 403, description = "`forbidden`: the caller does not administer the workflow", body = ErrorBody),
        (status = 404, description = "`not_found`: no such workflow visible to the caller", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Authenticated,
    ApiPath(id): ApiPath<WorkflowId>,
) -> Result<Json<Vec<WebhookBody>>, ApiError> {
    let endpoints = WebhookService::new(&state).list(&caller.0, &id).await?;
    Ok(Json(endpoints.into_iter().map(|e| WebhookBody::new(e, false)).collect()))
}

/// Deletes a webhook endpoint and its delivery log.
#[utoipa::path(delete, path = "/api/workflows/{id}/webhooks/{hookId}", tag = "webhooks", operation_id = "deleteWebhook",
    params(("id" = String, Path, description = "Workflow id"), ("hookId" = String, Path, description = "Webhook id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, response = Unauthorized),
        (status = 403, description = "`forbidden`: the caller does not administer the workflow", body = ErrorBody),
        (status = 404, description = "`not_found`: no such workflow or webhook", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Authenticated,
    ApiPath((id, hook)): ApiPath<(WorkflowId, WebhookId)>,
) -> Result<StatusCode, ApiError> {
    WebhookService::new(&state).delete(&caller.0, &id, &hook).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The endpoint's delivery log, newest first: event, status, attempts, last answer and error.
#[utoipa::path(get, path = "/api/workflows/{id}/webhooks/{hookId}/deliveries", tag = "webhooks", operation_id = "listWebhookDeliveries",
    params(("id" = String, Path, description = "Workflow id"), ("hookId" = String, Path, description = "Webhook id"),
        DeliveryQuery),
    responses(
        (status = 200, description = "A page of deliveries", body = DeliveryPage),
        (status = 401, response = Unauthorized),
        (status = 403, description = "`forbidden`: the caller does not administer the workflow", body = ErrorBody),
        (status = 404, description = "`not_found`: no such workflow or webhook", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn deliveries(
    State(state): State<AppState>,
    caller: Authenticated,
    ApiPath((id, hook)): ApiPath<(WorkflowId, WebhookId)>,
    ApiQuery(query): ApiQuery<DeliveryQuery>,
) -> Result<Json<DeliveryPage>, ApiError> {
    let limit = page(query.limit, 50);
    let found = WebhookService::new(&state).deliveries(&caller.0, &id, &hook, query.before, limit).await?;
    let next_before = (found.len() == limit as usize).then(|| found.last().map(|d| d.id)).flatten();
    Ok(Json(DeliveryPage { deliveries: found.into_iter().map(DeliveryBody::from).collect(), next_before }))
}

/// Sends a delivery's event again, as a new delivery due now (whatever the first one's status).
#[utoipa::path(post, path = "/api/workflows/{id}/webhooks/{hookId}/deliveries/{deliveryId}/replay", tag = "webhooks", operation_id = "replayWebhookDelivery",
    params(("id" = String, Path, description = "Workflow id"), ("hookId" = String, Path, description = "Webhook id"),
        ("deliveryId" = i64, Path, description = "Delivery id")),
    responses(
        (status = 202, description = "The new delivery, queued", body = DeliveryBody),
        (status = 401, response = Unauthorized),
        (status = 403, description = "`forbidden`: the caller does not administer the workflow", body = ErrorBody),
        (status = 404, description = "`not_found`: no such workflow, webhook or delivery", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn replay(
    State(state): State<AppState>,
    caller: Authenticated,
    ApiPath((id, hook, delivery)): ApiPath<(WorkflowId, WebhookId, i64)>,
) -> Result<(StatusCode, Json<DeliveryBody>), ApiError> {
    let replayed = WebhookService::new(&state).replay(&caller.0, &id, &hook, delivery).await?;
    Ok((StatusCode::ACCEPTED, Json(replayed.into())))
}

/// The workflow's change feed: its events in order, after a cursor. Poll it instead of
/// receiving webhooks when you have no public URL.
#[utoipa::path(get, path = "/api/workflows/{id}/events", tag = "webhooks", operation_id = "listWorkflowEvents",
    params(("id" = String, Path, description = "Workflow id"), FeedQuery),
    responses(
        (status = 200, description = "A page of events, oldest first", body = EventPage),
        (status = 401, response = Unauthorized),
        (status = 403, description = "`forbidden`: the caller does not administer the workflow", body = ErrorBody),
        (status = 404, description = "`not_found`: no such workflow visible to the caller", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn events(
    State(state): State<AppState>,
    caller: Authenticated,
    ApiPath(id): ApiPath<WorkflowId>,
    ApiQuery(query): ApiQuery<FeedQuery>,
) -> Result<Json<EventPage>, ApiError> {
    let limit = page(query.limit, 100);
    let after = query.after.unwrap_or(0).max(0);
    let found = WebhookService::new(&state).events(&caller.0, &id, after, limit).await?;
    let has_more = found.len() == limit as usize;
    let next_cursor = found.last().map_or(after, |e| e.cursor);
    Ok(Json(EventPage { events: found.into_iter().map(FeedEvent::from).collect(), next_cursor, has_more }))
}
