-- A room's document is an append-only log of Yjs updates plus snapshots that let the log be
-- truncated. Timestamps are BIGINT milliseconds since the Unix epoch so that both dialects store
-- and compare them the same way, with no time zone conversions.

CREATE TABLE documents (
    room TEXT PRIMARY KEY,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    -- The next sequence to hand out. Appenders advance it with UPDATE … RETURNING: the row lock
    -- serialises them across server instances, so every append gets a contiguous range and no
    -- two get the same one. A rolled-back append rolls its allocation back too: no gaps.
    next_seq BIGINT NOT NULL DEFAULT 1 CHECK (next_seq >= 1)
);

CREATE TABLE document_updates (
    room TEXT NOT NULL REFERENCES documents (room) ON DELETE CASCADE,
    seq BIGINT NOT NULL,
    data BYTEA NOT NULL,
    created_at BIGINT NOT NULL,
    -- Its index is the one load (seq > covers_seq) and compaction (seq <= covers_seq) range-scan.
    PRIMARY KEY (room, seq)
);

CREATE TABLE document_snapshots (
    -- Never reused, so an id handed to a client can never name a different snapshot later.
    id BIGSERIAL PRIMARY KEY,
    room TEXT NOT NULL REFERENCES documents (room) ON DELETE CASCADE,
    covers_seq BIGINT NOT NULL,
    data BYTEA NOT NULL,
    -- Kept so that tools can diff against a version without decoding its data.
    state_vector BYTEA NOT NULL,
    created_at BIGINT NOT NULL
);

-- Unique so that two instances compacting the same state store one row, not two (the loser's
-- INSERT … ON CONFLICT DO NOTHING); descending so that "newest snapshot" and the version list
-- are an index scan. One index serves both.
CREATE UNIQUE INDEX document_snapshots_newest ON document_snapshots (room, covers_seq DESC);
