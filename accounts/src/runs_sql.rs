//! [`RunStore`] on PostgreSQL and SQLite, written once.
//!
//! The statements are the same text on both databases (sqlx's SQLite driver accepts `$N`
//! placeholders), and [`run_store!`] expands one set of method bodies for each backend. What
//! differs is how a write transaction begins (`begin_write` on each store): PostgreSQL relies on
//! row locks, SQLite on the process's write lock plus `BEGIN IMMEDIATE`.
//!
//! Lock order on PostgreSQL, which every write here follows so that two of them can never wait
//! on each other: the run row, then its node rows, then the user row. A settle and a finish (or
//! the expiry sweeper) of the same run therefore queue on the run row, and whichever comes
//! second sees the node states the first one committed: a pending hold resolves exactly once.

use std::collections::HashSet;

use sqlx::FromRow;
use tokio::sync::OwnedMutexGuard;

use crate::runs::{HoldState, NewRun, NodeSettlement, Run, RunNode, RunStatus};
use crate::{AccountError, MAX_KEY_LEN, validate_room};

macro_rules! run_columns {
    () => {
        "id, room, user_id, status, graph, targets, estimate, charged, cancel_requested, attempts, \
         lease_owner, lease_expires_at, error, created_at, started_at, finished_at"
    };
}
macro_rules! node_columns {
    () => {
        "run_id, node_id, node_type, state, cost, charged, hold_state, params, outputs, error, \
         started_at, finished_at"
    };
}

/// An open write transaction and, on SQLite, the process write lock that must outlive it
/// (declared after `tx`, so dropped after it).
pub(crate) struct WriteTx<DB: sqlx::Database> {
    pub(crate) tx: sqlx::Transaction<'static, DB>,
    pub(crate) _lock: Option<OwnedMutexGuard<()>>,
}

/// A value in a status column this code does not know: a newer schema, or a hand edit.
#[derive(Debug, thiserror::Error)]
#[error("unknown {what} {value:?} in the database")]
struct UnknownValue {
    what: &'static str,
    value: String,
}

fn unknown(what: &'static str, value: String) -> AccountError {
    AccountError::Database(sqlx::Error::Decode(Box::new(UnknownValue { what, value })))
}

fn parse_status(value: String) -> Result<RunStatus, AccountError> {
    RunStatus::parse(&value).ok_or_else(|| unknown("run status", value))
}

fn parse_hold(value: String) -> Result<HoldState, AccountError> {
    HoldState::parse(&value).ok_or_else(|| unknown("hold state", value))
}

#[derive(FromRow)]
struct RunRow {
    id: String,
    room: String,
    user_id: String,
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
        })
    }
}

