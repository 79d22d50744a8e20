//! The statements of published apps (App mode).

use dojo_ids::{UserId, WorkflowId};
use dojo_store::run_to_completion;

use super::Store;
use crate::apps::{App, AppStore, AppVisibility, NewApp};
use crate::dialect::Dialect;
use crate::{AccountError, now_millis};

const COLUMNS: &str =
    "id, workflow_id, published_by, title, description, visibility, form, graph, created_at, updated_at";

/// Most apps one read returns.
const MAX_PAGE: u32 = 500;

#[derive(sqlx::FromRow)]
struct AppRow {
    id: String,
    workflow_id: String,
    published_by: String,
    title: String,
    description: String,
    visibility: String,
    form: String,
    graph: String,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<AppRow> for App {
    type Error = AccountError;

    fn try_from(row: AppRow) -> Result<Self, AccountError> {
        let visibility = AppVisibility::parse(&row.visibility).ok_or_else(|| {
            AccountError::Database(sqlx::Error::Decode("workflow_apps: an unknown visibility".into()))
        })?;
        Ok(App {
            id: row.id,
            workflow_id: WorkflowId::from(row.workflow_id.as_str()),
            published_by: UserId::from(row.published_by.as_str()),
            title: row.title,
            description: row.description,
            visibility,
            form: row.form,
            graph: row.graph,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

/// An unguessable id: having it is what "link" visibility lets in.
fn new_id() -> String {
    use rand::Rng;
    let bytes: [u8; 16] = rand::rng().random();
    format!("app_{}", bytes.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

async fn one(conn: &mut super::Conn, column: &str, value: &str) -> Result<Option<App>, AccountError> {
    let row: Option<AppRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM workflow_apps WHERE {column} = $1"
    )))
    .bind(value)
    .fetch_optional(&mut *conn)
    .await?;
    row.map(App::try_from).transpose()
}

#[async_trait::async_trait]
impl AppStore for Store {
    async fn publish_app(&self, app: NewApp) -> Result<App, AccountError> {
        let this = self.clone();
        run_to_completion(async move {
            let now = now_millis();
            let mut w = this.begin_write().await?;
            // One app per workflow: a republish keeps the row's id (its link) and creation time.
            sqlx::query(
                "INSERT INTO workflow_apps
                     (id, workflow_id, published_by, title, description, visibility, form, graph, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)
                 ON CONFLICT (workflow_id) DO UPDATE SET
                     published_by = excluded.published_by, title = excluded.title,
                     description = excluded.description, visibility = excluded.visibility,
                     form = excluded.form, graph = excluded.graph, updated_at = excluded.updated_at",
            )
            .bind(new_id())
            .bind(app.workflow_id.as_str())
            .bind(app.published_by.as_str())
            .bind(&app.title)
            .bind(&app.description)
            .bind(app.visibility.as_str())
            .bind(&app.form)
            .bind(&app.graph)
            .bind(now)
            .execute(&mut *w.tx)
            .await?;
            let stored = one(&mut w.tx, "workflow_id", app.workflow_id.as_str()).await?.ok_or_else(|| {
                AccountError::Database(sqlx::Error::Decode("workflow_apps: gone right after its insert".into()))
            })?;
            w.tx.commit().await?;
            Ok(stored)
        })
        .await
    }

    async fn app(&self, id: &str) -> Result<Option<App>, AccountError> {
        let mut conn = self.pool().acquire().await?;
        one(&mut conn, "id", id).await
    }

    async fn app_of_workflow(&self, workflow: &WorkflowId) -> Result<Option<App>, AccountError> {
        let mut conn = self.pool().acquire().await?;
        one(&mut conn, "workflow_id", workflow.as_str()).await
    }

    async fn unpublish_app(&self, workflow: &WorkflowId) -> Result<bool, AccountError> {
        let (this, workflow) = (self.clone(), workflow.clone());
        run_to_completion(async move {
            let mut w = this.begin_write().await?;
            let deleted = sqlx::query("DELETE FROM workflow_apps WHERE workflow_id = $1")
                .bind(workflow.as_str())
                .execute(&mut *w.tx)
                .await?
                .rows_affected();
            w.tx.commit().await?;
            Ok(deleted > 0)
        })
        .await
    }

    async fn apps_published_by(&self, user: &UserId, limit: u32) -> Result<Vec<App>, AccountError> {
        let rows: Vec<AppRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM workflow_apps WHERE published_by = $1 ORDER BY created_at DESC, id DESC LIMIT $2"
        )))
        .bind(user.as_str())
        .bind(i64::from(limit.clamp(1, MAX_PAGE)))
        .fetch_all(self.pool())
        .await?;
        rows.into_iter().map(App::try_from).collect()
    }
}
