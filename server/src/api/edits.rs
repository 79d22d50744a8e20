//! Graph edits in JSON over HTTP (`crate::services::edits`): `POST /api/rooms/{room}/edits`
//! applies a batch of operations as one change, `POST …/edits/{editId}/undo` takes one back.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use dojo_auth::Permission;
use dojo_ids::EditId;
use dojo_sync_protocol::canvas::edits::{Conflict, EditOp, OpError, parse_ops};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::extract::{ApiJson, ApiPath};
use super::responses::{ErrorBody, Unauthorized};
use super::{ApiError, Authenticated};
use crate::error_code::ErrorCode;
use crate::services::access;
use crate::services::edits::{self, Applied, EditError};
use crate::state::AppState;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EditRequest {
    /// The operations, applied in order as one change (at most `DOJO_MAX_EDIT_OPS`, 500).
    /// Read one by one, so a malformed operation is reported with its index.
    #[schema(value_type = Vec<EditOp>)]
    pub ops: Vec<Value>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EditApplied {
    /// Undo the edit with `POST /api/rooms/{room}/edits/{editId}/undo`. Absent when the edit
    /// changed nothing, or was too large to keep.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub edit_id: Option<String>,
    /// Ids of the nodes the edit added, in the order of their operations (generated ones too).
    pub created_nodes: Vec<String>,
    /// Ids of the wires the edit added.
    pub created_edges: Vec<String>,
    /// The document's Yjs state vector (v1) just after the edit, base64: a client that has
    /// applied everything up to it has the edit.
    pub state_vector: String,
}

impl From<Applied> for EditApplied {
    fn from(applied: Applied) -> Self {
        Self {
            edit_id: applied.edit_id.map(EditId::into_string),
            created_nodes: applied.created.nodes,
            created_edges: applied.created.edges,
            state_vector: applied.state_vector,
        }
    }
}

/// `422`: the operations refused, each with its index (`code: invalid_edits`).
#[derive(Debug, Serialize, ToSchema)]
pub struct EditsRefusedBody {
    pub error: String,
    /// `invalid_edits`
    pub code: String,
    pub ops: Vec<OpError>,
}

/// `409`: what changed since the edit (`code: edit_conflict`).
#[derive(Debug, Serialize, ToSchema)]
pub struct UndoConflictBody {
    pub error: String,
    /// `edit_conflict`
    pub code: String,
    pub conflicts: Vec<Conflict>,
}

/// Applies a batch of graph operations to the room as one change, checked first against the
/// room's graph and the node catalog (types, parameters and their values, handles, wire types,
/// cycles, ids, positions): if any operation is refused, nothing is applied and every refused
/// one is listed. Answered once the change is stored; everyone in the room sees it live.
#[utoipa::path(post, path = "/api/rooms/{room}/edits", tag = "rooms", operation_id = "applyEdits",
    params(("room" = String, Path, description = "Room name")),
    request_body = EditRequest,
    responses(
        (status = 200, description = "Applied and stored", body = EditApplied),
        (status = 422, description = "Refused whole: `{error, code: invalid_edits, ops: [{index, message}]}`", body = EditsRefusedBody),
        (status = 400, description = "Not JSON, or not `{ops: [...]}`", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 403, description = "The caller may read the room but not change it", body = ErrorBody),
        (status = 404, description = "No such room the caller may see", body = ErrorBody),
        (status = 413, description = "The change would make the document larger than the server allows", body = ErrorBody),
        (status = 503, description = "The room is not available now", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn apply(
    State(state): State<AppState>,
    caller: Authenticated,
    ApiPath(room): ApiPath<String>,
    ApiJson(request): ApiJson<EditRequest>,
) -> Result<Json<EditApplied>, Response> {
    let access = access::room_for(&state, &caller.0, &room, Permission::Write).await.map_err(refused)?;
    let ops =
        parse_ops(request.ops, &edits::limits(&state)).map_err(|ops| refused(EditError::Invalid(ops)))?;
    let applied = edits::apply(&state, &caller.0, &access, ops).await.map_err(refused)?;
    Ok(Json(applied.into()))
}

/// Takes an edit back as one change: what it added is removed, what it removed comes back with
/// its parameters and wires, changed values return to what they were. Refused with `409` and
/// what changed when anything the edit touched changed since. The answer's `editId` undoes the
/// undo.
#[utoipa::path(post, path = "/api/rooms/{room}/edits/{id}/undo", tag = "rooms", operation_id = "undoEdit",
    params(("room" = String, Path, description = "Room name"), ("id" = String, Path, description = "The edit's id (`editId` in its answer)")),
    responses(
        (status = 200, description = "Undone and stored", body = EditApplied),
        (status = 409, description = "Changed since: `{error, code: edit_conflict, conflicts: [{kind, id, message}]}`", body = UndoConflictBody),
        (status = 401, response = Unauthorized),
        (status = 403, description = "The caller may read the room but not change it", body = ErrorBody),
        (status = 404, description = "No such room, or no such edit kept (undone already, too old, made on another server)", body = ErrorBody),
        (status = 503, description = "The room is not available now", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn undo(
    State(state): State<AppState>,
    caller: Authenticated,
    ApiPath((room, edit)): ApiPath<(String, String)>,
) -> Result<Json<EditApplied>, Response> {
    let access = access::room_for(&state, &caller.0, &room, Permission::Write).await.map_err(refused)?;
    let applied = edits::undo(&state, &caller.0, &access, &EditId::from(edit)).await.map_err(refused)?;
    Ok(Json(applied.into()))
}

/// The refused operations and undo conflicts carry their lists; the rest is the usual body.
fn refused(error: impl Into<EditError>) -> Response {
    let error = error.into();
    let message = error.to_string();
    match error {
        EditError::Invalid(ops) => {
            let code = ErrorCode::InvalidEdits;
            let body = json!({ "error": message, "code": code.as_str(), "ops": ops });
            (code.status(), Json(body)).into_response()
        }
        EditError::Conflict(conflicts) => {
            let code = ErrorCode::EditConflict;
            let body = json!({ "error": message, "code": code.as_str(), "conflicts": conflicts });
            (code.status(), Json(body)).into_response()
        }
        other => ApiError::from(other).into_response(),
    }
}

impl From<EditError> for ApiError {
    fn from(error: EditError) -> Self {
        match error {
            EditError::Access(error) => error.into(),
            EditError::Document(error) => error.into(),
            EditError::UnknownEdit(_) => ApiError::NotFound(error.to_string()),
            // Answered with their lists by `refused`; here only for completeness.
            EditError::Invalid(_) => ApiError::BadRequest(error.to_string()),
            EditError::Conflict(_) | EditError::NotSchema(_) => ApiError::Conflict(error.to_string()),
            EditError::Interrupted(_) | EditError::Internal(_) => ApiError::Internal(error.to_string()),
        }
    }
}
