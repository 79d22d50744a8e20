//! [`DataRightsStore`] for this backend: the reads of an export, the analytics opt-out, the
//! deletion plan and its confirmation. The deletion itself is in `account_deletion.rs`.

use dojo_ids::UserId;

use super::{Conn, Store, account_deletion};
use crate::data_rights::{DataRightsStore, DeletedAccount, DeletionPlan, OwnedAsset, PSEUDONYM_PREFIX};
use crate::dialect::Dialect;
use crate::run_records::{RunRow, decode_runs};
use crate::runs::Run;
use crate::{AccountError, now_millis};

async fn count(conn: &mut Conn, sql: &'static str, user: &UserId) -> Result<i64, AccountError> {
    Ok(sqlx::query_scalar(sql).bind(user).fetch_one(&mut *conn).await?)
}

/// What deleting `user` would do, read on `conn` (inside the deletion's transaction, or not).
pub(super) async fn plan(conn: &mut Conn, user: &UserId) -> Result<DeletionPlan, AccountError> {
    let teams_needing_an_owner: Vec<String> = sqlx::query_scalar(
        "SELECT tm.team_id FROM team_members tm
         WHERE tm.user_id = $1 AND tm.role = 'owner'
           AND NOT EXISTS (SELECT 1 FROM team_members o
                           WHERE o.team_id = tm.team_id AND o.role = 'owner' AND o.user_id <> $1)
           AND EXISTS (SELECT 1 FROM team_members m WHERE m.team_id = tm.team_id AND m.user_id <> $1)
         ORDER BY tm.team_id",
    )
    .bind(user)
    .fetch_all(&mut *conn)
    .await?;
    let credits: Option<i64> = sqlx::query_scalar("SELECT credits FROM users WHERE id = $1")
        .bind(user)
        .fetch_optional(&mut *conn)
        .await?;
    let Some(credits) = credits else { return Err(AccountError::UserNotFound(user.clone())) };
    Ok(DeletionPlan {
        workflows_deleted: count(
            conn,
            "SELECT COUNT(*) FROM workflows WHERE deleted_at IS NULL AND owner_id = $1 AND (team_id IS NULL
             OR NOT EXISTS (SELECT 1 FROM team_members o WHERE o.team_id = workflows.team_id AND o.user_id <> $1))",
            user,
        )
        .await?,
        workflows_kept_for_teams: count(
            conn,
            "SELECT COUNT(*) FROM workflows WHERE deleted_at IS NULL AND owner_id = $1 AND team_id IS NOT NULL
             AND EXISTS (SELECT 1 FROM team_members o WHERE o.team_id = workflows.team_id AND o.user_id <> $1)",
            user,
        )
        .await?,
        teams_deleted: count(
            conn,
            "SELECT COUNT(*) FROM team_members tm WHERE tm.user_id = $1
             AND NOT EXISTS (SELECT 1 FROM team_members o WHERE o.team_id = tm.team_id AND o.user_id <> $1)",
            user,
        )
        .await?,
        teams_needing_an_owner,
        team_memberships: count(conn, "SELECT COUNT(*) FROM team_members WHERE user_id = $1", user).await?,
        runs: count(conn, "SELECT COUNT(*) FROM runs WHERE user_id = $1", user).await?,
        active_runs: count(
            conn,
            "SELECT COUNT(*) FROM runs WHERE user_id = $1 AND status IN ('queued', 'running')",
            user,
        )
        .await?,
        assets: count(conn, "SELECT COUNT(DISTINCT asset_id) FROM asset_links WHERE owner_id = $1", user).await?,
        webhooks: count(
            conn,
            "SELECT COUNT(*) FROM webhook_endpoints e JOIN workflows w ON w.id = e.workflow_id
             WHERE w.owner_id = $1 AND (w.team_id IS NULL OR NOT EXISTS (
                 SELECT 1 FROM team_members o WHERE o.team_id = w.team_id AND o.user_id <> $1))",
            user,
        )
        .await?,
        ledger_entries: count(conn, "SELECT COUNT(*) FROM credit_ledger WHERE user_id = $1", user).await?,
        credits_forfeited: credits,
    })
}

