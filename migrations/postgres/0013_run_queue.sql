-- The visible, controllable run queue (issue 23): the database decides the order in which
-- queued runs are claimed (plan priority, then a rank that "move to front" lowers, then
-- age), users and teams have a plan and a queue that can be paused, and each run carries the
-- limits of the plan it was accepted under. Owned by dojo-records (`RunStore`, `QueueStore`).
-- Expand-only: columns with defaults, nullable columns and an index.

-- Higher runs first (the plan's priority when the run was accepted).
ALTER TABLE runs ADD COLUMN priority BIGINT NOT NULL DEFAULT 0;
-- Lower runs first among equal priorities; "move to front" sets it below every queued run.
ALTER TABLE runs ADD COLUMN queue_rank BIGINT NOT NULL DEFAULT 0;
-- The plan's runs executing at once for this run's user (NULL: the worker's own limit).
ALTER TABLE runs ADD COLUMN run_limit BIGINT;
-- The plan's longest run in milliseconds from its start (NULL: no limit).
ALTER TABLE runs ADD COLUMN max_run_ms BIGINT;

-- NULL: the default plan.
ALTER TABLE users ADD COLUMN plan TEXT;
-- 1: the user's queued runs stay queued (running ones go on) until resumed.
ALTER TABLE users ADD COLUMN queue_paused INTEGER NOT NULL DEFAULT 0;
ALTER TABLE teams ADD COLUMN plan TEXT;
ALTER TABLE teams ADD COLUMN queue_paused INTEGER NOT NULL DEFAULT 0;

-- Walking the queue in claim order.
CREATE INDEX runs_queue_order ON runs (priority, queue_rank, created_at) WHERE status = 'queued';
