//! A lock file beside the SQLite database (`dojo.db.lock` for `dojo.db`). Every `dojo-server`
//! process that opens the database (serving, `migrate`, `admin`) holds it shared for as long as
//! it runs; `admin restore` takes it exclusively, so it never replaces a file a server is using,
//! and a server starting during a restore waits for the restore to finish.
//!
//! SQLite's own locks say the same only while a connection is open, and a server's idle pool
//! may have closed every connection; this lock lasts as long as the process. It is `flock(2)`,
//! released by the kernel when the process dies, so a crashed server leaves no stale lock. The
//! lock file itself stays (removing it would race with a process about to lock it). The
//! database file is never opened for this: closing any descriptor of it would drop the POSIX
//! locks SQLite holds on it in this process.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("{0} is locked by another dojo-server process (a running server, or a restore in progress)")]
    Held(PathBuf),
    #[error("cannot lock {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

/// A held lock on a database's lock file; released when dropped (or when the process ends).
#[derive(Debug)]
pub struct SqliteLock {
    _file: File,
}

impl SqliteLock {
    /// The lock every process using the database holds. Waits up to `wait` while a restore
    /// holds it exclusively.
    pub async fn shared(database: &Path, wait: Duration) -> Result<Self, LockError> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match Self::take(database, libc::LOCK_SH) {
                Err(LockError::Held(_)) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                taken => return taken,
            }
        }
    }

    /// The lock a restore holds: fails at once while any other process holds it.
    pub fn exclusive(database: &Path) -> Result<Self, LockError> {
        Self::take(database, libc::LOCK_EX)
    }

    fn take(database: &Path, mode: libc::c_int) -> Result<Self, LockError> {
        let path = lock_path(database);
        if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| LockError::Io { path: path.clone(), source })?;
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|source| LockError::Io { path: path.clone(), source })?;
        if flock(&file, mode | libc::LOCK_NB) {
            return Ok(Self { _file: file });
        }
        let error = std::io::Error::last_os_error();
        match error.raw_os_error() {
            Some(libc::EWOULDBLOCK) => Err(LockError::Held(path)),
            _ => Err(LockError::Io { path, source: error }),
        }
    }
}

/// `dojo.db.lock` for `dojo.db`.
pub fn lock_path(database: &Path) -> PathBuf {
    let mut name = database.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

fn flock(file: &File, operation: libc::c_int) -> bool {
    use std::os::fd::AsRawFd;
    // SAFETY: the descriptor is open for the whole call (borrowed from `file`); flock(2) reads
    // nothing else.
    unsafe { libc::flock(file.as_raw_fd(), operation) == 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn shared_holders_coexist_and_keep_the_exclusive_lock_out() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let database = dir.path().join("dojo.db");
        let first = SqliteLock::shared(&database, Duration::ZERO).await.expect("a first shared lock");
        let second = SqliteLock::shared(&database, Duration::ZERO).await.expect("a second shared lock");
        assert!(matches!(SqliteLock::exclusive(&database), Err(LockError::Held(_))));
        drop(first);
        assert!(matches!(SqliteLock::exclusive(&database), Err(LockError::Held(_))));
        drop(second);
        let exclusive = SqliteLock::exclusive(&database).expect("free once nobody holds it");
        assert!(matches!(SqliteLock::shared(&database, Duration::ZERO).await, Err(LockError::Held(_))));
        drop(exclusive);
    }
}
