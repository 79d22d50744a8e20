//! [`WebhookStore`] for this backend: endpoints, the event log (the change feed) and
//! deliveries. Writes run on a task of their own (`run_to_completion`), as every store's do.

use dojo_ids::{EventId, UserId, WebhookId, WorkflowId};
use dojo_store::run_to_completion;
use sqlx::FromRow;

use super::{Conn, Store};
use crate::dialect::Dialect;
use crate::webhooks::{
    Attempt, Delivery, DeliveryStatus, DueDelivery, Endpoint, Event, MAX_ERROR_LEN, MAX_RESPONSE_BODY,
    NewEndpoint, NewEvent, WebhookStore, truncate, validate_endpoint, validate_event,
};
use crate::{AccountError, now_millis, quota_full};

#[derive(FromRow)]
struct EndpointRow {
    id: WebhookId,
    workflow_id: WorkflowId,
    url: String,
    events: String,
    description: Option<String>,
    secret: String,
    created_by: UserId,
    created_at: i64,
}

impl From<EndpointRow> for Endpoint {
    fn from(row: EndpointRow) -> Self {
        Endpoint {
            id: row.id,
            workflow_id: row.workflow_id,
            url: row.url,
            // Written by `create_endpoint` from a validated list; unreadable text lists nothing.
            events: serde_json::from_str(&row.events).unwrap_or_default(),
            description: row.description,
            secret: row.secret,
            created_by: row.created_by,
            created_at: row.created_at,
        }
    }
}

#[derive(FromRow)]
struct EventRow {
    seq: i64,
    id: EventId,
    workflow_id: WorkflowId,
    event_type: String,
    payload: String,
    created_at: i64,
}

