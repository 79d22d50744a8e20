//! Renaming a team, and deleting one: its live workflows are soft-deleted with it (their rooms
//! stay reserved and closed, as a deleted workflow's do), and its members and invitations go
//! with the team row. The audit log keeps its entries: it has no foreign key to `teams`.

use dojo_ids::TeamId;

use super::Store;
use super::teams::finish;
use crate::dialect::Dialect;
use crate::teams::Team;
use crate::{AccountError, now_millis};

pub(super) async fn rename(store: &Store, team: &TeamId, name: &str) -> Result<Team, AccountError> {
    let _turn = store.write_turn().await;
    sqlx::query_as(
        "UPDATE teams SET name = $2, updated_at = $3 WHERE id = $1
         RETURNING id, name, created_by, created_at, updated_at",
    )
    .bind(team)
    .bind(name)
    .bind(now_millis())
    .fetch_optional(store.pool())
    .await?
    .ok_or_else(|| AccountError::TeamNotFound(team.clone()))
}

/// Deletes the team; returns how many live workflows were deleted with it.
pub(super) async fn delete(store: &Store, team: &TeamId) -> Result<u64, AccountError> {
    let now = now_millis();
    let mut w = store.begin_write().await?;
    let outcome = async {
        let found: Option<i32> =
            sqlx::query_scalar(Store::LOCK_TEAM).bind(team).fetch_optional(&mut *w.tx).await?;
        if found.is_none() {
            return Err(AccountError::TeamNotFound(team.clone()));
        }
        let closed = sqlx::query(
            "UPDATE workflows SET deleted_at = $2, updated_at = $2 WHERE team_id = $1 AND deleted_at IS NULL",
        )
        .bind(team)
        .bind(now)
        .execute(&mut *w.tx)
        .await?
        .rows_affected();
        // Deleted workflows keep their room but no longer name the team, whose row goes.
        sqlx::query("UPDATE workflows SET team_id = NULL WHERE team_id = $1")
            .bind(team)
            .execute(&mut *w.tx)
            .await?;
        sqlx::query("DELETE FROM teams WHERE id = $1").bind(team).execute(&mut *w.tx).await?;
        Ok(closed)
    }
    .await;
    finish(w, outcome).await
}
