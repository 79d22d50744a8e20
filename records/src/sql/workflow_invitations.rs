//! Workflow invitations' statements: invite an address within the workflow's bound, list and
//! revoke them, and claim an address's invitations when it signs in.

use dojo_ids::{UserId, WorkflowId};

use super::teams::finish;
use super::{Store, users, workflows};
use crate::dialect::Dialect;
use crate::workflow_invitations::{MAX_PENDING_WORKFLOW_INVITATIONS, WORKFLOW_INVITATION_TTL_MS};
use crate::{AccountError, Collaborator, CollaboratorPermission, WorkflowInvitation, now_millis, quota_full};

macro_rules! invitation_columns {
    () => {
        "workflow_id, email, permission, invited_by, created_at, expires_at"
    };
}

/// Stores (or renews, with a new permission and expiry) an invitation of `email`, which the
/// caller validated and found no account for.
pub(super) async fn invite(
    store: &Store,
    workflow_id: &WorkflowId,
    email: &str,
    permission: CollaboratorPermission,
    invited_by: &UserId,
) -> Result<WorkflowInvitation, AccountError> {
    let now = now_millis();
    let mut w = store.begin_write().await?;
    let outcome = async {
        let live: Option<i32> =
            sqlx::query_scalar("SELECT 1 FROM workflows WHERE id = $1 AND deleted_at IS NULL")
                .bind(workflow_id)
                .fetch_optional(&mut *w.tx)
                .await?;
        if live.is_none() {
            return Err(AccountError::WorkflowNotFound(workflow_id.clone()));
        }
        // Expired invitations are dead rows: dropping them here keeps the bound about live ones.
        sqlx::query("DELETE FROM workflow_invitations WHERE workflow_id = $1 AND expires_at <= $2")
            .bind(workflow_id)
            .bind(now)
            .execute(&mut *w.tx)
            .await?;
        let others: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM workflow_invitations WHERE workflow_id = $1 AND email <> $2",
        )
        .bind(workflow_id)
        .bind(email)
        .fetch_one(&mut *w.tx)
        .await?;
        if quota_full(others, MAX_PENDING_WORKFLOW_INVITATIONS) {
            return Err(AccountError::WorkflowInvitationsFull { limit: MAX_PENDING_WORKFLOW_INVITATIONS });
        }
        Ok(sqlx::query_as(concat!(
            "INSERT INTO workflow_invitations (",
            invitation_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (workflow_id, email) DO UPDATE SET permission = EXCLUDED.permission,
                 invited_by = EXCLUDED.invited_by, created_at = EXCLUDED.created_at,
                 expires_at = EXCLUDED.expires_at
             RETURNING ",
            invitation_columns!()
        ))
        .bind(workflow_id)
        .bind(email)
        .bind(permission.as_str())
        .bind(invited_by)
        .bind(now)
        .bind(now.saturating_add(WORKFLOW_INVITATION_TTL_MS))
        .fetch_one(&mut *w.tx)
        .await?)
    }
    .await;
    finish(w, outcome).await
}

/// The workflow's unexpired invitations, oldest first (at most the bound's worth).
pub(super) async fn of_workflow(
    store: &Store,
    workflow_id: &WorkflowId,
) -> Result<Vec<WorkflowInvitation>, AccountError> {
    if workflows::owner(store, workflow_id).await?.is_none() {
        return Err(AccountError::WorkflowNotFound(workflow_id.clone()));
    }
    Ok(sqlx::query_as(concat!(
        "SELECT ",
        invitation_columns!(),
        " FROM workflow_invitations WHERE workflow_id = $1 AND expires_at > $2
          ORDER BY created_at, email LIMIT $3"
    ))
    .bind(workflow_id)
    .bind(now_millis())
    .bind(i64::try_from(MAX_PENDING_WORKFLOW_INVITATIONS).unwrap_or(i64::MAX))
    .fetch_all(store.pool())
    .await?)
}

/// Whether there was an invitation of `email` (validated by the caller).
pub(super) async fn revoke(
    store: &Store,
    workflow_id: &WorkflowId,
    email: &str,
) -> Result<bool, AccountError> {
    let _turn = store.write_turn().await;
    let removed = sqlx::query("DELETE FROM workflow_invitations WHERE workflow_id = $1 AND email = $2")
        .bind(workflow_id)
        .bind(email)
        .execute(store.pool())
        .await?
        .rows_affected();
    Ok(removed > 0)
}

/// Turns every unexpired invitation of `email` into a collaboration of `user` (never on a
/// workflow they own or one deleted since), and forgets the address's invitations.
pub(super) async fn claim(
    store: &Store,
    user: &UserId,
    email: &str,
) -> Result<Vec<Collaborator>, AccountError> {
    let email = email.to_lowercase();
    // The usual sign-in has nothing to claim: one indexed read, no write transaction.
    let any: Option<i32> = sqlx::query_scalar("SELECT 1 FROM workflow_invitations WHERE email = $1 LIMIT 1")
        .bind(&email)
        .fetch_optional(store.pool())
        .await?;
    if any.is_none() {
        return Ok(Vec::new());
    }
    let now = now_millis();
    let mut w = store.begin_write().await?;
    let outcome = async {
        let claimed: Vec<Collaborator> = sqlx::query_as(
            "INSERT INTO workflow_collaborators (workflow_id, user_id, permission, added_at)
             SELECT i.workflow_id, $2, i.permission, $3
             FROM workflow_invitations i JOIN workflows w ON w.id = i.workflow_id
             WHERE i.email = $1 AND i.expires_at > $3 AND w.deleted_at IS NULL AND w.owner_id <> $2
             ON CONFLICT (workflow_id, user_id) DO UPDATE SET permission = EXCLUDED.permission
             RETURNING workflow_id, user_id, permission, added_at",
        )
        .bind(&email)
        .bind(user)
        .bind(now)
        .fetch_all(&mut *w.tx)
        .await?;
        sqlx::query("DELETE FROM workflow_invitations WHERE email = $1")
            .bind(&email)
            .execute(&mut *w.tx)
            .await?;
        Ok(claimed)
    }
    .await;
    finish(w, outcome).await
}

/// The account `email` belongs to, if exactly one has it.
pub(super) async fn account_of(store: &Store, email: &str) -> Result<Option<dojo_ids::UserId>, AccountError> {
    Ok(users::by_email(store, email).await?.map(|user| user.id))
}