#[derive(FromRow)]
struct DeliveryRow {
    id: i64,
    endpoint_id: WebhookId,
    event_id: EventId,
    event_type: String,
    status: String,
    attempts: i32,
    next_attempt_at: i64,
    response_status: Option<i32>,
    response_body: Option<String>,
    last_error: Option<String>,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<DeliveryRow> for Delivery {
    type Error = AccountError;

    fn try_from(row: DeliveryRow) -> Result<Self, AccountError> {
        let status = DeliveryStatus::parse(&row.status).ok_or_else(|| {
            AccountError::Database(sqlx::Error::Decode(
                format!("unknown delivery status {:?}", row.status).into(),
            ))
        })?;
        Ok(Delivery {
            id: row.id,
            endpoint_id: row.endpoint_id,
            event_id: row.event_id,
            event_type: row.event_type,
            status,
            attempts: i64::from(row.attempts),
            next_attempt_at: row.next_attempt_at,
            response_status: row.response_status.map(i64::from),
            response_body: row.response_body,
            last_error: row.last_error,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

#[derive(FromRow)]
struct DueRow {
    id: i64,
    attempts: i32,
    url: String,
    secret: String,
    event_id: EventId,
    event_type: String,
    payload: String,
}

const ENDPOINT_COLUMNS: &str = "id, workflow_id, url, events, description, secret, created_by, created_at";

const DELIVERY_SELECT: &str = "SELECT d.id, d.endpoint_id, ev.id AS event_id, ev.event_type, d.status, \
     d.attempts, d.next_attempt_at, d.response_status, d.response_body, d.last_error, d.created_at, \
     d.updated_at FROM webhook_deliveries d JOIN workflow_events ev ON ev.seq = d.event_seq";

async fn create_endpoint(
    store: &Store,
    endpoint: NewEndpoint,
    events: Vec<String>,
    max: u64,
) -> Result<Endpoint, AccountError> {
    let mut w = store.begin_write().await?;
    // The workflow's row lock queues concurrent creations, so the count below stays true (a
    // no-op update is the one row lock both databases spell the same way).
    let found =
        sqlx::query("UPDATE workflows SET updated_at = updated_at WHERE id = $1 AND deleted_at IS NULL")
            .bind(&endpoint.workflow_id)
            .execute(&mut *w.tx)
            .await?
            .rows_affected();
    if found == 0 {
        w.tx.rollback().await?;
        return Err(AccountError::WorkflowNotFound(endpoint.workflow_id));
    }
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM webhook_endpoints WHERE workflow_id = $1")
        .bind(&endpoint.workflow_id)
        .fetch_one(&mut *w.tx)
        .await?;
    if quota_full(count, max) {
        w.tx.rollback().await?;
        return Err(AccountError::QuotaExceeded { what: "webhook endpoints per workflow", limit: max });
    }
    let created = Endpoint {
        id: WebhookId::generate(),
        workflow_id: endpoint.workflow_id,
        url: endpoint.url,
        events,
        description: endpoint.description,
        secret: endpoint.secret,
        created_by: endpoint.created_by,
        created_at: now_millis(),
    };
    let events_json = serde_json::to_string(&created.events)
        .map_err(|_| AccountError::InvalidInput { field: "events", reason: "cannot be written as JSON" })?;
    sqlx::query(
        "INSERT INTO webhook_endpoints (id, workflow_id, url, events, description, secret, created_by, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&created.id)
    .bind(&created.workflow_id)
    .bind(&created.url)
    .bind(events_json)
    .bind(&created.description)
    .bind(&created.secret)
    .bind(&created.created_by)
    .bind(created.created_at)
    .execute(&mut *w.tx)
    .await?;
    w.tx.commit().await?;
    Ok(created)
}

async fn append_event(store: &Store, event: NewEvent, keep: u64) -> Result<Option<(i64, u64)>, AccountError> {
    let mut w = store.begin_write().await?;
    // Cursors must commit in the order they are drawn (see the migration).
    sqlx::query(Store::EVENT_APPEND_LOCK).execute(&mut *w.tx).await?;
    let seq: Option<i64> = sqlx::query_scalar(
        "INSERT INTO workflow_events (id, workflow_id, event_type, payload, created_at)
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING RETURNING seq",
    )
    .bind(&event.id)
    .bind(&event.workflow_id)
    .bind(&event.event_type)
    .bind(&event.payload)
    .bind(event.created_at)
    .fetch_optional(&mut *w.tx)
    .await?;
    let Some(seq) = seq else {
        // Recorded already (another process reported the same run or node end).
        w.tx.commit().await?;
        return Ok(None);
    };
    let endpoints: Vec<(WebhookId, String)> =
        sqlx::query_as("SELECT id, events FROM webhook_endpoints WHERE workflow_id = $1")
            .bind(&event.workflow_id)
            .fetch_all(&mut *w.tx)
            .await?;
    let now = now_millis();
    let mut queued = 0u64;
    for (endpoint_id, events) in endpoints {
        let events: Vec<String> = serde_json::from_str(&events).unwrap_or_default();
        if !events.contains(&event.event_type) {
            continue;
        }
        insert_delivery(&mut w.tx, &endpoint_id, seq, now).await?;
        queued += 1;
    }
    prune_workflow(&mut w.tx, &event.workflow_id, keep).await?;
    w.tx.commit().await?;
    Ok(Some((seq, queued)))
}

async fn insert_delivery(
    conn: &mut Conn,
    endpoint_id: &WebhookId,
    seq: i64,
    now: i64,
) -> Result<i64, AccountError> {
    Ok(sqlx::query_scalar(
        "INSERT INTO webhook_deliveries
             (endpoint_id, event_seq, status, attempts, next_attempt_at, created_at, updated_at)
         VALUES ($1, $2, 'pending', 0, $3, $3, $3) RETURNING id",
    )
    .bind(endpoint_id)
    .bind(seq)
    .bind(now)
    .fetch_one(&mut *conn)
    .await?)
}

/// Keeps the workflow's newest `keep` events (one index seek finds the cut).
async fn prune_workflow(conn: &mut Conn, workflow_id: &WorkflowId, keep: u64) -> Result<(), AccountError> {
    let offset = i64::try_from(keep).unwrap_or(i64::MAX);
    let cut: Option<i64> = sqlx::query_scalar(
        "SELECT seq FROM workflow_events WHERE workflow_id = $1 ORDER BY seq DESC LIMIT 1 OFFSET $2",
    )
    .bind(workflow_id)
    .bind(offset)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(cut) = cut {
        sqlx::query(
            "DELETE FROM webhook_deliveries WHERE event_seq IN
                 (SELECT seq FROM workflow_events WHERE workflow_id = $1 AND seq <= $2)",
        )
        .bind(workflow_id)
        .bind(cut)
        .execute(&mut *conn)
        .await?;
        sqlx::query("DELETE FROM workflow_events WHERE workflow_id = $1 AND seq <= $2")
            .bind(workflow_id)
            .bind(cut)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

async fn claim_due(
    store: &Store,
    now: i64,
    lease_ms: i64,
    limit: u32,
) -> Result<Vec<DueDelivery>, AccountError> {
    let mut w = store.begin_write().await?;
    let ids: Vec<i64> = sqlx::query_scalar(Store::CLAIM_DELIVERIES)
        .bind(now)
        .bind(now.saturating_add(lease_ms))
        .bind(i64::from(limit))
        .fetch_all(&mut *w.tx)
        .await?;
    let mut due = Vec::with_capacity(ids.len());
    for id in ids {
        let row: Option<DueRow> = sqlx::query_as(
            "SELECT d.id, d.attempts, e.url, e.secret, ev.id AS event_id, ev.event_type, ev.payload
             FROM webhook_deliveries d
             JOIN webhook_endpoints e ON e.id = d.endpoint_id
             JOIN workflow_events ev ON ev.seq = d.event_seq
             WHERE d.id = $1",
        )
        .bind(id)
        .fetch_optional(&mut *w.tx)
        .await?;
        if let Some(row) = row {
            due.push(DueDelivery {
                id: row.id,
                attempts: i64::from(row.attempts),
                url: row.url,
                secret: row.secret,
                event_id: row.event_id,
                event_type: row.event_type,
                payload: row.payload,
            });
        }
    }
    w.tx.commit().await?;
    Ok(due)
}

async fn record_attempt(store: &Store, id: i64, attempt: Attempt) -> Result<(), AccountError> {
    let body = attempt.response_body.map(|body| truncate(body, MAX_RESPONSE_BODY));
    let error = attempt.error.map(|error| truncate(error, MAX_ERROR_LEN));
    let mut w = store.begin_write().await?;
    sqlx::query(
        "UPDATE webhook_deliveries SET status = $2, attempts = attempts + 1, next_attempt_at = $3,
             response_status = $4, response_body = $5, last_error = $6, updated_at = $7
         WHERE id = $1 AND status = 'pending'",
    )
    .bind(id)
    .bind(attempt.status.as_str())
    .bind(attempt.retry_at)
    .bind(attempt.response_status.map(i32::from))
    .bind(body)
    .bind(error)
    .bind(now_millis())
    .execute(&mut *w.tx)
    .await?;
    w.tx.commit().await?;
    Ok(())
}

async fn replay(store: &Store, endpoint_id: &WebhookId, id: i64) -> Result<Option<Delivery>, AccountError> {
    let mut w = store.begin_write().await?;
    let seq: Option<i64> =
        sqlx::query_scalar("SELECT event_seq FROM webhook_deliveries WHERE id = $1 AND endpoint_id = $2")
            .bind(id)
            .bind(endpoint_id)
            .fetch_optional(&mut *w.tx)
            .await?;
    let Some(seq) = seq else {
        w.tx.rollback().await?;
        return Ok(None);
    };
    let new_id = insert_delivery(&mut w.tx, endpoint_id, seq, now_millis()).await?;
    let row: DeliveryRow = sqlx::query_as(sqlx::AssertSqlSafe(format!("{DELIVERY_SELECT} WHERE d.id = $1")))
        .bind(new_id)
        .fetch_one(&mut *w.tx)
        .await?;
    w.tx.commit().await?;
    Delivery::try_from(row).map(Some)
}

async fn prune_events(store: &Store, older_than: i64) -> Result<u64, AccountError> {
    let mut w = store.begin_write().await?;
    sqlx::query(
        "DELETE FROM webhook_deliveries WHERE event_seq IN
             (SELECT seq FROM workflow_events WHERE created_at < $1)",
    )
    .bind(older_than)
    .execute(&mut *w.tx)
    .await?;
    let deleted = sqlx::query("DELETE FROM workflow_events WHERE created_at < $1")
        .bind(older_than)
        .execute(&mut *w.tx)
        .await?
        .rows_affected();
    w.tx.commit().await?;
    Ok(deleted)
}

#[async_trait::async_trait]
impl WebhookStore for Store {
    async fn create_endpoint(&self, endpoint: NewEndpoint, max: u64) -> Result<Endpoint, AccountError> {
        let events = validate_endpoint(&endpoint)?;
        let this = self.clone();
        run_to_completion(async move { create_endpoint(&this, endpoint, events, max).await }).await
    }

    async fn endpoints(&self, workflow_id: &WorkflowId) -> Result<Vec<Endpoint>, AccountError> {
        let rows: Vec<EndpointRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE workflow_id = $1 ORDER BY created_at, id"
        )))
        .bind(workflow_id)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().map(Endpoint::from).collect())
    }

    async fn endpoint(
        &self,
        workflow_id: &WorkflowId,
        id: &WebhookId,
    ) -> Result<Option<Endpoint>, AccountError> {
        let row: Option<EndpointRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE workflow_id = $1 AND id = $2"
        )))
        .bind(workflow_id)
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.map(Endpoint::from))
    }

