//! Writes a run's states into its room's document the way a collaborator would.
//!
//! The writer keeps a replica of the document, loaded once from the room. Each write edits the
//! replica and sends only the difference to the room actor as an ordinary update, which the
//! room stores before broadcasting (so a state someone saw survives a crash, like any edit).
//! The replica never holds anything the room lacks, so the room always has every update a
//! write depends on. If a write is lost (the room failed to store it, or unloaded), the replica
//! is reloaded from the room and the edit made again on top of what the room really holds.

use std::sync::Arc;

use dojo_executor::worker::DocumentError;
use dojo_sync_protocol::canvas::SchemaError;
use dojo_sync_protocol::update::apply_client_update;
use tokio::sync::{Mutex, oneshot};
use yrs::{Doc, ReadTxn, Transact, TransactionMut};

use crate::room::{ApplyRequest, RoomCommand};
use crate::room_name::RoomName;
use crate::room_registry::Rooms;

pub struct RoomWriter {
    rooms: Arc<Rooms>,
    room: RoomName,
    replica: Mutex<Doc>,
}

impl RoomWriter {
    pub async fn open(rooms: Arc<Rooms>, room: RoomName) -> Result<Self, DocumentError> {
        let replica = load(&rooms, &room).await?;
        Ok(Self { rooms, room, replica: Mutex::new(replica) })
    }

    /// Reads the replica (the room's document as of the last write or load).
    pub async fn read<R>(&self, read: impl FnOnce(&yrs::Transaction<'_>) -> R) -> R {
        let replica = self.replica.lock().await;
        let txn = replica.transact();
        read(&txn)
    }

    /// Makes `edit` on the document and waits until the room stored it. `edit` may run twice
    /// (once more after a reload), so it must only describe the desired state.
    pub async fn write<F>(&self, edit: F) -> Result<(), DocumentError>
    where
        F: Fn(&mut TransactionMut) -> Result<(), SchemaError>,
    {
        match self.try_write(&edit).await {
            Ok(()) => Ok(()),
            Err(DocumentError::Schema(error)) => Err(DocumentError::Schema(error)),
            Err(first) => {
                tracing::debug!(room = %self.room, error = %first, "run write lost; reloading the replica");
                *self.replica.lock().await = load(&self.rooms, &self.room).await?;
                self.try_write(&edit).await
            }
        }
    }

    async fn try_write<F>(&self, edit: &F) -> Result<(), DocumentError>
    where
        F: Fn(&mut TransactionMut) -> Result<(), SchemaError>,
    {
        let answer = {
            // Held until the update is queued at the room, so updates reach it in the order
            // they were made (a later one depends on the earlier).
            let replica = self.replica.lock().await;
            let update = {
                let before = replica.transact().state_vector();
                let mut txn = replica.transact_mut();
                edit(&mut txn)?;
                drop(txn);
                replica.transact().encode_state_as_update_v1(&before)
            };
            if is_empty_update(&update) {
                return Ok(());
            }
            let handle = self.rooms.get_or_open(&self.room).map_err(DocumentError::unavailable)?;
            let (done, answer) = oneshot::channel();
            handle
                // The executor itself: it alone writes `results` and `runs`.
                .send(RoomCommand::Apply(Box::new(ApplyRequest {
                    update,
                    rules: dojo_sync_protocol::update::WriteRules::ANYTHING,
                    done,
                })))
                .await
                .map_err(|_| room_closed())?;
            answer
        };
        answer.await.map_err(|_| room_closed())?.map_err(|error| DocumentError::Refused(error.into()))?;
        Ok(())
    }
}

/// The room's actor is gone (the room unloaded or stopped): nothing failed that could say more.
fn room_closed() -> DocumentError {
    DocumentError::unavailable("the room closed")
}

async fn load(rooms: &Rooms, room: &RoomName) -> Result<Doc, DocumentError> {
    let handle = rooms.get_or_open(room).map_err(DocumentError::unavailable)?;
    let (done, answer) = oneshot::channel();
    // A quarantined room will not load however often it is tried: that is a bad document,
    // which fails the run at once, not an outage to wait out.
    let closed = || match rooms.quarantined(room) {
        Some(reason) => DocumentError::BadDocument(format!("the room is quarantined: {reason}").into()),
        None => room_closed(),
    };
    handle.send(RoomCommand::State { done }).await.map_err(|_| closed())?;
    let state = answer.await.map_err(|_| closed())?;
    let doc = Doc::new();
    apply_client_update(&doc, &state).map_err(|error| DocumentError::BadDocument(error.into()))?;
    Ok(doc)
}

/// An update with no structs and no deletions (nothing changed) encodes as two zero counts:
/// not worth a store write.
fn is_empty_update(update: &[u8]) -> bool {
    update == [0, 0]
}

#[async_trait::async_trait]
impl dojo_executor::worker::RoomDocument for RoomWriter {
    async fn write(&self, edit: dojo_executor::worker::Edit<'_>) -> Result<(), DocumentError> {
        RoomWriter::write(self, edit).await
    }
}

/// The rooms of this process, for runs it executes itself: writes go straight to the room
/// actor, which stores them before broadcasting.
pub struct LocalRooms {
    pub rooms: Arc<Rooms>,
}

#[async_trait::async_trait]
impl dojo_executor::worker::RoomDocuments for LocalRooms {
    async fn open(&self, room: &str) -> Result<Arc<dyn dojo_executor::worker::RoomDocument>, DocumentError> {
        let room = RoomName::parse(room).map_err(DocumentError::unavailable)?;
        // Whatever else kept the room from opening, the run waits it out (wrapped, so its
        // message reads as before: "the room is not available: " and the error's own).
        let writer = RoomWriter::open(self.rooms.clone(), room).await.map_err(|error| match error {
            DocumentError::BadDocument(reason) => DocumentError::BadDocument(reason),
            other => DocumentError::unavailable(other),
        })?;
        Ok(Arc::new(writer))
    }
}
