-- Same schema and semantics as migrations/postgres/0018_engagement_and_suggestions.sql (the
-- comments there say why); dialect only differs: STRICT tables, INTEGER for BIGINT.

ALTER TABLE users ADD COLUMN last_active_at INTEGER;
ALTER TABLE users ADD COLUMN tips_opt_out INTEGER NOT NULL DEFAULT 0 CHECK (tips_opt_out IN (0, 1));

CREATE TABLE engagement_messages (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    subject TEXT NOT NULL,
    body TEXT NOT NULL,
    source TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'sent', 'failed', 'recorded')),
    error TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;

CREATE INDEX engagement_messages_user ON engagement_messages (user_id, created_at DESC);

CREATE TABLE workflow_suggestions (
    workflow_id TEXT PRIMARY KEY REFERENCES workflows (id) ON DELETE CASCADE,
    suggestions TEXT NOT NULL,
    summary TEXT NOT NULL,
    source TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    dismissed_at INTEGER
) STRICT;

CREATE INDEX runs_recent ON runs (created_at, room);
