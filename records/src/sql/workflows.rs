//! Workflows' statements: creating one claims its room, deleting one is a soft delete.

use dojo_ids::{RoomName, UserId, WorkflowId};

use super::{Store, users};
use crate::dialect::Dialect;
use crate::workflows::{SummaryRow, default_room};
use crate::{AccountError, Workflow, WorkflowPatch, WorkflowSummary, now_millis, quota_full};

/// Creates a private workflow (`room`: its id when `None`), within the owner's quota if any.
/// The title is validated by the caller.
pub(super) async fn create(
    store: &Store,
    owner_id: &UserId,
    title: &str,
    room: Option<RoomName>,
    max_owned: Option<u64>,
) -> Result<Workflow, AccountError> {
    let id = WorkflowId::generate();
    let room = match room {
        Some(room) => room,
        None => default_room(&id)?,
    };
    let mut w = store.begin_write().await?;
    if let Some(limit) = max_owned {
        // The owner's row lock (PostgreSQL) or the write transaction (SQLite) orders concurrent
        // creations by one owner, so each counts what the ones before it committed.
        let owner: Option<i32> =
            sqlx::query_scalar(Store::LOCK_USER).bind(owner_id).fetch_optional(&mut *w.tx).await?;
        if owner.is_none() {
            w.tx.rollback().await?;
            return Err(AccountError::UserNotFound(owner_id.clone()));
        }
        let owned: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM workflows WHERE owner_id = $1 AND deleted_at IS NULL")
                .bind(owner_id)
                .fetch_one(&mut *w.tx)
                .await?;
        if quota_full(owned, limit) {
            w.tx.rollback().await?;
            return Err(AccountError::QuotaExceeded { what: "workflows", limit });
        }
    }
    // One statement: the room's uniqueness and the owner's existence are checked by the
    // database, atomically. The reason nothing was inserted is looked up afterwards.
    let created: Option<Workflow> = sqlx::query_as(concat!(
        "INSERT INTO workflows (id, room, owner_id, title, public, created_at, updated_at)
         SELECT $1, $2, $3, $4, FALSE, $5, $5 WHERE EXISTS (SELECT 1 FROM users WHERE id = $3)
         ON CONFLICT (room) DO NOTHING
         RETURNING ",
        workflow_columns!()
    ))
    .bind(&id)
    .bind(&room)
    .bind(owner_id)
    .bind(title)
    .bind(now_millis())
    .fetch_optional(&mut *w.tx)
    .await?;
    w.tx.commit().await?;
    drop(w._lock);
    match created {
        Some(workflow) => Ok(workflow),
        None if !users::exists(store, owner_id).await? => Err(AccountError::UserNotFound(owner_id.clone())),
        None => Err(AccountError::RoomTaken(room)),
    }
}

pub(super) async fn by_id(store: &Store, id: &WorkflowId) -> Result<Option<Workflow>, AccountError> {
    Ok(sqlx::query_as(concat!(
        "SELECT ",
        workflow_columns!(),
        " FROM workflows WHERE id = $1 AND deleted_at IS NULL"
    ))
    .bind(id)
    .fetch_optional(store.pool())
    .await?)
}

pub(super) async fn by_room(store: &Store, room: &RoomName) -> Result<Option<Workflow>, AccountError> {
    Ok(sqlx::query_as(concat!(
        "SELECT ",
        workflow_columns!(),
        " FROM workflows WHERE room = $1 AND deleted_at IS NULL"
    ))
    .bind(room)
    .fetch_optional(store.pool())
    .await?)
}

/// The owner of a live workflow.
pub(super) async fn owner(store: &Store, id: &WorkflowId) -> Result<Option<UserId>, AccountError> {
    Ok(sqlx::query_scalar("SELECT owner_id FROM workflows WHERE id = $1 AND deleted_at IS NULL")
        .bind(id)
        .fetch_optional(store.pool())
        .await?)
}

pub(super) async fn list(store: &Store, user_id: &UserId) -> Result<Vec<WorkflowSummary>, AccountError> {
    let rows: Vec<SummaryRow> = sqlx::query_as(
        "SELECT id, room, owner_id, title, public, created_at, updated_at, 'admin' AS permission
         FROM workflows WHERE owner_id = $1 AND deleted_at IS NULL
         UNION ALL
         SELECT w.id, w.room, w.owner_id, w.title, w.public, w.created_at, w.updated_at, c.permission
         FROM workflows w JOIN workflow_collaborators c ON c.workflow_id = w.id
         WHERE c.user_id = $1 AND w.owner_id <> $1 AND w.deleted_at IS NULL
         ORDER BY updated_at DESC, id",
    )
    .bind(user_id)
    .fetch_all(store.pool())
    .await?;
    rows.into_iter().map(WorkflowSummary::try_from).collect()
}

/// Applies a patch whose title the caller validated.
pub(super) async fn update(
    store: &Store,
    id: WorkflowId,
    title: Option<String>,
    patch: WorkflowPatch,
) -> Result<Workflow, AccountError> {
    let _turn = store.write_turn().await;
    let updated: Option<Workflow> = sqlx::query_as(concat!(
        "UPDATE workflows
         SET title = COALESCE($2, title), public = COALESCE($3, public), updated_at = $4
         WHERE id = $1 AND deleted_at IS NULL
         RETURNING ",
        workflow_columns!()
    ))
    .bind(&id)
    .bind(title)
    .bind(patch.public)
    .bind(now_millis())
    .fetch_optional(store.pool())
    .await?;
    updated.ok_or(AccountError::WorkflowNotFound(id))
}

pub(super) async fn delete(store: &Store, id: WorkflowId) -> Result<(), AccountError> {
    let _turn = store.write_turn().await;
    let deleted = sqlx::query(
        "UPDATE workflows SET deleted_at = $2, updated_at = $2 WHERE id = $1 AND deleted_at IS NULL",
    )
    .bind(&id)
    .bind(now_millis())
    .execute(store.pool())
    .await?
    .rows_affected();
    if deleted == 0 { Err(AccountError::WorkflowNotFound(id)) } else { Ok(()) }
}
