//! The statements of activity, the tips opt-out and re-engagement messages.

use dojo_ids::UserId;
use dojo_store::run_to_completion;

use super::Store;
use crate::dialect::Dialect;
use crate::engagement::{
    ACTIVITY_RESOLUTION_MS, EngagementStore, InactiveUser, MAX_BODY_LEN, MAX_INACTIVE_PAGE, MAX_SUBJECT_LEN,
    Message, MessageStatus, NewMessage, cut_to,
};
use crate::{AccountError, now_millis};

const COLUMNS: &str = "id, user_id, subject, body, source, status, error, created_at, updated_at";

#[derive(sqlx::FromRow)]
struct MessageRow {
    id: String,
    user_id: UserId,
    subject: String,
    body: String,
    source: String,
    status: String,
    error: Option<String>,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<MessageRow> for Message {
    type Error = AccountError;

    fn try_from(row: MessageRow) -> Result<Self, AccountError> {
        let status = MessageStatus::parse(&row.status).ok_or_else(|| {
            AccountError::Database(sqlx::Error::Decode("engagement_messages: an unknown status".into()))
        })?;
        Ok(Message {
            id: row.id,
            user_id: row.user_id,
            subject: row.subject,
            body: row.body,
            source: row.source,
            status,
            error: row.error,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

fn new_id() -> String {
    use rand::Rng;
    let bytes: [u8; 12] = rand::rng().random();
    format!("msg_{}", bytes.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

#[async_trait::async_trait]
impl EngagementStore for Store {
    async fn mark_active(&self, user: &UserId, now: i64) -> Result<(), AccountError> {
        let (this, user) = (self.clone(), user.clone());
        run_to_completion(async move {
            let _turn = this.write_turn().await;
            sqlx::query(
                "UPDATE users SET last_active_at = $2
                 WHERE id = $1 AND (last_active_at IS NULL OR last_active_at < $3)",
            )
            .bind(&user)
            .bind(now)
            .bind(now.saturating_sub(ACTIVITY_RESOLUTION_MS))
            .execute(this.pool())
            .await?;
            Ok(())
        })
        .await
    }

    async fn tips_opt_out(&self, user: &UserId) -> Result<bool, AccountError> {
        let value: Option<i32> = sqlx::query_scalar("SELECT tips_opt_out FROM users WHERE id = $1")
            .bind(user)
            .fetch_optional(self.pool())
            .await?;
        value.map(|v| v != 0).ok_or_else(|| AccountError::UserNotFound(user.clone()))
    }

    async fn set_tips_opt_out(&self, user: &UserId, opt_out: bool) -> Result<(), AccountError> {
        let (this, user) = (self.clone(), user.clone());
        run_to_completion(async move {
            let _turn = this.write_turn().await;
            let changed = sqlx::query("UPDATE users SET tips_opt_out = $2, updated_at = $3 WHERE id = $1")
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

    async fn inactive_users(
        &self,
        inactive_before: i64,
        quiet_since: i64,
        limit: u32,
    ) -> Result<Vec<InactiveUser>, AccountError> {
        // Users not seen since activity was recorded count from their last profile change, so
        // that the first scan after an upgrade does not take everyone for long gone.
        let rows: Vec<(UserId, Option<String>, String, i64)> = sqlx::query_as(
            "SELECT id, name, email, COALESCE(last_active_at, updated_at) AS seen
             FROM users
             WHERE email IS NOT NULL AND email <> '' AND tips_opt_out = 0
               AND COALESCE(last_active_at, updated_at) < $1
               AND NOT EXISTS (SELECT 1 FROM engagement_messages m
                               WHERE m.user_id = users.id AND m.created_at >= $2 AND m.status <> 'failed')
             ORDER BY seen, id LIMIT $3",
        )
        .bind(inactive_before)
        .bind(quiet_since)
        .bind(i64::from(limit.clamp(1, MAX_INACTIVE_PAGE)))
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, name, email, last_active_at)| InactiveUser { id, name, email, last_active_at })
            .collect())
    }

    async fn start_message(
        &self,
        message: NewMessage,
        quiet_since: i64,
    ) -> Result<Option<Message>, AccountError> {
        let subject = cut_to(&message.subject, MAX_SUBJECT_LEN);
        let body = cut_to(&message.body, MAX_BODY_LEN);
        let this = self.clone();
        run_to_completion(async move {
            let now = now_millis();
            let id = new_id();
            let mut w = this.begin_write().await?;
            // Under the user's row lock, so two scans cannot both write one.
            let _locked: Option<i32> =
                sqlx::query_scalar(Store::LOCK_USER).bind(&message.user_id).fetch_optional(&mut *w.tx).await?;
            let written = sqlx::query(
                "INSERT INTO engagement_messages (id, user_id, subject, body, source, status, created_at, updated_at)
                 SELECT $1, $2, $3, $4, $5, 'pending', $6, $6
                 WHERE EXISTS (SELECT 1 FROM users WHERE id = $2 AND tips_opt_out = 0)
                   AND NOT EXISTS (SELECT 1 FROM engagement_messages
                                   WHERE user_id = $2 AND created_at >= $7 AND status <> 'failed')",
            )
            .bind(&id)
            .bind(&message.user_id)
            .bind(&subject)
            .bind(&body)
            .bind(&message.source)
            .bind(now)
            .bind(quiet_since)
            .execute(&mut *w.tx)
            .await?
            .rows_affected();
            let row: Option<MessageRow> = if written > 0 {
                sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {COLUMNS} FROM engagement_messages WHERE id = $1"
                )))
                .bind(&id)
                .fetch_optional(&mut *w.tx)
                .await?
            } else {
                None
            };
            w.tx.commit().await?;
            row.map(Message::try_from).transpose()
        })
        .await
    }

    async fn finish_message(
        &self,
        id: &str,
        status: MessageStatus,
        error: Option<&str>,
    ) -> Result<(), AccountError> {
        let (this, id, error) = (self.clone(), id.to_owned(), error.map(|e| cut_to(e, 2_000)));
        run_to_completion(async move {
            let _turn = this.write_turn().await;
            sqlx::query(
                "UPDATE engagement_messages SET status = $2, error = $3, updated_at = $4 WHERE id = $1",
            )
            .bind(&id)
            .bind(status.as_str())
            .bind(&error)
            .bind(now_millis())
            .execute(this.pool())
            .await?;
            Ok(())
        })
        .await
    }

    async fn messages_of(&self, user: &UserId, limit: u32) -> Result<Vec<Message>, AccountError> {
        let rows: Vec<MessageRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM engagement_messages WHERE user_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2"
        )))
        .bind(user)
        .bind(i64::from(limit.clamp(1, 500)))
        .fetch_all(self.pool())
        .await?;
        rows.into_iter().map(Message::try_from).collect()
    }
}
