#!/usr/bin/env python3
"""What compaction's delete costs in the SQLite update log, by table layout (BENCHMARKS.md,
"The update log clustered by room"; migrations/sqlite/0021_document_updates_clustered.sql).

Rooms append in turns, as the server's group commits write them; then each room's rows are
deleted as one compaction does (DELETE ... WHERE room = ? AND seq <= ?), in a transaction of its
own. Run once with the log in rowid order beside a (room, seq) index (migration 0001) and once
stored by (room, seq) itself (WITHOUT ROWID, migration 0021). Python's sqlite3 module only.

  scripts/sqlite-log-layout.py [ROOMS] [ROWS_PER_ROOM] [ROWS_PER_COMMIT]
"""

import os
import random
import sqlite3
import sys
import tempfile
import time

ROOMS = int(sys.argv[1]) if len(sys.argv) > 1 else 100
ROWS_PER_ROOM = int(sys.argv[2]) if len(sys.argv) > 2 else 500
ROWS_PER_COMMIT = int(sys.argv[3]) if len(sys.argv) > 3 else 15


def measure(clustered, path):
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA foreign_keys = ON")
    db.execute("CREATE TABLE documents (room TEXT PRIMARY KEY NOT NULL, next_seq INTEGER NOT NULL) STRICT")
    layout = "STRICT, WITHOUT ROWID" if clustered else "STRICT"
    db.execute(
        "CREATE TABLE document_updates (room TEXT NOT NULL REFERENCES documents (room) ON DELETE CASCADE,"
        " seq INTEGER NOT NULL, data BLOB NOT NULL, created_at INTEGER NOT NULL,"
        f" PRIMARY KEY (room, seq)) {layout}"
    )
    rooms = [f"room-{i:04}" for i in range(ROOMS)]
    for room in rooms:
        db.execute("INSERT INTO documents VALUES (?, 1)", (room,))
    seqs = {room: 0 for room in rooms}
    random.seed(1)
    appended, cpu = 0, time.process_time()
    while appended < ROOMS * ROWS_PER_ROOM:
        db.execute("BEGIN IMMEDIATE")
        for _ in range(ROWS_PER_COMMIT):
            room = random.choice(rooms)
            seqs[room] += 1
            db.execute("INSERT INTO document_updates VALUES (?, ?, ?, 0)", (room, seqs[room], os.urandom(random.randint(30, 80))))
        db.execute("COMMIT")
        appended += ROWS_PER_COMMIT
    insert_us = (time.process_time() - cpu) / appended * 1e6
    deletes = []
    for room in rooms:
        start = time.perf_counter()
        db.execute("BEGIN IMMEDIATE")
        db.execute("DELETE FROM document_updates WHERE room = ? AND seq <= ?", (room, seqs[room]))
        db.execute("COMMIT")
        deletes.append((time.perf_counter() - start) * 1e3)
    deletes.sort()
    name = "clustered (WITHOUT ROWID)" if clustered else "rowid + index"
    print(
        f"{name:26} append {insert_us:5.1f} µs CPU per row;"
        f" delete a room's {ROWS_PER_ROOM} rows: median {deletes[len(deletes) // 2]:.3f} ms,"
        f" p90 {deletes[len(deletes) * 9 // 10]:.3f} ms"
    )
    db.close()


with tempfile.TemporaryDirectory() as directory:
    for clustered in (False, True):
        measure(clustered, os.path.join(directory, f"log-{clustered}.db"))
