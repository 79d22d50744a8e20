//! Workflows' statements: creating one claims its room, deleting one is a soft delete.

use dojo_ids::{RoomName, TeamId, UserId, WorkflowId};

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
    team: Option<(&TeamId, u64)>,
) -> Result<Workflow, AccountError> {
    let id = WorkflowId::generate();
    let room = match room {
        Some(room) => room,
        None => default_room(&id)?,
    };
    let mut w = store.begin_write().await?;
    if let Some((team, limit)) = team {
        // A team's workflows count against the team's limit, not their creator's, under the
        // team's lock; the creator must still be a member who may create (checked again here,
        // in the transaction, so a removal that commits first wins).
        sqlx::query_scalar::<_, i32>(Store::LOCK_TEAM).bind(team).fetch_optional(&mut *w.tx).await?;
        let role: Option<String> =
            sqlx::query_scalar("SELECT role FROM team_members WHERE team_id = $1 AND user_id = $2")
                .bind(team)
                .bind(owner_id)
                .fetch_optional(&mut *w.tx)
                .await?;
        let role = role.as_deref().map(crate::teams::decode_role).transpose()?;
        if !role.is_some_and(crate::teams::TeamRole::creates_workflows) {
            w.tx.rollback().await?;
            return Err(AccountError::TeamNotFound(team.clone()));
        }
        let held: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM workflows WHERE team_id = $1 AND deleted_at IS NULL")
                .bind(team)
                .fetch_one(&mut *w.tx)
                .await?;
        if limit > 0 && quota_full(held, limit) {
            w.tx.rollback().await?;
            return Err(AccountError::QuotaExceeded { what: "workflows in a team", limit });
        }
    } else if let Some(limit) = max_owned {
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
        "INSERT INTO workflows (id, room, owner_id, title, public, created_at, updated_at, team_id)
         SELECT $1, $2, $3, $4, FALSE, $5, $5, $6 WHERE EXISTS (SELECT 1 FROM users WHERE id = $3)
         ON CONFLICT (room) DO NOTHING
         RETURNING ",
        workflow_columns!()
    ))
    .bind(&id)
    .bind(&room)
    .bind(owner_id)
    .bind(title)
    .bind(now_millis())
    .bind(team.map(|(team, _)| team))
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

/// Most workflows one listing returns: owned ones are bounded by the per-user quota, but a
/// user's teams may hold many more.
pub(crate) const MAX_LISTED: i64 = 5_000;

pub(super) async fn list(store: &Store, user_id: &UserId) -> Result<Vec<WorkflowSummary>, AccountError> {
    // Each branch uses its own index (owner, collaborator, team membership); a workflow found
    // by several is listed once, with what the rules give the user there.
    let rows: Vec<SummaryRow> = sqlx::query_as(
        "SELECT w.id, w.room, w.owner_id, w.title, w.public, w.created_at, w.updated_at, w.team_id,
                c.permission AS shared, m.role AS team_role
         FROM workflows w
         LEFT JOIN workflow_collaborators c ON c.workflow_id = w.id AND c.user_id = $1
         LEFT JOIN team_members m ON m.team_id = w.team_id AND m.user_id = $1
         WHERE w.deleted_at IS NULL AND w.id IN (
             SELECT id FROM workflows WHERE owner_id = $1 AND team_id IS NULL
             UNION SELECT workflow_id FROM workflow_collaborators WHERE user_id = $1
             UNION SELECT w2.id FROM workflows w2 JOIN team_members m2 ON m2.team_id = w2.team_id
                   WHERE m2.user_id = $1)
         ORDER BY w.updated_at DESC, w.id
         LIMIT $2",
    )
    .bind(user_id)
    .bind(MAX_LISTED)
    .fetch_all(store.pool())
    .await?;
    let mut listed = Vec::with_capacity(rows.len());
    for row in rows {
        listed.extend(row.summary(user_id)?);
    }
    Ok(listed)
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
