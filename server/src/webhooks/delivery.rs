//! The delivery loop: claims due deliveries (any number of instances may run it: a claim is
//! exclusive, see `dojo_records::webhooks`), signs and POSTs each with a timeout, and records
//! the attempt: a 2xx is success; anything else is retried with exponential backoff and jitter
//! until `DOJO_WEBHOOK_MAX_ATTEMPTS`, then the delivery is failed (it can still be replayed).
//! At most [`MAX_RESPONSE_BODY`] bytes of an answer are read, for the log. It also prunes
//! events older than `DOJO_WEBHOOK_KEEP_DAYS`.

use std::sync::Arc;
use std::time::Duration;

use dojo_records::webhooks::{Attempt, DeliveryStatus, DueDelivery, MAX_RESPONSE_BODY, WebhookStore};
use futures_util::future::join_all;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::{OutcomeLabel, WebhookSettings, target};
use crate::metrics::Metrics;
use dojo_executor::worker::now_millis;

/// Deliveries sent at once by this process.
const BATCH: u32 = 16;
/// How often the loop looks for due deliveries (retries) without being woken.
const POLL: Duration = Duration::from_secs(1);
/// How often old events are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// Added to the request timeout for a claim's lease: a claim outlives its request.
const LEASE_SLACK: Duration = Duration::from_secs(30);

pub(super) async fn run(
    store: Arc<dyn WebhookStore>,
    settings: WebhookSettings,
    metrics: Arc<Metrics>,
    wake: Arc<Notify>,
    shutdown: CancellationToken,
) {
    let client = match target::client(settings.timeout(), settings.webhook_allow_private) {
        Ok(client) => client,
        Err(error) => {
            tracing::error!(%error, "webhooks: cannot build the HTTP client; nothing will be delivered");
            return;
        }
    };
    let sender = Sender { store, settings, metrics, client };
    let lease = i64::try_from((sender.settings.timeout() + LEASE_SLACK).as_millis()).unwrap_or(i64::MAX);
    let mut prune = tokio::time::interval(PRUNE_EVERY);
    prune.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let claimed = sender.store.claim_due(now_millis(), lease, BATCH).await;
        let busy = match claimed {
            Ok(due) if !due.is_empty() => {
                // Bounded: one batch at a time, each request with its timeout. A shutdown
                // mid-batch leaves the claims to expire and be retried.
                tokio::select! {
                    _ = join_all(due.into_iter().map(|delivery| sender.send(delivery))) => {}
                    () = shutdown.cancelled() => return,
                }
                true
            }
            Ok(_) => false,
            Err(error) => {
                tracing::warn!(%error, "webhooks: cannot claim deliveries");
                false
            }
        };
        if busy {
            continue;
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = wake.notified() => {}
            () = tokio::time::sleep(POLL) => {}
            _ = prune.tick() => sender.prune().await,
        }
    }
}

struct Sender {
    store: Arc<dyn WebhookStore>,
    settings: WebhookSettings,
    metrics: Arc<Metrics>,
    client: reqwest::Client,
}

/// What one request gave.
struct Answer {
    status: Option<u16>,
    body: Option<String>,
    error: Option<String>,
}

impl Sender {
    async fn send(&self, delivery: DueDelivery) {
        let answer = self.post(&delivery).await;
        let attempts = u32::try_from(delivery.attempts.saturating_add(1)).unwrap_or(u32::MAX);
        let ok = answer.error.is_none() && answer.status.is_some_and(|s| (200..300).contains(&s));
        let (status, outcome) = if ok {
            (DeliveryStatus::Succeeded, "succeeded")
        } else if attempts >= self.settings.webhook_max_attempts.max(1) {
            (DeliveryStatus::Failed, "failed")
        } else {
            (DeliveryStatus::Pending, "retry")
        };
        let retry_at = now_millis()
            .saturating_add(i64::try_from(self.settings.backoff(attempts).as_millis()).unwrap_or(i64::MAX));
        let error = match (&answer.error, answer.status) {
            (Some(error), _) => Some(error.clone()),
            (None, Some(code)) if !ok => Some(format!("the receiver answered HTTP {code}")),
            _ => None,
        };
        self.metrics.webhooks.deliveries.get_or_create(&OutcomeLabel { outcome }).inc();
        if !ok {
            // The URL and the secret stay out of the log: the URL may carry a token.
            tracing::info!(delivery = delivery.id, event = %delivery.event_id, attempts, outcome, error = error.as_deref().unwrap_or(""), "webhook delivery failed");
        }
        let attempt =
            Attempt { status, retry_at, response_status: answer.status, response_body: answer.body, error };
        if let Err(error) = self.store.record_attempt(delivery.id, attempt).await {
            tracing::warn!(delivery = delivery.id, %error, "webhooks: cannot record an attempt; it will be retried");
        }
    }

    async fn post(&self, delivery: &DueDelivery) -> Answer {
        let failed = |error: String| Answer { status: None, body: None, error: Some(error) };
        // Checked again at every delivery: the rules may have changed since registration.
        let url = match target::check(&delivery.url, self.settings.webhook_allow_private) {
            Ok(url) => url,
            Err(error) => return failed(error.to_string()),
        };
        let timestamp = now_millis() / 1000;
        let signature =
            dojo_records::webhooks::sign(delivery.payload.as_bytes(), &delivery.secret, timestamp);
        let request = self
            .client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("Dojo-Signature", signature)
            .header("Dojo-Event-Id", delivery.event_id.as_str())
            .header("Dojo-Event-Type", delivery.event_type.as_str())
            .body(delivery.payload.clone());
        let mut response = match request.send().await {
            Ok(response) => response,
            Err(error) => return failed(describe(error)),
        };
        let status = response.status().as_u16();
        // At most a few KiB of the answer: a receiver cannot make us buffer more.
        let mut body = Vec::new();
        let mut error = None;
        while body.len() < MAX_RESPONSE_BODY {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    body.extend_from_slice(&chunk[..chunk.len().min(MAX_RESPONSE_BODY - body.len())])
                }
                Ok(None) => break,
                Err(e) => {
                    // The status came; a body cut short does not change the outcome.
                    if !(200..300).contains(&status) {
                        error = Some(describe(e));
                    }
                    break;
                }
            }
        }
        Answer { status: Some(status), body: Some(String::from_utf8_lossy(&body).into_owned()), error }
    }

    async fn prune(&self) {
        let keep = Duration::from_secs(self.settings.webhook_keep_days.max(1).saturating_mul(86_400));
        let older_than = now_millis().saturating_sub(i64::try_from(keep.as_millis()).unwrap_or(i64::MAX));
        match self.store.prune_events(older_than).await {
            Ok(0) => {}
            Ok(deleted) => tracing::info!(deleted, "webhooks: pruned old events"),
            Err(error) => tracing::warn!(%error, "webhooks: cannot prune old events"),
        }
    }
}

/// The error and its causes, without the URL (which may carry a token).
fn describe(error: reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    let mut text = kind.to_owned();
    let error = error.without_url();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
