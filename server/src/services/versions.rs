//! A room's stored versions (the snapshots compaction keeps), and restoring one: its content
//! is applied as a new, ordinary change, through the room actor like a collaborator's edit, so
//! everyone in the room sees it live and it is stored before anyone does.

use dojo_auth::Permission;
use dojo_store::{StoreError, VersionInfo};
use tokio::sync::oneshot;

use super::access::{self, AccessError, RoomAccess};
use crate::caller::Caller;
use crate::room::{RestoreError, RoomCommand};
use crate::room_name::RoomName;
use crate::room_registry::OpenRefused;
use crate::state::AppState;

#[derive(Debug, thiserror::Error)]
pub enum VersionError {
    #[error(transparent)]
    Access(#[from] AccessError),
    #[error("room {room} has no version {id}")]
    NotFound { room: RoomName, id: i64 },
    #[error(transparent)]
    Open(#[from] OpenRefused),
    /// The room did not answer, or could not store the restore: try again.
    #[error("the room is not available; try again")]
    Unavailable,
    /// The stored version does not apply (it is logged; the caller learns only that).
    #[error("that version cannot be restored")]
    BadVersion(#[source] RestoreError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The room's versions, newest first.
pub async fn list(state: &AppState, access: &RoomAccess) -> Result<Vec<VersionInfo>, VersionError> {
    access.require(Permission::Read)?;
    Ok(state.store().versions(access.room().as_str()).await?)
}

/// Version `id`'s document: one Yjs v1 update, as stored (a preview, or for an editor to
/// restore locally as one change of its own undo history).
pub async fn content(state: &AppState, access: &RoomAccess, id: i64) -> Result<Vec<u8>, VersionError> {
    access.require(Permission::Read)?;
    let room = access.room();
    match state.store().version(room.as_str(), id).await? {
        Some(snapshot) => Ok(snapshot.data),
        None => Err(VersionError::NotFound { room: room.clone(), id }),
    }
}

/// Makes the canvas equal to version `id`, as a new change; returns once it is stored.
pub async fn restore(
    state: &AppState,
    caller: &Caller,
    access: &RoomAccess,
    id: i64,
) -> Result<(), VersionError> {
    access.require(Permission::Write)?;
    let room = access.room();
    let Some(snapshot) = state.store().version(room.as_str(), id).await? else {
        return Err(VersionError::NotFound { room: room.clone(), id });
    };
    let handle = access::open_room(state, caller, room)?;
    let (done, answer) = oneshot::channel();
    handle
        .send(RoomCommand::Restore { snapshot: snapshot.data, done })
        .await
        .map_err(|_| VersionError::Unavailable)?;
    match answer.await.map_err(|_| VersionError::Unavailable)? {
        Ok(()) => Ok(()),
        Err(error @ RestoreError::BadVersion(_)) => {
            tracing::error!(%room, id, why = %error, "a stored version does not apply");
            Err(VersionError::BadVersion(error))
        }
        Err(RestoreError::NotStored) => Err(VersionError::Unavailable),
    }
}
