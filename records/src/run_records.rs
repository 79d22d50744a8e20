//! How runs are stored: their rows as the databases return them, decoded into the public
//! types once, and the checks a submission or settlement passes before any statement runs.

use std::collections::HashSet;

use dojo_ids::{AssetId, BatchId, NodeId, RunId, TeamId, UserId};
use sqlx::FromRow;

use crate::AccountError;
use crate::ledger::MAX_KEY_LEN;
use crate::runs::{
    AssetLink, AssetRecord, HoldState, NewRun, NodeSettlement, Run, RunNode, RunNodeState, RunStatus,
};
use crate::workflows::validate_room;

#[derive(Debug, thiserror::Error)]
#[error("unknown {what} {value:?} in the database")]
struct UnknownValue {
    what: &'static str,
    value: String,
}

fn unknown(what: &'static str, value: String) -> AccountError {
    AccountError::Database(sqlx::Error::Decode(Box::new(UnknownValue { what, value })))
}

pub(crate) fn parse_status(value: String) -> Result<RunStatus, AccountError> {
    RunStatus::parse(&value).ok_or_else(|| unknown("run status", value))
}

pub(crate) fn parse_node_state(value: String) -> Result<RunNodeState, AccountError> {
    RunNodeState::parse(&value).ok_or_else(|| unknown("node state", value))
}

pub(crate) fn parse_hold(value: String) -> Result<HoldState, AccountError> {
    HoldState::parse(&value).ok_or_else(|| unknown("hold state", value))
}

#[derive(FromRow)]
pub(crate) struct RunRow {
    id: RunId,
    room: String,
    user_id: UserId,
    status: String,
    graph: String,
    targets: Option<String>,
    estimate: i64,
    charged: i64,
    cancel_requested: i32,
    attempts: i64,
    lease_owner: Option<String>,
    lease_expires_at: Option<i64>,
    error: Option<String>,
    created_at: i64,
    started_at: Option<i64>,
    finished_at: Option<i64>,
    team_id: Option<TeamId>,
    priority: i64,
    queue_rank: i64,
    run_limit: Option<i64>,
    max_run_ms: Option<i64>,
    batch_id: Option<BatchId>,
    batch_index: Option<i64>,
    batch_params: Option<String>,
    granted_assets: Option<String>,
}

impl TryFrom<RunRow> for Run {
    type Error = AccountError;

    fn try_from(row: RunRow) -> Result<Self, Self::Error> {
        Ok(Run {
            id: row.id,
            room: row.room,
            user_id: row.user_id,
            status: parse_status(row.status)?,
            graph: row.graph,
            targets: row.targets,
            estimate: row.estimate,
            charged: row.charged,
            cancel_requested: row.cancel_requested != 0,
            attempts: row.attempts,
            lease_owner: row.lease_owner,
            lease_expires_at: row.lease_expires_at,
            error: row.error,
            created_at: row.created_at,
            started_at: row.started_at,
            finished_at: row.finished_at,
            priority: row.priority,
            queue_rank: row.queue_rank,
            run_limit: row.run_limit,
            max_run_ms: row.max_run_ms,
            team_id: row.team_id,
            batch_id: row.batch_id,
            batch_index: row.batch_index,
            batch_params: row.batch_params,
            // Written by `create_run` from a checked list; unreadable text grants nothing.
            granted_assets: row
                .granted_assets
                .as_deref()
                .and_then(|json| serde_json::from_str(json).ok())
                .unwrap_or_default(),
        })
    }
}

#[derive(FromRow)]
pub(crate) struct NodeRow {
    run_id: RunId,
    node_id: NodeId,
    node_type: String,
    state: String,
    cost: i64,
    charged: i64,
    hold_state: String,
    params: String,
    outputs: Option<String>,
    error: Option<String>,
    started_at: Option<i64>,
    finished_at: Option<i64>,
}

impl TryFrom<NodeRow> for RunNode {
    type Error = AccountError;

