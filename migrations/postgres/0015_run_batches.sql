-- Batches (issue 23): one request runs a room's graph over a list of parameter sets, each
-- member an ordinary run carrying its batch's id. Owned by dojo-records (`RunStore`).
-- Expand-only: a new table, nullable columns and an index.

CREATE TABLE run_batches (
    -- `batch_…`, chosen by the caller.
    id TEXT PRIMARY KEY,
    room TEXT NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id),
    -- The team whose workflow it ran (NULL: a personal workflow).
    team_id TEXT,
    -- How many member runs were accepted with it, and the credits they held together.
    size BIGINT NOT NULL CHECK (size > 0),
    estimate BIGINT NOT NULL CHECK (estimate >= 0),
    created_at BIGINT NOT NULL
);
-- A room's batches, newest first.
CREATE INDEX run_batches_room ON run_batches (room, created_at);

-- The batch a run belongs to (NULL: a run of its own), its place in the batch (0-based, the
-- order of the request's sets) and its parameter set (JSON: node id → parameter → value),
-- written into the node galleries with its outputs.
ALTER TABLE runs ADD COLUMN batch_id TEXT;
ALTER TABLE runs ADD COLUMN batch_index BIGINT;
ALTER TABLE runs ADD COLUMN batch_params TEXT;
CREATE INDEX runs_batch ON runs (batch_id) WHERE batch_id IS NOT NULL;
