//! Runs' statements: accepting a run with its credit hold, reading runs and their nodes, and
//! finishing or cancelling one.
//!
//! Lock order on PostgreSQL, which every write that touches a run's money follows (here, in
//! `holds.rs` and `leases.rs`) so that two of them can never wait on each other: the run row,
//! then its node rows, then the user row. A settle and a finish (or the expiry sweeper) of the
//! same run therefore queue on the run row, and whichever comes second sees the node states the
//! first one committed: a pending hold resolves exactly once.

use dojo_ids::{RunId, TeamId, UserId};

use super::{Conn, Store, ledger, outbox, team_credits};
use crate::dialect::Dialect;
use crate::ledger::NewEntry;
use crate::run_records::{NodeRow, ReleasedHold, RunRow, decode_runs, invalid, ledger_key, parse_status};
use crate::runs::{HoldState, NewRun, Run, RunNode, RunNodeState, RunStatus, Submission};
use crate::{AccountError, now_millis, quota_full};

pub(super) async fn by_id(conn: &mut Conn, id: &str) -> Result<Option<Run>, AccountError> {
    let row: Option<RunRow> = sqlx::query_as(concat!("SELECT ", run_columns!(), " FROM runs WHERE id = $1"))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    row.map(Run::try_from).transpose()
}

