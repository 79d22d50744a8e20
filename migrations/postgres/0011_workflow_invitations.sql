-- Sharing a workflow by email (issue 20): an owner invites an address; whoever signs in with a
-- token carrying that (verified) email becomes a collaborator with the invited permission, and
-- the invitation is gone. An address that already belongs to an account is shared with at once
-- and never stored here. Owned by dojo-records (`AccountStore`). Expand-only: a new table.

CREATE TABLE workflow_invitations (
    workflow_id TEXT NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
    -- Lower case, as users' emails are compared.
    email TEXT NOT NULL,
    permission TEXT NOT NULL CHECK (permission IN ('read', 'write')),
    invited_by TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (workflow_id, email)
);

-- Claiming at sign-in looks invitations up by address.
CREATE INDEX workflow_invitations_email ON workflow_invitations (email, expires_at);
