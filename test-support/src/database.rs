//! Stores that outlive a server, for restart stories: an SQLite file in a temporary directory, or
//! a PostgreSQL database of the test's own, dropped when the guard is (also when the test fails).
//!
//! PostgreSQL: `DOJO_TEST_POSTGRES_URL` names a server and a user allowed to create databases
//! (default `postgres://postgres@127.0.0.1:5432/postgres`).

use std::future::Future;
use std::time::Duration;

use sqlx::Connection;
use sqlx::postgres::PgConnection;

const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// How long one administrative step (connect, one statement) may take before the test fails
/// naming it, instead of hanging until the runner kills it. Generous: a loaded 2-core CI
/// machine creates many databases at once.
const ADMIN_STEP: Duration = Duration::from_secs(30);

/// `step`, bounded by [`ADMIN_STEP`]; panics naming `what` if it takes longer.
async fn bounded<T>(what: &str, step: impl Future<Output = T>) -> T {
    tokio::time::timeout(ADMIN_STEP, step)
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer from PostgreSQL within {ADMIN_STEP:?}"))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub struct TestDatabase {
    /// For `dojo_store::open`, `--database-url` or `TestServer::start_on`.
    pub url: String,
    pub backend: Backend,
    /// The PostgreSQL database's name (None for SQLite).
    postgres_name: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

pub fn postgres_admin_url() -> String {
    std::env::var("DOJO_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_owned())
}

/// `url` with its database name replaced by `database`.
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, None), |(b, q)| (b, Some(q)));
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[authority_start..].find('/').map_or(base.len(), |i| authority_start + i);
    let mut out = format!("{}/{database}", &base[..path_start]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

impl TestDatabase {
    pub async fn new(backend: Backend) -> Self {
        match backend {
            Backend::Sqlite => Self::sqlite(),
            Backend::Postgres => Self::postgres().await,
        }
    }

    /// A fresh SQLite file (not created yet: the first store to open it creates it).
    pub fn sqlite() -> Self {
        Self::sqlite_in("")
    }

    /// Like [`sqlite`](Self::sqlite), the file in `subdir` of the temporary directory, which
    /// does not exist yet either: opening the store creates it.
    pub fn sqlite_in(subdir: &str) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let url = format!("sqlite:{}", dir.path().join(subdir).join("dojo.db").display());
        Self { url, backend: Backend::Sqlite, postgres_name: None, _dir: Some(dir) }
    }

    /// A fresh, empty PostgreSQL database.
    pub async fn postgres() -> Self {
        let name = format!("dojo_test_{:016x}", rand::random::<u64>());
        let mut admin = admin_connection().await;
        let create = format!("CREATE DATABASE {name}");
        bounded(&create, sqlx::query(sqlx::AssertSqlSafe(create.clone())).execute(&mut admin))
            .await
            .expect("create the test database");
        let _ = bounded("closing the admin connection", admin.close()).await;
        let url = with_database(&postgres_admin_url(), &name);
        Self { url, backend: Backend::Postgres, postgres_name: Some(name), _dir: None }
    }

    /// The PostgreSQL database's name. Panics for SQLite.
    pub fn postgres_name(&self) -> &str {
        self.postgres_name.as_deref().expect("a PostgreSQL test database")
    }

    /// Runs one statement on the admin connection (`{db}` is replaced by the database's name).
    pub async fn admin_execute(&self, sql: &str) {
        let sql = sql.replace("{db}", self.postgres_name());
        let mut admin = admin_connection().await;
        bounded(&sql, sqlx::query(sqlx::AssertSqlSafe(sql.clone())).execute(&mut admin))
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        let _ = bounded("closing the admin connection", admin.close()).await;
    }
}

async fn admin_connection() -> PgConnection {
    bounded("connecting to PostgreSQL as admin", PgConnection::connect(&postgres_admin_url()))
        .await
        .expect("connect to PostgreSQL (DOJO_TEST_POSTGRES_URL); is it running?")
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Some(name) = self.postgres_name.take() else { return };
        // Drop may run on a runtime thread (or while unwinding): drop the database from a
        // thread with its own runtime, and never panic here.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            // Bounded: a drop that hangs would hang the test after it passed.
            // The timeout is made inside `block_on`: its timer needs the runtime's context.
            runtime.block_on(async {
                tokio::time::timeout(ADMIN_STEP, async {
                    let mut admin = PgConnection::connect(&postgres_admin_url()).await?;
                    sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")))
                        .execute(&mut admin)
                        .await?;
                    let _ = admin.close().await;
                    Ok::<_, sqlx::Error>(())
                })
                .await
            })??;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
        })
        .join();
        match dropped {
            Ok(Ok(())) => {}
            Ok(Err(error)) => eprintln!("could not drop a test database: {error}"),
            Err(_) => eprintln!("dropping a test database panicked"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn exists(name: &str) -> bool {
        let mut admin = admin_connection().await;
        let (count,): (i64,) = sqlx::query_as("SELECT count(*) FROM pg_database WHERE datname = $1")
            .bind(name)
            .fetch_one(&mut admin)
            .await
            .expect("list databases");
        let _ = admin.close().await;
        count == 1
    }

    /// The guard's drop runs on a thread of its own, where a mistake only prints a line: this
    /// checks that the database really goes (else every PostgreSQL test leaks one).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_postgres_database_is_gone_once_its_guard_drops() {
        let db = TestDatabase::postgres().await;
        let name = db.postgres_name().to_owned();
        assert!(exists(&name).await, "{name} was created");
        drop(db);
        assert!(!exists(&name).await, "{name} was dropped with its guard");
    }

    #[test]
    fn with_database_replaces_the_path() {
        assert_eq!(with_database("postgres://u@h:5432/postgres", "t"), "postgres://u@h:5432/t");
        assert_eq!(
            with_database("postgres://u@h/postgres?sslmode=disable", "t"),
            "postgres://u@h/t?sslmode=disable"
        );
        assert_eq!(with_database("postgres://u@h", "t"), "postgres://u@h/t");
    }
}
