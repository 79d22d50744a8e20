#!/usr/bin/env python3
"""Migrations a rolling upgrade survives: expand, then contract (docs/operations.md).

During a rolling upgrade the new release migrates the shared database while instances of the
previous release still run (and restart) on it. So a new migration may only *expand* the
schema: add tables, nullable columns or columns with a default, indexes. Dropping, renaming,
changing a type, tightening a constraint waits for a later release, once no running binary
reads the old shape, and goes through review: its file is listed in
migrations/contract-allowed.txt with the reason.

Checks, over migrations/postgres and migrations/sqlite:
  1. both folders hold the same file names (one migration, written for each database);
  2. released migrations (migrations/released.sha256) are unchanged: sqlx refuses to start on a
     database whose applied migration's checksum differs;
  3. new migrations (not released yet) come after every released one and are expand-only,
     unless allow-listed.

  scripts/check-migrations.py             check (CI)
  scripts/check-migrations.py --record    when cutting a release: mark every migration released
  scripts/check-migrations.py --self-test check the checker on examples
"""

import hashlib
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MIGRATIONS = ROOT / "migrations"
FOLDERS = ("postgres", "sqlite")
RELEASED = MIGRATIONS / "released.sha256"
ALLOWED = MIGRATIONS / "contract-allowed.txt"

# What a previous release's binary may not survive, with the reason shown to the author.
CONTRACTING = [
    (r"\bDROP\s+(TABLE|COLUMN|INDEX|VIEW|TRIGGER|TYPE|FUNCTION|CONSTRAINT|SCHEMA)\b",
     "drops something the previous release may use"),
    (r"\bRENAME\b", "renames something the previous release uses by its old name"),
    (r"\bALTER\s+COLUMN\b[^;]*\bTYPE\b", "changes a column's type"),
    (r"\bSET\s+NOT\s+NULL\b", "makes a column NOT NULL: the previous release's writes may leave it empty"),
    (r"\bTRUNCATE\b", "deletes every row"),
    (r"\bALTER\s+TABLE\b[^;]*\bADD\s+(CONSTRAINT|CHECK|UNIQUE|PRIMARY\s+KEY|FOREIGN\s+KEY)\b",
     "adds a constraint the previous release's writes may break"),
]


def strip_comments(sql):
    sql = re.sub(r"/\*.*?\*/", " ", sql, flags=re.S)
    return re.sub(r"--[^\n]*", " ", sql)


def violations(sql):
    """Why `sql` is not expand-only (empty: it is)."""
    text = strip_comments(sql)
    found = []
    for pattern, why in CONTRACTING:
        for match in re.finditer(pattern, text, flags=re.I):
            found.append(f"{why}: {' '.join(match.group(0).split())[:80]}")
    created = {m.group(1).lower() for m in re.finditer(
        r"\bCREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?\"?(\w+)", text, flags=re.I)}
    for statement in text.split(";"):
        words = " ".join(statement.split())
        # A column added NOT NULL without a default: the previous release's inserts fail.
        for add in re.finditer(r"\bADD\s+(?:COLUMN\s+)?(?!CONSTRAINT|CHECK|UNIQUE|PRIMARY|FOREIGN)(.*)",
                               words, flags=re.I):
            clause = add.group(1)
            if re.search(r"\bNOT\s+NULL\b", clause, re.I) and not re.search(r"\bDEFAULT\b", clause, re.I):
                found.append(f"adds a NOT NULL column without a default: {clause[:80]}")
        # A unique index on an existing table may refuse the previous release's writes.
        unique = re.search(r"\bCREATE\s+UNIQUE\s+INDEX\b.*?\bON\s+\"?(\w+)", words, flags=re.I)
        if unique and unique.group(1).lower() not in created:
            found.append(f"adds a unique index to the existing table {unique.group(1)}")
    return found


def version(name):
    return int(name.split("_", 1)[0])


