//! The audit log's statements: append, one team's entries newest first, and everyone's (for
//! staff). There is no
//! statement that changes or removes an entry, and the database refuses one (triggers).

use super::Store;
use crate::audit::{
    AuditEntry, AuditLog, AuditQuery, AuditRow, MAX_AUDIT_PAGE, MAX_FIELD_LEN, NewAuditEntry,
    StaffAuditQuery, cut, detail_text,
};
use crate::dialect::Dialect;
use crate::{AccountError, now_millis};
use dojo_ids::TeamId;

#[async_trait::async_trait]
impl AuditLog for Store {
    async fn append(&self, entry: NewAuditEntry) -> Result<i64, AccountError> {
        let this = self.clone();
        dojo_store::run_to_completion(async move {
            let _turn = this.write_turn().await;
            Ok(sqlx::query_scalar(
                "INSERT INTO audit_log (actor_type, actor_id, action, target_type, target_id, team_id,
                                        client_addr, detail, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING seq",
            )
            .bind(entry.actor_kind.as_str())
            .bind(cut(&entry.actor_id, MAX_FIELD_LEN))
            .bind(cut(entry.action, MAX_FIELD_LEN))
            .bind(cut(entry.target_type, MAX_FIELD_LEN))
            .bind(cut(&entry.target_id, MAX_FIELD_LEN))
            .bind(&entry.team_id)
            .bind(entry.client_addr.as_deref().map(|addr| cut(addr, MAX_FIELD_LEN)))
            .bind(detail_text(&entry.detail))
            .bind(now_millis())
            .fetch_one(this.pool())
            .await?)
        })
        .await
    }

    async fn entries(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>, AccountError> {
        // Absent filters compare a column with itself, so one statement serves every
        // combination and the team's index on (team_id, seq) does the ordering.
        let rows: Vec<AuditRow> = sqlx::query_as(
            "SELECT seq, actor_type, actor_id, action, target_type, target_id, team_id, client_addr,
                    detail, created_at
             FROM audit_log
             WHERE team_id = $1 AND actor_id = COALESCE($2, actor_id) AND action = COALESCE($3, action)
               AND created_at >= $4 AND created_at < $5 AND seq < $6
             ORDER BY seq DESC LIMIT $7",
        )
        .bind(&query.team_id)
        .bind(&query.actor_id)
        .bind(&query.action)
        .bind(query.since.unwrap_or(i64::MIN))
        .bind(query.until.unwrap_or(i64::MAX))
        .bind(query.before.unwrap_or(i64::MAX))
        .bind(i64::from(query.limit.clamp(1, MAX_AUDIT_PAGE)))
        .fetch_all(self.pool())
        .await?;
        rows.into_iter().map(AuditEntry::try_from).collect()
    }

    async fn all_entries(&self, query: &StaffAuditQuery) -> Result<Vec<AuditEntry>, AccountError> {
        // Absent filters are '' (which no stored value is), so one statement serves every
        // combination; the primary key on seq does the ordering.
        let rows: Vec<AuditRow> = sqlx::query_as(
            "SELECT seq, actor_type, actor_id, action, target_type, target_id, team_id, client_addr,
                    detail, created_at
             FROM audit_log
             WHERE ($1 = '' OR team_id = $1) AND ($2 = '' OR actor_id = $2) AND ($3 = '' OR action = $3)
               AND ($4 = '' OR target_id = $4)
               AND created_at >= $5 AND created_at < $6 AND seq < $7
             ORDER BY seq DESC LIMIT $8",
        )
        .bind(query.team_id.as_ref().map(TeamId::as_str).unwrap_or(""))
        .bind(query.actor_id.as_deref().unwrap_or(""))
        .bind(query.action.as_deref().unwrap_or(""))
        .bind(query.target_id.as_deref().unwrap_or(""))
        .bind(query.since.unwrap_or(i64::MIN))
        .bind(query.until.unwrap_or(i64::MAX))
        .bind(query.before.unwrap_or(i64::MAX))
        .bind(i64::from(query.limit.clamp(1, MAX_AUDIT_PAGE)))
        .fetch_all(self.pool())
        .await?;
        rows.into_iter().map(AuditEntry::try_from).collect()
    }
}
