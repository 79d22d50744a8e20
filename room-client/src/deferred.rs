//! Updates a client received but has not applied yet ([`crate::Applying::Deferred`]), and
//! applying them.

use std::sync::{Arc, Mutex, MutexGuard};

use yrs::updates::decoder::Decode;
use yrs::{Doc, Transact, Update};

/// Most bytes of updates a deferring client keeps before it applies them anyway.
pub const MAX_DEFERRED_BYTES: usize = 4 * 1024 * 1024;

/// A client's deferred updates, taken out to be applied ([`crate::SyncClient::take_deferred`]).
pub struct CatchUp {
    pub(crate) doc: Doc,
    pub(crate) updates: Vec<Vec<u8>>,
}

impl CatchUp {
    /// Applies them (blocking: the document's lock is held meanwhile). Updates that do not apply
    /// are logged: the server sent something invalid.
    pub fn apply(self) {
        let failed = apply_all(&self.doc, self.updates);
        if failed > 0 {
            tracing::warn!(failed, "received updates that do not apply");
        }
    }
}

/// Updates received but not applied yet ([`crate::Applying::Deferred`]).
#[derive(Debug, Default)]
pub(crate) struct Deferred {
    pub(crate) updates: Vec<Vec<u8>>,
    pub(crate) bytes: usize,
}

pub(crate) type SharedDeferred = Arc<Mutex<Deferred>>;

pub(crate) fn lock_deferred(deferred: &SharedDeferred) -> MutexGuard<'_, Deferred> {
    deferred.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Applies `updates` to `doc` in one transaction; returns how many did not apply.
pub(crate) fn apply_all(doc: &Doc, updates: Vec<Vec<u8>>) -> u64 {
    if updates.is_empty() {
        return 0;
    }
    let mut failed = 0;
    let mut txn = doc.transact_mut();
    for update in updates {
        let applied =
            Update::decode_v1(&update).map_err(|_| ()).and_then(|u| txn.apply_update(u).map_err(|_| ()));
        failed += u64::from(applied.is_err());
    }
    failed
}

pub(crate) fn apply_one(doc: &Doc, update: &[u8]) -> Result<(), ()> {
    let update = Update::decode_v1(update).map_err(|_| ())?;
    doc.transact_mut().apply_update(update).map_err(|_| ())
}
