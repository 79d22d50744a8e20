//! A run's credit holds after it was accepted: each node's pending hold captured or released
//! exactly once (by its settlement, or by the sweeper when it expires), with its ledger entry in
//! the same transaction. The lock order is `runs.rs`'s.

use dojo_ids::{TeamId, UserId};

use super::{Conn, Store, ledger, runs, team_credits};
use crate::dialect::Dialect;
use crate::ledger::NewEntry;
use crate::run_records::{SettledNode, ledger_key, parse_hold};
use crate::runs::{HoldState, NodeSettlement, RunStatus};
use crate::{AccountError, now_millis};

/// Resolves a node's pending hold, once: its hold state (only `pending` matches) and
/// its ledger entry change together, on the account the run's holds came from (the user's, or
/// `billed`, a team's). Called with the run and node rows locked.
pub(super) async fn resolve_hold(
    conn: &mut Conn,
    run_id: &str,
    (user_id, billed): (&UserId, Option<&TeamId>),
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
    if ledger::by_key(conn, &key).await?.is_some() {
        return Ok(());
    }
    if capture {
        sqlx::query("UPDATE runs SET charged = charged + $2 WHERE id = $1")
            .bind(run_id)
            .bind(cost)
            .execute(&mut *conn)
            .await?;
        // Amount 0: the hold already took the credits. The UPDATE only locks the account's
        // row so that balance_after is the balance in ledger order.
        let Some(balance) = team_credits::add_to_account(conn, user_id, billed, 0).await? else {
            return Ok(());
        };
        let reason = format!("run {run_id}: charge for {node_id} ({node_type})");
        ledger::append(
            conn,
            &NewEntry {
                user_id,
                amount: 0,
                balance_after: balance,
                reason: &reason,
                key: &key,
                created_at: now,
                team_id: billed,
            },
        )
        .await?;
    } else {
        let Some(balance) = team_credits::add_to_account(conn, user_id, billed, cost).await? else {
            return Ok(());
        };
        let reason = format!("run {run_id}: release {node_id} ({node_type})");
        ledger::append(
            conn,
            &NewEntry {
                user_id,
                amount: cost,
                balance_after: balance,
                reason: &reason,
                key: &key,
                created_at: now,
                team_id: billed,
            },
        )
        .await?;
    }
    Ok(())
}

pub(super) async fn settle(
    this: &Store,
    run_id: &str,
    node_id: &str,
    settlement: NodeSettlement,
) -> Result<bool, AccountError> {
    let now = now_millis();
    let mut w = this.begin_write().await?;
    let Some((_, user_id, billed)) = runs::lock_run(&mut w.tx, run_id).await? else {
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
    .bind(settlement.state.as_str())
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
        resolve_hold(
            &mut w.tx,
            run_id,
            (&user_id, billed.as_ref()),
            node_id,
            &settled.node_type,
            settlement.capture,
            now,
        )
        .await?;
    }
    w.tx.commit().await?;
    Ok(true)
}

pub(super) async fn expire(this: &Store, now: i64) -> Result<u64, AccountError> {
    let mut released = 0u64;
    loop {
        let run_ids: Vec<String> = sqlx::query_scalar(
            "SELECT DISTINCT run_id FROM run_nodes
             WHERE hold_state = 'pending' AND hold_expires_at < $1
             ORDER BY run_id LIMIT 100",
        )
        .bind(now)
        .fetch_all(this.pool())
        .await?;
        if run_ids.is_empty() {
            return Ok(released);
        }
        let mut progress = false;
        for run_id in run_ids {
            // One transaction per run, so a long sweep never holds many locks.
            let mut w = this.begin_write().await?;
            if runs::lock_run(&mut w.tx, &run_id).await?.is_none() {
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
            let finished = runs::finish_locked(
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
