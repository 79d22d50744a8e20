//! Backups of the SQLite database: a consistent copy of the whole file (documents, accounts,
//! ledger, runs: every table) taken while a server writes to it, and a restore that replaces
//! the database file only with a verified Dojo database and only when nothing has it open.
//!
//! The copy is SQLite's `VACUUM INTO`: it reads the database in one read transaction (in WAL
//! mode that does not block the writer, nor the writer it), so it is the state of the file at one
//! commit, never a half-written transaction. SQLite does not fsync what `VACUUM INTO` writes, so
//! the copy is written under a temporary name, checked, fsynced and only then renamed into place.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteLockingMode};
use sqlx::{ConnectOptions, Connection, Row};

use crate::sqlite::MIGRATOR;

/// How long the backup's read waits for SQLite's locks (a checkpoint or the WAL being reset).
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{0} does not exist")]
    Missing(PathBuf),
    #[error("{0} already exists: pass --force to replace it")]
    Exists(PathBuf),
    #[error("{path} is not a usable Dojo database: {reason}")]
    NotDojo { path: PathBuf, reason: String },
    #[error(
        "{0} is in use by another process (a running dojo-server?): stop it before restoring; nothing was changed"
    )]
    InUse(PathBuf),
    #[error("{what} {path}: {source}")]
    Io { what: &'static str, path: PathBuf, source: std::io::Error },
    #[error("database error on {path}: {source}")]
    Database { path: PathBuf, source: sqlx::Error },
}

/// What a verified database holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The newest migration applied to it.
    pub schema_version: i64,
    /// Rooms with a stored document.
    pub documents: i64,
    /// Users (accounts).
    pub users: i64,
    /// Bytes of the file.
    pub bytes: u64,
}

/// What [`restore`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restored {
    pub verified: Verified,
    /// Where the files the restore replaced were moved (the database, its WAL and shared-memory
    /// files, those that existed). Nothing is deleted.
    pub kept: Vec<PathBuf>,
}

/// Copies the SQLite database at `source` to `to`, consistently, while other connections (a
/// running server) read and write it. Refuses to overwrite `to` unless `force`.
pub async fn backup(source: &Path, to: &Path, force: bool) -> Result<Verified, BackupError> {
    if !source.is_file() {
        return Err(BackupError::Missing(source.to_owned()));
    }
    if !force && to.exists() {
        return Err(BackupError::Exists(to.to_owned()));
    }
    let temp = temp_beside(to)?;
    let written = async {
        // No create_if_missing: a wrong path must not leave an empty database behind. No
        // journal mode either: the live file stays in WAL mode, untouched.
        let options = SqliteConnectOptions::new().filename(source).busy_timeout(BUSY_TIMEOUT);
        let mut conn = options.connect().await.map_err(database(source))?;
        let path = temp.to_str().ok_or_else(|| BackupError::Io {
            what: "the backup path is not UTF-8:",
            path: temp.clone(),
            source: std::io::Error::from(std::io::ErrorKind::InvalidInput),
        })?;
        let copied = sqlx::query("VACUUM INTO $1").bind(path).execute(&mut conn).await;
        let _ = conn.close().await;
        copied.map_err(database(source))?;
        let verified = verify(&temp).await?;
        sync_file(&temp)?;
        Ok::<_, BackupError>(verified)
    }
    .await;
    let verified = match written {
        Ok(verified) => verified,
        Err(error) => {
            let _ = std::fs::remove_file(&temp);
            return Err(error);
        }
    };
    let placed = if force {
        std::fs::rename(&temp, to).map_err(io("cannot move the backup to", to))
    } else {
        // A hard link fails if `to` appeared meanwhile: never clobber a file created since the
        // check above.
        std::fs::hard_link(&temp, to).map_err(|source| match source.kind() {
            std::io::ErrorKind::AlreadyExists => BackupError::Exists(to.to_owned()),
            _ => BackupError::Io { what: "cannot move the backup to", path: to.to_owned(), source },
        })
    };
    let _ = std::fs::remove_file(&temp);
    placed?;
    sync_parent(to)?;
    Ok(verified)
}

