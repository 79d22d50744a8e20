//! A room's document over HTTP: read it as JSON or as a Yjs update, apply an update, list and
//! restore versions. Every change goes through the room actor like a collaborator's, so people
//! in the room see it at once, and it is stored before anyone does. The operations are
//! `crate::services::{documents, versions}`'s; these handlers parse, call and map.

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use dojo_auth::Permission;
use serde::Serialize;
use utoipa::ToSchema;

use super::extract::{ApiBytes, ApiPath};
use super::responses::{
    BadRequest, ErrorBody, Forbidden, NotFound, TooManyRequests, Unauthorized, Unavailable,
};
use super::{ApiError, Authenticated};
use crate::services::access::{self, RoomAccess};
use crate::services::{documents, versions};
use crate::state::AppState;

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Version {
    pub id: i64,
    /// The last update (log sequence) this version contains.
    pub covers_seq: i64,
    pub size_bytes: i64,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
}

/// `POST /api/rooms/{room}/update`'s answer.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Applied {
    /// Always true: the update is stored and everyone in the room has been sent it.
    pub applied: bool,
}

/// `POST /api/rooms/{room}/versions/{id}/restore`'s answer.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Restored {
    /// The version restored.
    pub restored: i64,
}

/// A binary Yjs update (v1), as `Y.encodeStateAsUpdate` makes and `Y.applyUpdate` reads.
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
#[allow(dead_code)] // a description only: the body is raw bytes
pub struct YjsUpdate(Vec<u8>);

/// The room, if the caller may do what `needed` allows: 404 when they may not read it.
async fn authorized(
    state: &AppState,
    caller: &Authenticated,
    room: &str,
    needed: Permission,
) -> Result<RoomAccess, ApiError> {
    Ok(access::room_for(state, &caller.0, room, needed).await?)
}

/// The room's canvas as JSON: `{"nodes": {id: node}, "edges": …, "results": …, "runs": …}`.
#[utoipa::path(get, path = "/api/rooms/{room}/graph", tag = "rooms", operation_id = "getGraph",
    params(("room" = String, Path, description = "Room name")),
    responses((status = 200, description = "The canvas as JSON (docs/document-schema.md)", body = Object),
        (status = 400, response = BadRequest), (status = 401, response = Unauthorized),
        (status = 404, response = NotFound), (status = 429, response = TooManyRequests),
        (status = 503, response = Unavailable)),
    security(("bearer" = [])))]
pub async fn graph(
    State(state): State<AppState>,
    caller: Authenticated,
    ApiPath(room): ApiPath<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let access = authorized(&state, &caller, &room, Permission::Read).await?;
    Ok(Json(documents::canvas_json(&state, &caller.0, &access).await?))
}

/// The room's document as one binary Yjs update (v1), for `Y.applyUpdate`.
#[utoipa::path(get, path = "/api/rooms/{room}/state", tag = "rooms", operation_id = "getState",
    params(("room" = String, Path, description = "Room name")),
    responses((status = 200, description = "A Yjs v1 update", content_type = "application/octet-stream", body = YjsUpdate),
        (status = 400, response = BadRequest), (status = 401, response = Unauthorized),
        (status = 404, response = NotFound), (status = 429, response = TooManyRequests),
        (status = 503, response = Unavailable)),
    security(("bearer" = [])))]
pub async fn state(
    State(state): State<AppState>,
    caller: Authenticated,
    ApiPath(room): ApiPath<String>,
) -> Result<Response, ApiError> {
    let access = authorized(&state, &caller, &room, Permission::Read).await?;
    let update = documents::state(&state, &caller.0, &access).await?;
    Ok(([(header::CONTENT_TYPE, "application/octet-stream")], update).into_response())
}

/// Applies a binary Yjs update (v1) to the room, as a collaborator's edit: answered once it is
/// stored, and everyone in the room sees it.
#[utoipa::path(post, path = "/api/rooms/{room}/update", tag = "rooms", operation_id = "applyUpdate",
    params(("room" = String, Path, description = "Room name")),
    request_body(content = YjsUpdate, content_type = "application/octet-stream", description = "A Yjs v1 update"),
    responses((status = 200, description = "Stored and broadcast", body = Applied),
        (status = 400, description = "Empty or refused update (`bad_request`)", body = ErrorBody),
        (status = 401, response = Unauthorized), (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 413, description = "The document would pass its size limit (`document_too_large`)", body = ErrorBody),
        (status = 429, response = TooManyRequests), (status = 503, response = Unavailable)),
    security(("bearer" = [])))]
