//! Runs of a room's graph: submit (validated, priced and held before anything is queued),
//! read, cancel, list. The live per-node states travel in the room's document (`results`,
//! `runs`); the run records are the authoritative record.

use dojo_auth::Permission;
use dojo_executor::worker::DocumentError;
use dojo_executor::{GraphLimits, ValidationErrors, validate_runnable};
use dojo_ids::{NodeId, RunId, TeamId};
use dojo_records::{AccountError, NewRun, NewRunNode, Run, RunNode, Submission};
use dojo_store::StoreError;
use dojo_sync_protocol::canvas::{
    CanvasGraph, NodeResult, NodeStatus, SchemaError, read_graph, write_node_result,
};
use serde_json::Value;

use super::access::{self, AccessError, RoomAccess};
use super::{SignInRequired, signed_in};
use crate::caller::{AuthError, Caller};
use crate::execution::room_writer::RoomWriter;
use crate::execution::{Executor, now_millis, write_summary};
use crate::room_name::RoomName;
use crate::room_registry::OpenRefused;
use crate::state::AppState;

/// Most targets one submission may name.
pub const MAX_TARGETS: usize = 256;
/// Longer ids name no run: refused before the database is asked.
const MAX_RUN_ID: usize = 64;
/// Unknown targets named in a refusal, and how much of each; the rest are counted.
const MAX_TARGETS_NAMED: usize = 5;
const MAX_TARGET_ECHO: usize = 64;

/// What to run.
#[derive(Debug, Default, Clone)]
pub struct SubmitRequest {
    /// Node ids to run, with what they depend on. `None` or empty: the whole graph.
    pub targets: Option<Vec<String>>,
    /// The same key returns the same run, holding nothing twice.
    pub idempotency_key: Option<String>,
    /// Run this node and everything downstream of it (what it feeds, directly or not), with
    /// what they need: unchanged upstream nodes come from the cache. Excludes `targets`.
    pub from: Option<String>,
}

/// A room opened for a submission: its graph as read, the writer that shows the run's nodes,
/// and the team whose workflow it is.
pub struct OpenedGraph {
    pub room: RoomName,
    pub writer: RoomWriter,
    pub graph: CanvasGraph,
    pub team: Option<TeamId>,
}

