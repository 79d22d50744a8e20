-- Signed webhooks and the change feed (docs/webhooks.md): endpoints per workflow, an
-- append-only event log per workflow read in cursor order, and one delivery per endpoint per
-- event, retried with backoff by whichever instance claims it first. Expand-only: new tables.

CREATE TABLE webhook_endpoints (
    -- `wh_…`, ours.
    id TEXT PRIMARY KEY,
    workflow_id TEXT NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
    url TEXT NOT NULL,
    -- JSON array of event types (`run.finished`, …) the endpoint receives.
    events TEXT NOT NULL,
    description TEXT,
    -- `whsec_…`: shown once, when the endpoint is created; needed again to sign every delivery.
    secret TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE INDEX webhook_endpoints_workflow ON webhook_endpoints (workflow_id, created_at);

CREATE TABLE workflow_events (
    -- The change feed's cursor (`after=`). Appends take a transaction-scoped advisory lock before they
    -- draw it, so cursors commit in increasing order and a reader polling `after=` never
    -- skips a row that commits late.
    seq BIGSERIAL PRIMARY KEY,
    -- `evt_…`: the `Dojo-Event-Id` receivers deduplicate on.
    id TEXT NOT NULL UNIQUE,
    workflow_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    -- The JSON body sent, exactly as signed.
    payload TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE INDEX workflow_events_feed ON workflow_events (workflow_id, seq);
CREATE INDEX workflow_events_age ON workflow_events (created_at);

CREATE TABLE webhook_deliveries (
    id BIGSERIAL PRIMARY KEY,
    endpoint_id TEXT NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    event_seq BIGINT NOT NULL REFERENCES workflow_events (seq) ON DELETE CASCADE,
    status TEXT NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    -- When a pending delivery is due. A claimed one is pushed past the request's timeout, so a
    -- sender that dies mid-request leaves it to be retried, never lost.
    next_attempt_at BIGINT NOT NULL,
    response_status INTEGER,
    -- The start of the answer's body (a few KiB at most) or why there was none.
    response_body TEXT,
    last_error TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, id DESC);
CREATE INDEX webhook_deliveries_event ON webhook_deliveries (event_seq);
