//! Collaborators' statements, and the one query every connection asks: who may open a room.

use dojo_ids::{RoomName, UserId, WorkflowId};

use super::{Store, users, workflows};
use crate::collaborators::{AccessFacts, decide_access};
use crate::dialect::Dialect;
use crate::{AccountError, Collaborator, CollaboratorPermission, RoomAccess, now_millis};

pub(super) async fn set(
    store: &Store,
    workflow_id: &WorkflowId,
    user_id: &UserId,
    permission: CollaboratorPermission,
) -> Result<Collaborator, AccountError> {
    let Some(owner) = workflows::owner(store, workflow_id).await? else {
        return Err(AccountError::WorkflowNotFound(workflow_id.clone()));
    };
    if owner == *user_id {
        return Err(AccountError::OwnerCannotCollaborate);
    }
    // The foreign key would refuse an unknown user too, but with an error we would have to
    // recognise by its code.
    if !users::exists(store, user_id).await? {
        return Err(AccountError::UserNotFound(user_id.clone()));
    }
    let _turn = store.write_turn().await;
    Ok(sqlx::query_as(
        "INSERT INTO workflow_collaborators (workflow_id, user_id, permission, added_at)
         VALUES ($1, $2, $3, $4)
         ON CONFLICT (workflow_id, user_id) DO UPDATE SET permission = EXCLUDED.permission
         RETURNING workflow_id, user_id, permission, added_at",
    )
    .bind(workflow_id)
    .bind(user_id)
    .bind(permission.as_str())
    .bind(now_millis())
    .fetch_one(store.pool())
    .await?)
}

/// Whether the user was a collaborator.
pub(super) async fn remove(
    store: &Store,
    workflow_id: &WorkflowId,
    user_id: &UserId,
) -> Result<bool, AccountError> {
    let _turn = store.write_turn().await;
    let removed = sqlx::query("DELETE FROM workflow_collaborators WHERE workflow_id = $1 AND user_id = $2")
        .bind(workflow_id)
        .bind(user_id)
        .execute(store.pool())
        .await?
        .rows_affected();
    Ok(removed > 0)
}

pub(super) async fn list(store: &Store, workflow_id: &WorkflowId) -> Result<Vec<Collaborator>, AccountError> {
    if workflows::owner(store, workflow_id).await?.is_none() {
        return Err(AccountError::WorkflowNotFound(workflow_id.clone()));
    }
    Ok(sqlx::query_as(
        "SELECT workflow_id, user_id, permission, added_at FROM workflow_collaborators
         WHERE workflow_id = $1 ORDER BY added_at, user_id",
    )
    .bind(workflow_id)
    .fetch_all(store.pool())
    .await?)
}

/// One query: it runs on every connection.
pub(super) async fn room_access(
    store: &Store,
    user_id: Option<&UserId>,
    room: &RoomName,
) -> Result<RoomAccess, AccountError> {
    let facts: Option<AccessFacts> = sqlx::query_as(
        "SELECT w.owner_id, w.public, w.deleted_at, c.permission, w.team_id, m.role AS team_role
         FROM workflows w
         LEFT JOIN workflow_collaborators c ON c.workflow_id = w.id AND c.user_id = $2
         LEFT JOIN team_members m ON m.team_id = w.team_id AND m.user_id = $2
         WHERE w.room = $1",
    )
    .bind(room)
    .bind(user_id)
    .fetch_optional(store.pool())
    .await?;
    decide_access(facts, user_id)
}