    async fn delete_endpoint(&self, workflow_id: &WorkflowId, id: &WebhookId) -> Result<bool, AccountError> {
        let (this, workflow_id, id) = (self.clone(), workflow_id.clone(), id.clone());
        run_to_completion(async move {
            let mut w = this.begin_write().await?;
            // Explicitly, not only by the cascade: SQLite enforces foreign keys per connection.
            sqlx::query(
                "DELETE FROM webhook_deliveries WHERE endpoint_id IN
                     (SELECT id FROM webhook_endpoints WHERE id = $1 AND workflow_id = $2)",
            )
            .bind(&id)
            .bind(&workflow_id)
            .execute(&mut *w.tx)
            .await?;
            let deleted = sqlx::query("DELETE FROM webhook_endpoints WHERE id = $1 AND workflow_id = $2")
                .bind(&id)
                .bind(&workflow_id)
                .execute(&mut *w.tx)
                .await?
                .rows_affected();
            w.tx.commit().await?;
            Ok(deleted > 0)
        })
        .await
    }

    async fn append_event(&self, event: NewEvent, keep: u64) -> Result<Option<(i64, u64)>, AccountError> {
        validate_event(&event)?;
        let this = self.clone();
        run_to_completion(async move { append_event(&this, event, keep.max(1)).await }).await
    }

