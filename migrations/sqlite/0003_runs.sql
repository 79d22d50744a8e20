-- Runs, their nodes and credit holds, the run outbox, and assets. Same schema and semantics as
-- migrations/postgres/0003_runs.sql (the comments there say why); the differences are dialect
-- only: STRICT tables, INTEGER for BIGINT, AUTOINCREMENT for BIGSERIAL.

CREATE TABLE runs (
    id TEXT PRIMARY KEY NOT NULL,
    room TEXT NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id),
    status TEXT NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    graph TEXT NOT NULL,
    targets TEXT,
    idempotency_key TEXT,
    estimate INTEGER NOT NULL CHECK (estimate >= 0),
    charged INTEGER NOT NULL DEFAULT 0 CHECK (charged >= 0),
    cancel_requested INTEGER NOT NULL DEFAULT 0 CHECK (cancel_requested IN (0, 1)),
    attempts INTEGER NOT NULL DEFAULT 0,
    lease_owner TEXT,
    lease_expires_at INTEGER,
    error TEXT,
    created_at INTEGER NOT NULL,
    started_at INTEGER,
    finished_at INTEGER,
    UNIQUE (user_id, idempotency_key)
) STRICT;

CREATE INDEX runs_room ON runs (room, created_at DESC);
CREATE INDEX runs_active ON runs (created_at) WHERE status IN ('queued', 'running');

CREATE TABLE run_nodes (
    run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    node_id TEXT NOT NULL,
    node_type TEXT NOT NULL,
    state TEXT NOT NULL CHECK (
        state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled', 'cached', 'skipped')
    ),
    cost INTEGER NOT NULL CHECK (cost >= 0),
    charged INTEGER NOT NULL DEFAULT 0 CHECK (charged >= 0 AND charged <= cost),
    hold_state TEXT NOT NULL CHECK (hold_state IN ('none', 'pending', 'captured', 'released')),
    hold_expires_at INTEGER NOT NULL,
    params TEXT NOT NULL,
    outputs TEXT,
    error TEXT,
    started_at INTEGER,
    finished_at INTEGER,
    PRIMARY KEY (run_id, node_id)
) STRICT;

CREATE INDEX run_nodes_pending_holds ON run_nodes (hold_expires_at) WHERE hold_state = 'pending';

CREATE TABLE run_outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL
) STRICT;

CREATE TABLE assets (
    id TEXT PRIMARY KEY NOT NULL,
    content_type TEXT NOT NULL,
    size INTEGER NOT NULL CHECK (size >= 0),
    created_at INTEGER NOT NULL
) STRICT;

CREATE TABLE asset_links (
    asset_id TEXT NOT NULL REFERENCES assets (id) ON DELETE CASCADE,
    owner_id TEXT NOT NULL,
    room TEXT,
    run_id TEXT,
    node_id TEXT,
    created_at INTEGER NOT NULL
) STRICT;

CREATE UNIQUE INDEX asset_links_unique ON asset_links (
    asset_id, owner_id, COALESCE(room, ''), COALESCE(run_id, ''), COALESCE(node_id, '')
);
