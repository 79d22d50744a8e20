//! Batches: one request runs a room's graph over a list of parameter sets (a seed sweep, a
//! prompt list, a grid of values). Each member is an ordinary run of a copy of the graph with
//! its set applied, so holds, queue order, plans, limits and resuming after a worker died apply
//! to it unchanged; the members are accepted together, all or nothing (`RunStore::create_batch`).
//! See docs/batches.md.

use std::collections::BTreeMap;

use dojo_auth::Permission;
use dojo_ids::{BatchId, NodeId};
use dojo_records::batches::{MAX_BATCH_PARAMS, MAX_BATCH_RUNS};
use dojo_records::{AccountError, Batch, BatchMember, Run, RunStatus};
use dojo_sync_protocol::canvas::{CanvasGraph, ensure_gallery};
use serde::Deserialize;
use serde_json::Value;

use super::access::{self, RoomAccess};
use super::runs::{MAX_TARGETS, RunError, RunService, SubmitError};
use super::signed_in;
use crate::caller::Caller;
use crate::room_name::RoomName;
use crate::state::AppState;

/// Most sweeps one grid combines.
pub const MAX_SWEEPS: usize = 4;
/// Largest request, counted as the JSON of its expanded parameter sets.
pub const MAX_BATCH_JSON: usize = 256 * 1024;
/// Node ids and parameter names in a set: longer ones name nothing in a graph.
const MAX_NAME: usize = 128;

/// node id → parameter → value.
pub type ParamSet = BTreeMap<String, BTreeMap<String, Value>>;

/// One parameter of one node over a list of values.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Sweep {
    pub node: String,
    pub param: String,
    /// The values, in order (1 to 100).
    pub values: Vec<Value>,
}

/// What to run: the members' parameter sets, and which part of the graph each runs.
#[derive(Debug, Clone, Default)]
pub struct BatchRequest {
    pub targets: Option<Vec<String>>,
    pub from: Option<String>,
    pub sets: Vec<ParamSet>,
    /// The caller's `Idempotency-Key`: the same key returns the batch it made.
    pub idempotency_key: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    #[error(transparent)]
    Submit(#[from] SubmitError),
    /// More members (or a larger request) than a batch may have.
    #[error("{0}")]
    TooLarge(String),
    /// A set that names no node or parameter, sets and sweeps together, no set at all.
    #[error("{0}")]
    Invalid(String),
    /// A member's graph fails validation (a value out of range for its parameter…).
    #[error("parameter set {index}: {errors}")]
    Member { index: usize, errors: dojo_executor::ValidationErrors },
}

impl From<AccountError> for BatchError {
    fn from(error: AccountError) -> Self {
        BatchError::Submit(error.into())
    }
}

/// The sets of a request: the `sets` as given, or the grid of the `sweeps` (every combination,
/// the last sweep varying fastest). Exactly one of the two.
pub fn expand(sets: Option<Vec<ParamSet>>, sweeps: Option<Vec<Sweep>>) -> Result<Vec<ParamSet>, BatchError> {
    let sets = match (sets, sweeps) {
        (Some(_), Some(_)) => return Err(BatchError::Invalid("give `sets` or `sweeps`, not both".into())),
        (None, None) => return Err(BatchError::Invalid("a batch needs `sets` or `sweeps`".into())),
        (Some(sets), None) => {
            if sets.len() > MAX_BATCH_RUNS {
                return Err(too_many(sets.len()));
            }
            sets
        }
        (None, Some(sweeps)) => grid(&sweeps)?,
    };
    if sets.is_empty() {
        return Err(BatchError::Invalid("a batch needs at least one parameter set".into()));
    }
    let size = serde_json::to_vec(&sets).map(|json| json.len()).unwrap_or(usize::MAX);
    if size > MAX_BATCH_JSON {
        return Err(BatchError::TooLarge(format!(
            "the parameter sets take {size} bytes of JSON; a batch takes at most {MAX_BATCH_JSON}"
        )));
    }
    for (index, set) in sets.iter().enumerate() {
        let names_ok = set.iter().all(|(node, params)| {
            node.len() <= MAX_NAME && params.keys().all(|param| param.len() <= MAX_NAME)
        });
        if !names_ok {
            return Err(BatchError::Invalid(format!(
                "parameter set {index}: node ids and parameter names are at most {MAX_NAME} bytes"
            )));
        }
        if serde_json::to_vec(set).map(|json| json.len()).unwrap_or(usize::MAX) > MAX_BATCH_PARAMS {
            return Err(BatchError::TooLarge(format!(
                "parameter set {index} is larger than {MAX_BATCH_PARAMS} bytes of JSON"
            )));
        }
    }
    Ok(sets)
}

fn too_many(count: usize) -> BatchError {
    BatchError::TooLarge(format!("{count} parameter sets; a batch has at most {MAX_BATCH_RUNS}"))
}

fn grid(sweeps: &[Sweep]) -> Result<Vec<ParamSet>, BatchError> {
    if sweeps.is_empty() || sweeps.len() > MAX_SWEEPS {
        return Err(BatchError::Invalid(format!("a grid combines 1 to {MAX_SWEEPS} sweeps")));
    }
    let mut count: usize = 1;
    for sweep in sweeps {
        if sweep.values.is_empty() {
            return Err(BatchError::Invalid(format!(
                "the sweep of {}.{} has no values",
                cut(&sweep.node),
                cut(&sweep.param)
            )));
        }
        // Checked before building anything: a grid of large sweeps must not be materialised.
        count = count.saturating_mul(sweep.values.len());
        if count > MAX_BATCH_RUNS {
            return Err(BatchError::TooLarge(format!(
                "the sweeps combine into more than {MAX_BATCH_RUNS} parameter sets; a batch has at most {MAX_BATCH_RUNS}"
            )));
        }
    }
    let mut sets = vec![ParamSet::new()];
    for sweep in sweeps {
        sets = sets
            .into_iter()
            .flat_map(|set| {
                sweep.values.iter().map(move |value| {
                    let mut set = set.clone();
                    set.entry(sweep.node.clone()).or_default().insert(sweep.param.clone(), value.clone());
                    set
                })
            })
            .collect();
    }
    Ok(sets)
}

fn cut(name: &str) -> String {
    name.chars().take(64).collect()
}

/// A batch with its member runs (in batch order).
pub struct BatchView {
    pub batch: Batch,
    pub runs: Vec<Run>,
}

impl BatchView {
    /// How many members are in `status`.
    pub fn count(&self, status: RunStatus) -> usize {
        self.runs.iter().filter(|run| run.status == status).count()
    }

