//! Assets' statements: metadata of stored bytes (content-addressed), who and which run node
//! they belong to, and what each owner stores.

use super::{Conn, Store};
use crate::dialect::Dialect;
use crate::run_records::{AssetRow, LinkRow};
use crate::runs::{AssetLink, AssetRecord};
use crate::{AccountError, now_millis};

/// The asset row (content-addressed: a second record of the same bytes keeps the first) and
/// the link.
async fn insert(conn: &mut Conn, asset: &AssetRecord, link: &AssetLink) -> Result<(), AccountError> {
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
async fn owned_bytes(conn: &mut Conn, owner_id: &str) -> Result<i64, AccountError> {
    let used: Option<i64> = sqlx::query_scalar(
        "SELECT CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM assets
         WHERE id IN (SELECT asset_id FROM asset_links WHERE owner_id = $1)",
    )
    .bind(owner_id)
    .fetch_one(&mut *conn)
    .await?;
    Ok(used.unwrap_or(0))
}

pub(super) async fn record(store: &Store, asset: &AssetRecord, link: &AssetLink) -> Result<(), AccountError> {
    let mut w = store.begin_write().await?;
    insert(&mut w.tx, asset, link).await?;
    w.tx.commit().await?;
    Ok(())
}

/// [`record`] within the owner's storage quota.
pub(super) async fn record_upload(
    store: &Store,
    asset: &AssetRecord,
    link: &AssetLink,
    quota: i64,
) -> Result<(), AccountError> {
    let mut w = store.begin_write().await?;
    // The owner's row lock queues their concurrent uploads (a no-op update is the one row lock
    // both databases spell the same way).
    sqlx::query("UPDATE users SET updated_at = updated_at WHERE id = $1")
        .bind(&link.owner_id)
        .execute(&mut *w.tx)
        .await?;
    insert(&mut w.tx, asset, link).await?;
    let used = owned_bytes(&mut w.tx, link.owner_id.as_str()).await?;
    if used > quota {
        w.tx.rollback().await?;
        return Err(AccountError::StorageQuotaExceeded { used, quota });
    }
    w.tx.commit().await?;
    Ok(())
}

pub(super) async fn storage_used(store: &Store, owner_id: &str) -> Result<i64, AccountError> {
    let mut conn = store.pool().acquire().await?;
    owned_bytes(&mut conn, owner_id).await
}

pub(super) async fn by_id(store: &Store, id: &str) -> Result<Option<AssetRecord>, AccountError> {
    let row: Option<AssetRow> =
        sqlx::query_as("SELECT id, content_type, size, created_at FROM assets WHERE id = $1")
            .bind(id)
            .fetch_optional(store.pool())
            .await?;
    Ok(row.map(|row| AssetRecord {
        id: row.id,
        content_type: row.content_type,
        size: row.size,
        created_at: row.created_at,
    }))
}

pub(super) async fn links(store: &Store, id: &str, limit: u32) -> Result<Vec<AssetLink>, AccountError> {
    let rows: Vec<LinkRow> = sqlx::query_as(
        "SELECT owner_id, room, run_id, node_id FROM asset_links WHERE asset_id = $1
         ORDER BY created_at, owner_id, room, run_id, node_id LIMIT $2",
    )
    .bind(id)
    .bind(i64::from(limit))
    .fetch_all(store.pool())
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
