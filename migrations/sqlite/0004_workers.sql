-- Same schema and semantics as migrations/postgres/0004_workers.sql (the comments there say
-- why); dialect only differs: STRICT tables, INTEGER for BIGINT.

CREATE INDEX runs_user_running ON runs (user_id) WHERE status = 'running';

CREATE TABLE node_cache (
    scope TEXT NOT NULL,
    key TEXT NOT NULL,
    outputs TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (scope, key)
) STRICT;

CREATE INDEX node_cache_age ON node_cache (created_at);
