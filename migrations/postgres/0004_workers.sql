-- Out-of-process workers: a per-user limit on runs executing at once, checked by whichever
-- worker claims a run, and a node cache every worker shares.

-- Counting a user's executing runs when a worker claims one (`claim_run` with a limit).
CREATE INDEX runs_user_running ON runs (user_id) WHERE status = 'running';

-- Outputs of deterministic nodes by cache key (ComfyUI's rule: type, parameters, ancestors),
-- per scope (the user whose run produced them), so any worker can reuse what another produced
-- and a restart keeps the cache. Outputs are references (asset ids, short text), never bytes.
CREATE TABLE node_cache (
    scope TEXT NOT NULL,
    key TEXT NOT NULL,
    outputs TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (scope, key)
);

-- Pruning the oldest entries.
CREATE INDEX node_cache_age ON node_cache (created_at);
