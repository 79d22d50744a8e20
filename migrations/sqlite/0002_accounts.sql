-- Users, workflows (a workflow is a room with an owner), who a workflow is shared with, and a
-- credit balance with its append-only ledger. Same schema and semantics as
-- migrations/postgres/0002_accounts.sql (the comments there say why); the differences are
-- dialect only. STRICT tables, INTEGER for BIGINT, and booleans as INTEGER 0/1.

CREATE TABLE users (
    id TEXT PRIMARY KEY NOT NULL,
    subject TEXT NOT NULL UNIQUE,
    name TEXT,
    email TEXT,
    -- Never negative, whatever the code does.
    credits INTEGER NOT NULL DEFAULT 0 CHECK (credits >= 0),
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;

CREATE INDEX users_email ON users (lower(email));
CREATE INDEX users_newest ON users (created_at DESC);

CREATE TABLE workflows (
    id TEXT PRIMARY KEY NOT NULL,
    -- Unique across deleted workflows too: their documents stay stored under the room.
    room TEXT NOT NULL UNIQUE,
    owner_id TEXT NOT NULL REFERENCES users (id),
    title TEXT NOT NULL,
    public INTEGER NOT NULL DEFAULT 0 CHECK (public IN (0, 1)),
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    deleted_at INTEGER
) STRICT;

CREATE INDEX workflows_owner ON workflows (owner_id);

CREATE TABLE workflow_collaborators (
    workflow_id TEXT NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    permission TEXT NOT NULL CHECK (permission IN ('read', 'write')),
    added_at INTEGER NOT NULL,
    PRIMARY KEY (workflow_id, user_id)
) STRICT;

CREATE INDEX workflow_collaborators_user ON workflow_collaborators (user_id);

CREATE TABLE credit_ledger (
    -- AUTOINCREMENT: ids never reused, and increasing in the order entries were written (one
    -- writer at a time), which "newest first" and balance audits rely on.
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id TEXT NOT NULL REFERENCES users (id),
    amount INTEGER NOT NULL,
    balance_after INTEGER NOT NULL CHECK (balance_after >= 0),
    reason TEXT NOT NULL,
    idempotency_key TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL
) STRICT;

CREATE INDEX credit_ledger_user ON credit_ledger (user_id, id DESC);

-- Append-only: a correction is a new entry, so the ledger always explains the balance.
CREATE TRIGGER credit_ledger_no_update BEFORE UPDATE ON credit_ledger
BEGIN
    SELECT RAISE(ABORT, 'credit_ledger is append-only');
END;

CREATE TRIGGER credit_ledger_no_delete BEFORE DELETE ON credit_ledger
BEGIN
    SELECT RAISE(ABORT, 'credit_ledger is append-only');
END;
