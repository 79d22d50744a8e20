//! The statements of the workflow agent's suggestions.

use dojo_ids::WorkflowId;
use dojo_store::run_to_completion;

use super::Store;
use crate::AccountError;
use crate::dialect::Dialect;
use crate::suggestions::{MAX_REVIEW_ROOMS, SuggestionStore, Suggestions};

#[async_trait::async_trait]
impl SuggestionStore for Store {
    async fn recently_run_rooms(&self, since: i64, limit: u32) -> Result<Vec<String>, AccountError> {
        Ok(sqlx::query_scalar(
            "SELECT room FROM runs WHERE created_at >= $1
             GROUP BY room ORDER BY MAX(created_at) DESC, room LIMIT $2",
        )
        .bind(since)
        .bind(i64::from(limit.clamp(1, MAX_REVIEW_ROOMS)))
        .fetch_all(self.pool())
        .await?)
    }

    async fn put_suggestions(&self, suggestions: &Suggestions) -> Result<(), AccountError> {
        let items = serde_json::to_string(&suggestions.items).unwrap_or_else(|_| "[]".into());
        let (this, s) = (self.clone(), suggestions.clone());
        run_to_completion(async move {
            let _turn = this.write_turn().await;
            // A dismissal holds while the findings are the same ones; new findings show again.
            sqlx::query(
                "INSERT INTO workflow_suggestions (workflow_id, suggestions, summary, source, created_at)
                 SELECT $1, $2, $3, $4, $5 WHERE EXISTS (SELECT 1 FROM workflows WHERE id = $1)
                 ON CONFLICT (workflow_id) DO UPDATE SET
                     dismissed_at = CASE WHEN workflow_suggestions.suggestions = excluded.suggestions
                                         THEN workflow_suggestions.dismissed_at ELSE NULL END,
                     suggestions = excluded.suggestions, summary = excluded.summary,
                     source = excluded.source, created_at = excluded.created_at",
            )
            .bind(&s.workflow_id)
            .bind(&items)
            .bind(&s.summary)
            .bind(&s.source)
            .bind(s.created_at)
            .execute(this.pool())
            .await?;
            Ok(())
        })
        .await
    }

    async fn suggestions(&self, workflow: &WorkflowId) -> Result<Option<Suggestions>, AccountError> {
        let row: Option<(String, String, String, i64, Option<i64>)> = sqlx::query_as(
            "SELECT suggestions, summary, source, created_at, dismissed_at
             FROM workflow_suggestions WHERE workflow_id = $1",
        )
        .bind(workflow)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.map(|(items, summary, source, created_at, dismissed_at)| Suggestions {
            workflow_id: workflow.clone(),
            items: serde_json::from_str(&items).unwrap_or(serde_json::Value::Array(Vec::new())),
            summary,
            source,
            created_at,
            dismissed_at,
        }))
    }

    async fn dismiss_suggestions(&self, workflow: &WorkflowId, now: i64) -> Result<bool, AccountError> {
        let (this, workflow) = (self.clone(), workflow.clone());
        run_to_completion(async move {
            let _turn = this.write_turn().await;
            let changed =
                sqlx::query("UPDATE workflow_suggestions SET dismissed_at = $2 WHERE workflow_id = $1")
                    .bind(&workflow)
                    .bind(now)
                    .execute(this.pool())
                    .await?
                    .rows_affected();
            Ok(changed > 0)
        })
        .await
    }
}