def migration_files():
    return {folder: sorted(p.name for p in (MIGRATIONS / folder).glob("*.sql")) for folder in FOLDERS}


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_released():
    released = {}
    if RELEASED.exists():
        for line in RELEASED.read_text().splitlines():
            if line.strip() and not line.startswith("#"):
                digest, name = line.split()
                released[name] = digest
    return released


def read_allowed():
    allowed = set()
    if ALLOWED.exists():
        for line in ALLOWED.read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                name, _, reason = line.partition(":")
                if not reason.strip():
                    sys.exit(f"{ALLOWED.relative_to(ROOT)}: {name} needs a reason after ':'")
                allowed.add(name.strip())
    return allowed


def check():
    files = migration_files()
    errors = []
    if files["postgres"] != files["sqlite"]:
        only = set(files["postgres"]) ^ set(files["sqlite"])
        errors.append(f"postgres/ and sqlite/ differ (write each migration for both): {sorted(only)}")
    released = read_released()
    allowed = read_allowed()
    newest_released = max((version(Path(n).name) for n in released), default=0)
    for name, digest in sorted(released.items()):
        path = MIGRATIONS / name
        if not path.exists():
            errors.append(f"{name} was released and is gone: databases that applied it cannot start")
        elif sha256(path) != digest:
            errors.append(f"{name} was released and has changed: sqlx refuses databases that applied it")
    new = 0
    for folder in FOLDERS:
        for file in files[folder]:
            name = f"{folder}/{file}"
            if name in released:
                continue
            new += 1
            if version(file) <= newest_released:
                errors.append(f"{name}: a new migration must come after the released ones (> {newest_released})")
            if name in allowed:
                continue
            for why in violations((MIGRATIONS / name).read_text()):
                errors.append(f"{name}: {why} (expand, then contract: docs/operations.md)")
    for error in errors:
        print(f"check-migrations: {error}", file=sys.stderr)
    if errors:
        return 1
    print(f"check-migrations: ok ({len(released)} released, {new} new, expand-only or allow-listed)")
    return 0


def record():
    lines = ["# Migrations in a release: frozen (scripts/check-migrations.py). sha256, path."]
    for folder, names in migration_files().items():
        lines += [f"{sha256(MIGRATIONS / folder / n)}  {folder}/{n}" for n in names]
    RELEASED.write_text("\n".join(lines) + "\n")
    print(f"recorded {len(lines) - 1} migrations as released in {RELEASED.relative_to(ROOT)}")
    return 0


def self_test():
    expand = """
        -- drop nothing; RENAME in a comment is fine
        CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL);
        CREATE UNIQUE INDEX notes_body ON notes (body);
        ALTER TABLE users ADD COLUMN flag INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE users ADD COLUMN nickname TEXT;
        CREATE INDEX users_flag ON users (flag);
    """
    assert violations(expand) == [], violations(expand)
    contracting = {
        "DROP TABLE old;": "drops",
        "ALTER TABLE users DROP COLUMN email;": "drops",
        "ALTER TABLE users RENAME COLUMN name TO full_name;": "renames",
        "ALTER TABLE users ALTER COLUMN credits TYPE NUMERIC;": "type",
        "ALTER TABLE users ALTER COLUMN name SET NOT NULL;": "NOT NULL",
        "ALTER TABLE users ADD COLUMN team TEXT NOT NULL;": "without a default",
        "ALTER TABLE users ADD CONSTRAINT positive CHECK (credits > 0);": "constraint",
        "CREATE UNIQUE INDEX users_email ON users (email);": "unique index",
        "TRUNCATE run_outbox;": "every row",
    }
    for sql, expected in contracting.items():
        found = violations(sql)
        assert any(expected in why for why in found), (sql, found)
    print("check-migrations: self-test ok")
    return 0


if __name__ == "__main__":
    argument = sys.argv[1] if len(sys.argv) > 1 else ""
    sys.exit({"--record": record, "--self-test": self_test}.get(argument, check)())
