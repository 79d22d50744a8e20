-- SQLite's update log is now stored clustered by (room, seq) (see migrations/sqlite, same file
-- name). PostgreSQL needs no change: deleting a room's covered rows marks their tuples dead, and
-- the (room, seq) primary key already serves loads. Kept so both folders hold the same files.

SELECT 1;