    /// `queued` while no member started, `running` while any is active, then `succeeded` when
    /// every member did, `failed` when any failed, else `cancelled`.
    pub fn status(&self) -> RunStatus {
        let has = |status: RunStatus| self.runs.iter().any(|run| run.status == status);
        if self.runs.iter().all(|run| run.status == RunStatus::Queued) && !self.runs.is_empty() {
            RunStatus::Queued
        } else if has(RunStatus::Queued) || has(RunStatus::Running) {
            RunStatus::Running
        } else if self.runs.iter().all(|run| run.status == RunStatus::Succeeded) {
            RunStatus::Succeeded
        } else if has(RunStatus::Failed) {
            RunStatus::Failed
        } else {
            RunStatus::Cancelled
        }
    }
}

pub struct BatchService<'a> {
    state: &'a AppState,
}

impl<'a> BatchService<'a> {
    pub fn new(state: &'a AppState) -> Self {
        Self { state }
    }

    /// Validates every member (its set applied to a copy of the room's graph), then accepts them
    /// all in one transaction: every hold taken and every run queued, or nothing.
    pub async fn submit(
        &self,
        caller: &Caller,
        access: &RoomAccess,
        request: BatchRequest,
    ) -> Result<BatchView, BatchError> {
        access.require(Permission::Write).map_err(SubmitError::from)?;
        let user = signed_in(caller).map_err(SubmitError::from)?;
        let targets = request.targets.filter(|t| !t.is_empty());
        if targets.as_ref().is_some_and(|t| t.len() > MAX_TARGETS) {
            return Err(SubmitError::TooManyTargets.into());
        }
        if targets.is_some() && request.from.is_some() {
            return Err(SubmitError::FromWithTargets.into());
        }
        if request.sets.is_empty() {
            return Err(BatchError::Invalid("a batch needs at least one parameter set".into()));
        }
        if request.sets.len() > MAX_BATCH_RUNS {
            return Err(too_many(request.sets.len()));
        }
        let runs = RunService::new(self.state);
        let opened = runs.open_graph(caller, access).await?;
        let targets = match &request.from {
            Some(from) => Some(super::runs::run_from(access.room(), &opened.graph, from)?),
            None => targets,
        };
        let mut members = Vec::with_capacity(request.sets.len());
        let mut planned: Vec<Vec<NodeId>> = Vec::with_capacity(request.sets.len());
        for (index, set) in request.sets.iter().enumerate() {
            let graph = self.apply(&opened.graph, set, index)?;
            let (run, node_ids) = match runs.new_run(&opened, &graph, targets.as_deref(), &user.id).await {
                Err(SubmitError::InvalidGraph(errors)) => return Err(BatchError::Member { index, errors }),
                other => other?,
            };
            // A member waits behind the ones before it: its holds must outlive their runs too,
            // or the expiry sweeper would fail a member that was only waiting its turn. So the
            // i-th member's holds last i + 1 times as long as a lone run's.
            let now = crate::execution::now_millis();
            let horizon = run.hold_expires_at.saturating_sub(now).max(0);
            let turns = i64::try_from(index).unwrap_or(i64::MAX).saturating_add(1);
            let run = dojo_records::NewRun {
                hold_expires_at: now.saturating_add(horizon.saturating_mul(turns)),
                ..run
            };
            let params = serde_json::to_string(set).unwrap_or_else(|_| "{}".into());
            members.push(BatchMember { run, params });
            planned.push(node_ids);
        }
        // Every planned node's gallery exists before any member can start (see ensure_gallery).
        let nodes: std::collections::BTreeSet<&str> = planned.iter().flatten().map(NodeId::as_str).collect();
        if let Err(error) = opened
            .writer
            .write(|txn| {
                for node in &nodes {
                    ensure_gallery(txn, node);
                }
                Ok(())
            })
            .await
        {
            tracing::warn!(room = %opened.room, %error, "could not prepare the node galleries");
        }
        let executor = self.state.executor();
        let batch = executor
            .runs()
            .create_batch(dojo_records::NewBatch {
                id: BatchId::generate(),
                room: opened.room.as_str().to_owned(),
                user_id: user.id.clone(),
                team_id: opened.team.clone(),
                members,
                idempotency_key: request.idempotency_key,
            })
            .await?;
        let batch = match batch {
            dojo_records::BatchSubmission::Created(batch) => batch,
            // A retry: the batch as it stands, announced when it was made.
            dojo_records::BatchSubmission::Existing(batch) => {
                let runs = executor.runs().batch_runs(&batch.id).await?;
                return Ok(BatchView { batch, runs });
            }
        };
        let members = executor.runs().batch_runs(&batch.id).await?;
        // The nodes show queued once (for the first member: they are the same nodes), and
        // every member gets its summary.
        for (n, (run, node_ids)) in members.iter().zip(&planned).enumerate() {
            if n == 0 {
                runs.announce(&opened.writer, run, node_ids).await;
            } else {
                crate::execution::write_summary(&opened.writer, run, node_ids).await;
            }
        }
        executor.wake();
        tracing::info!(batch = %batch.id, room = %opened.room, size = batch.size, estimate = batch.estimate, "batch accepted");
        Ok(BatchView { batch, runs: members })
    }

