-- Same schema and semantics as migrations/postgres/0011_workflow_invitations.sql (the comments
-- there say why); dialect only differs: STRICT tables, INTEGER for BIGINT.

CREATE TABLE workflow_invitations (
    workflow_id TEXT NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
    email TEXT NOT NULL,
    permission TEXT NOT NULL CHECK (permission IN ('read', 'write')),
    invited_by TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (workflow_id, email)
) STRICT;

CREATE INDEX workflow_invitations_email ON workflow_invitations (email, expires_at);
