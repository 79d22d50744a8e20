//! What the HTTP API tells a caller about things they may not use.
//!
//! The rule, for every route: what the caller may not see answers `404`, word for word like
//! something that does not exist, so a stranger learns nothing (not even that it exists);
//! `403` only when the caller can see the thing but not do this to it (a reader trying to
//! write or run, a collaborator trying to share). Rooms follow it too: a room the caller may
//! not read is "no room", whether a workflow claims it, a service writes it, or nobody ever
//! used the name. (The WebSocket handshake answers 403 for all of those alike, which reveals
//! nothing either.)

use dojo_accounts::Workflow;
use dojo_auth::Permission;

use super::ApiError;
use crate::auth::{AuthError, Caller};
use crate::room::RoomHandle;
use crate::room_name::RoomName;
use crate::rooms::OpenRefused;
use crate::state::AppState;

/// The room, once the caller may do what `needed` allows in it; `404` when they may not read
/// it, `403` when they may read it but need more.
pub async fn room_for(
    state: &AppState,
    caller: &Caller,
    room: &str,
    needed: Permission,
) -> Result<(RoomName, Permission), ApiError> {
    let room = super::room_name(room)?;
    let permission = match state.auth().room_permission(caller, room.as_str()).await {
        Ok(permission) => permission,
        Err(AuthError::Forbidden) => return Err(no_room(&room)),
        Err(error) => return Err(error.into()),
    };
    if permission < needed {
        return Err(ApiError::Forbidden(format!(
            "this needs {needed} access to the room; you have {permission}"
        )));
    }
    Ok((room, permission))
}

pub fn no_room(room: &RoomName) -> ApiError {
    ApiError::NotFound(format!("no room {:?}", room.as_str()))
}

/// The room's actor, opened if need be; a room this opens counts against the caller's share
/// of rooms (`DOJO_MAX_ROOMS_PER_USER`).
pub fn open_room(state: &AppState, caller: &Caller, room: &RoomName) -> Result<RoomHandle, ApiError> {
    state.rooms().get_or_open_for(room, caller.user().map(|user| user.id.as_str())).map_err(ApiError::from)
}

impl From<OpenRefused> for ApiError {
    fn from(error: OpenRefused) -> Self {
        match error {
            OpenRefused::TooManyRooms(_) => ApiError::Unavailable(error.to_string()),
            OpenRefused::UserQuota(_) => ApiError::QuotaExceeded(error.to_string()),
        }
    }
}

/// What the caller may do with `workflow` (the record: rename, publish, share, delete), given
/// their `permission` in its room.
pub fn workflow_permission(caller: &Caller, workflow: &Workflow, permission: Permission) -> Permission {
    let (Some(user), Some(identity)) = (caller.user(), caller.identity()) else { return permission };
    cap_grant_admin(
        permission,
        workflow.owner_id == user.id,
        identity.grants.is_some(),
        identity.manage_workflows,
    )
}

/// An `admin` that comes from a token's grants administers the room's document; it reaches
/// the workflow record of another user only with the token's explicit `manage_workflows`.
/// Otherwise it counts as `write` there. (Without grants, admin comes from the workflow
/// records and means "owner"; anonymous callers exist in dev mode only, where everything is
/// open anyway.)
fn cap_grant_admin(
    permission: Permission,
    is_owner: bool,
    via_grants: bool,
    manage_workflows: bool,
) -> Permission {
    if permission == Permission::Admin && via_grants && !is_owner && !manage_workflows {
        Permission::Write
    } else {
        permission
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grant_admin_reaches_another_users_workflow_only_when_the_token_says_so() {
        use Permission::{Admin, Read, Write};
        // (permission, is owner, via grants, manage_workflows) → permission on the record.
        assert_eq!(cap_grant_admin(Admin, false, true, false), Write);
        assert_eq!(cap_grant_admin(Admin, false, true, true), Admin);
        assert_eq!(cap_grant_admin(Admin, true, true, false), Admin, "an owner's own token with grants");
        assert_eq!(cap_grant_admin(Admin, true, false, false), Admin, "the owner, from the records");
        assert_eq!(cap_grant_admin(Write, false, true, true), Write, "the flag raises nothing");
        assert_eq!(cap_grant_admin(Read, false, true, true), Read);
    }
}
