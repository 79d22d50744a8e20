-- Same schema and semantics as migrations/postgres/0008_teams.sql (the comments there say
-- why); dialect only differs: STRICT tables, INTEGER for BIGINT, AUTOINCREMENT for BIGSERIAL.

CREATE TABLE teams (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    created_by TEXT NOT NULL REFERENCES users (id),
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;

CREATE TABLE team_members (
    team_id TEXT NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'member', 'viewer')),
    joined_at INTEGER NOT NULL,
    PRIMARY KEY (team_id, user_id)
) STRICT;

CREATE INDEX team_members_user ON team_members (user_id, team_id);

CREATE TABLE team_invitations (
    id TEXT PRIMARY KEY NOT NULL,
    team_id TEXT NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    invitee_user_id TEXT REFERENCES users (id) ON DELETE CASCADE,
    invitee_email TEXT,
    role TEXT NOT NULL CHECK (role IN ('admin', 'member', 'viewer')),
    invited_by TEXT NOT NULL REFERENCES users (id),
    status TEXT NOT NULL CHECK (status IN ('pending', 'accepted', 'declined', 'revoked')),
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    responded_at INTEGER,
    CHECK ((invitee_user_id IS NULL) <> (invitee_email IS NULL))
) STRICT;

CREATE INDEX team_invitations_team ON team_invitations (team_id, status, id);
CREATE INDEX team_invitations_user ON team_invitations (invitee_user_id, status) WHERE invitee_user_id IS NOT NULL;
CREATE INDEX team_invitations_email ON team_invitations (invitee_email, status) WHERE invitee_email IS NOT NULL;

ALTER TABLE workflows ADD COLUMN team_id TEXT REFERENCES teams (id);

CREATE INDEX workflows_team ON workflows (team_id, id) WHERE team_id IS NOT NULL;

CREATE TABLE audit_log (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    actor_type TEXT NOT NULL CHECK (actor_type IN ('user', 'service', 'operator', 'system')),
    actor_id TEXT NOT NULL,
    action TEXT NOT NULL,
    target_type TEXT NOT NULL,
    target_id TEXT NOT NULL,
    team_id TEXT,
    client_addr TEXT,
    detail TEXT NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;

CREATE INDEX audit_log_team ON audit_log (team_id, seq DESC) WHERE team_id IS NOT NULL;

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;

CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;
