-- Teams (issue 22): people who share workflows, each with a role; invitations to join one; a
-- workflow's optional team; and the audit log. Owned by dojo-records (`TeamStore`,
-- `AuditLog`). Expand-only: new tables, one nullable column, indexes.

CREATE TABLE teams (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    created_by TEXT NOT NULL REFERENCES users (id),
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE team_members (
    team_id TEXT NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- owner: everything, roles included; admin: members and sharing, not owners; member: edits
    -- the team's workflows; viewer: reads them.
    role TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'member', 'viewer')),
    joined_at BIGINT NOT NULL,
    PRIMARY KEY (team_id, user_id)
);

-- "My teams", and the per-user team count.
CREATE INDEX team_members_user ON team_members (user_id, team_id);

CREATE TABLE team_invitations (
    id TEXT PRIMARY KEY,
    team_id TEXT NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    -- Exactly one of the two names the invitee: a user, or an email (lower case) that a user's
    -- token may later carry.
    invitee_user_id TEXT REFERENCES users (id) ON DELETE CASCADE,
    invitee_email TEXT,
    -- Never 'owner': ownership is given by changing a member's role, by an owner.
    role TEXT NOT NULL CHECK (role IN ('admin', 'member', 'viewer')),
    invited_by TEXT NOT NULL REFERENCES users (id),
    status TEXT NOT NULL CHECK (status IN ('pending', 'accepted', 'declined', 'revoked')),
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    responded_at BIGINT,
    CHECK ((invitee_user_id IS NULL) <> (invitee_email IS NULL))
);

CREATE INDEX team_invitations_team ON team_invitations (team_id, status, id);
CREATE INDEX team_invitations_user ON team_invitations (invitee_user_id, status) WHERE invitee_user_id IS NOT NULL;
CREATE INDEX team_invitations_email ON team_invitations (invitee_email, status) WHERE invitee_email IS NOT NULL;

-- A workflow belongs to its owner (NULL) or to a team, whose members get the access their
-- role implies. Nullable, so the previous release's inserts (which do not name it) still work.
ALTER TABLE workflows ADD COLUMN team_id TEXT REFERENCES teams (id);

CREATE INDEX workflows_team ON workflows (team_id, id) WHERE team_id IS NOT NULL;

-- Who did what to what, when, from where. Append-only (triggers below), like credit_ledger.
CREATE TABLE audit_log (
    -- The cursor of the audit API, newest first; ordered like the ledger's ids.
    seq BIGSERIAL PRIMARY KEY,
    -- 'user' (a person's token), 'service' (a token with room grants, or the executor's),
    -- 'operator' (the admin CLI), 'system' (the server itself, e.g. a Stripe payment).
    actor_type TEXT NOT NULL CHECK (actor_type IN ('user', 'service', 'operator', 'system')),
    actor_id TEXT NOT NULL,
    action TEXT NOT NULL,
    target_type TEXT NOT NULL,
    target_id TEXT NOT NULL,
    -- No foreign key: the record of what happened to a team outlives the team.
    team_id TEXT,
    client_addr TEXT,
    -- A small JSON object (never a secret), at most 4 KiB.
    detail TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE INDEX audit_log_team ON audit_log (team_id, seq DESC) WHERE team_id IS NOT NULL;

CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END;
$$;

CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
