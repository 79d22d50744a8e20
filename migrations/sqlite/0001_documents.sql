-- A room's document is an append-only log of Yjs updates plus snapshots that let the log be
-- truncated. Same schema and semantics as migrations/postgres; the differences are dialect only.
-- Timestamps are milliseconds since the Unix epoch. STRICT tables reject values of the wrong
-- type instead of silently storing them; INTEGER is SQLite's 64-bit integer (BIGINT elsewhere).

CREATE TABLE documents (
    room TEXT PRIMARY KEY NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    -- The next sequence to hand out, advanced with UPDATE … RETURNING inside a write
    -- (BEGIN IMMEDIATE) transaction, so concurrent appenders never get overlapping ranges and a
    -- rolled-back append leaves no gap.
    next_seq INTEGER NOT NULL DEFAULT 1 CHECK (next_seq >= 1)
) STRICT;

CREATE TABLE document_updates (
    room TEXT NOT NULL REFERENCES documents (room) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    data BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    -- Its index is the one load (seq > covers_seq) and compaction (seq <= covers_seq) range-scan.
    PRIMARY KEY (room, seq)
) STRICT;

CREATE TABLE document_snapshots (
    -- AUTOINCREMENT so that ids are never reused (plain rowids are, after the largest is
    -- deleted): an id handed to a client can never name a different snapshot later.
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    room TEXT NOT NULL REFERENCES documents (room) ON DELETE CASCADE,
    covers_seq INTEGER NOT NULL,
    data BLOB NOT NULL,
    -- Kept so that tools can diff against a version without decoding its data.
    state_vector BLOB NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;

-- Unique so that compacting the same state twice stores one row (INSERT … ON CONFLICT DO
-- NOTHING); descending so that "newest snapshot" and the version list are an index scan.
CREATE UNIQUE INDEX document_snapshots_newest ON document_snapshots (room, covers_seq DESC);
