//! Graph edits in JSON: a batch of operations (`dojo_sync_protocol::canvas::edits`) checked
//! against the room's graph and the catalog, written as one Yjs update through the room actor
//! (`documents::apply`: stored before the answer, seen live by everyone in the room), and kept
//! for a while so that it can be undone as one step. Compose builds its nodes as such a batch
//! and applies it here too.

use base64::Engine as _;
use dojo_auth::Permission;
use dojo_executor::edit_rules::CatalogRules;
use dojo_ids::EditId;
use dojo_sync_protocol::canvas::edits::{
    Conflict, Created, EditLimits, EditOp, EditRules, Inverse, OpError, Unchecked, apply_steps, plan,
};
use dojo_sync_protocol::canvas::{CanvasGraph, SchemaError, read_graph};
use yrs::updates::encoder::Encode;
use yrs::{Doc, ReadTxn, Transact};

use super::access::{AccessError, RoomAccess};
use super::documents::{self, DocumentError};
use crate::caller::Caller;
use crate::state::AppState;

#[derive(Debug, thiserror::Error)]
pub enum EditError {
    #[error(transparent)]
    Access(#[from] AccessError),
    /// Reading or writing the room's document failed (unavailable, too large, refused…).
    #[error(transparent)]
    Document(#[from] DocumentError),
    /// Some operations were refused; nothing was applied.
    #[error("the edits were refused: {} operation(s) are invalid; nothing was applied", .0.len())]
    Invalid(Vec<OpError>),
    /// What the edit touched changed since: undoing it would lose someone's work.
    #[error("the edit cannot be undone: {} of the things it touched changed since", .0.len())]
    Conflict(Vec<Conflict>),
    #[error("no edit {0} to undo in this room (undone already, too old, or made on another server)")]
    UnknownEdit(EditId),
    /// The room's graph does not follow the schema where it is read.
    #[error("the room's graph cannot be edited: {0}")]
    NotSchema(#[source] SchemaError),
    /// Planning did not finish (its task panicked; a bug, logged).
    #[error("{0}")]
    Interrupted(#[from] tokio::task::JoinError),
    /// The room's own state did not decode (a bug, logged).
    #[error("the room's own state does not apply: {0}")]
    Internal(#[source] dojo_sync_protocol::ApplyError),
}

/// An applied edit.
#[derive(Debug)]
pub struct Applied {
    /// Undo it with this id (absent when the edit was too large to keep).
    pub edit_id: Option<EditId>,
    pub created: Created,
    /// The document's state vector (Yjs v1) just after the edit, base64.
    pub state_vector: String,
}

/// Checks `ops` against the room's graph and the catalog and applies them as one change;
/// answers once it is stored. A refused batch changes nothing.
pub async fn apply(
    state: &AppState,
    caller: &Caller,
    access: &RoomAccess,
    ops: Vec<EditOp>,
) -> Result<Applied, EditError> {
    access.require(Permission::Write)?;
    let room = access.room();
    let _one_at_a_time = state.edits().lock(room).await;
    let snapshot = documents::state(state, caller, access).await?;
    let limits = limits(state);
    let app = state.clone();
    let prepared = tokio::task::spawn_blocking(move || {
        let rules = CatalogRules::new(app.executor().catalog());
        prepare(&snapshot, &ops, &rules, &limits)
    })
    .await??;
    commit(state, caller, access, prepared).await
}

/// Takes an edit back as one change: every entry it touched becomes what it was before. Refused
/// (with what changed) when any of them changed since. The undo is itself an edit, whose id
/// undoes the undo.
pub async fn undo(
    state: &AppState,
    caller: &Caller,
    access: &RoomAccess,
    edit: &EditId,
) -> Result<Applied, EditError> {
    access.require(Permission::Write)?;
    let room = access.room();
    let _one_at_a_time = state.edits().lock(room).await;
    let inverse = state.edits().get(room, edit).ok_or_else(|| EditError::UnknownEdit(edit.clone()))?;
    let snapshot = documents::state(state, caller, access).await?;
    let limits = EditLimits { max_ops: usize::MAX, ..limits(state) };
    let prepared = tokio::task::spawn_blocking(move || {
        let (doc, now) = load(&snapshot)?;
        let conflicts = inverse.conflicts(&now);
        if !conflicts.is_empty() {
            return Err(EditError::Conflict(conflicts));
        }
        // The graph may have changed elsewhere so that the inverse no longer fits (a wire it
        // restores now closes a cycle, an input it rewires is taken): that is a conflict too.
        make(doc, now, &inverse.ops(), &Unchecked, &limits).map_err(|error| match error {
            EditError::Invalid(errors) => EditError::Conflict(
                errors
                    .into_iter()
                    .map(|e| Conflict { kind: "graph", id: String::new(), message: e.message })
                    .collect(),
            ),
            other => other,
        })
    })
    .await??;
    let applied = commit(state, caller, access, prepared).await?;
    state.edits().take(edit);
    tracing::info!(room = %room, edit = %edit, "edit undone");
    Ok(applied)
}

/// The room's graph as it is stored now.
pub async fn graph(state: &AppState, caller: &Caller, access: &RoomAccess) -> Result<CanvasGraph, EditError> {
    let snapshot = documents::state(state, caller, access).await?;
    tokio::task::spawn_blocking(move || load(&snapshot).map(|(_, graph)| graph)).await?
}

/// The bounds the configuration sets.
pub fn limits(state: &AppState) -> EditLimits {
    EditLimits { max_ops: state.config().http.max_edit_ops, ..EditLimits::default() }
}

/// An edit made on a replica, not yet sent to the room.
struct Prepared {
    /// Empty when the batch changed nothing (setting values they already had).
    update: Vec<u8>,
    created: Created,
    inverse: Inverse,
    state_vector: Vec<u8>,
}

async fn commit(
    state: &AppState,
    caller: &Caller,
    access: &RoomAccess,
    prepared: Prepared,
) -> Result<Applied, EditError> {
    let Prepared { update, created, inverse, state_vector } = prepared;
    if !update.is_empty() {
        documents::apply(state, caller, access, update).await?;
    }
    let room = access.room();
    let id = EditId::generate();
    let kept = !inverse.is_empty() && state.edits().record(id.clone(), room.clone(), inverse);
    tracing::info!(room = %room, edit = %id, nodes = created.nodes.len(), edges = created.edges.len(), "graph edit applied");
    Ok(Applied {
        edit_id: kept.then_some(id),
        created,
        state_vector: base64::engine::general_purpose::STANDARD.encode(state_vector),
    })
}

/// Plans `ops` on the stored document and makes them on a replica of it (CPU work: run it off
/// the async threads).
fn prepare(
    snapshot: &[u8],
    ops: &[EditOp],
    rules: &dyn EditRules,
    limits: &EditLimits,
) -> Result<Prepared, EditError> {
    let (doc, before) = load(snapshot)?;
    make(doc, before, ops, rules, limits)
}

fn make(
    doc: Doc,
    before: CanvasGraph,
    ops: &[EditOp],
    rules: &dyn EditRules,
    limits: &EditLimits,
) -> Result<Prepared, EditError> {
    let planned = plan(&before, ops, rules, limits, &mut new_id).map_err(EditError::Invalid)?;
    let start = doc.transact().state_vector();
    {
        let mut txn = doc.transact_mut();
        apply_steps(&mut txn, &planned.steps).map_err(EditError::NotSchema)?;
    }
    let txn = doc.transact();
    let after = read_graph(&txn).map_err(EditError::NotSchema)?;
    let update = txn.encode_state_as_update_v1(&start);
    let state_vector = txn.state_vector().encode_v1();
    let inverse = Inverse::compute(&before, &after, &planned);
    // An update with no structs and no deletions encodes as two zero counts.
    let update = if update == [0, 0] { Vec::new() } else { update };
    Ok(Prepared { update, created: planned.created, inverse, state_vector })
}

fn load(snapshot: &[u8]) -> Result<(Doc, CanvasGraph), EditError> {
    let doc = Doc::new();
    // Every document the room holds passed these checks; this copy takes the same path.
    dojo_sync_protocol::update::apply_client_update(&doc, snapshot).map_err(EditError::Internal)?;
    let graph = read_graph(&doc.transact()).map_err(EditError::NotSchema)?;
    Ok((doc, graph))
}

/// A node (`n-…`) or edge (`e-…`) id, random like the editor's own.
fn new_id(prefix: &str) -> String {
    let bits = rand::random::<u64>() & 0xffff_ffff_ffff;
    format!("{prefix}-{bits:012x}")
}
