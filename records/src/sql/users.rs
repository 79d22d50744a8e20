//! Users' statements: created on first sight of a token subject, looked up by id, subject or
//! email.

use dojo_ids::UserId;

use super::{Conn, Store};
use crate::dialect::Dialect;
use crate::users::single_email_match;
use crate::{AccountError, User, now_millis};

pub(super) async fn by_id(store: &Store, id: &UserId) -> Result<Option<User>, AccountError> {
    Ok(sqlx::query_as(concat!("SELECT ", user_columns!(), " FROM users WHERE id = $1"))
        .bind(id)
        .fetch_optional(store.pool())
        .await?)
}

pub(super) async fn by_subject(store: &Store, subject: &str) -> Result<Option<User>, AccountError> {
    Ok(sqlx::query_as(concat!("SELECT ", user_columns!(), " FROM users WHERE subject = $1"))
        .bind(subject)
        .fetch_optional(store.pool())
        .await?)
}

/// The user whose email is `query` (case-insensitively), if exactly one has it.
pub(super) async fn by_email(store: &Store, query: &str) -> Result<Option<User>, AccountError> {
    let matches: Vec<User> = sqlx::query_as(concat!(
        "SELECT ",
        user_columns!(),
        " FROM users WHERE lower(email) = lower($1) ORDER BY created_at LIMIT 2"
    ))
    .bind(query)
    .fetch_all(store.pool())
    .await?;
    single_email_match(query, matches)
}

pub(super) async fn list(store: &Store, limit: u32) -> Result<Vec<User>, AccountError> {
    Ok(sqlx::query_as(concat!(
        "SELECT ",
        user_columns!(),
        " FROM users ORDER BY created_at DESC, id LIMIT $1"
    ))
    .bind(i64::from(limit))
    .fetch_all(store.pool())
    .await?)
}

pub(super) async fn exists(store: &Store, id: &UserId) -> Result<bool, AccountError> {
    let found: Option<i32> =
        sqlx::query_scalar("SELECT 1 FROM users WHERE id = $1").bind(id).fetch_optional(store.pool()).await?;
    Ok(found.is_some())
}

/// Creates the user of `subject`, or refreshes its profile (`None` keeps a field). Validated by
/// the caller.
pub(super) async fn upsert(
    store: &Store,
    subject: &str,
    name: Option<&str>,
    email: Option<&str>,
) -> Result<User, AccountError> {
    let _turn = store.write_turn().await;
    // Two first requests of a new user racing both reach the INSERT; ON CONFLICT turns the
    // second into an update of the first one's row, so both get the same user.
    Ok(sqlx::query_as(concat!(
        "INSERT INTO users (id, subject, name, email, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $5)
         ON CONFLICT (subject) DO UPDATE
         SET name = COALESCE(EXCLUDED.name, users.name),
             email = COALESCE(EXCLUDED.email, users.email),
             updated_at = EXCLUDED.updated_at
         RETURNING ",
        user_columns!()
    ))
    .bind(UserId::generate())
    .bind(subject)
    .bind(name)
    .bind(email)
    .bind(now_millis())
    .fetch_one(store.pool())
    .await?)
}

/// The user's balance (`None`: no such user).
pub(super) async fn balance(store: &Store, user_id: &UserId) -> Result<Option<i64>, AccountError> {
    Ok(sqlx::query_scalar("SELECT credits FROM users WHERE id = $1")
        .bind(user_id)
        .fetch_optional(store.pool())
        .await?)
}

/// Adds `amount` (0: only locks the row, on PostgreSQL) to the user's balance and returns the
/// new balance.
pub(super) async fn add_credits(conn: &mut Conn, user_id: &UserId, amount: i64) -> Result<i64, AccountError> {
    let balance: Option<i64> =
        sqlx::query_scalar("UPDATE users SET credits = credits + $2 WHERE id = $1 RETURNING credits")
            .bind(user_id)
            .bind(amount)
            .fetch_optional(&mut *conn)
            .await?;
    balance.ok_or_else(|| AccountError::UserNotFound(user_id.clone()))
}
