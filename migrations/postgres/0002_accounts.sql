-- Users, workflows (a workflow is a room with an owner), who a workflow is shared with, and a
-- credit balance with its append-only ledger. Read by dojo-accounts; applied with the store's
-- migrations. Ids are ours (`u_…`, `wf_…`), random, so that they reveal nothing and two
-- instances never coordinate to make one. Timestamps are BIGINT milliseconds since the Unix
-- epoch, as in 0001.

CREATE TABLE users (
    id TEXT PRIMARY KEY,
    -- The identity provider's `sub`: how a token finds its user.
    subject TEXT NOT NULL UNIQUE,
    name TEXT,
    email TEXT,
    -- The database, not the code, guarantees a balance never goes negative: concurrent spends
    -- from any number of instances cannot overdraw it. Writers also check it in their UPDATE's
    -- WHERE, under the row lock, so this is the backstop rather than the usual refusal.
    credits BIGINT NOT NULL DEFAULT 0 CHECK (credits >= 0),
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- Operators look users up by email, in any case. Not unique: providers do not promise it.
CREATE INDEX users_email ON users (lower(email));
CREATE INDEX users_newest ON users (created_at DESC);

CREATE TABLE workflows (
    id TEXT PRIMARY KEY,
    -- The room the canvas lives in. Unique across deleted workflows too: their documents stay
    -- stored under the room, and a new owner must not inherit them.
    room TEXT NOT NULL UNIQUE,
    owner_id TEXT NOT NULL REFERENCES users (id),
    title TEXT NOT NULL,
    public BOOLEAN NOT NULL DEFAULT FALSE,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    -- Soft delete: a deleted workflow's room stays claimed and denied to everyone.
    deleted_at BIGINT
);

CREATE INDEX workflows_owner ON workflows (owner_id);

CREATE TABLE workflow_collaborators (
    workflow_id TEXT NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- Admin is the owner's alone, so it is not a collaborator permission.
    permission TEXT NOT NULL CHECK (permission IN ('read', 'write')),
    added_at BIGINT NOT NULL,
    PRIMARY KEY (workflow_id, user_id)
);

-- "Shared with me" lists.
CREATE INDEX workflow_collaborators_user ON workflow_collaborators (user_id);

CREATE TABLE credit_ledger (
    -- An integer, unlike other ids: a user's entries are written under that user's row lock, so
    -- this orders them exactly, and "newest first" and balance audits need that order.
    id BIGSERIAL PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id),
    -- Signed: grants and purchases add, spends subtract.
    amount BIGINT NOT NULL,
    balance_after BIGINT NOT NULL CHECK (balance_after >= 0),
    reason TEXT NOT NULL,
    -- Chosen by the caller (`stripe:{event}`, `{run}:{node}:hold`): the same key is applied at
    -- most once, which is what makes retries and duplicate webhooks harmless.
    idempotency_key TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL
);

CREATE INDEX credit_ledger_user ON credit_ledger (user_id, id DESC);

-- Append-only: a correction is a new entry, so the ledger always explains the balance.
CREATE FUNCTION credit_ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'credit_ledger is append-only';
END;
$$;

CREATE TRIGGER credit_ledger_append_only BEFORE UPDATE OR DELETE ON credit_ledger
    FOR EACH ROW EXECUTE FUNCTION credit_ledger_append_only();
