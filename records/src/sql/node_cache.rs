//! The node cache's statements: a node's outputs stored under its cache key, per scope.

use super::Store;
use crate::dialect::Dialect;
use crate::{AccountError, now_millis};

pub(super) async fn get(store: &Store, scope: &str, key: &str) -> Result<Option<String>, AccountError> {
    Ok(sqlx::query_scalar("SELECT outputs FROM node_cache WHERE scope = $1 AND key = $2")
        .bind(scope)
        .bind(key)
        .fetch_optional(store.pool())
        .await?)
}

/// Stores or replaces an entry (validated by the caller).
pub(super) async fn put(store: &Store, scope: &str, key: &str, outputs: &str) -> Result<(), AccountError> {
    let mut w = store.begin_write().await?;
    sqlx::query(
        "INSERT INTO node_cache (scope, key, outputs, created_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (scope, key) DO UPDATE SET outputs = excluded.outputs,
             created_at = excluded.created_at",
    )
    .bind(scope)
    .bind(key)
    .bind(outputs)
    .bind(now_millis())
    .execute(&mut *w.tx)
    .await?;
    w.tx.commit().await?;
    Ok(())
}

/// Deletes entries stored before `older_than`; returns how many.
pub(super) async fn prune(store: &Store, older_than: i64) -> Result<u64, AccountError> {
    let mut w = store.begin_write().await?;
    let deleted = sqlx::query("DELETE FROM node_cache WHERE created_at < $1")
        .bind(older_than)
        .execute(&mut *w.tx)
        .await?
        .rows_affected();
    w.tx.commit().await?;
    Ok(deleted)
}