/// Checks that `path` is an intact Dojo database this binary can serve: `integrity_check`
/// passes, and its migrations table exists, with every migration applied successfully and each
/// one this release knows unchanged (migrations of a later release are tolerated, as the server
/// tolerates them during a rolling upgrade).
pub async fn verify(path: &Path) -> Result<Verified, BackupError> {
    if !path.is_file() {
        return Err(BackupError::Missing(path.to_owned()));
    }
    let not_dojo = |reason: String| BackupError::NotDojo { path: path.to_owned(), reason };
    // Read-only, immutable: verifying takes no lock and cannot write (no WAL, no journal).
    let options = SqliteConnectOptions::new().filename(path).read_only(true).immutable(true);
    let mut conn = options.connect().await.map_err(|e| not_dojo(e.to_string()))?;
    let checked = async {
        let integrity: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
            .fetch_all(&mut conn)
            .await
            .map_err(|e| not_dojo(e.to_string()))?;
        if integrity != ["ok"] {
            return Err(not_dojo(format!("integrity_check: {}", integrity.join("; "))));
        }
        let applied = sqlx::query("SELECT version, checksum, success FROM _sqlx_migrations ORDER BY version")
            .fetch_all(&mut conn)
            .await
            .map_err(|e| not_dojo(format!("no migrations table ({e})")))?;
        let newest_known = MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0);
        let mut newest = None;
        for row in &applied {
            let version: i64 = row.try_get("version").map_err(|e| not_dojo(e.to_string()))?;
            let checksum: Vec<u8> = row.try_get("checksum").map_err(|e| not_dojo(e.to_string()))?;
            let success: bool = row.try_get("success").map_err(|e| not_dojo(e.to_string()))?;
            match MIGRATOR.iter().find(|m| m.version == version) {
                Some(known) if *known.checksum != checksum[..] => {
                    return Err(not_dojo(format!("migration {version} differs from this release's")));
                }
                Some(_) => {}
                // A later release's migration: tolerated as the server tolerates it (expand,
                // then contract), but not one this release should have and does not know.
                None if version <= newest_known => {
                    return Err(not_dojo(format!("migration {version} is unknown to this release")));
                }
                None => {}
            }
            if !success {
                return Err(not_dojo(format!("migration {version} did not complete")));
            }
            newest = Some(version);
        }
        let Some(schema_version) = newest else {
            return Err(not_dojo("no migration applied".into()));
        };
        let documents = sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM documents")
            .fetch_one(&mut conn)
            .await
            .map_err(|e| not_dojo(e.to_string()))?;
        let users = sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM users")
            .fetch_one(&mut conn)
            .await
            .map_err(|e| not_dojo(e.to_string()))?;
        Ok((schema_version, documents, users))
    }
    .await;
    let _ = conn.close().await;
    let (schema_version, documents, users) = checked?;
    let bytes = std::fs::metadata(path).map_err(io("cannot read", path))?.len();
    Ok(Verified { schema_version, documents, users, bytes })
}

/// Replaces the database at `target` with a copy of the backup at `from`, after verifying the
/// backup. An existing `target` is replaced only with `force`, only when no other connection
/// has it open (a running server keeps connections open: SQLite's exclusive lock then fails at
/// once), and is kept beside it under `*.before-restore-<unix time>` rather than deleted.
///
/// The caller should also hold whatever lock its servers take on the file while they run
/// (`dojo-server` holds a lock file), so that no server opens `target` during the swap.
pub async fn restore(from: &Path, target: &Path, force: bool) -> Result<Restored, BackupError> {
    let verified = verify(from).await?;
    let existing: Vec<PathBuf> = companions(target).into_iter().filter(|path| path.exists()).collect();
    if !existing.is_empty() && !force {
        return Err(BackupError::Exists(existing[0].clone()));
    }
    if target.is_file() {
        ensure_unused(target).await?;
    }
    if let Some(dir) = target.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io("cannot create", dir))?;
    }
    let temp = temp_beside(target)?;
    let copied = std::fs::copy(from, &temp)
        .map_err(io("cannot copy the backup to", &temp))
        .and_then(|_| sync_file(&temp));
    if let Err(error) = copied {
        let _ = std::fs::remove_file(&temp);
        return Err(error);
    }
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs());
    let mut kept = Vec::new();
    for path in existing {
        let mut aside = path.clone().into_os_string();
        aside.push(format!(".before-restore-{stamp}"));
        let aside = PathBuf::from(aside);
        if let Err(error) = std::fs::rename(&path, &aside).map_err(io("cannot move aside", &path)) {
            let _ = std::fs::remove_file(&temp);
            return Err(error);
        }
        kept.push(aside);
    }
    std::fs::rename(&temp, target).map_err(io("cannot move the restored database to", target))?;
    sync_parent(target)?;
    Ok(Restored { verified, kept })
}