pub(super) async fn by_key(
    conn: &mut Conn,
    user_id: &UserId,
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

/// Locks the run row (the first lock of every write that touches a run's money) and
/// returns its status, its user and the team its holds were taken from (`None`: the user).
pub(super) async fn lock_run(conn: &mut Conn, id: &str) -> Result<Option<LockedRun>, AccountError> {
    let row: Option<(String, UserId, Option<TeamId>)> = sqlx::query_as(
        "UPDATE runs SET status = status WHERE id = $1 RETURNING status, user_id, billed_team_id",
    )
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    row.map(|(status, user, team)| Ok((parse_status(status)?, user, team))).transpose()
}

/// What [`lock_run`] returns: status, user, and the team billed (`None`: the user).
pub(super) type LockedRun = (RunStatus, UserId, Option<TeamId>);

/// Finishes an active run inside `conn`'s transaction; a final run is returned as it is.
/// Returns the run and how many holds were released, or `None` without such a run.
pub(super) async fn finish_locked(
    conn: &mut Conn,
    id: &str,
    status: RunStatus,
    error: Option<&str>,
    now: i64,
) -> Result<Option<(Run, u64)>, AccountError> {
    let Some((current, user_id, billed)) = lock_run(conn, id).await? else { return Ok(None) };
    if current.is_final() {
        return Ok(by_id(conn, id).await?.map(|run| (run, 0)));
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
        if ledger::by_key(conn, &key).await?.is_none() {
            refunds.push((hold, key));
        }
    }
    let total = refunds
        .iter()
        .try_fold(0i64, |sum, (hold, _)| sum.checked_add(hold.cost))
        .ok_or(invalid("cost", "the total is out of range"))?;
    // A team deleted meanwhile took its balance with it: nothing to refund to.
    let refunded = if total > 0 {
        team_credits::add_to_account(conn, &user_id, billed.as_ref(), total).await?
    } else {
        None
    };
    if let Some(after_all) = refunded {
        // One balance change for all the refunds; the entries then chain from the
        // balance before it, each adding its node's cost.
        let mut balance = after_all - total;
        for (hold, key) in &refunds {
            balance += hold.cost;
            let reason = format!("run {id}: release {} ({})", hold.node_id, hold.node_type);
            ledger::append(
                conn,
                &NewEntry {
                    user_id: &user_id,
                    amount: hold.cost,
                    balance_after: balance,
                    reason: &reason,
                    key,
                    created_at: now,
                    team_id: billed.as_ref(),
                },
            )
            .await?;
        }
    }
    let leftover =
        if status == RunStatus::Cancelled { RunNodeState::Cancelled } else { RunNodeState::Skipped };
    sqlx::query(
        "UPDATE run_nodes SET state = $2, finished_at = $3
         WHERE run_id = $1 AND state IN ('queued', 'running')",
    )
    .bind(id)
    .bind(leftover.as_str())
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

pub(super) async fn create(this: &Store, run: NewRun, estimate: i64) -> Result<Submission, AccountError> {
    let now = now_millis();
    let mut w = this.begin_write().await?;
    let created = match accept(&mut w.tx, &run, estimate, now).await {
        Ok(Accepted::Created(created)) => created,
        Ok(Accepted::Conflict) => {
            w.tx.rollback().await?;
            // Let go of SQLite's write lock before taking another connection: nothing
            // below writes.
            drop(w._lock);
            let mut conn = this.pool().acquire().await?;
            if let Some(key) = &run.idempotency_key
                && let Some(existing) = by_key(&mut conn, &run.user_id, key).await?
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
        }
        Err(refused) => {
            w.tx.rollback().await?;
            return Err(refused);
        }
    };
    w.tx.commit().await?;
    Ok(Submission::Created(Run::try_from(*created)?))
}

/// What [`accept`] did.
pub(super) enum Accepted {
    Created(Box<RunRow>),
    /// Nothing inserted: the idempotency key or the id is taken, or the user is unknown.
    Conflict,
}

/// What `runs.granted_assets` holds for `run`: a JSON array, or NULL for none.
fn granted_json(run: &NewRun) -> Option<String> {
    if run.granted_assets.is_empty() {
        return None;
    }
    serde_json::to_string(&run.granted_assets).ok()
}

/// Accepts `run` inside `conn`'s transaction: its row, the quota and queue checks, the hold
/// with its ledger entries, its node rows and its outbox row. On an error the caller rolls
/// back (a batch accepts all its members in one transaction this way).
pub(super) async fn accept(
    conn: &mut Conn,
    run: &NewRun,
    estimate: i64,
    now: i64,
) -> Result<Accepted, AccountError> {
    // The run row first: a concurrent submission with the same key waits here on the
    // unique index until this one commits, then inserts nothing and returns this run,
    // so it never reaches the hold below.
    let created: Option<RunRow> = sqlx::query_as(concat!(
        "INSERT INTO runs (id, room, user_id, status, graph, targets, idempotency_key, estimate,
             charged, cancel_requested, attempts, created_at, team_id, billed_team_id, priority,
             queue_rank, run_limit, max_run_ms, granted_assets)
         SELECT $1, $2, $3, 'queued', $4, $5, $6, $7, 0, 0, 0, $8, $9, $9, $10, 0, $11, $12, $13
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
    .bind(&run.team_id)
    .bind(run.queue.priority)
    .bind(run.queue.run_limit.map(i64::from))
    .bind(run.queue.max_run_ms)
    .bind(granted_json(run))
    .fetch_optional(&mut *conn)
    .await?;
    let Some(created) = created else { return Ok(Accepted::Conflict) };
    // A flagged account starts nothing that costs credits (docs/agents.md, the fraud agent);
    // checked in the transaction that takes the holds (a batch's members too), so no path
    // around it exists.
    if estimate > 0 && super::fraud::blocked(&mut *conn, &run.user_id).await? {
        return Err(AccountError::UnderReview);
    }
    if let Some(limit) = run.max_unfinished {
        // Counted under the user row's lock (taken by a no-op update, which both
        // databases accept; SQLite's write lock already serialises), in the lock order
        // above: concurrent submissions by one user each count those before them.
        sqlx::query("UPDATE users SET credits = credits WHERE id = $1")
            .bind(&run.user_id)
            .execute(&mut *conn)
            .await?;
        let unfinished: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM runs
             WHERE user_id = $1 AND status IN ('queued', 'running') AND id <> $2",
        )
        .bind(&run.user_id)
        .bind(&run.id)
        .fetch_one(&mut *conn)
        .await?;
        if quota_full(unfinished, limit) {
            return Err(AccountError::QuotaExceeded { what: "queued or running runs", limit });
        }
    }
    if let Some(limit) = run.queue.max_queued {
        // Under the user row's lock like the quota above, so concurrent submissions of one
        // user each count those before them.
        sqlx::query("UPDATE users SET credits = credits WHERE id = $1")
            .bind(&run.user_id)
            .execute(&mut *conn)
            .await?;
        let queued: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM runs WHERE user_id = $1 AND status = 'queued' AND id <> $2",
        )
        .bind(&run.user_id)
        .bind(&run.id)
        .fetch_one(&mut *conn)
        .await?;
        if quota_full(queued, limit) {
            let position =
                super::queue_order::position_of_new(conn, run.queue.priority, run.id.as_str()).await?;
            return Err(AccountError::QueueFull { limit, position });
        }
    }
    // A run of a team's workflow is paid by the team (its holds, captures and releases move
    // the team's balance); the run row says so in billed_team_id, set above.
    let billed = run.team_id.clone();
    if estimate > 0 {
        // The whole estimate at once, decided and written in one statement under the
        // account row's lock (the same guarded UPDATE as apply_credits).
        let balance = team_credits::take_hold(conn, &run.user_id, billed.as_ref(), estimate, now).await?;
        // One entry per paid node, chained from the balance before the hold.
        let mut after = balance + estimate;
        for node in run.nodes.iter().filter(|node| node.cost > 0) {
            after -= node.cost;
            let reason = format!("run {}: hold for {} ({})", run.id, node.node_id, node.node_type);
            let key = ledger_key(run.id.as_str(), node.node_id.as_str(), "hold");
            ledger::append(
                conn,
                &NewEntry {
                    user_id: &run.user_id,
                    amount: -node.cost,
                    balance_after: after,
                    reason: &reason,
                    key: &key,
                    created_at: now,
                    team_id: billed.as_ref(),
                },
            )
            .await?;
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
        .execute(&mut *conn)
        .await?;
    }
    outbox::enqueue(conn, run.id.as_str(), now).await?;
    Ok(Accepted::Created(Box::new(created)))
}

pub(super) async fn finish(
    this: &Store,
    id: &str,
    status: RunStatus,
    error: Option<&str>,
) -> Result<Run, AccountError> {
    let mut w = this.begin_write().await?;
    match finish_locked(&mut w.tx, id, status, error, now_millis()).await? {
        Some((run, _)) => {
            w.tx.commit().await?;
            Ok(run)
        }
        None => {
            w.tx.rollback().await?;
            Err(AccountError::RunNotFound(RunId::from(id)))
        }
    }
}

pub(super) async fn request_cancel(this: &Store, id: &str) -> Result<Option<Run>, AccountError> {
    let now = now_millis();
    let mut w = this.begin_write().await?;
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
        _ => by_id(&mut w.tx, id).await?,
    };
    w.tx.commit().await?;
    Ok(run)
}

/// Nodes in node id order.
pub(super) async fn nodes(store: &Store, id: &str) -> Result<Vec<RunNode>, AccountError> {
    let rows: Vec<NodeRow> = sqlx::query_as(concat!(
        "SELECT ",
        node_columns!(),
        " FROM run_nodes WHERE run_id = $1 ORDER BY node_id"
    ))
    .bind(id)
    .fetch_all(store.pool())
    .await?;
    rows.into_iter().map(RunNode::try_from).collect()
}

/// A room's runs, newest first.
pub(super) async fn list(store: &Store, room: &str, limit: u32) -> Result<Vec<Run>, AccountError> {
    let rows: Vec<RunRow> = sqlx::query_as(concat!(
        "SELECT ",
        run_columns!(),
        " FROM runs WHERE room = $1 ORDER BY created_at DESC, id DESC LIMIT $2"
    ))
    .bind(room)
    .bind(i64::from(limit))
    .fetch_all(store.pool())
    .await?;
    decode_runs(rows)
}

/// Records a non-final state of a node (validated by the caller); a final node is left alone.
pub(super) async fn mark_node(
    store: &Store,
    run_id: &str,
    node_id: &str,
    state: RunNodeState,
) -> Result<(), AccountError> {
    let mut w = store.begin_write().await?;
    sqlx::query(
        "UPDATE run_nodes SET state = $3,
             started_at = CASE WHEN $3 = 'running' THEN COALESCE(started_at, $4) ELSE started_at END
         WHERE run_id = $1 AND node_id = $2 AND state IN ('queued', 'running')",
    )
    .bind(run_id)
    .bind(node_id)
    .bind(state.as_str())
    .bind(now_millis())
    .execute(&mut *w.tx)
    .await?;
    w.tx.commit().await?;
    Ok(())
}
