-- The update log, stored by (room, seq) itself (WITHOUT ROWID) rather than in rowid order with a
-- separate (room, seq) index. Owned by dojo-store. Same name, columns, key and constraints, so
-- every statement reads and writes it as before.
--
-- Why: rooms append in turns, so in rowid order one room's rows were spread over the whole table,
-- a few per page. Compaction deletes a room's covered rows (500 by default) and so dirtied about
-- one table page per row (up to 2 MB of WAL): a 500-row delete took 2.5 ms (6 ms at the 90th
-- percentile; scripts/sqlite-log-layout.py), inside the commit that also carries every room's
-- appends, which was the tail latency compaction added to busy rooms (BENCHMARKS.md, "The update
-- log clustered by room"). Clustered by room, the same delete touches a handful of pages
-- (0.5-0.7 ms), and loading a room reads its rows from adjacent pages. The price: appends spread
-- over many rooms split leaves more often, about 8 % more server CPU in small rooms.
--
-- The copy takes the write lock for as long as it runs (about a second per million rows).

CREATE TABLE document_updates_clustered (
    room TEXT NOT NULL REFERENCES documents (room) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    data BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (room, seq)
) STRICT, WITHOUT ROWID;

INSERT INTO document_updates_clustered (room, seq, data, created_at)
    SELECT room, seq, data, created_at FROM document_updates ORDER BY room, seq;

DROP TABLE document_updates;

ALTER TABLE document_updates_clustered RENAME TO document_updates;
