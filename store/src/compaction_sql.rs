//! The statements a compaction runs, in order, in one transaction: shared by `documents.rs`
//! (through sqlx, on both databases) and the SQLite file's writer thread (through rusqlite), so
//! both write snapshots alike. `$N` placeholders: PostgreSQL's own; to SQLite they are names
//! (numbered in order of first appearance), which sqlx's driver and the writer thread bind by name.

/// The snapshot references the room's row; create it if the room was never appended to.
/// Parameters: room, now.
pub(crate) const CREATE_ROOM: &str = "INSERT INTO documents (room, created_at, updated_at, next_seq)
     VALUES ($1, $2, $2, 1) ON CONFLICT (room) DO NOTHING";

/// Never hand out a sequence the snapshot claims to cover. A no-op (and no row lock) in the normal
/// case, where the snapshot covers sequences already allocated. Parameters: room, covers_seq, now.
pub(crate) const ADVANCE_SEQ: &str =
    "UPDATE documents SET next_seq = $2 + 1, updated_at = $3 WHERE room = $1 AND next_seq <= $2";

/// A racing compaction that stored the same covers_seq wins; its data is the same state.
/// Parameters: room, covers_seq, data, state_vector, now.
pub(crate) const INSERT_SNAPSHOT: &str =
    "INSERT INTO document_snapshots (room, covers_seq, data, state_vector, created_at)
     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (room, covers_seq) DO NOTHING";

/// Covered by the snapshot just stored (or an identical one), so safe to drop.
/// Parameters: room, covers_seq.
pub(crate) const DELETE_COVERED: &str = "DELETE FROM document_updates WHERE room = $1 AND seq <= $2";

/// Keeps the newest by covers_seq, so the newest snapshot always survives and covers every deleted
/// update, even when a newer compaction won the race and ours is the one trimmed.
/// Parameters: room, how many to keep (`keep_limit`).
pub(crate) const TRIM_SNAPSHOTS: &str = "DELETE FROM document_snapshots WHERE room = $1 AND id NOT IN (
         SELECT id FROM document_snapshots WHERE room = $1 ORDER BY covers_seq DESC LIMIT $2
     )";
