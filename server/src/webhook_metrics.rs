//! The webhook machinery's metrics (`dojo_webhook_*`), apart from `crate::webhooks` so that
//! `crate::metrics` can hold them without depending on the machinery.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub outcome: &'static str,
}

/// `dojo_webhook_*`.
pub struct WebhookMetrics {
    /// Reports dropped because the writer's queue was full.
    pub events_dropped: Counter,
    /// Events appended to workflows' feeds.
    pub events: Counter,
    /// Delivery attempts by outcome: `succeeded`, `retry`, `failed`.
    pub deliveries: Family<OutcomeLabel, Counter>,
}

impl WebhookMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            events_dropped: Counter::default(),
            events: Counter::default(),
            deliveries: Family::default(),
        };
        registry.register(
            "webhook_events_dropped",
            "Webhook events dropped because the writer's queue was full (the room or run never waits)",
            metrics.events_dropped.clone(),
        );
        registry.register(
            "webhook_events",
            "Events appended to workflows' change feeds",
            metrics.events.clone(),
        );
        registry.register(
            "webhook_deliveries",
            "Webhook delivery attempts by outcome (succeeded, retry, failed)",
            metrics.deliveries.clone(),
        );
        for outcome in ["succeeded", "retry", "failed"] {
            drop(metrics.deliveries.get_or_create(&OutcomeLabel { outcome }));
        }
        metrics
    }
}
