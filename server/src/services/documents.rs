//! A room's document outside WebSockets: read it whole (as a Yjs update or the canvas as
//! JSON), or apply an update as a collaborator's edit. Everything goes through the room actor,
//! answered once what it returns or changes is stored, so every client sees one history.

use dojo_auth::Permission;
use tokio::sync::oneshot;

use super::access::{self, AccessError, RoomAccess};
use crate::caller::Caller;
use crate::room::{ApplyError, ApplyRequest, RoomCommand};
use crate::room_name::RoomName;
use crate::room_registry::OpenRefused;
use crate::state::AppState;

#[derive(Debug, thiserror::Error)]
pub enum DocumentError {
    #[error(transparent)]
    Access(#[from] AccessError),
    #[error("the body must be a Yjs update")]
    EmptyUpdate,
    #[error(transparent)]
    Open(#[from] OpenRefused),
    /// The room's stored document is unsafe to load (see `quarantine.rs`).
    #[error("the room is quarantined: its stored document cannot be loaded safely; ask the operator")]
    Quarantined,
    #[error("the room is not available; try again")]
    Unavailable,
    /// Not a valid update, or one whose dependencies the document lacks.
    #[error(transparent)]
    Refused(ApplyError),
    /// The update would make the document larger than the server allows.
    #[error(transparent)]
    TooLarge(ApplyError),
    /// Decoding the document did not finish (its task panicked; a bug, logged).
    #[error("{0}")]
    Interrupted(#[from] tokio::task::JoinError),
    /// The room's own state did not decode (a bug, logged).
    #[error("the room's own state does not apply: {0}")]
    Internal(#[source] dojo_sync_protocol::ApplyError),
}

/// The whole document as one Yjs v1 update, once everything in it is stored.
pub async fn state(state: &AppState, caller: &Caller, access: &RoomAccess) -> Result<Vec<u8>, DocumentError> {
    access.require(Permission::Read)?;
    let room = access.room();
    let handle = access::open_room(state, caller, room)?;
    let (done, answer) = oneshot::channel();
    handle.send(RoomCommand::State { done }).await.map_err(|_| not_served(state, room))?;
    answer.await.map_err(|_| not_served(state, room))
}

/// The room's canvas as JSON: `{"nodes": {id: node}, "edges": …, "results": …, "runs": …}`.
pub async fn canvas_json(
    state: &AppState,
    caller: &Caller,
    access: &RoomAccess,
) -> Result<serde_json::Value, DocumentError> {
    let update = self::state(state, caller, access).await?;
    // Decoding a big document is CPU work: keep it off the async threads.
    tokio::task::spawn_blocking(move || {
        use yrs::Transact;
        let doc = yrs::Doc::new();
        dojo_sync_protocol::update::apply_client_update(&doc, &update).map(|_| {
            let txn = doc.transact();
            dojo_sync_protocol::canvas::canvas_json(&txn)
        })
    })
    .await?
    .map_err(DocumentError::Internal)
}

/// Applies a Yjs v1 update as the caller's edit; returns once it is stored (and broadcast).
pub async fn apply(
    state: &AppState,
    caller: &Caller,
    access: &RoomAccess,
    update: Vec<u8>,
) -> Result<(), DocumentError> {
    access.require(Permission::Write)?;
    if update.is_empty() {
        return Err(DocumentError::EmptyUpdate);
    }
    let room = access.room();
    let handle = access::open_room(state, caller, room)?;
    let (done, answer) = oneshot::channel();
    let rules = crate::executor_maps::write_rules(caller, state.config());
    handle
        .send(RoomCommand::Apply(Box::new(ApplyRequest { update, rules, done })))
        .await
        .map_err(|_| not_served(state, room))?;
    match answer.await.map_err(|_| not_served(state, room))? {
        Ok(()) => Ok(()),
        Err(error @ (ApplyError::Invalid(_) | ApplyError::MissingDependencies)) => {
            Err(DocumentError::Refused(error))
        }
        Err(ApplyError::NotStored | ApplyError::Quarantined) => Err(not_served(state, room)),
        Err(error @ ApplyError::TooLarge { .. }) => Err(DocumentError::TooLarge(error)),
    }
}

/// Why a room did not answer: quarantined (see `quarantine.rs`), or just not available now.
fn not_served(state: &AppState, room: &RoomName) -> DocumentError {
    match state.rooms().quarantined(room) {
        Some(reason) => {
            tracing::warn!(%room, %reason, "refused a request for a quarantined room");
            DocumentError::Quarantined
        }
        None => DocumentError::Unavailable,
    }
}