#[async_trait::async_trait]
impl DataRightsStore for Store {
    async fn analytics_opt_out(&self, user: &UserId) -> Result<bool, AccountError> {
        let flag: Option<i32> = sqlx::query_scalar("SELECT analytics_opt_out FROM users WHERE id = $1")
            .bind(user)
            .fetch_optional(self.pool())
            .await?;
        flag.map(|flag| flag != 0).ok_or_else(|| AccountError::UserNotFound(user.clone()))
    }

    async fn set_analytics_opt_out(&self, user: &UserId, opt_out: bool) -> Result<(), AccountError> {
        let (this, user) = (self.clone(), user.clone());
        dojo_store::run_to_completion(async move {
            let _turn = this.write_turn().await;
            let changed =
                sqlx::query("UPDATE users SET analytics_opt_out = $2, updated_at = $3 WHERE id = $1")
                    .bind(&user)
                    .bind(i32::from(opt_out))
                    .bind(now_millis())
                    .execute(this.pool())
                    .await?
                    .rows_affected();
            if changed == 0 {
                return Err(AccountError::UserNotFound(user));
            }
            Ok(())
        })
        .await
    }

    async fn runs_of(&self, user: &UserId, limit: u32) -> Result<Vec<Run>, AccountError> {
        let rows: Vec<RunRow> = sqlx::query_as(concat!(
            "SELECT ",
            run_columns!(),
            " FROM runs WHERE user_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2"
        ))
        .bind(user)
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        decode_runs(rows)
    }

    async fn assets_of(&self, user: &UserId, limit: u32) -> Result<Vec<OwnedAsset>, AccountError> {
        type Row = (String, String, i64, Option<String>, Option<String>, Option<String>, i64);
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT a.id, a.content_type, a.size, l.room, l.run_id, l.node_id, l.created_at
             FROM asset_links l JOIN assets a ON a.id = l.asset_id
             WHERE l.owner_id = $1 ORDER BY l.created_at DESC, a.id LIMIT $2",
        )
        .bind(user)
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, content_type, size, room, run_id, node_id, created_at)| OwnedAsset {
                id,
                content_type,
                size,
                room,
                run_id,
                node_id,
                created_at,
            })
            .collect())
    }

    async fn deletion_plan(&self, user: &UserId) -> Result<DeletionPlan, AccountError> {
        let mut conn = self.pool().acquire().await?;
        plan(&mut conn, user).await
    }

    async fn request_deletion(
        &self,
        user: &UserId,
        token_hash: &str,
        expires_at: i64,
    ) -> Result<(), AccountError> {
        let (this, user, token_hash) = (self.clone(), user.clone(), token_hash.to_owned());
        dojo_store::run_to_completion(async move {
            let _turn = this.write_turn().await;
            sqlx::query(
                "INSERT INTO account_deletions (user_id, token_hash, expires_at, created_at)
                 VALUES ($1, $2, $3, $4)
                 ON CONFLICT (user_id) DO UPDATE
                 SET token_hash = excluded.token_hash, expires_at = excluded.expires_at,
                     created_at = excluded.created_at",
            )
            .bind(&user)
            .bind(&token_hash)
            .bind(expires_at)
            .bind(now_millis())
            .execute(this.pool())
            .await?;
            Ok(())
        })
        .await
    }

    async fn delete_account(
        &self,
        user: &UserId,
        token_hash: &str,
        pseudonym: &str,
    ) -> Result<DeletedAccount, AccountError> {
        if !pseudonym.starts_with(PSEUDONYM_PREFIX) || pseudonym.len() > 64 {
            return Err(AccountError::InvalidInput {
                field: "pseudonym",
                reason: "not a deleted- pseudonym",
            });
        }
        let (this, user, token_hash, pseudonym) =
            (self.clone(), user.clone(), token_hash.to_owned(), pseudonym.to_owned());
        dojo_store::run_to_completion(async move {
            account_deletion::delete(&this, &user, &token_hash, &pseudonym).await
        })
        .await
    }
}
