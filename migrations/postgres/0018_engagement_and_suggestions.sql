-- The re-engagement and workflow agents (issue 23). Owned by dojo-records (`EngagementStore`,
-- `SuggestionStore`). Expand-only: nullable or defaulted columns, and new tables.

-- When the user last used the server (set at most once an hour per server process), and their
-- choice not to be sent tips after a while away. NULL: not seen since this column exists.
ALTER TABLE users ADD COLUMN last_active_at BIGINT;
ALTER TABLE users ADD COLUMN tips_opt_out INTEGER NOT NULL DEFAULT 0 CHECK (tips_opt_out IN (0, 1));

-- Each message the re-engagement agent drafted for a user: written before it is sent, so that
-- a retried scan never sends twice (`pending` until the sender answered).
CREATE TABLE engagement_messages (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    subject TEXT NOT NULL,
    body TEXT NOT NULL,
    -- `model` or `template`.
    source TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'sent', 'failed', 'recorded')),
    error TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE INDEX engagement_messages_user ON engagement_messages (user_id, created_at DESC);

-- The workflow agent's latest suggestions for a workflow, which its owner sees on the canvas.
-- One row per workflow, replaced by each review.
CREATE TABLE workflow_suggestions (
    workflow_id TEXT PRIMARY KEY REFERENCES workflows (id) ON DELETE CASCADE,
    -- JSON array of {kind, node, nodeType, message, …}.
    suggestions TEXT NOT NULL,
    summary TEXT NOT NULL,
    -- `model` or `template`.
    source TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    -- Set when the owner dismissed them; the next review with new findings clears it.
    dismissed_at BIGINT
);

-- The workflow agent reads the rooms that ran recently.
CREATE INDEX runs_recent ON runs (created_at, room);