    async fn events(
        &self,
        workflow_id: &WorkflowId,
        after: i64,
        limit: u32,
    ) -> Result<Vec<Event>, AccountError> {
        let rows: Vec<EventRow> = sqlx::query_as(
            "SELECT seq, id, workflow_id, event_type, payload, created_at FROM workflow_events
             WHERE workflow_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        )
        .bind(workflow_id)
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|row| Event {
                cursor: row.seq,
                id: row.id,
                workflow_id: row.workflow_id,
                event_type: row.event_type,
                payload: row.payload,
                created_at: row.created_at,
            })
            .collect())
    }

    async fn claim_due(&self, now: i64, lease_ms: i64, limit: u32) -> Result<Vec<DueDelivery>, AccountError> {
        let this = self.clone();
        run_to_completion(async move { claim_due(&this, now, lease_ms.max(1), limit).await }).await
    }

    async fn record_attempt(&self, id: i64, attempt: Attempt) -> Result<(), AccountError> {
        let this = self.clone();
        run_to_completion(async move { record_attempt(&this, id, attempt).await }).await
    }

    async fn deliveries(
        &self,
        endpoint_id: &WebhookId,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<Delivery>, AccountError> {
        let rows: Vec<DeliveryRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "{DELIVERY_SELECT} WHERE d.endpoint_id = $1 AND d.id < $2 ORDER BY d.id DESC LIMIT $3"
        )))
        .bind(endpoint_id)
        .bind(before.unwrap_or(i64::MAX))
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        rows.into_iter().map(Delivery::try_from).collect()
    }

    async fn replay(&self, endpoint_id: &WebhookId, id: i64) -> Result<Option<Delivery>, AccountError> {
        let (this, endpoint_id) = (self.clone(), endpoint_id.clone());
        run_to_completion(async move { replay(&this, &endpoint_id, id).await }).await
    }

    async fn prune_events(&self, older_than: i64) -> Result<u64, AccountError> {
        let this = self.clone();
        run_to_completion(async move { prune_events(&this, older_than).await }).await
    }
}
