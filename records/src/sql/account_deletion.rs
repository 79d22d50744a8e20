//! Deleting an account, in one write transaction: everything personal goes, what the law keeps
//! (ledger, audit log) is handed to a pseudonym, and a team's shared work stays with the team.
//! The rules, and why, are in `docs/data-rights.md`; a test searches every text column of every
//! table for the user's id, email and name afterwards (`server/tests/data_rights.rs`).

use dojo_ids::UserId;

use super::data_rights::plan;
use super::{Conn, Store};
use crate::data_rights::DeletedAccount;
use crate::dialect::Dialect;
use crate::{AccountError, now_millis};

/// Runs `sql` with `$1` = the user, `$2` = the pseudonym.
async fn exec(
    conn: &mut Conn,
    sql: &'static str,
    user: &UserId,
    pseudonym: &str,
) -> Result<(), AccountError> {
    sqlx::query(sql).bind(user).bind(pseudonym).execute(&mut *conn).await?;
    Ok(())
}

/// Replaces `text` by `pseudonym` wherever the columns that quote people hold it (audit
/// details, the change feed's payloads).
async fn replace_quoted(conn: &mut Conn, text: &str, pseudonym: &str) -> Result<(), AccountError> {
    if text.is_empty() {
        return Ok(());
    }
    sqlx::query("UPDATE audit_log SET detail = REPLACE(detail, $1, $2) WHERE detail LIKE '%' || $1 || '%'")
        .bind(text)
        .bind(pseudonym)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "UPDATE workflow_events SET payload = REPLACE(payload, $1, $2) WHERE payload LIKE '%' || $1 || '%'",
    )
    .bind(text)
    .bind(pseudonym)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub(super) async fn delete(
    store: &Store,
    user: &UserId,
    token_hash: &str,
    pseudonym: &str,
) -> Result<DeletedAccount, AccountError> {
    let mut w = store.begin_write().await?;
    let conn: &mut Conn = &mut w.tx;
    let pending: Option<(String, i64)> =
        sqlx::query_as("SELECT token_hash, expires_at FROM account_deletions WHERE user_id = $1")
            .bind(user)
            .fetch_optional(&mut *conn)
            .await?;
    let now = now_millis();
    let confirmed = pending.is_some_and(|(hash, expires_at)| hash == token_hash && expires_at > now);
    if !confirmed {
        w.tx.rollback().await?;
        return Err(AccountError::DeletionNotConfirmed);
    }
    // The user's row lock first: credit changes and run submissions take it too, so the balance
    // and the plan read below cannot move before this commits.
    let _locked: Option<i32> =
        sqlx::query_scalar(Store::LOCK_USER).bind(user).fetch_optional(&mut *conn).await?;
    let profile: Option<(Option<String>, Option<String>, i64)> =
        sqlx::query_as("SELECT email, name, credits FROM users WHERE id = $1")
            .bind(user)
            .fetch_optional(&mut *conn)
            .await?;
    let Some((email, name, credits)) = profile else {
        w.tx.rollback().await?;
        return Err(AccountError::UserNotFound(user.clone()));
    };
    let plan = plan(conn, user).await?;
    if let Some(blocker) = plan.blocker() {
        w.tx.rollback().await?;
        return Err(blocker);
    }

    // Every room they could open, read before their access goes: connections there are
    // checked again once this commits.
    let rooms: Vec<String> = sqlx::query_scalar(
        "SELECT room FROM workflows w WHERE w.deleted_at IS NULL AND (w.owner_id = $1
            OR EXISTS (SELECT 1 FROM workflow_collaborators c WHERE c.workflow_id = w.id AND c.user_id = $1)
            OR w.team_id IN (SELECT team_id FROM team_members WHERE user_id = $1))",
    )
    .bind(user)
    .fetch_all(&mut *conn)
    .await?;
    let sole_teams: Vec<String> = sqlx::query_scalar(
        "SELECT tm.team_id FROM team_members tm WHERE tm.user_id = $1
         AND NOT EXISTS (SELECT 1 FROM team_members o WHERE o.team_id = tm.team_id AND o.user_id <> $1)",
    )
    .bind(user)
    .fetch_all(&mut *conn)
    .await?;
    let doomed: Vec<(String, String)> =
        sqlx::query_as(concat!("SELECT id, room FROM workflows WHERE ", doomed_workflows!()))
            .bind(user)
            .fetch_all(&mut *conn)
            .await?;

    // The pseudonym's row: what the kept ledger entries, handed-on workflows and teams refer to.
    sqlx::query(
        "INSERT INTO users (id, subject, name, email, credits, created_at, updated_at)
         VALUES ($1, $1, NULL, NULL, 0, $2, $2)",
    )
    .bind(pseudonym)
    .bind(now)
    .execute(&mut *conn)
    .await?;

    // Their own workflows: documents, webhooks, events and sharing go; the row stays (its room
    // stays claimed and denied, like any deleted workflow's) without a title or an owner.
    for (workflow, room) in &doomed {
        for sql in [
            "DELETE FROM webhook_endpoints WHERE workflow_id = $1",
            "DELETE FROM workflow_events WHERE workflow_id = $1",
            "DELETE FROM workflow_collaborators WHERE workflow_id = $1",
        ] {
            sqlx::query(sql).bind(workflow).execute(&mut *conn).await?;
        }
        sqlx::query("DELETE FROM documents WHERE room = $1").bind(room).execute(&mut *conn).await?;
        sqlx::query(
            "UPDATE workflows SET owner_id = $2, title = '', team_id = NULL,
                 deleted_at = COALESCE(deleted_at, $3), updated_at = $3
             WHERE id = $1",
        )
        .bind(workflow)
        .bind(pseudonym)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    }
    // What is left of theirs belongs to teams that outlive them: the team keeps it.
    exec(conn, "UPDATE workflows SET owner_id = $2 WHERE owner_id = $1", user, pseudonym).await?;
    exec(conn, "UPDATE webhook_endpoints SET created_by = $2 WHERE created_by = $1", user, pseudonym).await?;
    for team in &sole_teams {
        // Workflows others left in a team that ends with this account become theirs alone.
        sqlx::query("UPDATE workflows SET team_id = NULL WHERE team_id = $1")
            .bind(team)
            .execute(&mut *conn)
            .await?;
        sqlx::query("DELETE FROM teams WHERE id = $1").bind(team).execute(&mut *conn).await?;
    }
    exec(conn, "UPDATE teams SET created_by = $2 WHERE created_by = $1", user, pseudonym).await?;
    exec(conn, "UPDATE team_invitations SET invited_by = $2 WHERE invited_by = $1", user, pseudonym).await?;
    sqlx::query("DELETE FROM team_invitations WHERE invitee_user_id = $1 OR invitee_email = LOWER($2)")
        .bind(user)
        .bind(email.as_deref().unwrap_or(""))
        .execute(&mut *conn)
        .await?;
    // Workflows shared with their address before it had an account (those they sent go with
    // their user row: `invited_by` cascades).
    sqlx::query("DELETE FROM workflow_invitations WHERE email = LOWER($1)")
        .bind(email.as_deref().unwrap_or(""))
        .execute(&mut *conn)
        .await?;
    // Provider keys they set for a team stay the team's; who set them becomes the pseudonym.
    exec(conn, "UPDATE team_provider_keys SET set_by = $2 WHERE set_by = $1", user, pseudonym).await?;
    // Agent jobs a staff member enqueued stay the queue's; who enqueued them becomes the
    // pseudonym (their staff role goes with the user row).
    exec(conn, "UPDATE agent_jobs SET created_by = $2 WHERE created_by = $1", user, pseudonym).await?;
    // Tickets a staff member answered stay their askers'; who answered becomes the pseudonym.
    // (The user's own tickets go with the user row.)
    exec(conn, "UPDATE support_tickets SET answered_by = $2 WHERE answered_by = $1", user, pseudonym).await?;
    for sql in [
        // Apps they published are unpublished, whoever keeps the workflow (App mode).
        "DELETE FROM workflow_apps WHERE published_by = $1",
        "DELETE FROM team_members WHERE user_id = $1",
        "DELETE FROM workflow_collaborators WHERE user_id = $1",
        // No run is active (the plan refused that), so no hold is pending.
        "DELETE FROM runs WHERE user_id = $1",
        "DELETE FROM run_batches WHERE user_id = $1",
        "DELETE FROM node_cache WHERE scope = $1",
    ] {
        sqlx::query(sql).bind(user).execute(&mut *conn).await?;
    }

    // Assets: their links go; bytes nobody else links to go too (after commit, by the caller).
    let linked: Vec<String> =
        sqlx::query_scalar("SELECT DISTINCT asset_id FROM asset_links WHERE owner_id = $1")
            .bind(user)
            .fetch_all(&mut *conn)
            .await?;
    sqlx::query("DELETE FROM asset_links WHERE owner_id = $1").bind(user).execute(&mut *conn).await?;
    let mut orphaned_assets = Vec::new();
    for asset in linked {
        let gone = sqlx::query(
            "DELETE FROM assets WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM asset_links WHERE asset_id = $1)",
        )
        .bind(&asset)
        .execute(&mut *conn)
        .await?
        .rows_affected();
        if gone > 0 {
            orphaned_assets.push(asset);
        }
    }

    // The ledger keeps every entry (accounting law), under the pseudonym, ending with the
    // balance given up, so that it still adds up to the (zero) balance of the pseudonym's row.
    if credits > 0 {
        sqlx::query("UPDATE users SET credits = 0 WHERE id = $1").bind(user).execute(&mut *conn).await?;
        sqlx::query(
            "INSERT INTO credit_ledger (user_id, amount, balance_after, reason, idempotency_key, created_at)
             VALUES ($1, $2, 0, 'account deleted: balance forfeited', $3, $4)",
        )
        .bind(user)
        .bind(-credits)
        .bind(format!("account-deleted:{pseudonym}"))
        .bind(now)
        .execute(&mut *conn)
        .await?;
    }
    // Keys may name the user too (`admin:{user}:…`); the trigger accepts exactly that swap.
    exec(
        conn,
        "UPDATE credit_ledger SET user_id = $2, idempotency_key = REPLACE(idempotency_key, $1, $2)
         WHERE user_id = $1",
        user,
        pseudonym,
    )
    .await?;

    // The audit log keeps what happened (security), with the pseudonym for the person and no
    // address for what they did.
    exec(
        conn,
        "UPDATE audit_log SET
             actor_id = CASE WHEN actor_id = $1 THEN $2 ELSE actor_id END,
             target_id = CASE WHEN target_id = $1 THEN $2 ELSE target_id END,
             client_addr = CASE WHEN actor_id = $1 THEN NULL ELSE client_addr END,
             detail = REPLACE(detail, $1, $2)
         WHERE actor_id = $1 OR target_id = $1 OR detail LIKE '%' || $1 || '%'",
        user,
        pseudonym,
    )
    .await?;
    replace_quoted(conn, user.as_str(), pseudonym).await?;
    if let Some(email) = email.as_deref() {
        replace_quoted(conn, email, pseudonym).await?;
        replace_quoted(conn, &email.to_lowercase(), pseudonym).await?;
    }
    // Presence events quote the display name beside the id (`"name":"…"`, serde_json's compact
    // form): it goes, the pseudonym stays in `userId`.
    if let Some(name) = name.as_deref() {
        let quoted = format!("\"name\":{}", serde_json::Value::from(name));
        sqlx::query(
            "UPDATE workflow_events SET payload = REPLACE(payload, $1, '\"name\":null')
             WHERE payload LIKE '%' || $1 || '%'",
        )
        .bind(&quoted)
        .execute(&mut *conn)
        .await?;
    }

    sqlx::query("DELETE FROM account_deletions WHERE user_id = $1").bind(user).execute(&mut *conn).await?;
    sqlx::query("DELETE FROM users WHERE id = $1").bind(user).execute(&mut *conn).await?;
    w.tx.commit().await?;
    Ok(DeletedAccount { pseudonym: pseudonym.to_owned(), plan, orphaned_assets, rooms })
}
