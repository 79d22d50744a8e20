//! Claiming a room for a new workflow (creating one with a room name of the caller's choice).
//!
//! Creating a workflow makes its creator the room's owner: they read everything in it and
//! decide who else may. A room nobody claimed may still be in use: a service writes it
//! through a token with grants, or (in dev mode) anyone edits it. Claiming such a room would
//! hand its content to whoever asked first, so a room that has a stored document, or is open
//! on this instance, may be claimed only by a caller whose token grants write (or admin) on
//! it. Across instances the stored document is what counts: a room open elsewhere has stored
//! something as soon as anyone wrote to it.
//!
//! Two claimers racing for one room: the database's unique room index lets exactly one
//! insert its workflow; the other is told the room is taken, in the same words.

use dojo_auth::Permission;
use dojo_store::StoreError;

use crate::caller::Caller;
use crate::room_name::RoomName;
use crate::state::AppState;

/// `true` when `caller` may make `room` the room of a new workflow (whether a workflow already
/// has it is the insert's to find out).
pub(crate) async fn claimable(
    state: &AppState,
    caller: &Caller,
    room: &RoomName,
) -> Result<bool, StoreError> {
    // Where apps' runs are recorded: whoever claimed such a name would read runners' outputs.
    if dojo_executor::worker::document::writes_no_document(room.as_str()) {
        return Ok(false);
    }
    if holds_write_grant(caller, room) {
        return Ok(true);
    }
    Ok(!in_use(state, room).await?)
}

/// `true` when `room` is open on this instance or has a stored document (anything ever written
/// to it, on any instance).
pub(crate) async fn in_use(state: &AppState, room: &RoomName) -> Result<bool, StoreError> {
    // An empty append is the store's cheap "last sequence" read (0: never written).
    Ok(state.rooms().get(room).is_some() || state.store().append(room.as_str(), &[]).await? > 0)
}

fn holds_write_grant(caller: &Caller, room: &RoomName) -> bool {
    caller
        .identity()
        .and_then(|identity| identity.grants.as_ref())
        .and_then(|grants| grants.permission_for(room.as_str()))
        .is_some_and(Permission::can_write)
}