    fn try_from(row: NodeRow) -> Result<Self, Self::Error> {
        Ok(RunNode {
            run_id: row.run_id,
            node_id: row.node_id,
            node_type: row.node_type,
            state: parse_node_state(row.state)?,
            cost: row.cost,
            charged: row.charged,
            hold_state: parse_hold(row.hold_state)?,
            params: row.params,
            outputs: row.outputs,
            error: row.error,
            started_at: row.started_at,
            finished_at: row.finished_at,
        })
    }
}

#[derive(FromRow)]
pub(crate) struct AssetRow {
    pub(crate) id: AssetId,
    pub(crate) content_type: String,
    pub(crate) size: i64,
    pub(crate) created_at: i64,
}

#[derive(FromRow)]
pub(crate) struct LinkRow {
    pub(crate) owner_id: UserId,
    pub(crate) room: Option<String>,
    pub(crate) run_id: Option<RunId>,
    pub(crate) node_id: Option<NodeId>,
}

/// A node hold that finishing a run released, for its ledger entry.
#[derive(FromRow)]
pub(crate) struct ReleasedHold {
    pub(crate) node_id: String,
    pub(crate) node_type: String,
    pub(crate) cost: i64,
}

/// The node row a settlement changed.
#[derive(FromRow)]
pub(crate) struct SettledNode {
    pub(crate) node_type: String,
    pub(crate) cost: i64,
    pub(crate) hold_state: String,
}

pub(crate) fn decode_runs(rows: Vec<RunRow>) -> Result<Vec<Run>, AccountError> {
    rows.into_iter().map(Run::try_from).collect()
}

/// The ledger key of one phase (`hold`, `capture`, `release`) of a node's hold: unique, so a
/// phase can be written at most once whatever the code above it does.
pub(crate) fn ledger_key(run_id: &str, node_id: &str, phase: &str) -> String {
    format!("run:{run_id}:{node_id}:{phase}")
}

pub(crate) fn invalid(field: &'static str, reason: &'static str) -> AccountError {
    AccountError::InvalidInput { field, reason }
}

pub(crate) fn validate_id(field: &'static str, value: &str) -> Result<(), AccountError> {
    if value.is_empty() {
        return Err(invalid(field, "empty"));
    }
    if value.len() > MAX_KEY_LEN {
        return Err(invalid(field, "longer than 255 bytes"));
    }
    Ok(())
}

/// Checks a submission and returns its estimate (the sum of the node costs).
pub(crate) fn validate_new_run(run: &NewRun) -> Result<i64, AccountError> {
    validate_id("id", run.id.as_str())?;
    validate_room(&run.room)?;
    validate_id("user_id", run.user_id.as_str())?;
    if let Some(key) = &run.idempotency_key {
        validate_id("idempotency_key", key)?;
    }
    if run.granted_assets.len() > crate::run_request::MAX_GRANTED_ASSETS {
        return Err(invalid("granted_assets", "too many"));
    }
    for asset in &run.granted_assets {
        validate_id("granted_assets", asset.as_str())?;
    }
    let mut seen = HashSet::new();
    let mut estimate = 0i64;
    for node in &run.nodes {
        validate_id("node_id", node.node_id.as_str())?;
        if !seen.insert(node.node_id.as_str()) {
            return Err(invalid("nodes", "duplicate node id"));
        }
        if node.cost < 0 {
            return Err(invalid("cost", "negative"));
        }
        estimate = estimate.checked_add(node.cost).ok_or(invalid("cost", "the total is out of range"))?;
    }
    Ok(estimate)
}

pub(crate) fn validate_settlement(settlement: &NodeSettlement) -> Result<(), AccountError> {
    if settlement.state.is_final() { Ok(()) } else { Err(invalid("state", "not a final node state")) }
}

pub(crate) fn validate_asset(asset: &AssetRecord, link: &AssetLink) -> Result<(), AccountError> {
    validate_id("id", asset.id.as_str())?;
    validate_id("owner_id", link.owner_id.as_str())?;
    if asset.size < 0 {
        return Err(invalid("size", "negative"));
    }
    Ok(())
}
