-- Runs of a canvas graph, their nodes, the credit holds those nodes carry, the outbox that
-- hands new runs to the queue, and the assets runs produce. Read by dojo-accounts
-- (`accounts/src/runs.rs` says what every column means). Timestamps are BIGINT milliseconds
-- since the Unix epoch, as in 0001 and 0002. Flags are INTEGER 0/1, as in the SQLite schema,
-- so that one set of statements serves both databases.

CREATE TABLE runs (
    -- `run_…`, chosen by the caller.
    id TEXT PRIMARY KEY,
    room TEXT NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id),
    status TEXT NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    -- The canvas graph as read at submission (JSON): what a worker executes.
    graph TEXT NOT NULL,
    targets TEXT,
    -- The client's Idempotency-Key. Unique per user (NULLs are distinct, so runs without a key
    -- never collide): a concurrent duplicate submission waits on this index and finds the run.
    idempotency_key TEXT,
    -- What was held (the sum of the nodes' costs) and what captured nodes cost so far.
    estimate BIGINT NOT NULL CHECK (estimate >= 0),
    charged BIGINT NOT NULL DEFAULT 0 CHECK (charged >= 0),
    cancel_requested INTEGER NOT NULL DEFAULT 0 CHECK (cancel_requested IN (0, 1)),
    attempts BIGINT NOT NULL DEFAULT 0,
    lease_owner TEXT,
    lease_expires_at BIGINT,
    error TEXT,
    created_at BIGINT NOT NULL,
    started_at BIGINT,
    finished_at BIGINT,
    UNIQUE (user_id, idempotency_key)
);

-- A room's runs, newest first.
CREATE INDEX runs_room ON runs (room, created_at DESC);
-- Active runs, for the sweeper and a restarted queue (few rows: the finished are left out).
CREATE INDEX runs_active ON runs (created_at) WHERE status IN ('queued', 'running');

CREATE TABLE run_nodes (
    run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    node_id TEXT NOT NULL,
    node_type TEXT NOT NULL,
    state TEXT NOT NULL CHECK (
        state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled', 'cached', 'skipped')
    ),
    -- What is held for the node, and what was captured (0 unless it succeeded at a cost).
    cost BIGINT NOT NULL CHECK (cost >= 0),
    charged BIGINT NOT NULL DEFAULT 0 CHECK (charged >= 0 AND charged <= cost),
    -- A pending hold resolves once: to captured or to released, each with its ledger entry.
    hold_state TEXT NOT NULL CHECK (hold_state IN ('none', 'pending', 'captured', 'released')),
    hold_expires_at BIGINT NOT NULL,
    params TEXT NOT NULL,
    outputs TEXT,
    error TEXT,
    started_at BIGINT,
    finished_at BIGINT,
    PRIMARY KEY (run_id, node_id)
);

-- The expiry sweeper's scan: pending holds only.
CREATE INDEX run_nodes_pending_holds ON run_nodes (hold_expires_at) WHERE hold_state = 'pending';

-- Runs accepted but not yet handed to the queue: written in the same transaction as the run,
-- so a crash between commit and enqueue loses nothing.
CREATE TABLE run_outbox (
    id BIGSERIAL PRIMARY KEY,
    run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL
);

-- Asset metadata; the bytes live in the asset store under the id (hex SHA-256).
CREATE TABLE assets (
    id TEXT PRIMARY KEY,
    content_type TEXT NOT NULL,
    size BIGINT NOT NULL CHECK (size >= 0),
    created_at BIGINT NOT NULL
);

-- Who an asset belongs to: its uploader, or the run node that produced it (in a room).
CREATE TABLE asset_links (
    asset_id TEXT NOT NULL REFERENCES assets (id) ON DELETE CASCADE,
    owner_id TEXT NOT NULL,
    room TEXT,
    run_id TEXT,
    node_id TEXT,
    created_at BIGINT NOT NULL
);

-- One row per distinct link. NULLs would be distinct in a plain unique constraint, so the
-- optional columns are compared through COALESCE; INSERT … ON CONFLICT DO NOTHING meets it.
CREATE UNIQUE INDEX asset_links_unique ON asset_links (
    asset_id, owner_id, COALESCE(room, ''), COALESCE(run_id, ''), COALESCE(node_id, '')
);