#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error(transparent)]
    Access(#[from] AccessError),
    #[error(transparent)]
    SignIn(#[from] SignInRequired),
    #[error("at most {MAX_TARGETS} targets")]
    TooManyTargets,
    #[error("`from` and `targets` exclude each other: `from` runs a node and what depends on it")]
    FromWithTargets,
    /// Nobody created the room: no workflow has it, nothing was ever stored in it, and it is
    /// not open. Running it would open an empty room and report a run of nothing.
    #[error("no room {:?}: nobody created it (create a workflow with this room, or add nodes to it first)", .0.as_str())]
    RoomNotFound(RoomName),
    /// The room's graph has no nodes: there is nothing to run.
    #[error("room {:?} has no nodes: there is nothing to run; add nodes to the canvas first", .0.as_str())]
    EmptyGraph(RoomName),
    /// Targets that are not node ids of the room's graph; the message says which and why.
    #[error("{message}")]
    UnknownTarget { targets: Vec<String>, message: String },
    #[error("storage unavailable")]
    Store(#[source] StoreError),
    #[error(transparent)]
    Open(#[from] OpenRefused),
    /// The room's document could not be loaded.
    #[error("{0}")]
    RoomUnavailable(#[source] DocumentError),
    #[error("the canvas does not follow the document schema: {0}")]
    NotSchema(#[source] SchemaError),
    /// Per-node errors; they are also written on the nodes in the room.
    #[error("{0}")]
    InvalidGraph(ValidationErrors),
    #[error("this run costs {requested} credits; the balance is {balance}")]
    InsufficientCredits { balance: i64, requested: i64 },
    /// The run is in a team's workflow, and the team's balance is short of it.
    #[error("this run costs {requested} credits; the team's balance is {balance}")]
    InsufficientTeamCredits { team: TeamId, balance: i64, requested: i64 },
    #[error(
        "this run holds {requested} credits; you spent {spent} of your {limit}-credit monthly limit in this team"
    )]
    SpendingLimitReached { limit: i64, spent: i64, requested: i64 },
    /// The plan's queue is full; `position` is where the run would have stood.
    #[error(
        "the queue is full: at most {limit} queued runs on your plan; this run would have been number {position} in the queue"
    )]
    QueueFull { limit: u64, position: i64 },
    #[error("the graph does not encode: {0}")]
    Encode(#[source] serde_json::Error),
    #[error(transparent)]
    Accounts(AccountError),
}

impl From<AccountError> for SubmitError {
    fn from(error: AccountError) -> Self {
        match error {
            AccountError::InsufficientCredits { balance, requested } => {
                SubmitError::InsufficientCredits { balance, requested }
            }
            AccountError::InsufficientTeamCredits { team, balance, requested } => {
                SubmitError::InsufficientTeamCredits { team, balance, requested }
            }
            AccountError::SpendingLimitReached { limit, spent, requested } => {
                SubmitError::SpendingLimitReached { limit, spent, requested }
            }
            AccountError::QueueFull { limit, position } => SubmitError::QueueFull { limit, position },
            error => SubmitError::Accounts(error),
        }
    }
}

/// Why a run cannot be read or cancelled by this caller.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// No such run, or the caller may not read its room (which must read the same).
    #[error("no run {0:?}")]
    NotFound(String),
    #[error("this needs {0} access to the run's room")]
    Forbidden(Permission),
    #[error(transparent)]
    Auth(AuthError),
    #[error(transparent)]
    Accounts(#[from] AccountError),
}

pub struct RunService<'a> {
    state: &'a AppState,
}

impl<'a> RunService<'a> {
    pub fn new(state: &'a AppState) -> Self {
        Self { state }
    }

    fn executor(&self) -> &'a Executor {
        self.state.executor()
    }

    /// Runs the room's graph (or the targets and what they need, or a node and what depends on
    /// it): validated, priced, credits held, queued. Validation errors are written on the
    /// nodes too. A key already used returns that run.
    pub async fn submit(
        &self,
        caller: &Caller,
        access: &RoomAccess,
        request: SubmitRequest,
    ) -> Result<Run, SubmitError> {
        access.require(Permission::Write)?;
        let user = signed_in(caller)?;
        let targets = request.targets.filter(|t| !t.is_empty());
        if targets.as_ref().is_some_and(|t| t.len() > MAX_TARGETS) {
            return Err(SubmitError::TooManyTargets);
        }
        if targets.is_some() && request.from.is_some() {
            return Err(SubmitError::FromWithTargets);
        }
        let opened = self.open_graph(caller, access).await?;
        let targets = match &request.from {
            Some(from) => Some(run_from(access.room(), &opened.graph, from)?),
            None => targets,
        };
        let room = access.room();
        let (new_run, node_ids) =
            match self.new_run(&opened, &opened.graph, targets.as_deref(), &user.id).await {
                Err(SubmitError::InvalidGraph(errors)) => {
                    mark_invalid(&opened.writer, &errors).await;
                    return Err(SubmitError::InvalidGraph(errors));
                }
                other => other?,
            };
        let new_run = NewRun { idempotency_key: request.idempotency_key, ..new_run };
        let executor = self.executor();
        let run = match executor.runs().create_run(new_run).await? {
            Submission::Existing(run) => return Ok(run),
            Submission::Created(run) => run,
        };
        self.announce(&opened.writer, &run, &node_ids).await;
        executor.wake();
        tracing::info!(run = %run.id, room = %room, estimate = run.estimate, nodes = node_ids.len(), "run accepted");
        Ok(run)
    }

    /// Everyone sees an accepted run's nodes queued at once, before a worker picks it up, and
    /// its summary.
    pub(crate) async fn announce(&self, writer: &RoomWriter, run: &Run, node_ids: &[NodeId]) {
        if let Err(error) = mark_nodes(writer, node_ids, NodeStatus::Queued, &run.id).await {
            tracing::warn!(run = %run.id, %error, "could not mark a run's nodes queued");
        }
        write_summary(writer, run, node_ids).await;
    }

    /// The room a run is submitted in, opened: it must exist and have nodes; the caller must be
    /// signed in and may write it (checked by the caller of this).
    pub(crate) async fn open_graph(
        &self,
        caller: &Caller,
        access: &RoomAccess,
    ) -> Result<OpenedGraph, SubmitError> {
        let user = signed_in(caller)?;
        let executor = self.executor();
        super::credits::dev_welcome(self.state, &user.id).await;
        let room = access.room();
        // The workflow's team, if any: its provider keys count for what can run, and the run
        // carries it to the worker, which uses them.
        let workflow = self.state.auth().accounts().workflow_by_room(room).await?;
        if workflow.is_none() && !self.exists(room).await? {
            return Err(SubmitError::RoomNotFound(room.clone()));
        }
        let team = workflow.and_then(|workflow| workflow.team_id);
        // Opened as the caller's, so it counts against their share of rooms.
        access::open_room(self.state, caller, room)?;
        let writer = RoomWriter::open(executor.rooms().clone(), room.clone())
            .await
            .map_err(SubmitError::RoomUnavailable)?;
        let graph = writer.read(|txn| read_graph(txn)).await.map_err(SubmitError::NotSchema)?;
        if graph.nodes.is_empty() {
            return Err(SubmitError::EmptyGraph(room.clone()));
        }
        Ok(OpenedGraph { room: room.clone(), writer, graph, team })
    }

    /// Validates `graph` (the room's, or a batch member's copy of it) for the targets and
    /// prices it into the run to accept (without an idempotency key), with its planned nodes.
    pub(crate) async fn new_run(
        &self,
        opened: &OpenedGraph,
        graph: &CanvasGraph,
        targets: Option<&[String]>,
        user: &dojo_ids::UserId,
    ) -> Result<(NewRun, Vec<NodeId>), SubmitError> {
        let executor = self.executor();
        if let Some(targets) = targets
            && let Some(refused) = unknown_targets(&opened.room, graph, targets)
        {
            return Err(refused);
        }
        let target_refs: Option<Vec<&str>> = targets.map(|t| t.iter().map(String::as_str).collect());
        // Only what this server can run: a node whose provider has no key (the server's, or in
        // a team's workflow the team's) is refused here, by name, before any credit is held.
        let availability = match &opened.team {
            None => executor.availability(),
            Some(team) => {
                executor.availability_with(super::provider_keys::team_providers(self.state, team).await?)
            }
        };
        let plan = validate_runnable(
            executor.catalog(),
            &availability,
            graph,
            target_refs.as_deref(),
            &GraphLimits::default(),
        )
        .map_err(SubmitError::InvalidGraph)?;
        let nodes = plan
            .order()
            .map(|node| NewRunNode {
                node_id: node.id.clone(),
                node_type: node.node_type.clone(),
                cost: i64::try_from(executor.catalog().cost(&node.node_type).unwrap_or(0))
                    .unwrap_or(i64::MAX),
                params: serde_json::to_string(&node.params).unwrap_or_else(|_| "{}".into()),
            })
            .collect::<Vec<_>>();
        let node_ids: Vec<NodeId> = nodes.iter().map(|n| n.node_id.clone()).collect();
        let new_run = NewRun {
            id: RunId::generate(),
            room: opened.room.as_str().to_owned(),
            user_id: user.clone(),
            graph: serde_json::to_string(graph).map_err(SubmitError::Encode)?,
            targets: targets.and_then(|t| serde_json::to_string(t).ok()),
            idempotency_key: None,
            nodes,
            hold_expires_at: executor.hold_expiry(&plan),
            max_unfinished: Some(self.state.config().limits.max_queued_runs_per_user).filter(|&max| max > 0),
            queue: super::plans::terms(self.state, user, opened.team.as_ref()).await?,
            team_id: opened.team.clone(),
            granted_assets: Vec::new(),
        };
        Ok((new_run, node_ids))
    }

    /// `true` when someone created `room`: a workflow has it, or it is in use (open here, or
    /// something was stored in it). A caller who may use any room (dev mode, a token with
    /// grants) can name one that never existed; it is refused rather than opened empty.
    async fn exists(&self, room: &RoomName) -> Result<bool, SubmitError> {
        if self.state.auth().accounts().workflow_by_room(room).await?.is_some() {
            return Ok(true);
        }
        super::claim::in_use(self.state, room).await.map_err(SubmitError::Store)
    }

    /// The run, if the caller may do what `needed` allows in its room.
    pub async fn visible(&self, caller: &Caller, id: &RunId, needed: Permission) -> Result<Run, RunError> {
        let not_found = || RunError::NotFound(id.to_string());
        if id.as_str().len() > MAX_RUN_ID {
            return Err(not_found());
        }
        let run = self.executor().runs().run(id).await?.ok_or_else(not_found)?;
        // A run is as visible as its room: a stranger learns nothing, not even that it exists,
        // whatever they ask to do with it. Only someone who may read the room hears "forbidden".
        // (Its room was checked when the run was accepted; a name that fails now hides it.)
        let room = RoomName::parse(&run.room).map_err(|_| not_found())?;
        let permission = access::visible_permission(self.state, caller, &room)
            .await
            .map_err(RunError::Auth)?
            .ok_or_else(not_found)?;
        if permission < needed {
            return Err(RunError::Forbidden(needed));
        }
        Ok(run)
    }

    /// The run with its nodes (state, cost, charge, outputs, timings).
    pub async fn get(&self, caller: &Caller, id: &RunId) -> Result<(Run, Vec<RunNode>), RunError> {
        let run = self.visible(caller, id, Permission::Read).await?;
        let nodes = self.executor().runs().run_nodes(&run.id).await?;
        Ok((run, nodes))
    }

    /// The room's newest runs, at most `limit`.
    pub async fn list(&self, access: &RoomAccess, limit: u32) -> Result<Vec<Run>, AccountError> {
        self.executor().runs().list_runs(access.room().as_str(), limit).await
    }

    /// Stops a run: nodes not finished become `cancelled`, remote jobs are cancelled, holds of
    /// nodes that did not succeed are released. Returns the run as it is now.
    pub async fn cancel(&self, caller: &Caller, id: &RunId) -> Result<Run, RunError> {
        let run = self.visible(caller, id, Permission::Write).await?;
        let executor = self.executor();
        let now = executor
            .runs()
            .request_cancel(&run.id)
            .await?
            .ok_or_else(|| RunError::NotFound(id.to_string()))?;
        executor.cancel_local(&run.id);
        if now.status.is_final() && !run.status.is_final() {
            // Cancelled before any worker started it: nobody else will tell the room.
            let nodes = executor.runs().run_nodes(&run.id).await?;
            if !dojo_executor::worker::document::writes_no_document(&run.room)
                && let Ok(room) = RoomName::parse(&run.room)
                && let Ok(writer) = RoomWriter::open(executor.rooms().clone(), room).await
            {
                let ids: Vec<NodeId> = nodes.into_iter().map(|n| n.node_id).collect();
                let _ = mark_nodes(&writer, &ids, NodeStatus::Cancelled, &run.id).await;
                write_summary(&writer, &now, &ids).await;
            }
        }
        Ok(now)
    }
}

