//! Reading a room's document from the store: the first load, and catch-up reads for rooms in a
//! cluster. The actor runs these; the core gets their outcomes as typed values.

use dojo_store::{DocumentStore, StoreError, StoredDocument};
use yrs::{Doc, ReadTxn, Transact};

use crate::compaction::{self, RebuildError};
use crate::room_name::RoomName;

/// A document read from the store and applied, off the async threads.
pub(crate) struct Loaded {
    pub doc: Doc,
    /// Its exact size, encoded as one update.
    pub document_bytes: usize,
    pub log_rows: usize,
    pub log_bytes: usize,
    /// The highest store sequence the document contains.
    pub last_seq: i64,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum LoadError {
    /// The database may come back: clients retry.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// What is stored will not get better by itself: refused until repaired.
    #[error("the stored document does not apply: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Unsafe(RebuildError),
    #[error("rebuilding the stored document failed")]
    Task(#[source] tokio::task::JoinError),
}

pub(crate) async fn load(store: &dyn DocumentStore, room: &RoomName) -> Result<Loaded, LoadError> {
    let stored = store.load(room.as_str()).await?;
    let log_rows = stored.updates.len();
    let log_bytes = stored.updates.iter().map(|u| u.data.len()).sum();
    let last_seq = stored.last_seq();
    let (doc, document_bytes) = tokio::task::spawn_blocking(move || {
        compaction::rebuild(&stored).map(|doc| {
            let bytes = doc.transact().encode_state_as_update_v1(&yrs::StateVector::default()).len();
            (doc, bytes)
        })
    })
    .await
    .map_err(LoadError::Task)?
    .map_err(|error| match error {
        RebuildError::Corrupt(why) => LoadError::Corrupt(why),
        unsafe_part => LoadError::Unsafe(unsafe_part),
    })?;
    Ok(Loaded { doc, document_bytes, log_rows, log_bytes, last_seq })
}

/// Why a catch-up read failed. The next gap, resubscribe or periodic check tries again.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CatchUpError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the catch-up task failed")]
    Task(#[from] tokio::task::JoinError),
}

/// Reads the store: `always` loads the document; otherwise only when the store holds sequences
/// past `seen` (one cheap query).
pub(crate) async fn catch_up(
    store: &dyn DocumentStore,
    room: &RoomName,
    always: bool,
    seen: i64,
) -> Result<CatchUp, StoreError> {
    if !always && store.append(room.as_str(), &[]).await? <= seen {
        return Ok(CatchUp::UpToDate);
    }
    store.load(room.as_str()).await.map(CatchUp::Read)
}

/// What a catch-up read found.
pub(crate) enum CatchUp {
    /// The store holds nothing the room has not seen (one cheap query said so).
    UpToDate,
    /// The stored document, to merge.
    Read(StoredDocument),
}
