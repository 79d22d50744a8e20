//! Webhooks and the change feed: a workflow's endpoints, its append-only event log, and the
//! deliveries of each event to each endpoint that asked for its type.
//!
//! An event is appended once, with one pending delivery per matching endpoint, in one
//! transaction; from then on any instance may claim a due delivery (PostgreSQL: `FOR UPDATE
//! SKIP LOCKED`, so several instances never claim the same row), send it, and record the
//! attempt: succeeded, failed for good, or due again later. Claiming pushes the delivery's due
//! time past the request's timeout, so a sender that dies mid-request leaves it to be retried,
//! never lost (at least once, as every webhook scheme is; receivers deduplicate on the event id).
//!
//! The event log is also the change feed: cursors increase in commit order (see the migration),
//! so a poller reading `after=<cursor>` sees every event exactly once, in order.

use dojo_ids::{EventId, UserId, WebhookId, WorkflowId};
use serde::Serialize;

use crate::AccountError;

/// Event types an endpoint may subscribe to.
pub const EVENT_TYPES: &[&str] =
    &["run.finished", "node.finished", "room.updated", "user.entered", "user.left", "workflow.shared"];

/// Longest endpoint URL accepted, in bytes.
pub const MAX_URL_LEN: usize = 2048;
/// Longest description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 200;
/// Largest stored event payload (the body sent), in bytes.
pub const MAX_PAYLOAD_BYTES: usize = 256 * 1024;
/// Most of a receiver's answer kept in the delivery log, in bytes.
pub const MAX_RESPONSE_BODY: usize = 4 * 1024;
/// Longest error kept in the delivery log, in bytes.
pub const MAX_ERROR_LEN: usize = 1024;

/// A new endpoint, as [`WebhookStore::create_endpoint`] takes it (validated there).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEndpoint {
    pub workflow_id: WorkflowId,
    pub url: String,
    pub events: Vec<String>,
    pub description: Option<String>,
    /// `whsec_…`, chosen by the caller.
    pub secret: String,
    pub created_by: UserId,
}

/// An endpoint as stored. `secret` is for signing; the API shows it once, at creation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub id: WebhookId,
    pub workflow_id: WorkflowId,
    pub url: String,
    pub events: Vec<String>,
    pub description: Option<String>,
    pub secret: String,
    pub created_by: UserId,
    pub created_at: i64,
}

/// A new event of a workflow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    pub id: EventId,
    pub workflow_id: WorkflowId,
    pub event_type: String,
    /// The JSON body every delivery sends, as signed.
    pub payload: String,
    pub created_at: i64,
}

/// An event of the change feed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    pub cursor: i64,
    pub id: EventId,
    pub workflow_id: WorkflowId,
    pub event_type: String,
    pub payload: String,
    pub created_at: i64,
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatus {
    Pending,
    Succeeded,
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Succeeded => "succeeded",
            DeliveryStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => DeliveryStatus::Pending,
            "succeeded" => DeliveryStatus::Succeeded,
            "failed" => DeliveryStatus::Failed,
            _ => return None,
        })
    }
}

/// One delivery of one event to one endpoint: the delivery log's row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub id: i64,
    pub endpoint_id: WebhookId,
    pub event_id: EventId,
    pub event_type: String,
    pub status: DeliveryStatus,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub response_status: Option<i64>,
    pub response_body: Option<String>,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A delivery claimed for sending, with what sending needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueDelivery {
    pub id: i64,
    /// Attempts before this one.
    pub attempts: i64,
    pub url: String,
    pub secret: String,
    pub event_id: EventId,
    pub event_type: String,
    pub payload: String,
}

/// How an attempt ended, for [`WebhookStore::record_attempt`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// `Succeeded` or `Failed` end the delivery; `Pending` makes it due again at `retry_at`.
    pub status: DeliveryStatus,
    pub retry_at: i64,
    pub response_status: Option<u16>,
    /// Truncated to [`MAX_RESPONSE_BODY`] bytes here whatever the caller passes.
    pub response_body: Option<String>,
    pub error: Option<String>,
}

