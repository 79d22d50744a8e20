//! The statements of team provider keys: each names its team (and provider), so none reaches
//! another team's row.

use dojo_ids::TeamId;

use super::Store;
use crate::AccountError;
use crate::dialect::Dialect;
use crate::key_crypto::Sealed;
use crate::provider_keys::{MAX_REWRAP_BATCH, ProviderKeyRow, ProviderKeyStore, StoredProviderKey};

const COLUMNS: &str = "team_id, provider, ciphertext, nonce, kek_id, last_four, set_by, set_at";

#[async_trait::async_trait]
impl ProviderKeyStore for Store {
    async fn put_provider_key(&self, key: StoredProviderKey) -> Result<bool, AccountError> {
        let this = self.clone();
        dojo_store::run_to_completion(async move {
            let mut w = this.begin_write().await?;
            let existed: Option<i64> =
                sqlx::query_scalar("SELECT CAST(1 AS BIGINT) FROM team_provider_keys WHERE team_id = $1 AND provider = $2")
                    .bind(&key.team_id)
                    .bind(&key.provider)
                    .fetch_optional(&mut *w.tx)
                    .await?;
            sqlx::query(
                "INSERT INTO team_provider_keys (team_id, provider, ciphertext, nonce, kek_id, last_four, set_by, set_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                 ON CONFLICT (team_id, provider) DO UPDATE SET ciphertext = excluded.ciphertext,
                     nonce = excluded.nonce, kek_id = excluded.kek_id, last_four = excluded.last_four,
                     set_by = excluded.set_by, set_at = excluded.set_at",
            )
            .bind(&key.team_id)
            .bind(&key.provider)
            .bind(&key.sealed.ciphertext)
            .bind(&key.sealed.nonce)
            .bind(&key.sealed.kek_id)
            .bind(&key.last_four)
            .bind(&key.set_by)
            .bind(key.set_at)
            .execute(&mut *w.tx)
            .await?;
            w.tx.commit().await?;
            Ok(existed.is_some())
        })
        .await
    }

    async fn provider_keys(&self, team: &TeamId) -> Result<Vec<StoredProviderKey>, AccountError> {
        let rows: Vec<ProviderKeyRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM team_provider_keys WHERE team_id = $1 ORDER BY provider"
        )))
        .bind(team)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().map(StoredProviderKey::from).collect())
    }

    async fn provider_key(
        &self,
        team: &TeamId,
        provider: &str,
    ) -> Result<Option<StoredProviderKey>, AccountError> {
        let row: Option<ProviderKeyRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM team_provider_keys WHERE team_id = $1 AND provider = $2"
        )))
        .bind(team)
        .bind(provider)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.map(StoredProviderKey::from))
    }

    async fn delete_provider_key(
        &self,
        team: &TeamId,
        provider: &str,
    ) -> Result<Option<StoredProviderKey>, AccountError> {
        let (this, team, provider) = (self.clone(), team.clone(), provider.to_owned());
        dojo_store::run_to_completion(async move {
            let _turn = this.write_turn().await;
            let row: Option<ProviderKeyRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "DELETE FROM team_provider_keys WHERE team_id = $1 AND provider = $2 RETURNING {COLUMNS}"
            )))
            .bind(&team)
            .bind(&provider)
            .fetch_optional(this.pool())
            .await?;
            Ok(row.map(StoredProviderKey::from))
        })
        .await
    }

    async fn provider_keys_not_under(
        &self,
        kek_id: &str,
        limit: u32,
    ) -> Result<Vec<StoredProviderKey>, AccountError> {
        let rows: Vec<ProviderKeyRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM team_provider_keys WHERE kek_id <> $1 ORDER BY team_id, provider LIMIT $2"
        )))
        .bind(kek_id)
        .bind(i64::from(limit.clamp(1, MAX_REWRAP_BATCH)))
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().map(StoredProviderKey::from).collect())
    }

    async fn rewrap_provider_key(&self, old: &StoredProviderKey, new: &Sealed) -> Result<bool, AccountError> {
        let (this, old, new) = (self.clone(), old.clone(), new.clone());
        dojo_store::run_to_completion(async move {
            let _turn = this.write_turn().await;
            let done = sqlx::query(
                "UPDATE team_provider_keys SET ciphertext = $1, nonce = $2, kek_id = $3
                 WHERE team_id = $4 AND provider = $5 AND nonce = $6",
            )
            .bind(&new.ciphertext)
            .bind(&new.nonce)
            .bind(&new.kek_id)
            .bind(&old.team_id)
            .bind(&old.provider)
            .bind(&old.sealed.nonce)
            .execute(this.pool())
            .await?;
            Ok(done.rows_affected() > 0)
        })
        .await
    }
}
