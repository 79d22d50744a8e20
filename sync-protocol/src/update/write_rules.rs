//! What a writer may change in a document besides the nesting limits: the roots only the
//! executor writes. [`super::nesting::check`] enforces these while it works out where each item
//! of an update lands.

/// What a writer may change besides nesting limits.
#[derive(Debug, Clone, Copy, Default)]
pub struct WriteRules<'a> {
    /// Root types whose content (nested content included) this writer may neither insert nor
    /// delete: `results` and `runs` for everyone but the executor.
    pub protected_roots: &'a [&'a str],
    /// Of those, the roots whose content it may not delete either. (The editor deletes a
    /// node's `results` entry with the node: deleting cannot forge a result, inserting can.)
    pub undeletable_roots: &'a [&'a str],
}

impl WriteRules<'static> {
    /// Anything within the nesting limits.
    pub const ANYTHING: WriteRules<'static> = WriteRules { protected_roots: &[], undeletable_roots: &[] };
    /// Everything but the executor's roots (`results`, `runs`).
    pub const NOT_EXECUTOR_MAPS: WriteRules<'static> = WriteRules {
        protected_roots: &[crate::canvas::RESULTS, crate::canvas::RUNS],
        undeletable_roots: &[crate::canvas::RUNS],
    };
}

/// What a writer may not do under a root: [`NO_INSERT`], [`NO_DELETE`].
pub(crate) type Guard = u8;
pub(crate) const NO_INSERT: Guard = 1;
pub(crate) const NO_DELETE: Guard = 2;

impl WriteRules<'_> {
    /// What this writer may not do under the root named `root`.
    pub(crate) fn guard(&self, root: &str) -> Guard {
        let mut guard = 0;
        if self.protected_roots.contains(&root) {
            guard |= NO_INSERT;
        }
        if self.undeletable_roots.contains(&root) {
            guard |= NO_DELETE;
        }
        guard
    }
}

#[cfg(test)]
mod tests {
    use yrs::{Doc, Map, MapPrelim, ReadTxn, StateVector, Transact, WriteTxn};

    use super::WriteRules;
    use crate::update::NestingError;
    use crate::update::{ApplyError, apply_client_update, apply_client_update_within};

    const EXECUTOR_ONLY: ApplyError = ApplyError::Nesting(NestingError::ExecutorOnly);

    fn as_client(doc: &Doc, update: &[u8]) -> Result<Option<Vec<u8>>, ApplyError> {
        apply_client_update_within(doc, update, WriteRules::NOT_EXECUTOR_MAPS, |_| true)
    }

    /// A server document with a node and an executor-written result, and a client replica.
    fn room() -> (Doc, Doc) {
        let executor = Doc::new();
        {
            let mut txn = executor.transact_mut();
            let nodes = txn.get_or_insert_map("nodes");
            nodes.insert(&mut txn, "n1", MapPrelim::from([("type", "upscale")]));
            let results = txn.get_or_insert_map("results");
            results.insert(&mut txn, "n1", MapPrelim::from([("status", "running")]));
        }
        let state = executor.transact().encode_state_as_update_v1(&StateVector::default());
        let server = Doc::new();
        apply_client_update(&server, &state).expect("the executor writes");
        let client = Doc::new();
        apply_client_update(&client, &state).expect("the client syncs");
        (server, client)
    }

    fn edit(client: &Doc, f: impl FnOnce(&mut yrs::TransactionMut)) -> Vec<u8> {
        let mut txn = client.transact_mut();
        f(&mut txn);
        txn.encode_update_v1()
    }

    #[test]
    fn clients_may_not_insert_into_results_or_runs_at_any_depth() {
        let (server, client) = room();
        let forged = [
            edit(&client, |txn| {
                txn.get_or_insert_map("results").insert(txn, "n2", "succeeded");
            }),
            edit(&client, |txn| {
                txn.get_or_insert_map("runs").insert(txn, "run_x", MapPrelim::default());
            }),
        ];
        for update in &forged {
            assert_eq!(as_client(&server, update), Err(EXECUTOR_ONLY));
        }
        // Inside an entry the executor made (its parent is in the document), and over it.
        let (server, client) = room();
        let inside = edit(&client, |txn| {
            let results = txn.get_or_insert_map("results");
            let Some(yrs::Out::YMap(entry)) = results.get(txn, "n1") else { panic!("entry") };
            entry.insert(txn, "status", "succeeded");
        });
        assert_eq!(as_client(&server, &inside), Err(EXECUTOR_ONLY));
        let (server, client) = room();
        let over = edit(&client, |txn| {
            txn.get_or_insert_map("results").insert(txn, "n1", "forged");
        });
        assert_eq!(as_client(&server, &over), Err(EXECUTOR_ONLY));
        // The executor itself may; and clients may edit the canvas.
        assert!(apply_client_update(&server, &over).expect("the executor may").is_some());
        let (server, client) = room();
        let canvas = edit(&client, |txn| {
            txn.get_or_insert_map("nodes").insert(txn, "n2", MapPrelim::from([("type", "x")]));
        });
        assert!(as_client(&server, &canvas).expect("nodes are anyone's").is_some());
    }

    #[test]
    fn clients_may_not_delete_from_runs_but_may_drop_results_and_repeat_deletions() {
        let (server, client) = room();
        let delete_run = {
            // A run summary the executor wrote, then a client deleting it.
            let summary = edit(&client, |txn| {
                txn.get_or_insert_map("runs").insert(txn, "run_1", "done");
            });
            apply_client_update(&server, &summary).expect("the executor writes it");
            edit(&client, |txn| {
                txn.get_or_insert_map("runs").remove(txn, "run_1");
            })
        };
        assert_eq!(as_client(&server, &delete_run), Err(EXECUTOR_ONLY));
        // A result goes with its node, as the editor deletes them: allowed (it cannot
        // forge a result; inserting could).
        let delete = edit(&client, |txn| {
            txn.get_or_insert_map("results").remove(txn, "n1");
        });
        assert!(as_client(&server, &delete).expect("deleting a result entry").is_some());
        let delete_node = edit(&client, |txn| {
            txn.get_or_insert_map("nodes").remove(txn, "n1");
        });
        assert!(as_client(&server, &delete_node).expect("deleting a node").is_some());
        // Deleting what the document does not have cannot be checked: refused.
        let (elsewhere, _) = room();
        let err = as_client(&elsewhere, &delete_node).unwrap_err();
        assert_eq!(err, ApplyError::Nesting(NestingError::Unverifiable));
        // The executor deletes a result; a client that saw it sends its whole delete set
        // back (as every sync step 2 does): that is no change, and fine.
        let (server, client) = room();
        let by_executor = edit(&client, |txn| {
            txn.get_or_insert_map("results").remove(txn, "n1");
        });
        apply_client_update(&server, &by_executor).expect("the executor may");
        let step2 = client.transact().encode_state_as_update_v1(&server.transact().state_vector());
        assert!(as_client(&server, &step2).is_ok());
    }
}
