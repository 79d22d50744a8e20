//! The statements of payments, the fraud rules' evidence, and account flags.

use std::collections::BTreeMap;

use dojo_ids::UserId;
use dojo_store::run_to_completion;

use super::Store;
use crate::dialect::Dialect;
use crate::fraud::{
    Evidence, Finding, Flag, FlagQuery, FlagStatus, FraudRules, FraudStore, MAX_FINDINGS_PER_RULE,
    MAX_FLAG_PAGE, MAX_NOTE_LEN, PaymentEvent, PaymentTrouble, SharedSource, Spending,
};
use crate::{AccountError, now_millis};

const COLUMNS: &str =
    "id, user_id, rule, detail, evidence_at, status, created_at, reviewed_by, reviewed_at, note";

#[derive(sqlx::FromRow)]
struct FlagRow {
    id: String,
    user_id: UserId,
    rule: String,
    detail: String,
    evidence_at: i64,
    status: String,
    created_at: i64,
    reviewed_by: Option<String>,
    reviewed_at: Option<i64>,
    note: Option<String>,
}

impl TryFrom<FlagRow> for Flag {
    type Error = AccountError;

    fn try_from(row: FlagRow) -> Result<Self, AccountError> {
        let status = FlagStatus::parse(&row.status).ok_or_else(|| {
            AccountError::Database(sqlx::Error::Decode("account_flags: an unknown status".into()))
        })?;
        Ok(Flag {
            id: row.id,
            user_id: row.user_id,
            rule: row.rule,
            detail: serde_json::from_str(&row.detail).unwrap_or(serde_json::Value::Null),
            evidence_at: row.evidence_at,
            status,
            created_at: row.created_at,
            reviewed_by: row.reviewed_by,
            reviewed_at: row.reviewed_at,
            note: row.note,
        })
    }
}

