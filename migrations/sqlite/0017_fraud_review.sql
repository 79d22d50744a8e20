-- Same schema and semantics as migrations/postgres/0017_fraud_review.sql (the comments there
-- say why); dialect only differs: STRICT tables, INTEGER for BIGINT.

CREATE TABLE payment_events (
    event_id TEXT PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('paid', 'refunded', 'failed', 'disputed')),
    user_id TEXT REFERENCES users (id) ON DELETE SET NULL,
    customer TEXT,
    charge TEXT,
    source TEXT,
    amount INTEGER NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;

CREATE INDEX payment_events_user ON payment_events (user_id, created_at);
CREATE INDEX payment_events_charge ON payment_events (charge);
CREATE INDEX payment_events_source ON payment_events (source, created_at);

CREATE TABLE stripe_customers (
    customer TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL
) STRICT;

CREATE TABLE account_flags (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    rule TEXT NOT NULL,
    detail TEXT NOT NULL,
    evidence_at INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('open', 'cleared', 'confirmed')),
    created_at INTEGER NOT NULL,
    reviewed_by TEXT,
    reviewed_at INTEGER,
    note TEXT
) STRICT;

CREATE INDEX account_flags_user ON account_flags (user_id, status);
CREATE INDEX account_flags_status ON account_flags (status, created_at DESC);
CREATE UNIQUE INDEX account_flags_one_open ON account_flags (user_id, rule) WHERE status = 'open';
