//! `dojo-server admin backup` and `admin restore`: the SQLite database copied consistently while
//! the server runs, and put back with the server stopped (`dojo_store::sqlite_backup`).
//! PostgreSQL has its own tools for both, better than anything we could wrap: the commands say
//! so and stop.

use std::path::Path;

use anyhow::{Context, bail};
use dojo_server::config::AdminCommand;
use dojo_server::sqlite_lock::{LockError, SqliteLock};
use dojo_store::sqlite_backup::{self, Verified};

const POSTGRES: &str = "this database is PostgreSQL: back it up with PostgreSQL's tools, \
    `pg_dump --format=custom` and `pg_restore`, or continuous WAL archiving for point-in-time \
    recovery (docs/operations.md, \"PostgreSQL\"). dojo-server backs up SQLite only";

pub async fn run(database_url: &str, command: &AdminCommand) -> anyhow::Result<()> {
    let Some(path) = dojo_store::sqlite_path(database_url) else {
        if database_url.starts_with("postgres://") || database_url.starts_with("postgresql://") {
            bail!("{POSTGRES}");
        }
        bail!("unsupported database URL: expected sqlite:PATH");
    };
    if path == ":memory:" {
        bail!("an in-memory database has nothing to back up or restore");
    }
    let database = Path::new(path);
    match command {
        AdminCommand::Backup { to, force } => {
            let verified = sqlite_backup::backup(database, to, *force)
                .await
                .with_context(|| format!("backing up {}", database.display()))?;
            println!("backed up {} to {}: {}", database.display(), to.display(), describe(&verified));
        }
        AdminCommand::Restore { from, force } => {
            // Held through the swap: no dojo-server opens the file meanwhile (they wait for it).
            let _restoring = match SqliteLock::exclusive(database) {
                Ok(lock) => lock,
                Err(LockError::Held(lock)) => bail!(
                    "{} is in use: a dojo-server process holds {} (stop every server using it first); nothing was changed",
                    database.display(),
                    lock.display()
                ),
                Err(error) => return Err(error).context("locking the database"),
            };
            let restored = sqlite_backup::restore(from, database, *force)
                .await
                .with_context(|| format!("restoring {} from {}", database.display(), from.display()))?;
            println!(
                "restored {} from {}: {}",
                database.display(),
                from.display(),
                describe(&restored.verified)
            );
            for kept in restored.kept {
                println!("the previous file is kept as {}", kept.display());
            }
        }
        _ => bail!("not a backup command"),
    }
    Ok(())
}

fn describe(verified: &Verified) -> String {
    format!(
        "{} bytes, schema version {}, {} documents, {} users; integrity check ok",
        verified.bytes, verified.schema_version, verified.documents, verified.users
    )
}