/// Endpoints, events and deliveries. One implementation per database kind; both pass
/// `tests/webhooks.rs`.
#[async_trait::async_trait]
pub trait WebhookStore: Send + Sync + 'static {
    /// Stores an endpoint, refused with `QuotaExceeded` when the workflow already has
    /// `max_per_workflow` (counted under the workflow's row lock, so concurrent creations
    /// cannot pass it) and with `InvalidInput` for a bad URL, event list or description.
    async fn create_endpoint(
        &self,
        endpoint: NewEndpoint,
        max_per_workflow: u64,
    ) -> Result<Endpoint, AccountError>;

    /// The workflow's endpoints, oldest first.
    async fn endpoints(&self, workflow_id: &WorkflowId) -> Result<Vec<Endpoint>, AccountError>;

    async fn endpoint(
        &self,
        workflow_id: &WorkflowId,
        id: &WebhookId,
    ) -> Result<Option<Endpoint>, AccountError>;

    /// Deletes the endpoint and its deliveries; whether it existed.
    async fn delete_endpoint(&self, workflow_id: &WorkflowId, id: &WebhookId) -> Result<bool, AccountError>;

    /// Appends the event with one pending delivery (due now) per endpoint of the workflow that
    /// subscribes to its type, in one transaction, and keeps at most `keep_per_workflow` events
    /// of the workflow (the oldest go, with their deliveries). Returns the event's cursor and
    /// how many deliveries were queued; `None` when an event with this id is recorded already
    /// (ids of run and node ends are derived from the run, so that every process reporting the
    /// same end records it once).
    async fn append_event(
        &self,
        event: NewEvent,
        keep_per_workflow: u64,
    ) -> Result<Option<(i64, u64)>, AccountError>;

    /// The workflow's events after `after`, oldest first, at most `limit`.
    async fn events(
        &self,
        workflow_id: &WorkflowId,
        after: i64,
        limit: u32,
    ) -> Result<Vec<Event>, AccountError>;

    /// Claims up to `limit` pending deliveries due at `now`, soonest first, making them due
    /// again at `now + lease_ms` (if the claimer dies, they are retried then).
    async fn claim_due(&self, now: i64, lease_ms: i64, limit: u32) -> Result<Vec<DueDelivery>, AccountError>;

    /// Records an attempt on a delivery (attempts + 1) and where it now stands.
    async fn record_attempt(&self, id: i64, attempt: Attempt) -> Result<(), AccountError>;

    /// The endpoint's deliveries, newest first, with ids below `before` (`None`: from the newest).
    async fn deliveries(
        &self,
        endpoint_id: &WebhookId,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<Delivery>, AccountError>;

    /// Queues the event of delivery `id` (of this endpoint) again, as a new pending delivery due
    /// now; `None` if the endpoint has no such delivery.
    async fn replay(&self, endpoint_id: &WebhookId, id: i64) -> Result<Option<Delivery>, AccountError>;

    /// Deletes events (with their deliveries) created before `older_than`; how many.
    async fn prune_events(&self, older_than: i64) -> Result<u64, AccountError>;
}

/// The `Dojo-Signature` header for `payload` at `timestamp` (Unix seconds): Stripe's scheme
/// (`t=<seconds>,v1=<hex HMAC-SHA256 of "{t}.{body}">`), so the same verifier works for both.
pub fn sign(payload: &[u8], secret: &str, timestamp: i64) -> String {
    crate::stripe::sign(payload, secret, timestamp)
}

/// Checks a `Dojo-Signature` header the way receivers should (constant-time, with a
/// tolerance on the timestamp): for tests and for Rust receivers.
pub fn verify(
    header: &str,
    payload: &[u8],
    secret: &str,
    now_unix: i64,
    tolerance_s: i64,
) -> Result<(), crate::stripe::SignatureError> {
    crate::stripe::verify_signature(header, payload, secret, now_unix, tolerance_s)
}

