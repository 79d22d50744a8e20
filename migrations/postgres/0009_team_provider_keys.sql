-- Team provider keys (issue 22): one key per team and provider, sealed with AES-256-GCM under a
-- key-encryption key from the server's configuration (dojo_records::key_crypto). Owned by
-- dojo-records (`ProviderKeyStore`). Expand-only: a new table and one nullable column.

CREATE TABLE team_provider_keys (
    team_id TEXT NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    -- The catalog's provider name: openai, replicate, fal, stability.
    provider TEXT NOT NULL,
    -- AES-256-GCM of the key, its tag appended; the team id and provider are its associated
    -- data, so a value copied into another row does not decrypt.
    ciphertext BYTEA NOT NULL,
    -- 96 random bits, new for every value.
    nonce BYTEA NOT NULL,
    -- Which configured key-encryption key sealed it (DOJO_KEY_ENCRYPTION_KEYS).
    kek_id TEXT NOT NULL,
    -- All that is ever shown of the key.
    last_four TEXT NOT NULL,
    -- No foreign key: deleting an account must not be held up by the keys it once set.
    set_by TEXT NOT NULL,
    set_at BIGINT NOT NULL,
    PRIMARY KEY (team_id, provider)
);

-- Rotation finds the rows not yet under the current key-encryption key.
CREATE INDEX team_provider_keys_kek ON team_provider_keys (kek_id);

-- The team a run was accepted for (its workflow's team), so the worker uses that team's keys.
-- Nullable: personal workflows, and runs of the previous release.
ALTER TABLE runs ADD COLUMN team_id TEXT;
