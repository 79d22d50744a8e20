//! The workflow agent's suggestions over HTTP, for whoever manages the workflow (its owner, or
//! a team's owners and admins): what the agent found, shown on the canvas until dismissed.

use axum::Json;
use axum::extract::State;
use dojo_ids::WorkflowId;
use serde::Serialize;
use utoipa::ToSchema;

use super::extract::ApiPath;
use super::responses::{Forbidden, NotFound, TooManyRequests, Unauthorized};
use super::{ApiError, Authenticated};
use crate::services::workflows::WorkflowService;
use crate::state::AppState;

/// A workflow's latest suggestions.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SuggestionsBody {
    /// Each: `{kind, node, nodeType, message, alternative?}`; `kind` is `failing`, `slow`,
    /// `unused` or `cheaper`. Empty when the agent found nothing or never reviewed it.
    #[schema(value_type = Vec<Object>)]
    pub suggestions: serde_json::Value,
    /// A note over them (the language model's or a template's); empty without suggestions.
    pub summary: String,
    /// `model` or `template`; null before the first review.
    pub source: Option<String>,
    /// When the agent reviewed it (milliseconds since the Unix epoch); null before.
    pub reviewed_at: Option<i64>,
    /// Whether the owner dismissed these suggestions (new findings show again).
    pub dismissed: bool,
}

async fn read(
    state: &AppState,
    caller: &Authenticated,
    id: &WorkflowId,
) -> Result<SuggestionsBody, ApiError> {
    let owned = WorkflowService::new(state).owned(&caller.0, id).await?;
    let stored = state.suggestions().suggestions(&owned.workflow().id).await?;
    Ok(match stored {
        Some(s) => SuggestionsBody {
            suggestions: s.items,
            summary: s.summary,
            source: Some(s.source),
            reviewed_at: Some(s.created_at),
            dismissed: s.dismissed_at.is_some(),
        },
        None => SuggestionsBody {
            suggestions: serde_json::Value::Array(Vec::new()),
            summary: String::new(),
            source: None,
            reviewed_at: None,
            dismissed: false,
        },
    })
}

/// The workflow agent's suggestions for a workflow (its managers only).
#[utoipa::path(get, path = "/api/workflows/{id}/suggestions", tag = "workflows", operation_id = "getWorkflowSuggestions",
    params(("id" = String, Path, description = "Workflow id")),
    responses((status = 200, description = "The latest suggestions", body = SuggestionsBody),
        (status = 401, response = Unauthorized), (status = 403, response = Forbidden),
        (status = 404, response = NotFound), (status = 429, response = TooManyRequests)),
    security(("bearer" = [])))]
pub async fn get(
    State(state): State<AppState>,
    caller: Authenticated,
    ApiPath(id): ApiPath<WorkflowId>,
) -> Result<Json<SuggestionsBody>, ApiError> {
    Ok(Json(read(&state, &caller, &id).await?))
}

/// Hides the current suggestions until the agent finds something different.
#[utoipa::path(post, path = "/api/workflows/{id}/suggestions/dismiss", tag = "workflows", operation_id = "dismissWorkflowSuggestions",
    params(("id" = String, Path, description = "Workflow id")),
    responses((status = 200, description = "Dismissed", body = SuggestionsBody),
        (status = 401, response = Unauthorized), (status = 403, response = Forbidden),
        (status = 404, response = NotFound), (status = 429, response = TooManyRequests)),
    security(("bearer" = [])))]
pub async fn dismiss(
    State(state): State<AppState>,
    caller: Authenticated,
    ApiPath(id): ApiPath<WorkflowId>,
) -> Result<Json<SuggestionsBody>, ApiError> {
    let owned = WorkflowService::new(&state).owned(&caller.0, &id).await?;
    state.suggestions().dismiss_suggestions(&owned.workflow().id, crate::execution::now_millis()).await?;
    Ok(Json(read(&state, &caller, &id).await?))
}