fn invalid(field: &'static str, reason: &'static str) -> AccountError {
    AccountError::InvalidInput { field, reason }
}

/// Checks a new endpoint and returns its event list with duplicates removed, in the order
/// given. The URL's scheme and host are the server's to judge (it knows its SSRF policy);
/// here only the bounds every stored row keeps.
pub(crate) fn validate_endpoint(endpoint: &NewEndpoint) -> Result<Vec<String>, AccountError> {
    if endpoint.url.is_empty() {
        return Err(invalid("url", "empty"));
    }
    if endpoint.url.len() > MAX_URL_LEN {
        return Err(invalid("url", "longer than 2048 bytes"));
    }
    if !(endpoint.url.starts_with("http://") || endpoint.url.starts_with("https://")) {
        return Err(invalid("url", "not an http or https URL"));
    }
    if endpoint.events.is_empty() {
        return Err(invalid("events", "empty"));
    }
    if endpoint.events.len() > EVENT_TYPES.len() * 2 {
        return Err(invalid("events", "too many entries"));
    }
    let mut events: Vec<String> = Vec::new();
    for event in &endpoint.events {
        if !EVENT_TYPES.contains(&event.as_str()) {
            return Err(invalid("events", "unknown event type"));
        }
        if !events.contains(event) {
            events.push(event.clone());
        }
    }
    if let Some(description) = &endpoint.description
        && description.chars().count() > MAX_DESCRIPTION_CHARS
    {
        return Err(invalid("description", "longer than 200 characters"));
    }
    if endpoint.secret.len() < 16 || endpoint.secret.len() > 255 {
        return Err(invalid("secret", "not between 16 and 255 bytes"));
    }
    Ok(events)
}

pub(crate) fn validate_event(event: &NewEvent) -> Result<(), AccountError> {
    if !EVENT_TYPES.contains(&event.event_type.as_str()) {
        return Err(invalid("event_type", "unknown event type"));
    }
    if event.payload.len() > MAX_PAYLOAD_BYTES {
        return Err(invalid("payload", "larger than 256 KiB"));
    }
    Ok(())
}

/// `text` cut to at most `max` bytes, on a character boundary.
pub(crate) fn truncate(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(url: &str, events: &[&str]) -> NewEndpoint {
        NewEndpoint {
            workflow_id: WorkflowId::from("wf_1"),
            url: url.to_owned(),
            events: events.iter().map(|e| (*e).to_owned()).collect(),
            description: None,
            secret: "whsec_0123456789abcdef".to_owned(),
            created_by: UserId::from("u_1"),
        }
    }

    #[test]
    fn endpoints_need_an_http_url_and_known_events() {
        assert!(validate_endpoint(&endpoint("https://example.com/h", &["run.finished"])).is_ok());
        assert!(validate_endpoint(&endpoint("ftp://example.com/h", &["run.finished"])).is_err());
        assert!(validate_endpoint(&endpoint("https://example.com/h", &[])).is_err());
        assert!(validate_endpoint(&endpoint("https://example.com/h", &["run.started"])).is_err());
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL_LEN));
        assert!(validate_endpoint(&endpoint(&long, &["run.finished"])).is_err());
        let events =
            validate_endpoint(&endpoint("http://x/", &["user.left", "user.left", "room.updated"])).unwrap();
        assert_eq!(events, ["user.left", "room.updated"]);
    }

    #[test]
    fn truncation_keeps_whole_characters() {
        assert_eq!(truncate("héllo".to_owned(), 2), "h");
        assert_eq!(truncate("abc".to_owned(), 10), "abc");
    }

    #[test]
    fn signatures_verify_like_stripes() {
        let header = sign(b"{\"a\":1}", "whsec_test_secret_1234", 1_700_000_000);
        assert!(header.starts_with("t=1700000000,v1="));
        assert!(verify(&header, b"{\"a\":1}", "whsec_test_secret_1234", 1_700_000_010, 300).is_ok());
        assert!(verify(&header, b"{\"a\":2}", "whsec_test_secret_1234", 1_700_000_010, 300).is_err());
    }
}
