//! The seam between a run and its room's document: where node states and run summaries go.
//!
//! Two implementations: inside `dojo-server` the room actor itself (`RoomWriter`), and in a
//! `dojo-worker` process a WebSocket connection to the room ([`super::room_client`]). Both
//! return from a write only once the room has stored it, so whatever a collaborator saw of a
//! run survives a crash like any other edit.

use std::sync::Arc;

use async_trait::async_trait;
use dojo_ids::NodeId;
use dojo_records::Run;
use dojo_room_client::RoomError;
use dojo_sync_protocol::canvas::{SchemaError, write_run_summary};
use serde_json::json;
use yrs::TransactionMut;

/// A change to the document, made in one transaction. It may be made more than once (after a
/// reconnect or a reload of the writer's replica), so it must describe the desired state,
/// never a delta.
pub type Edit<'a> = &'a (dyn Fn(&mut TransactionMut<'_>) -> Result<(), SchemaError> + Send + Sync);

/// What went wrong underneath a [`DocumentError`]: the writer's own error (the room registry
/// refusing to open the room, an update the room rejected…), or a plain message where nothing
/// failed but the room is gone ("the room closed").
pub type Cause = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum DocumentError {
    /// The room cannot be reached now; a later attempt may succeed.
    #[error("the room is not available: {0}")]
    Unavailable(#[source] Cause),
    /// The room's document cannot be read (quarantined, say): no later attempt will do better.
    #[error("the room's document does not load: {0}")]
    BadDocument(#[source] Cause),
    #[error(transparent)]
    Schema(#[from] SchemaError),
    #[error("the room refused the change: {0}")]
    Refused(#[source] Cause),
    /// A room reached over the WebSocket protocol (a separate worker's); its own messages say
    /// whether it was unavailable or refused the change.
    #[error(transparent)]
    Room(#[from] RoomError),
}

impl DocumentError {
    /// [`DocumentError::Unavailable`] for `cause` (an error, or a message).
    pub fn unavailable(cause: impl Into<Cause>) -> Self {
        DocumentError::Unavailable(cause.into())
    }
}

/// One room's document, open for a run.
#[async_trait]
pub trait RoomDocument: Send + Sync {
    /// Makes `edit` and returns once the room stored it.
    async fn write(&self, edit: Edit<'_>) -> Result<(), DocumentError>;
}

/// Opens rooms' documents by room name.
#[async_trait]
pub trait RoomDocuments: Send + Sync {
    async fn open(&self, room: &str) -> Result<Arc<dyn RoomDocument>, DocumentError>;
}

/// Where an app's runs are recorded (App mode, docs/apps.md): `app-runs/{app}/{user}`. Such a
/// run writes into no document: the app's runner must not see the owner's room, and nobody
/// else needs the states live, so they stay in the run's records (its nodes' states and
/// outputs), which the app's routes read. No workflow may claim such a name (the server refuses
/// it), so the outputs linked to it are readable by their runner alone.
pub const APP_RUNS_PREFIX: &str = "app-runs/";

/// Whether runs in `room` write into no document (see [`APP_RUNS_PREFIX`]).
pub fn writes_no_document(room: &str) -> bool {
    room.starts_with(APP_RUNS_PREFIX)
}

/// The document of a run that writes into none: every write is accepted and dropped.
pub struct NoDocument;

#[async_trait]
impl RoomDocument for NoDocument {
    async fn write(&self, _edit: Edit<'_>) -> Result<(), DocumentError> {
        Ok(())
    }
}

/// The run's summary as the document's `runs` map holds it.
pub fn run_summary_json(run: &Run, nodes: &[NodeId]) -> serde_json::Value {
    json!({
        "id": run.id,
        "status": run.status.as_str(),
        "estimate": run.estimate,
        "charged": run.charged,
        "createdAt": run.created_at,
        "finishedAt": run.finished_at,
        "userId": run.user_id,
        "nodes": nodes,
    })
}

/// Writes the run's summary; a failure is logged, not returned: the database holds the truth
/// and the next summary write repairs the document.
pub async fn write_summary(document: &dyn RoomDocument, run: &Run, nodes: &[NodeId]) {
    let summary = run_summary_json(run, nodes);
    if let Err(error) = document.write(&|txn| write_run_summary(txn, run.id.as_str(), &summary)).await {
        tracing::warn!(run = %run.id, %error, "could not write a run summary into the room");
    }
}