/// Fails with [`BackupError::InUse`] when another connection, in any process, has the database
/// open. A connection in exclusive locking mode must take SQLite's EXCLUSIVE lock on the file to
/// begin a transaction; every open connection of a WAL database holds a SHARED lock on it for as
/// long as it is open, idle or not, so with a zero busy timeout this fails at once. The WAL is
/// then checkpointed into the file (so that the file moved aside is complete by itself).
async fn ensure_unused(path: &Path) -> Result<(), BackupError> {
    let options = SqliteConnectOptions::new()
        .filename(path)
        .locking_mode(SqliteLockingMode::Exclusive)
        .busy_timeout(Duration::ZERO);
    let mut conn = match options.connect().await {
        Ok(conn) => conn,
        Err(error) if is_busy(&error) => return Err(BackupError::InUse(path.to_owned())),
        Err(error) => return Err(BackupError::Database { path: path.to_owned(), source: error }),
    };
    let checked = async {
        sqlx::query("BEGIN EXCLUSIVE").execute(&mut conn).await?;
        sqlx::query("COMMIT").execute(&mut conn).await?;
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").execute(&mut conn).await?;
        Ok::<_, sqlx::Error>(())
    }
    .await;
    let _ = conn.close().await;
    match checked {
        Ok(()) => Ok(()),
        Err(error) if is_busy(&error) => Err(BackupError::InUse(path.to_owned())),
        Err(error) => Err(BackupError::Database { path: path.to_owned(), source: error }),
    }
}

fn is_busy(error: &sqlx::Error) -> bool {
    // SQLITE_BUSY (5) and SQLITE_LOCKED (6), with their extended codes.
    error
        .as_database_error()
        .and_then(|e| e.code())
        .is_some_and(|code| code.parse::<i32>().is_ok_and(|code| matches!(code & 0xff, 5 | 6)))
}

/// The database file and the WAL and shared-memory files SQLite keeps beside it.
fn companions(path: &Path) -> [PathBuf; 3] {
    let with = |suffix: &str| {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        PathBuf::from(name)
    };
    [path.to_owned(), with("-wal"), with("-shm")]
}

/// A fresh name in `path`'s directory (so the final rename stays on one file system).
fn temp_beside(path: &Path) -> Result<PathBuf, BackupError> {
    let name = path.file_name().ok_or_else(|| BackupError::Io {
        what: "not a file name:",
        path: path.to_owned(),
        source: std::io::Error::from(std::io::ErrorKind::InvalidInput),
    })?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.subsec_nanos());
    let mut temp = std::ffi::OsString::from(".");
    temp.push(name);
    temp.push(format!(".tmp-{}-{nanos}", std::process::id()));
    Ok(path.with_file_name(temp))
}

fn sync_file(path: &Path) -> Result<(), BackupError> {
    File::open(path).and_then(|file| file.sync_all()).map_err(io("cannot sync", path))
}

/// Makes a rename in `path`'s directory durable.
fn sync_parent(path: &Path) -> Result<(), BackupError> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    File::open(dir).and_then(|dir| dir.sync_all()).map_err(io("cannot sync the directory", dir))
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> BackupError + 'a {
    move |source| BackupError::Io { what, path: path.to_owned(), source }
}

fn database(path: &Path) -> impl FnOnce(sqlx::Error) -> BackupError + '_ {
    move |source| BackupError::Database { path: path.to_owned(), source }
}