    /// A copy of `graph` with `set` applied; every node and parameter it names must exist (the
    /// parameter in the node type's catalog entry). Values are checked by validation after.
    fn apply(&self, graph: &CanvasGraph, set: &ParamSet, index: usize) -> Result<CanvasGraph, BatchError> {
        let catalog = self.state.executor().catalog();
        let mut graph = graph.clone();
        for (node_id, params) in set {
            let Some(node) = graph.nodes.iter_mut().find(|n| &n.id == node_id) else {
                return Err(BatchError::Invalid(format!(
                    "parameter set {index}: `{}` is not a node id in this room",
                    cut(node_id)
                )));
            };
            let entry = catalog.get(&node.node_type);
            for (param, value) in params {
                if !entry.is_some_and(|entry| entry.params.iter().any(|p| &p.name == param)) {
                    return Err(BatchError::Invalid(format!(
                        "parameter set {index}: `{}` is not a parameter of node `{}` ({})",
                        cut(param),
                        cut(node_id),
                        cut(&node.node_type)
                    )));
                }
                node.data.insert(param.clone(), value.clone());
            }
        }
        Ok(graph)
    }

    /// The batch, if the caller may do what `needed` allows in its room. Like a run, a batch is
    /// as visible as its room: a stranger learns nothing, not even that it exists.
    pub async fn visible(
        &self,
        caller: &Caller,
        id: &BatchId,
        needed: Permission,
    ) -> Result<Batch, RunError> {
        let not_found = || RunError::NotFound(id.to_string());
        if id.as_str().len() > 64 {
            return Err(not_found());
        }
        let batch = self.state.executor().runs().batch(id).await?.ok_or_else(not_found)?;
        let room = RoomName::parse(&batch.room).map_err(|_| not_found())?;
        let permission = access::visible_permission(self.state, caller, &room)
            .await
            .map_err(RunError::Auth)?
            .ok_or_else(not_found)?;
        if permission < needed {
            return Err(RunError::Forbidden(needed));
        }
        Ok(batch)
    }