#[derive(FromRow)]
struct NodeRow {
    run_id: String,
    node_id: String,
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
            state: row.state,
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
struct AssetRow {
    id: String,
    content_type: String,
    size: i64,
    created_at: i64,
}

#[derive(FromRow)]
struct LinkRow {
    owner_id: String,
    room: Option<String>,
    run_id: Option<String>,
    node_id: Option<String>,
}

/// A node hold that finishing a run released, for its ledger entry.
#[derive(FromRow)]
struct ReleasedHold {
    node_id: String,
    node_type: String,
    cost: i64,
}

/// The node row a settlement changed.
#[derive(FromRow)]
struct SettledNode {
    node_type: String,
    cost: i64,
    hold_state: String,
}

fn decode_runs(rows: Vec<RunRow>) -> Result<Vec<Run>, AccountError> {
    rows.into_iter().map(Run::try_from).collect()
}

/// The ledger key of one phase (`hold`, `capture`, `release`) of a node's hold: unique, so a
/// phase can be written at most once whatever the code above it does.
fn ledger_key(run_id: &str, node_id: &str, phase: &str) -> String {
    format!("run:{run_id}:{node_id}:{phase}")
}

const FINAL_NODE_STATES: [&str; 5] = ["succeeded", "failed", "cancelled", "cached", "skipped"];

fn invalid(field: &'static str, reason: &'static str) -> AccountError {
    AccountError::InvalidInput { field, reason }
}

fn validate_id(field: &'static str, value: &str) -> Result<(), AccountError> {
    if value.is_empty() {
        return Err(invalid(field, "empty"));
    }
    if value.len() > MAX_KEY_LEN {
        return Err(invalid(field, "longer than 255 bytes"));
    }
    Ok(())
}

/// Checks a submission and returns its estimate (the sum of the node costs).
fn validate_new_run(run: &NewRun) -> Result<i64, AccountError> {
    validate_id("id", &run.id)?;
    validate_room(&run.room)?;
    validate_id("user_id", &run.user_id)?;
    if let Some(key) = &run.idempotency_key {
        validate_id("idempotency_key", key)?;
    }
    let mut seen = HashSet::new();
    let mut estimate = 0i64;
    for node in &run.nodes {
        validate_id("node_id", &node.node_id)?;
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

fn validate_settlement(settlement: &NodeSettlement) -> Result<(), AccountError> {
    if FINAL_NODE_STATES.contains(&settlement.state.as_str()) {
        Ok(())
    } else {
        Err(invalid("state", "not a final node state"))
    }
}

/// Expands the store for one backend: `$store` (with `pool()` and `begin_write()`), its
/// connection type and its database type. Helper functions are generated next to the impl, so
/// each expansion goes in a module of its own.
macro_rules! run_store {
    ($store:ty, $conn:ty, $db:ty) => {
        use dojo_store::run_to_completion;

        use crate::runs::{
            AssetLink, AssetRecord, Claim, HoldState, MAX_CACHED_OUTPUTS, NewRun, NodeSettlement, OutboxEntry,
            Run, RunNode, RunStatus, RunStore, Submission,
        };
        use crate::runs_sql::{
            AssetRow, LinkRow, NodeRow, ReleasedHold, RunRow, SettledNode, WriteTx, decode_runs, invalid,
            ledger_key, parse_hold, parse_status, validate_id, validate_new_run, validate_settlement,
        };
        use crate::{AccountError, now_millis};

        type Tx = WriteTx<$db>;

        fn validate_asset(asset: &AssetRecord, link: &AssetLink) -> Result<(), AccountError> {
            validate_id("id", &asset.id)?;
            validate_id("owner_id", &link.owner_id)?;
            if asset.size < 0 {
                return Err(invalid("size", "negative"));
            }
            Ok(())
        }

        /// The asset row (content-addressed: a second record of the same bytes keeps the
        /// first) and the link.
        async fn insert_asset(conn: &mut $conn, asset: &AssetRecord, link: &AssetLink) -> Result<(), AccountError> {
            sqlx::query(
                "INSERT INTO assets (id, content_type, size, created_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (id) DO NOTHING",
            )
            .bind(&asset.id)
            .bind(&asset.content_type)
            .bind(asset.size)
            .bind(asset.created_at)
            .execute(&mut *conn)
            .await?;
            sqlx::query(
                "INSERT INTO asset_links (asset_id, owner_id, room, run_id, node_id, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT DO NOTHING",
            )
            .bind(&asset.id)
            .bind(&link.owner_id)
            .bind(&link.room)
            .bind(&link.run_id)
            .bind(&link.node_id)
            .bind(now_millis())
            .execute(&mut *conn)
            .await?;
            Ok(())
        }

        /// Bytes of the distinct assets `owner_id` has a link to.
        async fn owned_bytes(conn: &mut $conn, owner_id: &str) -> Result<i64, AccountError> {
            let used: Option<i64> = sqlx::query_scalar(
                "SELECT CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM assets
                 WHERE id IN (SELECT asset_id FROM asset_links WHERE owner_id = $1)",
            )
            .bind(owner_id)
            .fetch_one(&mut *conn)
            .await?;
            Ok(used.unwrap_or(0))
        }

        async fn fetch_run(conn: &mut $conn, id: &str) -> Result<Option<Run>, AccountError> {
            let row: Option<RunRow> =
                sqlx::query_as(concat!("SELECT ", run_columns!(), " FROM runs WHERE id = $1"))
                    .bind(id)
                    .fetch_optional(&mut *conn)
                    .await?;
            row.map(Run::try_from).transpose()
        }

        async fn run_by_key(
            conn: &mut $conn,
            user_id: &str,
            key: &str,
        ) -> Result<Option<Run>, AccountError> {
            let row: Option<RunRow> = sqlx::query_as(concat!(
                "SELECT ",
                run_columns!(),
                " FROM runs WHERE user_id = $1 AND idempotency_key = $2"
            ))
            .bind(user_id)
            .bind(key)
            .fetch_optional(&mut *conn)
            .await?;
            row.map(Run::try_from).transpose()
        }

        async fn ledger_key_exists(conn: &mut $conn, key: &str) -> Result<bool, AccountError> {
            let found: Option<i32> = sqlx::query_scalar("SELECT 1 FROM credit_ledger WHERE idempotency_key = $1")
                .bind(key)
                .fetch_optional(&mut *conn)
                .await?;
            Ok(found.is_some())
        }

        async fn insert_ledger(
            conn: &mut $conn,
            user_id: &str,
            amount: i64,
            balance_after: i64,
            reason: &str,
            key: &str,
            now: i64,
        ) -> Result<(), AccountError> {
            sqlx::query(
                "INSERT INTO credit_ledger (user_id, amount, balance_after, reason, idempotency_key, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(user_id)
            .bind(amount)
            .bind(balance_after)
            .bind(reason)
            .bind(key)
            .bind(now)
            .execute(&mut *conn)
            .await?;
            Ok(())
        }

        /// Adds `amount` (0: only locks the row, on PostgreSQL) to the user's balance and
        /// returns the new balance.
        async fn add_credits(conn: &mut $conn, user_id: &str, amount: i64) -> Result<i64, AccountError> {
            let balance: Option<i64> =
                sqlx::query_scalar("UPDATE users SET credits = credits + $2 WHERE id = $1 RETURNING credits")
                    .bind(user_id)
                    .bind(amount)
                    .fetch_optional(&mut *conn)
                    .await?;
            balance.ok_or_else(|| AccountError::UserNotFound(user_id.to_owned()))
        }

        /// Locks the run row (the first lock of every write that touches a run's money) and
        /// returns its status and user.
        async fn lock_run(conn: &mut $conn, id: &str) -> Result<Option<(RunStatus, String)>, AccountError> {
            let row: Option<(String, String)> =
                sqlx::query_as("UPDATE runs SET status = status WHERE id = $1 RETURNING status, user_id")
                    .bind(id)
                    .fetch_optional(&mut *conn)
                    .await?;
            row.map(|(status, user)| Ok((parse_status(status)?, user))).transpose()
        }

        /// Resolves a node's pending hold, once: its hold state (only `pending` matches) and
        /// its ledger entry change together. Called with the run and node rows locked.
        async fn resolve_hold(
            conn: &mut $conn,
            run_id: &str,
            user_id: &str,
            node_id: &str,
            node_type: &str,
            capture: bool,
            now: i64,
        ) -> Result<(), AccountError> {
            let (phase, target) = if capture { ("capture", "captured") } else { ("release", "released") };
            let cost: Option<i64> = sqlx::query_scalar(
                "UPDATE run_nodes SET hold_state = $3, charged = CASE WHEN $3 = 'captured' THEN cost ELSE 0 END
                 WHERE run_id = $1 AND node_id = $2 AND hold_state = 'pending'
                 RETURNING cost",
            )
            .bind(run_id)
            .bind(node_id)
            .bind(target)
            .fetch_optional(&mut *conn)
            .await?;
            let Some(cost) = cost else { return Ok(()) };
            let key = ledger_key(run_id, node_id, phase);
            // Cannot happen while the pending guard above holds; if a hand edit broke it, the
            // entry says the money already moved, so it must not move again.
            if ledger_key_exists(conn, &key).await? {
                return Ok(());
            }
            if capture {
                // Amount 0: the hold already took the credits. The UPDATE only locks the user row
                // so that balance_after is the balance in ledger order.
                let balance = add_credits(conn, user_id, 0).await?;
                let reason = format!("run {run_id}: charge for {node_id} ({node_type})");
                insert_ledger(conn, user_id, 0, balance, &reason, &key, now).await?;
                sqlx::query("UPDATE runs SET charged = charged + $2 WHERE id = $1")
                    .bind(run_id)
                    .bind(cost)
                    .execute(&mut *conn)
                    .await?;
            } else {
                let balance = add_credits(conn, user_id, cost).await?;
                let reason = format!("run {run_id}: release {node_id} ({node_type})");
                insert_ledger(conn, user_id, cost, balance, &reason, &key, now).await?;
            }
            Ok(())
        }

        /// Finishes an active run inside `conn`'s transaction; a final run is returned as it is.
        /// Returns the run and how many holds were released, or `None` without such a run.
        async fn finish_locked(
            conn: &mut $conn,
            id: &str,
            status: RunStatus,
            error: Option<&str>,
            now: i64,
        ) -> Result<Option<(Run, u64)>, AccountError> {
            let Some((current, user_id)) = lock_run(conn, id).await? else { return Ok(None) };
            if current.is_final() {
                return Ok(fetch_run(conn, id).await?.map(|run| (run, 0)));
            }
            let mut released: Vec<ReleasedHold> = sqlx::query_as(
                "UPDATE run_nodes SET hold_state = 'released'
                 WHERE run_id = $1 AND hold_state = 'pending'
                 RETURNING node_id, node_type, cost",
            )
            .bind(id)
            .fetch_all(&mut *conn)
            .await?;
            released.sort_by(|a, b| a.node_id.cmp(&b.node_id));
            let count = u64::try_from(released.len()).unwrap_or(u64::MAX);
            let mut refunds = Vec::with_capacity(released.len());
            for hold in released {
                let key = ledger_key(id, &hold.node_id, "release");
                // See resolve_hold: an existing entry means this refund already happened.
                if !ledger_key_exists(conn, &key).await? {
                    refunds.push((hold, key));
                }
            }
            let total = refunds
                .iter()
                .try_fold(0i64, |sum, (hold, _)| sum.checked_add(hold.cost))
                .ok_or(invalid("cost", "the total is out of range"))?;
            if total > 0 {
                // One balance change for all the refunds; the entries then chain from the
                // balance before it, each adding its node's cost.
                let mut balance = add_credits(conn, &user_id, total).await? - total;
                for (hold, key) in &refunds {
                    balance += hold.cost;
                    let reason = format!("run {id}: release {} ({})", hold.node_id, hold.node_type);
                    insert_ledger(conn, &user_id, hold.cost, balance, &reason, key, now).await?;
                }
            }
            let leftover = if status == RunStatus::Cancelled { "cancelled" } else { "skipped" };
            sqlx::query(
                "UPDATE run_nodes SET state = $2, finished_at = $3
                 WHERE run_id = $1 AND state IN ('queued', 'running')",
            )
            .bind(id)
            .bind(leftover)
            .bind(now)
            .execute(&mut *conn)
            .await?;
            let charged: i64 = sqlx::query_scalar(
                "SELECT CAST(COALESCE(SUM(charged), 0) AS BIGINT) FROM run_nodes
                 WHERE run_id = $1 AND hold_state = 'captured'",
            )
            .bind(id)
            .fetch_one(&mut *conn)
            .await?;
            let row: RunRow = sqlx::query_as(concat!(
                "UPDATE runs SET status = $2, error = $3, finished_at = $4, charged = $5,
                     lease_owner = NULL, lease_expires_at = NULL
                 WHERE id = $1 RETURNING ",
                run_columns!()
            ))
            .bind(id)
            .bind(status.as_str())
            .bind(error)
            .bind(now)
            .bind(charged)
            .fetch_one(&mut *conn)
            .await?;
            Ok(Some((Run::try_from(row)?, count)))
        }

        async fn create_run_now(this: &$store, run: NewRun, estimate: i64) -> Result<Submission, AccountError> {
            let now = now_millis();
            let mut w: Tx = this.begin_write().await?;
            // The run row first: a concurrent submission with the same key waits here on the
            // unique index until this one commits, then inserts nothing and returns this run,
            // so it never reaches the hold below.
            let created: Option<RunRow> = sqlx::query_as(concat!(
                "INSERT INTO runs (id, room, user_id, status, graph, targets, idempotency_key, estimate,
                     charged, cancel_requested, attempts, created_at)
                 SELECT $1, $2, $3, 'queued', $4, $5, $6, $7, 0, 0, 0, $8
                 WHERE EXISTS (SELECT 1 FROM users WHERE id = $3)
                 ON CONFLICT DO NOTHING
                 RETURNING ",
                run_columns!()
            ))
            .bind(&run.id)
            .bind(&run.room)
            .bind(&run.user_id)
            .bind(&run.graph)
            .bind(&run.targets)
            .bind(&run.idempotency_key)
            .bind(estimate)
            .bind(now)
            .fetch_optional(&mut *w.tx)
            .await?;
            let Some(created) = created else {
                w.tx.rollback().await?;
                // Let go of SQLite's write lock before taking another connection: nothing
                // below writes.
                drop(w._lock);
                let mut conn = this.pool().acquire().await?;
                if let Some(key) = &run.idempotency_key
                    && let Some(existing) = run_by_key(&mut conn, &run.user_id, key).await?
                {
                    return Ok(Submission::Existing(existing));
                }
                let user: Option<i32> = sqlx::query_scalar("SELECT 1 FROM users WHERE id = $1")
                    .bind(&run.user_id)
                    .fetch_optional(&mut *conn)
                    .await?;
                return Err(match user {
                    None => AccountError::UserNotFound(run.user_id),
                    Some(_) => invalid("id", "already used by another run"),
                });
            };
            if let Some(limit) = run.max_unfinished {
                // Counted under the user row's lock (taken by a no-op update, which both
                // databases accept; SQLite's write lock already serialises), in the lock order
                // above: concurrent submissions by one user each count those before them.
                sqlx::query("UPDATE users SET credits = credits WHERE id = $1")
                    .bind(&run.user_id)
                    .execute(&mut *w.tx)
                    .await?;
                let unfinished: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM runs
                     WHERE user_id = $1 AND status IN ('queued', 'running') AND id <> $2",
                )
                .bind(&run.user_id)
                .bind(&run.id)
                .fetch_one(&mut *w.tx)
                .await?;
                if crate::quota_full(unfinished, limit) {
                    w.tx.rollback().await?;
                    return Err(AccountError::QuotaExceeded { what: "queued or running runs", limit });
                }
            }
            if estimate > 0 {
                // The whole estimate at once, decided and written in one statement under the
                // user row's lock (the same guarded UPDATE as apply_credits).
                let balance: Option<i64> = sqlx::query_scalar(
                    "UPDATE users SET credits = credits - $2 WHERE id = $1 AND credits >= $2 RETURNING credits",
                )
                .bind(&run.user_id)
                .bind(estimate)
                .fetch_optional(&mut *w.tx)
                .await?;
                let Some(balance) = balance else {
                    let current: Option<i64> = sqlx::query_scalar("SELECT credits FROM users WHERE id = $1")
                        .bind(&run.user_id)
                        .fetch_optional(&mut *w.tx)
                        .await?;
                    w.tx.rollback().await?;
                    return Err(match current {
                        None => AccountError::UserNotFound(run.user_id),
                        Some(balance) => AccountError::InsufficientCredits { balance, requested: estimate },
                    });
                };
                // One entry per paid node, chained from the balance before the hold.
                let mut after = balance + estimate;
                for node in run.nodes.iter().filter(|node| node.cost > 0) {
                    after -= node.cost;
                    let reason = format!("run {}: hold for {} ({})", run.id, node.node_id, node.node_type);
                    let key = ledger_key(&run.id, &node.node_id, "hold");
                    insert_ledger(&mut w.tx, &run.user_id, -node.cost, after, &reason, &key, now).await?;
                }
            }
            for node in &run.nodes {
                let hold = if node.cost > 0 { HoldState::Pending } else { HoldState::None };
                sqlx::query(
                    "INSERT INTO run_nodes (run_id, node_id, node_type, state, cost, charged, hold_state,
                         hold_expires_at, params)
                     VALUES ($1, $2, $3, 'queued', $4, 0, $5, $6, $7)",
                )
                .bind(&run.id)
                .bind(&node.node_id)
                .bind(&node.node_type)
                .bind(node.cost)
                .bind(hold.as_str())
                .bind(run.hold_expires_at)
                .bind(&node.params)
                .execute(&mut *w.tx)
                .await?;
            }
            sqlx::query("INSERT INTO run_outbox (run_id, created_at) VALUES ($1, $2)")
                .bind(&run.id)
                .bind(now)
                .execute(&mut *w.tx)
                .await?;
            w.tx.commit().await?;
            Ok(Submission::Created(Run::try_from(created)?))
        }

        async fn settle_now(
            this: &$store,
            run_id: &str,
            node_id: &str,
            settlement: NodeSettlement,
        ) -> Result<bool, AccountError> {
            let now = now_millis();
            let mut w: Tx = this.begin_write().await?;
            let Some((_, user_id)) = lock_run(&mut w.tx, run_id).await? else {
                w.tx.rollback().await?;
                return Ok(false);
            };
            // The guard on the state is what makes replays harmless: a final node matches
            // nothing, so nothing below runs twice.
            let settled: Option<SettledNode> = sqlx::query_as(
                "UPDATE run_nodes SET state = $3, outputs = $4, error = $5, finished_at = $6
                 WHERE run_id = $1 AND node_id = $2 AND state IN ('queued', 'running')
                 RETURNING node_type, cost, hold_state",
            )
            .bind(run_id)
            .bind(node_id)
            .bind(&settlement.state)
            .bind(&settlement.outputs)
            .bind(&settlement.error)
            .bind(now)
            .fetch_optional(&mut *w.tx)
            .await?;
            let Some(settled) = settled else {
                w.tx.rollback().await?;
                return Ok(false);
            };
            if settled.cost > 0 && parse_hold(settled.hold_state)? == HoldState::Pending {
                resolve_hold(&mut w.tx, run_id, &user_id, node_id, &settled.node_type, settlement.capture, now)
                    .await?;
            }
            w.tx.commit().await?;
            Ok(true)
        }

        async fn finish_now(
            this: &$store,
            id: &str,
            status: RunStatus,
            error: Option<&str>,
        ) -> Result<Run, AccountError> {
            let mut w: Tx = this.begin_write().await?;
            match finish_locked(&mut w.tx, id, status, error, now_millis()).await? {
                Some((run, _)) => {
                    w.tx.commit().await?;
                    Ok(run)
                }
                None => {
                    w.tx.rollback().await?;
                    Err(AccountError::RunNotFound(id.to_owned()))
                }
            }
        }

        async fn request_cancel_now(this: &$store, id: &str) -> Result<Option<Run>, AccountError> {
            let now = now_millis();
            let mut w: Tx = this.begin_write().await?;
            let flagged: Option<(String, Option<i64>)> = sqlx::query_as(
                "UPDATE runs SET cancel_requested = 1
                 WHERE id = $1 AND status IN ('queued', 'running')
                 RETURNING status, lease_expires_at",
            )
            .bind(id)
            .fetch_optional(&mut *w.tx)
            .await?;
            let run = match flagged {
                // Nobody will run it: finish it now, which releases its holds.
                Some((status, lease))
                    if RunStatus::parse(&status) == Some(RunStatus::Queued)
                        && lease.is_none_or(|expires| expires <= now) =>
                {
                    finish_locked(&mut w.tx, id, RunStatus::Cancelled, None, now).await?.map(|(run, _)| run)
                }
                // Its worker sees the flag and stops; a final or missing run is as it is.
                _ => fetch_run(&mut w.tx, id).await?,
            };
            w.tx.commit().await?;
            Ok(run)
        }

        async fn expire_holds_now(this: &$store, now: i64) -> Result<u64, AccountError> {
            let mut released = 0u64;
            loop {
                let runs: Vec<String> = sqlx::query_scalar(
                    "SELECT DISTINCT run_id FROM run_nodes
                     WHERE hold_state = 'pending' AND hold_expires_at < $1
                     ORDER BY run_id LIMIT 100",
                )
                .bind(now)
                .fetch_all(this.pool())
                .await?;
                if runs.is_empty() {
                    return Ok(released);
                }
                let mut progress = false;
                for run_id in runs {
                    // One transaction per run, so a long sweep never holds many locks.
                    let mut w: Tx = this.begin_write().await?;
                    if lock_run(&mut w.tx, &run_id).await?.is_none() {
                        w.tx.rollback().await?;
                        continue;
                    }
                    // Checked again under the run's lock: a worker may have settled the holds
                    // between the scan and now.
                    let stale: Option<i32> = sqlx::query_scalar(
                        "SELECT 1 FROM run_nodes
                         WHERE run_id = $1 AND hold_state = 'pending' AND hold_expires_at < $2 LIMIT 1",
                    )
                    .bind(&run_id)
                    .bind(now)
                    .fetch_optional(&mut *w.tx)
                    .await?;
                    if stale.is_none() {
                        w.tx.rollback().await?;
                        progress = true;
                        continue;
                    }
                    let finished = finish_locked(
                        &mut w.tx,
                        &run_id,
                        RunStatus::Failed,
                        Some("credit hold expired"),
                        now_millis(),
                    )
                    .await?;
                    w.tx.commit().await?;
                    if let Some((_, count)) = finished {
                        released += count;
                        progress |= count > 0;
                    }
                }
                // A pending hold on a run that is already final cannot be released by
                // finishing it; stop rather than scan the same rows forever.
                if !progress {
                    return Ok(released);
                }
            }
        }

        #[async_trait::async_trait]
        impl RunStore for $store {
            async fn create_run(&self, run: NewRun) -> Result<Submission, AccountError> {
                let estimate = validate_new_run(&run)?;
                // A retry finds its run without taking any lock.
                if let Some(key) = &run.idempotency_key {
                    let mut conn = self.pool().acquire().await?;
                    if let Some(existing) = run_by_key(&mut conn, &run.user_id, key).await? {
                        return Ok(Submission::Existing(existing));
                    }
                }
                let this = self.clone();
                run_to_completion(async move { create_run_now(&this, run, estimate).await }).await
            }

            async fn run(&self, id: &str) -> Result<Option<Run>, AccountError> {
                let mut conn = self.pool().acquire().await?;
                fetch_run(&mut conn, id).await
            }

            async fn run_nodes(&self, id: &str) -> Result<Vec<RunNode>, AccountError> {
                let rows: Vec<NodeRow> = sqlx::query_as(concat!(
                    "SELECT ",
                    node_columns!(),
                    " FROM run_nodes WHERE run_id = $1 ORDER BY node_id"
                ))
                .bind(id)
                .fetch_all(self.pool())
                .await?;
                rows.into_iter().map(RunNode::try_from).collect()
            }

            async fn list_runs(&self, room: &str, limit: u32) -> Result<Vec<Run>, AccountError> {
                let rows: Vec<RunRow> = sqlx::query_as(concat!(
                    "SELECT ",
                    run_columns!(),
                    " FROM runs WHERE room = $1 ORDER BY created_at DESC, id DESC LIMIT $2"
                ))
                .bind(room)
                .bind(i64::from(limit))
                .fetch_all(self.pool())
                .await?;
                decode_runs(rows)
            }

            async fn claim_run(
                &self,
                id: &str,
                worker: &str,
                lease_ms: i64,
                per_user_limit: Option<u32>,
            ) -> Result<Claim, AccountError> {
                validate_id("worker", worker)?;
                if lease_ms <= 0 {
                    return Err(invalid("lease_ms", "not positive"));
                }
                let (this, id, worker) = (self.clone(), id.to_owned(), worker.to_owned());
                run_to_completion(async move {
                    let now = now_millis();
                    let mut w: Tx = this.begin_write().await?;
                    // Lock order: the run row, then the user row (see the module comment).
                    let locked = lock_run(&mut w.tx, &id).await?;
                    let Some((_, user)) = locked.filter(|(status, _)| !status.is_final()) else {
                        w.tx.rollback().await?;
                        return Ok(Claim::Gone);
                    };
                    if let Some(limit) = per_user_limit {
                        // Serialises the claims of this user's runs, so the count stays true
                        // until this transaction commits.
                        add_credits(&mut w.tx, &user, 0).await?;
                        let running: i64 = sqlx::query_scalar(
                            "SELECT COUNT(*) FROM runs
                             WHERE user_id = $1 AND status = 'running' AND id <> $2 AND lease_expires_at > $3",
                        )
                        .bind(&user)
                        .bind(&id)
                        .bind(now)
                        .fetch_one(&mut *w.tx)
                        .await?;
                        if running >= i64::from(limit) {
                            w.tx.commit().await?;
                            return Ok(Claim::UserBusy);
                        }
                    }
                    let row: Option<RunRow> = sqlx::query_as(concat!(
                        "UPDATE runs SET status = 'running', lease_owner = $2, lease_expires_at = $3,
                             attempts = attempts + 1, started_at = COALESCE(started_at, $4)
                         WHERE id = $1 AND (status = 'queued'
                             OR (status = 'running' AND (lease_expires_at IS NULL OR lease_expires_at <= $4)))
                         RETURNING ",
                        run_columns!()
                    ))
                    .bind(&id)
                    .bind(&worker)
                    .bind(now.saturating_add(lease_ms))
                    .bind(now)
                    .fetch_optional(&mut *w.tx)
                    .await?;
                    w.tx.commit().await?;
                    match row {
                        Some(row) => Ok(Claim::Claimed(Box::new(Run::try_from(row)?))),
                        None => Ok(Claim::Leased),
                    }
                })
                .await
            }

            async fn renew_lease(&self, id: &str, worker: &str, lease_ms: i64) -> Result<bool, AccountError> {
                if lease_ms <= 0 {
                    return Err(invalid("lease_ms", "not positive"));
                }
                let (this, id, worker) = (self.clone(), id.to_owned(), worker.to_owned());
                run_to_completion(async move {
                    let mut w: Tx = this.begin_write().await?;
                    let renewed = sqlx::query(
                        "UPDATE runs SET lease_expires_at = $3
                         WHERE id = $1 AND lease_owner = $2 AND status = 'running'",
                    )
                    .bind(&id)
                    .bind(&worker)
                    .bind(now_millis().saturating_add(lease_ms))
                    .execute(&mut *w.tx)
                    .await?
                    .rows_affected();
                    w.tx.commit().await?;
                    Ok(renewed > 0)
                })
                .await
            }

            async fn orphaned_runs(&self, older_than: i64, limit: u32) -> Result<Vec<Run>, AccountError> {
                let rows: Vec<RunRow> = sqlx::query_as(concat!(
                    "SELECT ",
                    run_columns!(),
                    " FROM runs
                     WHERE (status = 'queued' AND created_at < $1)
                        OR (status = 'running' AND (lease_expires_at IS NULL OR lease_expires_at < $1))
                     ORDER BY created_at, id LIMIT $2"
                ))
                .bind(older_than)
                .bind(i64::from(limit))
                .fetch_all(self.pool())
                .await?;
                decode_runs(rows)
            }

            async fn mark_node(&self, run_id: &str, node_id: &str, state: &str) -> Result<(), AccountError> {
                if !matches!(state, "queued" | "running") {
                    return Err(invalid("state", "not an active node state"));
                }
                let this = self.clone();
                let (run_id, node_id, state) = (run_id.to_owned(), node_id.to_owned(), state.to_owned());
                run_to_completion(async move {
                    let mut w: Tx = this.begin_write().await?;
                    sqlx::query(
                        "UPDATE run_nodes SET state = $3,
                             started_at = CASE WHEN $3 = 'running' THEN COALESCE(started_at, $4) ELSE started_at END
                         WHERE run_id = $1 AND node_id = $2 AND state IN ('queued', 'running')",
                    )
                    .bind(&run_id)
                    .bind(&node_id)
                    .bind(&state)
                    .bind(now_millis())
                    .execute(&mut *w.tx)
                    .await?;
                    w.tx.commit().await?;
                    Ok(())
                })
                .await
            }

            async fn settle_node(
                &self,
                run_id: &str,
                node_id: &str,
                settlement: NodeSettlement,
            ) -> Result<bool, AccountError> {
                validate_settlement(&settlement)?;
                let (this, run_id, node_id) = (self.clone(), run_id.to_owned(), node_id.to_owned());
                run_to_completion(async move { settle_now(&this, &run_id, &node_id, settlement).await }).await
            }

            async fn finish_run(
                &self,
                id: &str,
                status: RunStatus,
                error: Option<&str>,
            ) -> Result<Run, AccountError> {
                if !status.is_final() {
                    return Err(invalid("status", "not a final run status"));
                }
                let (this, id, error) = (self.clone(), id.to_owned(), error.map(str::to_owned));
                run_to_completion(async move { finish_now(&this, &id, status, error.as_deref()).await }).await
            }

            async fn request_cancel(&self, id: &str) -> Result<Option<Run>, AccountError> {
                let (this, id) = (self.clone(), id.to_owned());
                run_to_completion(async move { request_cancel_now(&this, &id).await }).await
            }

            async fn expire_holds(&self, now: i64) -> Result<u64, AccountError> {
                let this = self.clone();
                run_to_completion(async move { expire_holds_now(&this, now).await }).await
            }

            async fn outbox(&self, limit: u32) -> Result<Vec<OutboxEntry>, AccountError> {
                let rows: Vec<(i64, String)> =
                    sqlx::query_as("SELECT id, run_id FROM run_outbox ORDER BY id LIMIT $1")
                        .bind(i64::from(limit))
                        .fetch_all(self.pool())
                        .await?;
                Ok(rows.into_iter().map(|(id, run_id)| OutboxEntry { id, run_id }).collect())
            }

            async fn delete_outbox(&self, ids: &[i64]) -> Result<(), AccountError> {
                if ids.is_empty() {
                    return Ok(());
                }
                let (this, ids) = (self.clone(), ids.to_vec());
                run_to_completion(async move {
                    let mut w: Tx = this.begin_write().await?;
                    // One statement per id: the same text on both databases (no arrays in
                    // SQLite), and the relay deletes a handful at a time.
                    for id in ids {
                        sqlx::query("DELETE FROM run_outbox WHERE id = $1")
                            .bind(id)
                            .execute(&mut *w.tx)
                            .await?;
                    }
                    w.tx.commit().await?;
                    Ok(())
                })
                .await
            }

            async fn record_asset(&self, asset: &AssetRecord, link: &AssetLink) -> Result<(), AccountError> {
                validate_asset(asset, link)?;
                let (this, asset, link) = (self.clone(), asset.clone(), link.clone());
                run_to_completion(async move {
                    let mut w: Tx = this.begin_write().await?;
                    insert_asset(&mut *w.tx, &asset, &link).await?;
                    w.tx.commit().await?;
                    Ok(())
                })
                .await
            }

            async fn record_upload(
                &self,
                asset: &AssetRecord,
                link: &AssetLink,
                quota: i64,
            ) -> Result<(), AccountError> {
                validate_asset(asset, link)?;
                let (this, asset, link) = (self.clone(), asset.clone(), link.clone());
                run_to_completion(async move {
                    let mut w: Tx = this.begin_write().await?;
                    // The owner's row lock queues their concurrent uploads (a no-op update is
                    // the one row lock both databases spell the same way).
                    sqlx::query("UPDATE users SET updated_at = updated_at WHERE id = $1")
                        .bind(&link.owner_id)
                        .execute(&mut *w.tx)
                        .await?;
                    insert_asset(&mut *w.tx, &asset, &link).await?;
                    let used = owned_bytes(&mut *w.tx, &link.owner_id).await?;
                    if used > quota {
                        w.tx.rollback().await?;
                        return Err(AccountError::StorageQuotaExceeded { used, quota });
                    }
                    w.tx.commit().await?;
                    Ok(())
                })
                .await
            }

            async fn storage_used(&self, owner_id: &str) -> Result<i64, AccountError> {
                let mut conn = self.pool().acquire().await?;
                owned_bytes(&mut *conn, owner_id).await
            }

            async fn asset(&self, id: &str) -> Result<Option<AssetRecord>, AccountError> {
                let row: Option<AssetRow> =
                    sqlx::query_as("SELECT id, content_type, size, created_at FROM assets WHERE id = $1")
                        .bind(id)
                        .fetch_optional(self.pool())
                        .await?;
                Ok(row.map(|row| AssetRecord {
                    id: row.id,
                    content_type: row.content_type,
                    size: row.size,
                    created_at: row.created_at,
                }))
            }

            async fn asset_links(&self, id: &str, limit: u32) -> Result<Vec<AssetLink>, AccountError> {
                let rows: Vec<LinkRow> = sqlx::query_as(
                    "SELECT owner_id, room, run_id, node_id FROM asset_links WHERE asset_id = $1
                     ORDER BY created_at, owner_id, room, run_id, node_id LIMIT $2",
                )
                .bind(id)
                .bind(i64::from(limit))
                .fetch_all(self.pool())
                .await?;
                Ok(rows
                    .into_iter()
                    .map(|row| AssetLink {
                        owner_id: row.owner_id,
                        room: row.room,
                        run_id: row.run_id,
                        node_id: row.node_id,
                    })
                    .collect())
            }

            async fn cached_outputs(&self, scope: &str, key: &str) -> Result<Option<String>, AccountError> {
                let outputs: Option<String> =
                    sqlx::query_scalar("SELECT outputs FROM node_cache WHERE scope = $1 AND key = $2")
                        .bind(scope)
                        .bind(key)
                        .fetch_optional(self.pool())
                        .await?;
                Ok(outputs)
            }

            async fn cache_outputs(&self, scope: &str, key: &str, outputs: &str) -> Result<(), AccountError> {
                validate_id("scope", scope)?;
                validate_id("key", key)?;
                if outputs.len() > MAX_CACHED_OUTPUTS {
                    return Err(invalid("outputs", "too large to cache"));
                }
                let (this, scope, key, outputs) = (self.clone(), scope.to_owned(), key.to_owned(), outputs.to_owned());
                run_to_completion(async move {
                    let mut w: Tx = this.begin_write().await?;
                    sqlx::query(
                        "INSERT INTO node_cache (scope, key, outputs, created_at) VALUES ($1, $2, $3, $4)
                         ON CONFLICT (scope, key) DO UPDATE SET outputs = excluded.outputs,
                             created_at = excluded.created_at",
                    )
                    .bind(&scope)
                    .bind(&key)
                    .bind(&outputs)
                    .bind(now_millis())
                    .execute(&mut *w.tx)
                    .await?;
                    w.tx.commit().await?;
                    Ok(())
                })
                .await
            }

            async fn prune_cache(&self, older_than: i64) -> Result<u64, AccountError> {
                let this = self.clone();
                run_to_completion(async move {
                    let mut w: Tx = this.begin_write().await?;
                    let deleted = sqlx::query("DELETE FROM node_cache WHERE created_at < $1")
                        .bind(older_than)
                        .execute(&mut *w.tx)
                        .await?
                        .rows_affected();
                    w.tx.commit().await?;
                    Ok(deleted)
                })
                .await
            }
        }
    };
}

mod postgres {
    run_store!(crate::PostgresAccounts, sqlx::PgConnection, sqlx::Postgres);
}

mod sqlite {
    run_store!(crate::SqliteAccounts, sqlx::SqliteConnection, sqlx::Sqlite);
}
