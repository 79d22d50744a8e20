-- Batches take an idempotency key (issue 23): a client that retries a batch submission whose
-- answer it lost gets the batch it already made, not a second one that holds credits again.
-- Owned by dojo-records (`RunStore::create_batch`). Expand-only: a nullable column and an index.

ALTER TABLE run_batches ADD COLUMN idempotency_key TEXT;
-- A key names one batch per user (whatever the room), as a run's key names one run.
CREATE UNIQUE INDEX run_batches_idempotency ON run_batches (user_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