    pub async fn get(&self, caller: &Caller, id: &BatchId) -> Result<BatchView, RunError> {
        let batch = self.visible(caller, id, Permission::Read).await?;
        let runs = self.state.executor().runs().batch_runs(&batch.id).await?;
        Ok(BatchView { batch, runs })
    }

    /// Cancels every member still queued or running (their holds are released as each run's
    /// cancel releases them); members already final stay as they are.
    pub async fn cancel(&self, caller: &Caller, id: &BatchId) -> Result<BatchView, RunError> {
        let batch = self.visible(caller, id, Permission::Write).await?;
        let executor = self.state.executor();
        let runs = RunService::new(self.state);
        for member in executor.runs().batch_runs(&batch.id).await? {
            if !member.status.is_final() {
                runs.cancel(caller, &member.id).await?;
            }
        }
        let members = executor.runs().batch_runs(&batch.id).await?;
        Ok(BatchView { batch, runs: members })
    }

    /// The room's newest batches, at most `limit`, each with its members.
    pub async fn list(&self, access: &RoomAccess, limit: u32) -> Result<Vec<BatchView>, AccountError> {
        let store = self.state.executor().runs();
        let mut views = Vec::new();
        for batch in store.list_batches(access.room().as_str(), limit).await? {
            let runs = store.batch_runs(&batch.id).await?;
            views.push(BatchView { batch, runs });
        }
        Ok(views)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn sweep(node: &str, param: &str, values: Vec<Value>) -> Sweep {
        Sweep { node: node.into(), param: param.into(), values }
    }

    #[test]
    fn a_grid_is_every_combination_with_the_last_sweep_fastest() {
        let sets = expand(
            None,
            Some(vec![
                sweep("gen", "seed", vec![json!(1), json!(2)]),
                sweep("p", "text", vec![json!("a"), json!("b")]),
            ]),
        )
        .expect("a grid");
        assert_eq!(sets.len(), 4);
        assert_eq!(sets[0]["gen"]["seed"], json!(1));
        assert_eq!(sets[0]["p"]["text"], json!("a"));
        assert_eq!(sets[1]["p"]["text"], json!("b"));
        assert_eq!(sets[3]["gen"]["seed"], json!(2));
    }

    #[test]
    fn requests_over_the_bounds_are_refused_before_anything_is_built() {
        let many: Vec<Value> = (0..11).map(|i| json!(i)).collect();
        let grid = expand(None, Some(vec![sweep("a", "x", many.clone()), sweep("b", "y", many)]));
        assert!(matches!(grid, Err(BatchError::TooLarge(_))), "{grid:?}");
        let sets = expand(Some(vec![ParamSet::new(); 101]), None);
        assert!(matches!(sets, Err(BatchError::TooLarge(_))));
        assert!(matches!(expand(Some(vec![]), None), Err(BatchError::Invalid(_))));
        assert!(matches!(expand(None, None), Err(BatchError::Invalid(_))));
        assert!(matches!(expand(Some(vec![]), Some(vec![])), Err(BatchError::Invalid(_))));
        let big = ParamSet::from([("n".into(), BTreeMap::from([("p".into(), json!("x".repeat(20_000)))]))]);
        assert!(matches!(expand(Some(vec![big]), None), Err(BatchError::TooLarge(_))));
        let five = vec![sweep("a", "x", vec![json!(1)]); 5];
        assert!(matches!(expand(None, Some(five)), Err(BatchError::Invalid(_))));
    }
}
