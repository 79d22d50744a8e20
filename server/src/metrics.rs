//! Prometheus metrics, one registry per server instance (so tests can run several servers in one
//! process without sharing counters).

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use yrs::sync::{Message, SyncMessage};

/// The y-protocols message kinds, as metric labels.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum MessageKind {
    sync_step1,
    sync_step2,
    update,
    awareness,
    query_awareness,
    auth,
    /// Hocuspocus only: acknowledgements of stored (or refused) updates.
    sync_status,
    /// Hocuspocus only: stateless messages.
    stateless,
}

impl MessageKind {
    pub fn of(message: &Message) -> Self {
        match message {
            Message::Sync(SyncMessage::SyncStep1(_)) => Self::sync_step1,
            Message::Sync(SyncMessage::SyncStep2(_)) => Self::sync_step2,
            Message::Sync(SyncMessage::Update(_)) => Self::update,
            Message::Awareness(_) => Self::awareness,
            Message::AwarenessQuery => Self::query_awareness,
            Message::Auth(_) | Message::Custom(..) => Self::auth,
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: MessageKind,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabel {
    pub state: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: &'static str,
}

pub struct Metrics {
    registry: Registry,
    pub rooms_open: Gauge,
    /// Open rooms whose document is dropped until their next change (see `room/hibernation.rs`).
    pub rooms_hibernating: Gauge,
    /// Hibernating rooms that gave up their task and queue until their next command (see
    /// `room/parking.rs`).
    pub rooms_parked: Gauge,
    pub connections_open: Gauge,
    pub messages_in: Family<KindLabel, Counter>,
    pub bytes_in: Family<KindLabel, Counter>,
    pub messages_out: Family<KindLabel, Counter>,
    pub bytes_out: Family<KindLabel, Counter>,
    /// Connections closed, by close reason (`client_closed` when the client ended it).
    pub disconnects: Family<ReasonLabel, Counter>,
    /// Upgrades refused before a socket existed, by reason.
    pub rejected: Family<ReasonLabel, Counter>,
    pub slow_client_disconnects: Counter,
    pub room_loads: Counter,
    pub room_load_failures: Counter,
    pub persisted_updates: Counter,
    pub persisted_batches: Counter,
    pub persist_failures: Counter,
    pub compactions: Counter,
    /// Compactions that folded the room's live document (the others read the store back).
    pub compactions_folded: Counter,
    pub rooms_unloaded: Counter,
    /// Hibernating rooms woken (their document loaded again).
    pub room_wakes: Counter,
    /// Parked rooms given a task again by a command.
    pub room_resumes: Counter,
    /// Rooms that went to sleep (dropped their document).
    pub room_hibernations: Counter,
    /// Document changes refused because the connection may only read.
    pub read_only_refusals: Counter,
    /// Requests and WebSocket messages delayed or refused by a rate limit, by where.
    pub rate_limited: Family<ReasonLabel, Counter>,
    pub cluster_messages_received: Counter,
    pub cluster_publish_dropped: Counter,
    pub cluster_receive_dropped: Counter,
    pub cluster_resubscribes: Counter,
    pub cluster_catch_ups: Counter,
    /// TCP connections and sockets before authentication (`http_server`, `preauth`).
    pub edge: EdgeMetrics,
    // Server-wide outbound memory (`outbound_budget.rs`).
    /// Connections closed because the outbound budget was exceeded.
    pub outbound_budget_sheds: Counter,
    /// Bytes waiting to be sent, each frame once (set when metrics are read).
    pub outbound_bytes_held: Gauge,
    /// Presence refused for its size (states dropped from other instances included).
    pub presence_refused: Counter,
    // Documents that cannot crash the server (issue 17).
    /// Room loads refused because the stored document is unsafe or does not apply.
    pub rooms_quarantined: Counter,
    /// Client updates refused for what they would do to the document, by reason.
    pub document_refusals: Family<ReasonLabel, Counter>,
    /// Seconds to store one batch of a room's changes (the group commit, retries included).
    pub store_commit_seconds: Histogram,
    /// Read from the database at each scrape (`RunStore::run_gauges`).
    pub runs: RunMetrics,
    /// `dojo_webhook_*` (`crate::webhooks`).
    pub webhooks: crate::webhook_metrics::WebhookMetrics,
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("dojo");
        let rooms_open = Gauge::default();
        let rooms_hibernating = Gauge::default();
        let rooms_parked = Gauge::default();
        let connections_open = Gauge::default();
        let messages_in = Family::default();
        let bytes_in = Family::default();
        let messages_out = Family::default();
        let bytes_out = Family::default();
        let disconnects = Family::default();
        let rejected = Family::default();
        let slow_client_disconnects = Counter::default();
        let room_loads = Counter::default();
        let room_load_failures = Counter::default();
        let persisted_updates = Counter::default();
        let persisted_batches = Counter::default();
        let persist_failures = Counter::default();
        let compactions = Counter::default();
        let compactions_folded = Counter::default();
        let rooms_unloaded = Counter::default();
        let room_wakes = Counter::default();
        let room_resumes = Counter::default();
        let room_hibernations = Counter::default();
        let read_only_refusals = Counter::default();
        let rate_limited = Family::default();
        let cluster_messages_received = Counter::default();
        let cluster_publish_dropped = Counter::default();
        let cluster_receive_dropped = Counter::default();
        let cluster_resubscribes = Counter::default();
        let cluster_catch_ups = Counter::default();
        let edge = EdgeMetrics::register(&mut registry);
        registry.register("rooms_open", "Rooms held in memory", rooms_open.clone());
        registry.register(
            "rooms_hibernating",
            "Open rooms whose clients are quiet, held without their document",
            rooms_hibernating.clone(),
        );
        registry.register("connections_open", "Open WebSocket connections", connections_open.clone());
        registry.register("messages_received", "y-protocols messages received", messages_in.clone());
        registry.register("bytes_received", "Bytes of y-protocols messages received", bytes_in.clone());
        registry.register("messages_sent", "y-protocols messages queued to clients", messages_out.clone());
        registry.register("bytes_sent", "Bytes of y-protocols messages queued to clients", bytes_out.clone());
        registry.register("disconnects", "Connections closed, by reason", disconnects.clone());
        registry.register("rejected_upgrades", "WebSocket upgrades refused, by reason", rejected.clone());
        registry.register(
            "slow_client_disconnects",
            "Clients disconnected because their outbound queue was full",
            slow_client_disconnects.clone(),
        );
        registry.register("room_loads", "Rooms loaded from the store", room_loads.clone());
        registry.register(
            "room_load_failures",
            "Room loads that failed (the room was not served)",
            room_load_failures.clone(),
        );
        registry.register("persisted_updates", "Document changes stored", persisted_updates.clone());
        registry.register(
            "persisted_batches",
            "Store transactions (group commits) that stored changes",
            persisted_batches.clone(),
        );
        registry.register(
            "persist_failures",
            "Batches that could not be stored after retries (the room was closed)",
            persist_failures.clone(),
        );
        registry.register("compactions", "Compactions started", compactions.clone());
        registry.register(
            "compactions_folded",
            "Compactions started from the room's live document rather than the stored log",
            compactions_folded.clone(),
        );
        registry.register("rooms_unloaded", "Idle rooms unloaded from memory", rooms_unloaded.clone());
        registry.register("room_wakes", "Hibernating rooms woken by a change", room_wakes.clone());
        registry.register(
            "rooms_parked",
            "Hibernating rooms holding no task and no queue until their next command",
            rooms_parked.clone(),
        );
        registry.register(
            "room_resumes",
            "Parked rooms given a task again by a command",
            room_resumes.clone(),
        );
        registry.register(
            "room_hibernations",
            "Rooms that dropped their document while their clients were quiet",
            room_hibernations.clone(),
        );
        registry.register(
            "read_only_refusals",
            "Document changes refused from read-only connections",
            read_only_refusals.clone(),
        );
        registry.register(
            "rate_limited",
            "Requests or messages held back by a rate limit",
            rate_limited.clone(),
        );
        registry.register(
            "cluster_messages_received",
            "Messages from other instances delivered to rooms here",
            cluster_messages_received.clone(),
        );
        registry.register(
            "cluster_publish_dropped",
            "Messages for other instances dropped because the publish queue was full",
            cluster_publish_dropped.clone(),
        );
        registry.register(
            "cluster_receive_dropped",
            "Messages from other instances dropped because a room's queue was full",
            cluster_receive_dropped.clone(),
        );
        registry.register(
            "cluster_resubscribes",
            "Redis subscriptions re-established",
            cluster_resubscribes.clone(),
        );
        registry.register(
            "cluster_catch_ups",
            "Rooms that caught up from the store",
            cluster_catch_ups.clone(),
        );
        let outbound_budget_sheds = Counter::default();
        let outbound_bytes_held = Gauge::default();
        let presence_refused = Counter::default();
        registry.register(
            "outbound_budget_sheds",
            "Connections closed because the server-wide outbound budget was exceeded",
            outbound_budget_sheds.clone(),
        );
        registry.register(
            "outbound_bytes_held",
            "Bytes waiting to be sent to clients, each frame counted once",
            outbound_bytes_held.clone(),
        );
        registry.register(
            "presence_refused",
            "Presence (awareness) states refused for their size",
            presence_refused.clone(),
        );
        // Documents that cannot crash the server (issue 17).
        let rooms_quarantined = Counter::default();
        let document_refusals = Family::default();
        registry.register(
            "rooms_quarantined",
            "Room loads refused because the stored document is unsafe or does not apply",
            rooms_quarantined.clone(),
        );
        registry.register(
            "document_refusals",
            "Client updates refused for what they would do to the document (nesting, size, executor maps)",
            document_refusals.clone(),
        );
        // Series that exist from the start, at 0, so that `increase()` in an alert sees the first
        // event (a series born at 1 has no increase). The label values are all those the code
        // counts (`public_rate.rs`, `api/mod.rs`, `admission.rs`, `hocuspocus/reader.rs`;
        // `room/core.rs`).
        for reason in ["http", "websocket", "public", "stateless"] {
            drop(rate_limited.get_or_create(&ReasonLabel { reason }));
        }
        for reason in ["document_size", "executor_maps", "nesting", "invalid"] {
            drop(document_refusals.get_or_create(&ReasonLabel { reason }));
        }
        let store_commit_seconds = Histogram::new(exponential_buckets(0.001, 2.0, 14));
        registry.register(
            "store_commit_seconds",
            "Seconds to store one batch of a room's changes, retries included",
            store_commit_seconds.clone(),
        );
        let runs = RunMetrics::register(&mut registry);
        let webhooks = crate::webhook_metrics::WebhookMetrics::register(&mut registry);
        Self {
            registry,
            rooms_open,
            rooms_hibernating,
            rooms_parked,
            connections_open,
            messages_in,
            bytes_in,
            messages_out,
            bytes_out,
            disconnects,
            rejected,
            slow_client_disconnects,
            room_loads,
            room_load_failures,
            persisted_updates,
            persisted_batches,
            persist_failures,
            compactions,
            compactions_folded,
            rooms_unloaded,
            room_wakes,
            room_resumes,
            room_hibernations,
            read_only_refusals,
            rate_limited,
            cluster_messages_received,
            cluster_publish_dropped,
            cluster_receive_dropped,
            cluster_resubscribes,
            cluster_catch_ups,
            edge,
            outbound_budget_sheds,
            outbound_bytes_held,
            presence_refused,
            rooms_quarantined,
            document_refusals,
            store_commit_seconds,
            runs,
            webhooks,
        }
    }

    pub fn record_in(&self, kind: MessageKind, bytes: usize) {
        let label = KindLabel { kind };
        self.messages_in.get_or_create(&label).inc();
        self.bytes_in.get_or_create(&label).inc_by(bytes as u64);
    }

    pub fn record_out(&self, kind: MessageKind, bytes: usize) {
        let label = KindLabel { kind };
        self.messages_out.get_or_create(&label).inc();
        self.bytes_out.get_or_create(&label).inc_by(bytes as u64);
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// The connection edge: accepted TCP connections and what `/collab` sockets hold before they
/// authenticate.
pub struct EdgeMetrics {
    pub tcp_connections: Gauge,
    /// TCP connections closed at once because DOJO_MAX_TCP_CONNECTIONS were open.
    pub tcp_refused: Counter,
    /// HTTP connections closed because request headers did not arrive in time.
    pub header_timeouts: Counter,
    pub unauthenticated_sockets: Gauge,
    pub preauth_queued_bytes: Gauge,
}

impl EdgeMetrics {
    fn register(registry: &mut Registry) -> Self {
        let edge = Self {
            tcp_connections: Gauge::default(),
            tcp_refused: Counter::default(),
            header_timeouts: Counter::default(),
            unauthenticated_sockets: Gauge::default(),
            preauth_queued_bytes: Gauge::default(),
        };
        registry.register("tcp_connections", "Accepted TCP connections open", edge.tcp_connections.clone());
        registry.register(
            "tcp_refused",
            "TCP connections closed at once: the connection limit was reached",
            edge.tcp_refused.clone(),
        );
        registry.register(
            "http_header_timeouts",
            "HTTP connections closed: request headers did not arrive in time",
            edge.header_timeouts.clone(),
        );
        registry.register(
            "unauthenticated_sockets",
            "/collab sockets with no authenticated document yet",
            edge.unauthenticated_sockets.clone(),
        );
        registry.register(
            "preauth_queued_bytes",
            "Bytes queued by /collab sockets for documents not yet authenticated",
            edge.preauth_queued_bytes.clone(),
        );
        edge
    }
}

/// Runs and credits, read from the database when `/metrics` is scraped: the same values on every
/// instance sharing a database (aggregate them with `max`, not `sum`).
pub struct RunMetrics {
    /// Runs queued or running, by `state`.
    pub active: Family<StateLabel, Gauge>,
    /// Running runs whose lease expired (their worker stopped; another resumes them).
    pub leases_expired: Gauge,
    /// Credits held by pending holds.
    pub credits_held: Gauge,
    /// Accepted runs not yet handed to the queue.
    pub outbox_pending: Gauge,
    /// Scrapes whose database read failed or timed out (the gauges keep their last values).
    pub read_failures: Counter,
}

impl RunMetrics {
    fn register(registry: &mut Registry) -> Self {
        let runs = Self {
            active: Family::default(),
            leases_expired: Gauge::default(),
            credits_held: Gauge::default(),
            outbox_pending: Gauge::default(),
            read_failures: Counter::default(),
        };
        registry.register(
            "runs_active",
            "Runs queued or running, by state (database-wide)",
            runs.active.clone(),
        );
        registry.register(
            "run_leases_expired",
            "Running runs whose lease expired: their worker stopped (database-wide)",
            runs.leases_expired.clone(),
        );
        registry.register(
            "credits_held",
            "Credits held by pending run holds (database-wide)",
            runs.credits_held.clone(),
        );
        registry.register(
            "run_outbox_pending",
            "Accepted runs not yet handed to the queue (database-wide)",
            runs.outbox_pending.clone(),
        );
        registry.register(
            "run_gauge_read_failures",
            "Scrapes whose read of the run gauges failed or timed out",
            runs.read_failures.clone(),
        );
        runs
    }

    pub fn set(&self, gauges: &dojo_records::RunGauges) {
        self.active.get_or_create(&StateLabel { state: "queued" }).set(gauges.queued);
        self.active.get_or_create(&StateLabel { state: "running" }).set(gauges.running);
        self.leases_expired.set(gauges.lease_expired);
        self.credits_held.set(gauges.credits_held);
        self.outbox_pending.set(gauges.outbox_pending);
    }
}