/// The refusal for targets that are not node ids of `graph`, if any are not. A target is a node
/// id; people also try a node's type or label, so a type is pointed at the ids that have it.
fn unknown_targets(room: &RoomName, graph: &CanvasGraph, targets: &[String]) -> Option<SubmitError> {
    let ids: std::collections::HashSet<&str> = graph.nodes.iter().map(|n| n.id.as_str()).collect();
    let unknown: Vec<&String> = targets.iter().filter(|t| !ids.contains(t.as_str())).collect();
    if unknown.is_empty() {
        return None;
    }
    let cut = |t: &str| t.chars().take(MAX_TARGET_ECHO).collect::<String>();
    let mut named = unknown
        .iter()
        .take(MAX_TARGETS_NAMED)
        .map(|t| format!("`{}`", cut(t)))
        .collect::<Vec<_>>()
        .join(", ");
    if unknown.len() > MAX_TARGETS_NAMED {
        named.push_str(&format!(" and {} more", unknown.len() - MAX_TARGETS_NAMED));
    }
    let verb = if unknown.len() == 1 { "is not a node id" } else { "are not node ids" };
    let mut message =
        format!("{named} {verb} in this room; targets are node ids (GET /api/rooms/{room}/graph lists them)");
    for target in unknown.iter().take(MAX_TARGETS_NAMED) {
        let ids: Vec<String> = graph
            .nodes
            .iter()
            .filter(|n| n.node_type == target.as_str())
            .take(3)
            .map(|n| format!("`{}`", cut(&n.id)))
            .collect();
        if !ids.is_empty() {
            message.push_str(&format!(
                "; `{}` is a node type: its nodes here are {}",
                cut(target),
                ids.join(", ")
            ));
        }
    }
    Some(SubmitError::UnknownTarget { targets: unknown.into_iter().cloned().collect(), message })
}

