-- Same schema and semantics as migrations/postgres/0009_team_provider_keys.sql (the comments
-- there say why); dialect only differs: STRICT tables, BLOB for BYTEA, INTEGER for BIGINT.

CREATE TABLE team_provider_keys (
    team_id TEXT NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    provider TEXT NOT NULL,
    ciphertext BLOB NOT NULL,
    nonce BLOB NOT NULL,
    kek_id TEXT NOT NULL,
    last_four TEXT NOT NULL,
    set_by TEXT NOT NULL,
    set_at INTEGER NOT NULL,
    PRIMARY KEY (team_id, provider)
) STRICT;

CREATE INDEX team_provider_keys_kek ON team_provider_keys (kek_id);

ALTER TABLE runs ADD COLUMN team_id TEXT;
