-- A run of a published app may read the assets its publisher fixed in the app (issue 23):
-- the server lists them when it accepts the run, after checking the publisher may read each
-- one, and the worker lets that run, and only that run, read them. Owned by dojo-records
-- (`RunStore`). Expand-only: a nullable column (JSON array of asset ids; NULL: none).

ALTER TABLE runs ADD COLUMN granted_assets TEXT;