/// The targets of "run from here": `from` and every node downstream of it. What they need
/// upstream is added by validation and comes from the cache when unchanged.
pub(crate) fn run_from(room: &RoomName, graph: &CanvasGraph, from: &str) -> Result<Vec<String>, SubmitError> {
    let from = vec![from.to_owned()];
    if let Some(refused) = unknown_targets(room, graph, &from) {
        return Err(refused);
    }
    let mut seen: std::collections::BTreeSet<String> = from.iter().cloned().collect();
    let mut next = from;
    while let Some(node) = next.pop() {
        for edge in graph.edges.iter().filter(|e| e.source == node) {
            if seen.insert(edge.target.clone()) {
                next.push(edge.target.clone());
            }
        }
    }
    if seen.len() > MAX_TARGETS {
        return Err(SubmitError::TooManyTargets);
    }
    Ok(seen.into_iter().collect())
}

/// Writes `status` on every node of `nodes`, for run `run_id`.
async fn mark_nodes(
    writer: &RoomWriter,
    nodes: &[NodeId],
    status: NodeStatus,
    run_id: &RunId,
) -> Result<(), DocumentError> {
    let at = now_millis().max(0).unsigned_abs();
    writer
        .write(|txn| {
            for node in nodes {
                write_node_result(
                    txn,
                    node.as_str(),
                    &node_result(status, None, Vec::new(), Some(run_id), at),
                )?;
            }
            Ok(())
        })
        .await
}

