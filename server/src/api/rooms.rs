//! A room's document over HTTP: read it as JSON or as a Yjs update, apply an update, list and
//! restore versions. Every change goes through the room actor like a collaborator's, so people
//! in the room see it at once, and it is stored before anyone does.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use dojo_auth::Permission;
use serde::Serialize;
use tokio::sync::oneshot;
use utoipa::ToSchema;

use super::access::open_room;
use super::{ApiError, Authenticated};
use crate::room::{ApplyError, RestoreError, RoomCommand};
use crate::room_name::RoomName;
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

/// The room, if the caller may do what `needed` allows: 404 when they may not read it.
async fn authorized(
    state: &AppState,
    caller: &Authenticated,
    room: &str,
    needed: Permission,
) -> Result<RoomName, ApiError> {
    Ok(super::access::room_for(state, &caller.0, room, needed).await?.0)
}

fn unavailable() -> ApiError {
    ApiError::Unavailable("the room is not available; try again".into())
}

/// Why a room did not answer: quarantined (see `quarantine.rs`), or just not available now.
fn not_served(state: &AppState, room: &RoomName) -> ApiError {
    match state.rooms().quarantined(room) {
        Some(reason) => {
            tracing::warn!(%room, %reason, "refused a request for a quarantined room");
            ApiError::Quarantined(
                "the room is quarantined: its stored document cannot be loaded safely; ask the operator"
                    .into(),
            )
        }
        None => unavailable(),
    }
}

/// The whole document, once everything in it is stored.
async fn document_state(
    state: &AppState,
    caller: &Authenticated,
    room: &RoomName,
) -> Result<Vec<u8>, ApiError> {
    let handle = open_room(state, &caller.0, room)?;
    let (done, answer) = oneshot::channel();
    handle.send(RoomCommand::State { done }).await.map_err(|_| not_served(state, room))?;
    answer.await.map_err(|_| not_served(state, room))
}

/// The room's canvas as JSON: `{"nodes": {id: node}, "edges": …, "results": …, "runs": …}`.
#[utoipa::path(get, path = "/api/rooms/{room}/graph", tag = "rooms",
    params(("room" = String, Path, description = "Room name")),
    responses((status = 200, description = "The canvas as JSON", body = Object), (status = 404), (status = 401)),
    security(("bearer" = [])))]
pub async fn graph(
    State(state): State<AppState>,
    caller: Authenticated,
    Path(room): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let room = authorized(&state, &caller, &room, Permission::Read).await?;
    let update = document_state(&state, &caller, &room).await?;
    // Decoding a big document is CPU work: keep it off the async threads.
    let json = tokio::task::spawn_blocking(move || {
        use yrs::Transact;
        let doc = yrs::Doc::new();
        dojo_sync_protocol::update::apply_client_update(&doc, &update).map(|_| {
            let txn = doc.transact();
            dojo_sync_protocol::canvas::canvas_json(&txn)
        })
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))?
    .map_err(|e| ApiError::Internal(format!("the room's own state does not apply: {e}")))?;
    Ok(Json(json))
}

/// The room's document as one binary Yjs update (v1), for `Y.applyUpdate`.
#[utoipa::path(get, path = "/api/rooms/{room}/state", tag = "rooms",
    params(("room" = String, Path, description = "Room name")),
    responses((status = 200, description = "A Yjs v1 update", content_type = "application/octet-stream", body = Vec<u8>), (status = 404)),
    security(("bearer" = [])))]
pub async fn state(
    State(state): State<AppState>,
    caller: Authenticated,
    Path(room): Path<String>,
) -> Result<Response, ApiError> {
    let room = authorized(&state, &caller, &room, Permission::Read).await?;
    let update = document_state(&state, &caller, &room).await?;
    Ok(([(header::CONTENT_TYPE, "application/octet-stream")], update).into_response())
}

/// Applies a binary Yjs update (v1) to the room, as a collaborator's edit: answered once it is
/// stored, and everyone in the room sees it.
#[utoipa::path(post, path = "/api/rooms/{room}/update", tag = "rooms",
    params(("room" = String, Path, description = "Room name")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "A Yjs v1 update"),
    responses((status = 200, description = "Stored and broadcast", body = Object), (status = 400), (status = 403), (status = 404)),
    security(("bearer" = [])))]
pub async fn update(
    State(state): State<AppState>,
    caller: Authenticated,
    Path(room): Path<String>,
    body: Bytes,
) -> Result<Json<serde_json::Value>, ApiError> {
    let room = authorized(&state, &caller, &room, Permission::Write).await?;
    if body.is_empty() {
        return Err(ApiError::BadRequest("the body must be a Yjs update".into()));
    }
    let handle = open_room(&state, &caller.0, &room)?;
    let (done, answer) = oneshot::channel();
    let rules = crate::executor_maps::write_rules(&caller.0, state.config());
    handle
        .send(RoomCommand::Apply { update: body.to_vec(), rules, done })
        .await
        .map_err(|_| not_served(&state, &room))?;
    match answer.await.map_err(|_| not_served(&state, &room))? {
        Ok(()) => Ok(Json(serde_json::json!({ "applied": true }))),
        Err(error @ (ApplyError::Invalid(_) | ApplyError::MissingDependencies)) => {
            Err(ApiError::BadRequest(error.to_string()))
        }
        Err(ApplyError::NotStored) => Err(not_served(&state, &room)),
        Err(ApplyError::Quarantined) => Err(not_served(&state, &room)),
        Err(error @ ApplyError::TooLarge { .. }) => Err(ApiError::PayloadTooLarge(error.to_string())),
    }
}

/// The room's stored versions (snapshots), newest first.
#[utoipa::path(get, path = "/api/rooms/{room}/versions", tag = "rooms",
    params(("room" = String, Path, description = "Room name")),
    responses((status = 200, body = Vec<Version>), (status = 404)),
    security(("bearer" = [])))]
pub async fn list_versions(
    State(state): State<AppState>,
    caller: Authenticated,
    Path(room): Path<String>,
) -> Result<Json<Vec<Version>>, ApiError> {
    let room = authorized(&state, &caller, &room, Permission::Read).await?;
    let versions = state.store().versions(room.as_str()).await?;
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

/// Makes the canvas equal to a version, as a new change everyone in the room sees live.
/// Answered once the change is stored.
#[utoipa::path(post, path = "/api/rooms/{room}/versions/{id}/restore", tag = "rooms",
    params(("room" = String, Path, description = "Room name"), ("id" = i64, Path, description = "Version id")),
    responses((status = 200, body = Object), (status = 403), (status = 404)),
    security(("bearer" = [])))]
pub async fn restore_version(
    State(state): State<AppState>,
    caller: Authenticated,
    Path((room, id)): Path<(String, i64)>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let room = authorized(&state, &caller, &room, Permission::Write).await?;
    let Some(snapshot) = state.store().version(room.as_str(), id).await? else {
        return Err(ApiError::NotFound(format!("room {room} has no version {id}")));
    };
    let handle = open_room(&state, &caller.0, &room)?;
    let (done, answer) = oneshot::channel();
    handle.send(RoomCommand::Restore { snapshot: snapshot.data, done }).await.map_err(|_| unavailable())?;
    match answer.await.map_err(|_| unavailable())? {
        Ok(()) => Ok(Json(serde_json::json!({ "restored": id }))),
        Err(RestoreError::BadVersion(why)) => {
            tracing::error!(%room, id, %why, "a stored version does not apply");
            Err(ApiError::Unavailable("that version cannot be restored".into()))
        }
        Err(RestoreError::NotStored) => Err(unavailable()),
    }
}
