-- Same schema and semantics as migrations/postgres/0016_workflow_apps.sql (the comments there
-- say why); dialect only differs: STRICT tables, INTEGER for BIGINT.

CREATE TABLE workflow_apps (
    id TEXT PRIMARY KEY,
    workflow_id TEXT NOT NULL UNIQUE REFERENCES workflows (id) ON DELETE CASCADE,
    published_by TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    title TEXT NOT NULL,
    description TEXT NOT NULL,
    visibility TEXT NOT NULL CHECK (visibility IN ('private', 'link', 'team')),
    form TEXT NOT NULL,
    graph TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;

CREATE INDEX workflow_apps_published_by ON workflow_apps (published_by);
