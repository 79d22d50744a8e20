//! Who may reach a room, and what they may do in it.
//!
//! The rule, for every operation: what the caller may not see is hidden, word for word like
//! something that does not exist (over HTTP, `404`), so a stranger learns nothing (not even that
//! it exists); "forbidden" (`403`) only when the caller can see the thing but not do this to it
//! (a reader trying to write or run, a collaborator trying to share). Rooms follow it too: a
//! room the caller may not read is "no room", whether a workflow claims it, a service writes
//! it, or nobody ever used the name. (The WebSocket handshake answers 403 for all of those
//! alike, which reveals nothing either.)

use dojo_auth::Permission;

use crate::caller::{AuthError, Caller};
use crate::room::RoomHandle;
use crate::room_name::{RoomName, RoomNameError};
use crate::room_registry::OpenRefused;
use crate::state::AppState;

/// A room the caller was checked for: made only by [`room_for`].
#[derive(Debug, Clone)]
pub struct RoomAccess {
    room: RoomName,
    permission: Permission,
}

impl RoomAccess {
    pub fn room(&self) -> &RoomName {
        &self.room
    }

    /// What the caller may do in the room.
    pub fn permission(&self) -> Permission {
        self.permission
    }

    /// `Ok` when the check that made this access allowed `needed`.
    pub fn require(&self, needed: Permission) -> Result<(), AccessError> {
        if self.permission < needed {
            return Err(AccessError::Insufficient { needed, have: self.permission });
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error(transparent)]
    BadName(#[from] RoomNameError),
    /// The caller may not read the room: it is as if it did not exist.
    #[error("no room {:?}", .0.as_str())]
    Hidden(RoomName),
    #[error("this needs {needed} access to the room; you have {have}")]
    Insufficient { needed: Permission, have: Permission },
    #[error(transparent)]
    Auth(AuthError),
}

/// The room, once the caller may do what `needed` allows in it.
pub async fn room_for(
    state: &AppState,
    caller: &Caller,
    room: &str,
    needed: Permission,
) -> Result<RoomAccess, AccessError> {
    let room = RoomName::parse(room)?;
    let Some(permission) = visible_permission(state, caller, &room).await.map_err(AccessError::Auth)? else {
        return Err(AccessError::Hidden(room));
    };
    let access = RoomAccess { room, permission };
    access.require(needed)?;
    Ok(access)
}

/// What the caller may do in `room`, or `None` when they may not even read it (so that what
/// lives in the room, a run or a workflow, is hidden from them too).
pub async fn visible_permission(
    state: &AppState,
    caller: &Caller,
    room: &RoomName,
) -> Result<Option<Permission>, AuthError> {
    match state.auth().room_permission(caller, room).await {
        Ok(permission) => Ok(Some(permission)),
        Err(AuthError::Forbidden) => Ok(None),
        Err(error) => Err(error),
    }
}

/// The room's actor, opened if need be; a room this opens counts against the caller's share
/// of rooms (`DOJO_MAX_ROOMS_PER_USER`).
pub fn open_room(state: &AppState, caller: &Caller, room: &RoomName) -> Result<RoomHandle, OpenRefused> {
    state.rooms().get_or_open_for(room, caller.user().map(|user| user.id.as_str()))
}
