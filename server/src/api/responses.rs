//! The error envelope and the error responses the OpenAPI document shares between operations.
//!
//! [`ErrorBody`] is the shape [`super::ApiError`] answers with. Errors most routes can give (no
//! token, not found, rate limited…) are reusable response components, referenced from each
//! operation as `(status = 401, response = Unauthorized)`, so a client sees one type for them and
//! every response carries a description (OpenAPI requires one). Errors particular to one route
//! are written on that route, with [`ErrorBody`] as their body.

use std::collections::BTreeMap;

use serde::Serialize;
use utoipa::{ToResponse, ToSchema};

/// Every error: a message for people and a stable code for programs. Some refusals add fields
/// (402: `balance`, `cost`; 422 `invalid_graph`: `errors`, `nodeErrors`).
#[derive(Debug, Serialize, ToSchema)]
#[allow(dead_code)] // a description only: `ApiError`, `error_body` and the runs handler build the body
pub struct ErrorBody {
    /// What went wrong, in a sentence.
    pub error: String,
    /// Machine-readable: `bad_request`, `unauthorized`, `forbidden`, `not_found`, `conflict`,
    /// `room_taken`, `quota_exceeded`, `insufficient_credits`, `rate_limited`, `unavailable`,
    /// `internal`, `room_quarantined`, `document_too_large`, …
    pub code: String,
}

/// `402 insufficient_credits`: the run would cost more than the caller's balance.
#[derive(Debug, Serialize, ToSchema)]
#[allow(dead_code)] // a description only: `ApiError`, `error_body` and the runs handler build the body
pub struct InsufficientCreditsBody {
    pub error: String,
    /// `insufficient_credits`.
    pub code: String,
    /// The caller's balance.
    pub balance: i64,
    /// Credits the run would hold.
    pub cost: i64,
    /// The team whose balance it is, for a run in a team's workflow.
    #[serde(rename = "teamId", skip_serializing_if = "Option::is_none")]
    pub team_id: Option<String>,
}

/// `422 invalid_graph`: the graph's problems, per node as ComfyUI reports them (camelCase keys).
/// Only documents the body the executor's `ValidationErrors` serialises to.
#[derive(Debug, Serialize, ToSchema)]
#[allow(dead_code)] // a description only: `ApiError`, `error_body` and the runs handler build the body
#[serde(rename_all = "camelCase")]
pub struct InvalidGraphBody {
    pub error: String,
    /// `invalid_graph`.
    pub code: String,
    /// Problems of the graph as a whole (too many nodes, an unknown target…).
    pub errors: Vec<ValidationIssue>,
    /// Node id → that node's problems.
    pub node_errors: BTreeMap<String, NodeValidationErrors>,
}

/// The problems of one node.
#[derive(Debug, Serialize, ToSchema)]
#[allow(dead_code)] // a description only: `ApiError`, `error_body` and the runs handler build the body
#[serde(rename_all = "camelCase")]
pub struct NodeValidationErrors {
    /// The node's type, as on the canvas.
    pub class_type: String,
    pub errors: Vec<ValidationIssue>,
}

/// One problem found by validation.
#[derive(Debug, Serialize, ToSchema)]
#[allow(dead_code)] // a description only: `ApiError`, `error_body` and the runs handler build the body
pub struct ValidationIssue {
    /// e.g. `required_input_missing`, `type_mismatch`, `value_out_of_range`, `too_many_nodes`.
    #[serde(rename = "type")]
    pub issue_type: String,
    pub message: String,
    /// The handle, parameter or edge concerned, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<String>,
}

/// `400 bad_request`: the request is malformed (a parameter, a name or the body).
#[derive(ToResponse)]
#[allow(dead_code)] // a description only: `ApiError` builds the body
#[response(description = "The request is malformed (`bad_request`)")]
pub struct BadRequest(ErrorBody);

/// `401 unauthorized`: no token, or a bad or expired one.
#[derive(ToResponse)]
#[allow(dead_code)] // a description only: `ApiError` builds the body
#[response(description = "No token, or a bad or expired one (`unauthorized`)")]
pub struct Unauthorized(ErrorBody);

/// `403 forbidden`: the caller may see this but not do this.
#[derive(ToResponse)]
#[allow(dead_code)] // a description only: `ApiError` builds the body
#[response(description = "The caller may see this but not do this (`forbidden`)")]
pub struct Forbidden(ErrorBody);

/// `404 not_found`: it does not exist, or the caller may not see it (the same answer, so that
/// strangers cannot probe what exists).
#[derive(ToResponse)]
#[allow(dead_code)] // a description only: `ApiError` builds the body
#[response(description = "It does not exist, or the caller may not see it (`not_found`)")]
pub struct NotFound(ErrorBody);

/// `429`: the caller's request rate (`rate_limited`, with `Retry-After`) or a quota
/// (`quota_exceeded`) is used up.
#[derive(ToResponse)]
#[allow(dead_code)] // a description only: `ApiError` builds the body
#[response(
    description = "Too many requests (`rate_limited`, see `Retry-After`) or a per-user quota is full (`quota_exceeded`)",
    headers(("Retry-After" = u64, description = "Seconds to wait, when rate limited"))
)]
pub struct TooManyRequests(ErrorBody);

/// `503 unavailable`: storage or the room is unavailable for now; retry later.
#[derive(ToResponse)]
#[allow(dead_code)] // a description only: `ApiError` builds the body
#[response(description = "Storage or the room is unavailable for now (`unavailable`, `room_quarantined`)")]
pub struct Unavailable(ErrorBody);
