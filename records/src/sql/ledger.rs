//! The ledger's statements: the one INSERT every balance change goes through, and
//! `apply_credits`, the idempotent change of a balance.

use dojo_ids::UserId;

use super::{Conn, Store};
use crate::dialect::Dialect;
use crate::ledger::{NewEntry, balance_bounds, refusal, replay};
use crate::{AccountError, CreditOutcome, LedgerEntry, now_millis};

pub(super) async fn by_key(conn: &mut Conn, key: &str) -> Result<Option<LedgerEntry>, AccountError> {
    Ok(sqlx::query_as(concat!(
        "SELECT ",
        ledger_columns!(),
        " FROM credit_ledger WHERE idempotency_key = $1"
    ))
    .bind(key)
    .fetch_optional(&mut *conn)
    .await?)
}

/// Appends `entry` unless its key is already used: `None` then, and nothing written. On
/// PostgreSQL a concurrent use of the key that has not committed yet makes this wait for it,
/// at the unique index, and then do nothing if it committed.
pub(super) async fn insert(
    conn: &mut Conn,
    entry: &NewEntry<'_>,
) -> Result<Option<LedgerEntry>, AccountError> {
    Ok(sqlx::query_as(concat!(
        "INSERT INTO credit_ledger (user_id, amount, balance_after, reason, idempotency_key, created_at,
             team_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (idempotency_key) DO NOTHING
         RETURNING ",
        ledger_columns!()
    ))
    .bind(entry.user_id)
    .bind(entry.amount)
    .bind(entry.balance_after)
    .bind(entry.reason)
    .bind(entry.key)
    .bind(entry.created_at)
    .bind(entry.team_id)
    .fetch_optional(&mut *conn)
    .await?)
}

/// [`insert`] for writers whose locks already rule out a used key (a run's holds, captures and
/// releases, checked under the run's lock): a used key is a bug above, refused as reused.
pub(super) async fn append(conn: &mut Conn, entry: &NewEntry<'_>) -> Result<LedgerEntry, AccountError> {
    if let Some(appended) = insert(conn, entry).await? {
        return Ok(appended);
    }
    let existing = by_key(conn, entry.key).await?.ok_or(sqlx::Error::RowNotFound)?;
    Err(AccountError::IdempotencyKeyReused { key: entry.key.to_owned(), existing: Box::new(existing) })
}

/// Adds `amount` to the balance and appends its entry, once per key (validated by the caller).
pub(super) async fn apply_credits(
    store: &Store,
    user_id: &UserId,
    amount: i64,
    reason: &str,
    key: &str,
) -> Result<CreditOutcome, AccountError> {
    // A retry finds its entry here without taking any lock.
    if let Some(existing) = by_key(&mut *store.pool().acquire().await?, key).await? {
        return replay(existing, user_id, amount);
    }
    let (at_least, at_most) = balance_bounds(amount)?;
    let now = now_millis();
    let mut w = store.begin_write().await?;
    // Looked up again inside the transaction. On SQLite, the file's only writer from here to
    // commit, this settles every race for the key; on PostgreSQL a use that has not committed yet
    // is met at the unique index below.
    if let Some(existing) = by_key(&mut w.tx, key).await? {
        w.tx.rollback().await?;
        return replay(existing, user_id, amount);
    }
    // The decision and the write in one statement, under the row lock: a concurrent spend
    // waits here, then re-evaluates the condition against the balance the first one left.
    let balance_after: Option<i64> = sqlx::query_scalar(
        "UPDATE users SET credits = credits + $2
         WHERE id = $1 AND credits >= $3 AND credits <= $4
         RETURNING credits",
    )
    .bind(user_id)
    .bind(amount)
    .bind(at_least)
    .bind(at_most)
    .fetch_optional(&mut *w.tx)
    .await?;
    let Some(balance_after) = balance_after else {
        let balance: Option<i64> = sqlx::query_scalar("SELECT credits FROM users WHERE id = $1")
            .bind(user_id)
            .fetch_optional(&mut *w.tx)
            .await?;
        w.tx.rollback().await?;
        return Err(match balance {
            None => AccountError::UserNotFound(user_id.clone()),
            Some(balance) => refusal(balance, amount),
        });
    };
    let entry = NewEntry { user_id, amount, balance_after, reason, key, created_at: now, team_id: None };
    match insert(&mut w.tx, &entry).await? {
        Some(entry) => {
            w.tx.commit().await?;
            Ok(CreditOutcome::Applied(entry))
        }
        None => {
            // Undo our balance change: the key's first application already made it.
            w.tx.rollback().await?;
            drop(w._lock);
            let existing =
                by_key(&mut *store.pool().acquire().await?, key).await?.ok_or(sqlx::Error::RowNotFound)?;
            replay(existing, user_id, amount)
        }
    }
}

/// The user's newest entries first.
pub(super) async fn list(
    store: &Store,
    user_id: &UserId,
    limit: u32,
) -> Result<Vec<LedgerEntry>, AccountError> {
    Ok(sqlx::query_as(concat!(
        "SELECT ",
        ledger_columns!(),
        " FROM credit_ledger WHERE user_id = $1 ORDER BY id DESC LIMIT $2"
    ))
    .bind(user_id)
    .bind(i64::from(limit))
    .fetch_all(store.pool())
    .await?)
}