fn new_id() -> String {
    use rand::Rng;
    let bytes: [u8; 12] = rand::rng().random();
    format!("flg_{}", bytes.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

async fn by_id(conn: &mut super::Conn, id: &str) -> Result<Option<Flag>, AccountError> {
    let row: Option<FlagRow> =
        sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM account_flags WHERE id = $1")))
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
    row.map(Flag::try_from).transpose()
}

/// Whether `user` has a flag that stops paid runs, on `conn` (inside a run's transaction).
pub(super) async fn blocked(conn: &mut super::Conn, user: &UserId) -> Result<bool, AccountError> {
    let found: Option<i32> = sqlx::query_scalar(
        "SELECT 1 FROM account_flags WHERE user_id = $1 AND status IN ('open', 'confirmed') LIMIT 1",
    )
    .bind(user)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(found.is_some())
}

fn limit_per_rule() -> i64 {
    i64::from(MAX_FINDINGS_PER_RULE)
}

#[async_trait::async_trait]
impl FraudStore for Store {
    async fn record_payment(&self, event: PaymentEvent) -> Result<bool, AccountError> {
        let this = self.clone();
        run_to_completion(async move {
            let mut w = this.begin_write().await?;
            // The user: the one `metadata.user_id` names if it is ours, else the customer's,
            // else whoever an earlier event of the same charge was for (a dispute names only
            // its charge). The card likewise falls back to the charge's earlier event.
            let inserted = sqlx::query(
                "INSERT INTO payment_events (event_id, kind, user_id, customer, charge, source, amount, created_at)
                 SELECT $1, $2,
                        COALESCE((SELECT id FROM users WHERE id = $3),
                                 (SELECT user_id FROM stripe_customers WHERE customer = $4),
                                 (SELECT MAX(user_id) FROM payment_events WHERE charge = $5)),
                        $4, $5,
                        COALESCE($6, (SELECT MAX(source) FROM payment_events WHERE charge = $5)),
                        $7, $8
                 ON CONFLICT DO NOTHING",
            )
            .bind(&event.event_id)
            .bind(event.kind.as_str())
            .bind(event.user_id.as_ref().map(UserId::as_str).unwrap_or(""))
            .bind(event.customer.as_deref().unwrap_or(""))
            .bind(event.charge.as_deref())
            .bind(event.source.as_deref())
            .bind(event.amount)
            .bind(event.created_at)
            .execute(&mut *w.tx)
            .await?
            .rows_affected();
            w.tx.commit().await?;
            Ok(inserted > 0)
        })
        .await
    }

    async fn remember_customer(&self, customer: &str, user: &UserId) -> Result<(), AccountError> {
        let (this, customer, user) = (self.clone(), customer.to_owned(), user.clone());
        run_to_completion(async move {
            let mut w = this.begin_write().await?;
            sqlx::query(
                "INSERT INTO stripe_customers (customer, user_id, created_at)
                 SELECT $1, $2, $3 WHERE EXISTS (SELECT 1 FROM users WHERE id = $2)
                 ON CONFLICT DO NOTHING",
            )
            .bind(&customer)
            .bind(&user)
            .bind(now_millis())
            .execute(&mut *w.tx)
            .await?;
            w.tx.commit().await?;
            Ok(())
        })
        .await
    }

    async fn evidence(&self, rules: &FraudRules, now: i64) -> Result<Evidence, AccountError> {
        rules.check()?;
        let trouble: Vec<(UserId, i64, i64, i64, i64)> = sqlx::query_as(
            "SELECT user_id,
                    CAST(SUM(CASE WHEN kind = 'refunded' THEN 1 ELSE 0 END) AS BIGINT),
                    CAST(SUM(CASE WHEN kind = 'failed' THEN 1 ELSE 0 END) AS BIGINT),
                    CAST(SUM(CASE WHEN kind = 'disputed' THEN 1 ELSE 0 END) AS BIGINT),
                    MAX(created_at)
             FROM payment_events
             WHERE user_id IS NOT NULL AND kind IN ('refunded', 'failed', 'disputed') AND created_at >= $1
             GROUP BY user_id HAVING COUNT(*) >= $2
             ORDER BY COUNT(*) DESC, user_id LIMIT $3",
        )
        .bind(rules.burst_since(now))
        .bind(rules.burst_count)
        .bind(limit_per_rule())
        .fetch_all(self.pool())
        .await?;
        let shared: Vec<(String, UserId, i64)> = sqlx::query_as(
            "SELECT source, user_id, MAX(created_at)
             FROM payment_events
             WHERE source IS NOT NULL AND user_id IS NOT NULL AND created_at >= $1
               AND source IN (SELECT source FROM payment_events
                              WHERE source IS NOT NULL AND user_id IS NOT NULL AND created_at >= $1
                              GROUP BY source HAVING COUNT(DISTINCT user_id) >= $2)
             GROUP BY source, user_id
             ORDER BY source, user_id LIMIT $3",
        )
        .bind(rules.shared_source_since(now))
        .bind(rules.shared_source_accounts)
        .bind(limit_per_rule())
        .fetch_all(self.pool())
        .await?;
        // Spending is what runs took: holds are negative entries, releases give back what was
        // not used (captures move nothing), so the sum of a run's entries is what it cost. On a
        // team's account too: `user_id` is then the member who ran it.
        let spending: Vec<(UserId, i64, i64, i64)> = sqlx::query_as(
            "SELECT user_id,
                    CAST(-SUM(CASE WHEN created_at >= $2 THEN amount ELSE 0 END) AS BIGINT),
                    CAST(-SUM(CASE WHEN created_at < $2 THEN amount ELSE 0 END) AS BIGINT),
                    MAX(created_at)
             FROM credit_ledger
             WHERE reason LIKE 'run %' AND created_at >= $1
             GROUP BY user_id
             HAVING -SUM(CASE WHEN created_at >= $2 THEN amount ELSE 0 END) >= $3
             ORDER BY user_id LIMIT $4",
        )
        .bind(rules.history_since(now))
        .bind(rules.spend_since(now))
        .bind(rules.spend_minimum)
        .bind(limit_per_rule())
        .fetch_all(self.pool())
        .await?;
        let mut sources: BTreeMap<String, Vec<(UserId, i64)>> = BTreeMap::new();
        for (source, user, at) in shared {
            sources.entry(source).or_default().push((user, at));
        }
        Ok(Evidence {
            trouble: trouble
                .into_iter()
                .map(|(user_id, refunded, failed, disputed, latest_at)| PaymentTrouble {
                    user_id,
                    refunded,
                    failed,
                    disputed,
                    latest_at,
                })
                .collect(),
            shared_sources: sources
                .into_iter()
                .map(|(source, users)| SharedSource { source, users })
                .collect(),
            spending: spending
                .into_iter()
                .map(|(user_id, recent, history, latest_at)| Spending { user_id, recent, history, latest_at })
                .collect(),
        })
    }

    async fn raise_flag(&self, finding: &Finding) -> Result<Option<Flag>, AccountError> {
        let detail = serde_json::to_string(&finding.detail).unwrap_or_else(|_| "{}".into());
        let (this, finding) = (self.clone(), finding.clone());
        run_to_completion(async move {
            let id = new_id();
            let mut w = this.begin_write().await?;
            // Nothing new when the user has this rule's flag waiting or confirmed, or staff
            // cleared one that had seen this evidence already; the partial unique index stops
            // a concurrent scan's duplicate.
            let raised = sqlx::query(
                "INSERT INTO account_flags (id, user_id, rule, detail, evidence_at, status, created_at)
                 SELECT $1, $2, $3, $4, $5, 'open', $6
                 WHERE EXISTS (SELECT 1 FROM users WHERE id = $2)
                   AND NOT EXISTS (SELECT 1 FROM account_flags
                                   WHERE user_id = $2 AND rule = $3
                                     AND (status IN ('open', 'confirmed')
                                          OR (status = 'cleared' AND reviewed_at >= $5)))
                 ON CONFLICT DO NOTHING",
            )
            .bind(&id)
            .bind(&finding.user_id)
            .bind(finding.rule)
            .bind(&detail)
            .bind(finding.evidence_at)
            .bind(now_millis())
            .execute(&mut *w.tx)
            .await?
            .rows_affected();
            let flag = if raised > 0 { by_id(&mut w.tx, &id).await? } else { None };
            w.tx.commit().await?;
            Ok(flag)
        })
        .await
    }

    async fn flag(&self, id: &str) -> Result<Option<Flag>, AccountError> {
        let mut conn = self.pool().acquire().await?;
        by_id(&mut conn, id).await
    }

    async fn flags(&self, query: &FlagQuery) -> Result<Vec<Flag>, AccountError> {
        let (after_at, after_id) = query.after.clone().unwrap_or((i64::MAX, String::new()));
        let rows: Vec<FlagRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM account_flags
             WHERE ($1 = '' OR status = $1) AND ($2 = '' OR user_id = $2)
               AND (created_at < $3 OR (created_at = $3 AND ($4 = '' OR id < $4)))
             ORDER BY created_at DESC, id DESC LIMIT $5"
        )))
        .bind(query.status.map(FlagStatus::as_str).unwrap_or(""))
        .bind(query.user_id.as_ref().map(UserId::as_str).unwrap_or(""))
        .bind(after_at)
        .bind(after_id)
        .bind(i64::from(query.limit.clamp(1, MAX_FLAG_PAGE)))
        .fetch_all(self.pool())
        .await?;
        rows.into_iter().map(Flag::try_from).collect()
    }

    async fn review_flag(
        &self,
        id: &str,
        verdict: FlagStatus,
        reviewer: &str,
        note: Option<&str>,
    ) -> Result<Option<Flag>, AccountError> {
        if note.is_some_and(|note| note.len() > MAX_NOTE_LEN) {
            return Err(AccountError::InvalidInput { field: "note", reason: "longer than 2,000 bytes" });
        }
        let from = match verdict {
            FlagStatus::Cleared => "('open', 'confirmed')",
            FlagStatus::Confirmed => "('open')",
            FlagStatus::Open => {
                return Err(AccountError::InvalidInput {
                    field: "verdict",
                    reason: "must be cleared or confirmed",
                });
            }
        };
        let (this, id, reviewer, note) =
            (self.clone(), id.to_owned(), reviewer.to_owned(), note.map(str::to_owned));
        run_to_completion(async move {
            let mut w = this.begin_write().await?;
            let changed = sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE account_flags SET status = $2, reviewed_by = $3, reviewed_at = $4, note = $5
                 WHERE id = $1 AND status IN {from}"
            )))
            .bind(&id)
            .bind(verdict.as_str())
            .bind(&reviewer)
            .bind(now_millis())
            .bind(&note)
            .execute(&mut *w.tx)
            .await?
            .rows_affected();
            let flag = if changed > 0 { by_id(&mut w.tx, &id).await? } else { None };
            w.tx.commit().await?;
            Ok(flag)
        })
        .await
    }

    async fn under_review(&self, user: &UserId) -> Result<bool, AccountError> {
        let mut conn = self.pool().acquire().await?;
        blocked(&mut conn, user).await
    }
}
