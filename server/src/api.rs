//! The HTTP API around rooms: versions (snapshots) and restoring them.
//!
//! Not yet behind authentication: like the WebSocket endpoint, it is open to whoever can reach
//! the port until the auth issue lands.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tokio::sync::oneshot;

use crate::app::AppState;
use crate::room::{RestoreError, RoomCommand};
use crate::room_name::RoomName;

/// Errors at the HTTP edge. Internal details go to the log, never to the client.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("storage unavailable")]
    Storage(#[from] dojo_store::StoreError),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match &self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Unavailable(_) | ApiError::Storage(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        if let ApiError::Storage(error) = &self {
            tracing::error!(%error, "storage error in the HTTP API");
        }
        (status, Json(serde_json::json!({ "error": self.to_string() }))).into_response()
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Version {
    pub id: i64,
    /// The last update (log sequence) this version contains.
    pub covers_seq: i64,
    pub size_bytes: i64,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
}

fn room_name(room: &str) -> Result<RoomName, ApiError> {
    RoomName::parse(room).map_err(|e| ApiError::BadRequest(e.to_string()))
}

/// `GET /api/rooms/{room}/versions`: the room's snapshots, newest first.
pub async fn list_versions(
    State(state): State<AppState>,
    Path(room): Path<String>,
) -> Result<Json<Vec<Version>>, ApiError> {
    let room = room_name(&room)?;
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

/// `POST /api/rooms/{room}/versions/{id}/restore`: makes the canvas equal to that version, as a
/// new change that everyone in the room sees live. Answers once the change is stored.
pub async fn restore_version(
    State(state): State<AppState>,
    Path((room, id)): Path<(String, i64)>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let room = room_name(&room)?;
    let Some(snapshot) = state.store().version(room.as_str(), id).await? else {
        return Err(ApiError::NotFound(format!("room {room} has no version {id}")));
    };
    let handle = state.rooms().get_or_open(&room).map_err(|e| ApiError::Unavailable(e.to_string()))?;
    let (done, answer) = oneshot::channel();
    let unavailable = || ApiError::Unavailable("the room is not available; try again".into());
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