/// Shows each node's validation errors on the node itself.
async fn mark_invalid(writer: &RoomWriter, errors: &ValidationErrors) {
    let at = now_millis().max(0).unsigned_abs();
    let entries: Vec<(NodeId, String, Vec<Value>)> = errors
        .node_errors
        .iter()
        .map(|(node, node_errors)| {
            let message =
                node_errors.errors.iter().map(|e| e.message.as_str()).collect::<Vec<_>>().join("; ");
            let list = node_errors.errors.iter().filter_map(|e| serde_json::to_value(e).ok()).collect();
            (node.clone(), message, list)
        })
        .collect();
    if let Err(error) = writer
        .write(|txn| {
            for (node, message, list) in &entries {
                write_node_result(
                    txn,
                    node.as_str(),
                    &node_result(NodeStatus::Invalid, Some(message.clone()), list.clone(), None, at),
                )?;
            }
            Ok(())
        })
        .await
    {
        tracing::warn!(%error, "could not write validation errors into the room");
    }
}

fn node_result(
    status: NodeStatus,
    error: Option<String>,
    errors: Vec<Value>,
    run_id: Option<&RunId>,
    at: u64,
) -> NodeResult {
    NodeResult {
        status,
        progress: 0.0,
        outputs: Default::default(),
        error,
        errors,
        // The document's edge: ids are plain strings there.
        run_id: run_id.map(RunId::to_string),
        updated_at: at,
    }
}

#[cfg(test)]
mod tests {
    use dojo_sync_protocol::canvas::{CanvasNode, Position};

    use super::*;

    fn graph() -> CanvasGraph {
        let node = |id: &str, node_type: &str| CanvasNode {
            id: id.into(),
            node_type: node_type.into(),
            position: Position { x: 0.0, y: 0.0 },
            data: Default::default(),
        };
        CanvasGraph { nodes: vec![node("gen", "dev-image"), node("n2", "resize")], ..Default::default() }
    }

    fn message(targets: &[&str]) -> Option<String> {
        let room = RoomName::parse("canvas").expect("a room name");
        let targets: Vec<String> = targets.iter().map(|t| (*t).to_owned()).collect();
        unknown_targets(&room, &graph(), &targets).map(|error| error.to_string())
    }

    #[test]
    fn run_from_takes_the_node_and_everything_downstream() {
        let room = RoomName::parse("canvas").expect("a room name");
        let edge = |id: &str, source: &str, target: &str| dojo_sync_protocol::canvas::CanvasEdge {
            id: id.into(),
            source: source.into(),
            source_handle: None,
            target: target.into(),
            target_handle: None,
        };
        let mut graph = graph();
        graph.edges = vec![edge("e1", "gen", "n2")];
        assert_eq!(run_from(&room, &graph, "gen").expect("known"), vec!["gen".to_owned(), "n2".to_owned()]);
        assert_eq!(run_from(&room, &graph, "n2").expect("known"), vec!["n2".to_owned()]);
        assert!(matches!(run_from(&room, &graph, "nope"), Err(SubmitError::UnknownTarget { .. })));
    }

    #[test]
    fn node_ids_are_targets_and_anything_else_is_named_in_the_refusal() {
        assert_eq!(message(&["gen", "n2"]), None);
        assert_eq!(
            message(&["gen", "up"]).as_deref(),
            Some(
                "`up` is not a node id in this room; targets are node ids (GET /api/rooms/canvas/graph lists them)"
            )
        );
        let by_type = message(&["resize"]).expect("refused");
        assert!(by_type.ends_with("; `resize` is a node type: its nodes here are `n2`"), "{by_type}");
        let many: Vec<String> = (0..9).map(|i| format!("x{i}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        let text = message(&many).expect("refused");
        assert!(text.starts_with("`x0`, `x1`, `x2`, `x3`, `x4` and 4 more are not node ids"), "{text}");
        let long = "y".repeat(10_000);
        assert!(message(&[&long]).expect("refused").len() < 300);
    }
}
