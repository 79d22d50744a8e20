-- Runs and nodes by the moment they ended, for the servers' webhook sweep
-- (`RunStore::finished_runs_since`, `finished_nodes_since`): it reports ends that happened in
-- other processes (`dojo-worker`s) and polls every few seconds, so it must not scan the tables.
-- Partial: rows still running have no `finished_at` and are not indexed. Expand-only.
CREATE INDEX runs_finished ON runs (finished_at) WHERE finished_at IS NOT NULL;
CREATE INDEX run_nodes_finished ON run_nodes (finished_at) WHERE finished_at IS NOT NULL;