pub async fn update(
    State(state): State<AppState>,
    caller: Authenticated,
    ApiPath(room): ApiPath<String>,
    ApiBytes(body): ApiBytes,
) -> Result<Json<Applied>, ApiError> {
    let access = authorized(&state, &caller, &room, Permission::Write).await?;
    documents::apply(&state, &caller.0, &access, body.to_vec()).await?;
    Ok(Json(Applied { applied: true }))
}

/// The room's stored versions (snapshots), newest first.
#[utoipa::path(get, path = "/api/rooms/{room}/versions", tag = "rooms", operation_id = "listVersions",
    params(("room" = String, Path, description = "Room name")),
    responses((status = 200, description = "Newest first", body = Vec<Version>),
        (status = 400, response = BadRequest), (status = 401, response = Unauthorized),
        (status = 404, response = NotFound), (status = 429, response = TooManyRequests),
        (status = 503, response = Unavailable)),
    security(("bearer" = [])))]
pub async fn list_versions(
    State(state): State<AppState>,
    caller: Authenticated,
    ApiPath(room): ApiPath<String>,
) -> Result<Json<Vec<Version>>, ApiError> {
    let access = authorized(&state, &caller, &room, Permission::Read).await?;
    let versions = versions::list(&state, &access).await?;
    Ok(Json(
        versions
            .into_iter()
            .map(|v| Version {
                id: v.id,
                covers_seq: v.covers_seq,
                size_bytes: v.size_bytes,
                created_at: v.created_at,
            })
            .collect(),
    ))
}

/// One stored version's document, as one binary Yjs update (v1): `Y.applyUpdate` it into an
/// empty document to preview it, or to restore it as a change of one's own (the editor does,
/// so that its Undo takes the restore back).
#[utoipa::path(get, path = "/api/rooms/{room}/versions/{id}", tag = "rooms", operation_id = "getVersion",
    params(("room" = String, Path, description = "Room name"), ("id" = i64, Path, description = "Version id")),
    responses((status = 200, description = "The version, a Yjs v1 update", content_type = "application/octet-stream", body = YjsUpdate),
        (status = 400, response = BadRequest), (status = 401, response = Unauthorized),
        (status = 404, response = NotFound), (status = 429, response = TooManyRequests),
        (status = 503, response = Unavailable)),
    security(("bearer" = [])))]
pub async fn get_version(
    State(state): State<AppState>,
    caller: Authenticated,
    ApiPath((room, id)): ApiPath<(String, i64)>,
) -> Result<Response, ApiError> {
    let access = authorized(&state, &caller, &room, Permission::Read).await?;
    let update = versions::content(&state, &access, id).await?;
    Ok(([(header::CONTENT_TYPE, "application/octet-stream")], update).into_response())
}

/// Makes the canvas equal to a version, as a new change everyone in the room sees live.
/// Answered once the change is stored.
#[utoipa::path(post, path = "/api/rooms/{room}/versions/{id}/restore", tag = "rooms", operation_id = "restoreVersion",
    params(("room" = String, Path, description = "Room name"), ("id" = i64, Path, description = "Version id")),
    responses((status = 200, description = "Restored, stored and broadcast", body = Restored),
        (status = 400, response = BadRequest), (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden), (status = 404, response = NotFound),
        (status = 429, response = TooManyRequests), (status = 503, response = Unavailable)),
    security(("bearer" = [])))]
pub async fn restore_version(
    State(state): State<AppState>,
    caller: Authenticated,
    ApiPath((room, id)): ApiPath<(String, i64)>,
) -> Result<Json<Restored>, ApiError> {
    let access = authorized(&state, &caller, &room, Permission::Write).await?;
    versions::restore(&state, &caller.0, &access, id).await?;
    Ok(Json(Restored { restored: id }))
}
