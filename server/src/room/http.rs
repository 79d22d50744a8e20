//! The room's HTTP commands: apply an update, restore a version, read the whole state. Each is
//! answered only once what it wrote (or what it returns) is stored.

use std::panic::{AssertUnwindSafe, catch_unwind};

use dojo_sync_protocol::update::{WriteRules, apply_client_update};
use yrs::{Doc, ReadTxn, Transact};

use super::core::{AfterStore, RoomCore};
use super::effects::{Answer, RequestId};
use super::handle::{ApplyError, RestoreError};

impl RoomCore {
    pub(super) fn state(&mut self, id: RequestId) {
        // What the document integrated, all stored once the answer goes (held-back updates are
        // not stored, see `core.rs`).
        let state = self.doc.transact().encode_diff_v1(&yrs::StateVector::default());
        self.after_durable(AfterStore::State(id, state));
    }

    pub(super) fn apply_http_update(&mut self, id: RequestId, update: &[u8], rules: WriteRules<'static>) {
        let pending_before = dojo_sync_protocol::update::pending_bytes(&self.doc);
        match self.apply_within_limits(update, rules) {
            Ok(Some(changes)) => self.journal.record(changes),
            Ok(None) => {
                // Nothing new: either already known, or held back for missing dependencies,
                // which an HTTP caller cannot supply later.
                if dojo_sync_protocol::update::pending_bytes(&self.doc) > pending_before {
                    self.answer(id, Answer::Applied(Err(ApplyError::MissingDependencies)));
                    self.reload = true;
                    return;
                }
            }
            Err(dojo_sync_protocol::ApplyError::DocumentTooLarge) => {
                let limit = self.size.limit();
                self.answer(id, Answer::Applied(Err(ApplyError::TooLarge { limit })));
                return;
            }
            Err(error) => {
                self.answer(id, Answer::Applied(Err(ApplyError::Invalid(error.to_string()))));
                return;
            }
        }
        self.after_durable(AfterStore::Applied(id));
    }

    /// Makes the canvas equal to `snapshot`'s, as one ordinary change.
    pub(super) fn restore(&mut self, id: RequestId, snapshot: &[u8]) {
        let old = Doc::new();
        if let Err(error) = apply_client_update(&old, snapshot) {
            self.answer(id, Answer::Restored(Err(RestoreError::BadVersion(error.to_string()))));
            return;
        }
        let change = catch_unwind(AssertUnwindSafe(|| {
            let mut txn = self.doc.transact_mut();
            dojo_sync_protocol::canvas::replace_canvas(&mut txn, &old.transact());
            txn.encode_update_v1()
        }));
        match change {
            Ok(change) if change != [0, 0] => {
                self.size.grew(dojo_sync_protocol::update::growth_bound(&change));
                self.journal.record(change);
            }
            Ok(_) => {}
            Err(_) => {
                let error = RestoreError::BadVersion("restoring panicked".into());
                self.answer(id, Answer::Restored(Err(error)));
                return;
            }
        }
        self.after_durable(AfterStore::Restored(id));
    }
}
