//! The one harness every backend-parametrized suite uses: a fresh database of each kind with
//! the stores opened on it, and [`each_backend!`](crate::each_backend) to declare a case once
//! per backend.
//!
//! A case is `async fn(Stores)`. It runs on a task of its own, so that the database is dropped
//! afterwards (PostgreSQL: `DROP DATABASE`; SQLite: the temporary directory) whether the case
//! passed or panicked, and a panic is then re-raised for the test harness to report.

use std::future::Future;
use std::sync::Arc;

use dojo_records::{AccountStore, RunStore};
use dojo_store::{Database, DocumentStore};

use crate::{Backend, TestDatabase};

/// The stores under test, all on one fresh database (one pool, as in the server), and how to
/// open another process's view of it.
#[derive(Clone)]
pub struct Stores {
    pub backend: Backend,
    pub db: Database,
    pub documents: Arc<dyn DocumentStore>,
    pub accounts: Arc<dyn AccountStore>,
    pub runs: Arc<dyn RunStore>,
    /// A URL for `dojo_store::open_database` naming the same database.
    pub url: String,
}

impl Stores {
    /// Opens (and migrates) the database at `url`.
    pub async fn open(backend: Backend, url: &str) -> Self {
        let db = dojo_store::open_database(url).await.expect("open the test database");
        Self {
            backend,
            documents: db.documents(),
            accounts: dojo_records::accounts(&db),
            runs: dojo_records::runs(&db),
            db,
            url: url.to_owned(),
        }
    }

    /// Independent stores (their own pool and, for SQLite, their own write lock) on the same
    /// database: what another server instance or worker process would have.
    pub async fn reopen(&self) -> Self {
        Self::open(self.backend, &self.url).await
    }

    /// Runs raw SQL (written with `$N` placeholders, which both drivers accept) with text
    /// arguments: to check what the schema itself refuses, or to move a lease into the past
    /// instead of sleeping until it expires.
    pub async fn execute(&self, sql: &'static str, args: &[&str]) -> Result<u64, sqlx::Error> {
        match &self.db {
            Database::Postgres(store) => {
                let mut query = sqlx::query(sql);
                for arg in args {
                    query = query.bind(*arg);
                }
                query.execute(store.pool()).await.map(|r| r.rows_affected())
            }
            Database::Sqlite(store) => {
                let mut query = sqlx::query(sql);
                for arg in args {
                    query = query.bind(*arg);
                }
                query.execute(store.pool()).await.map(|r| r.rows_affected())
            }
        }
    }
}

/// Runs `case` against a fresh database of `backend` (SQLite in a directory that does not
/// exist yet, so that opening creates it), dropped afterwards even when the case panics.
pub async fn run_case<F, Fut>(backend: Backend, case: F)
where
    F: FnOnce(Stores) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let database = match backend {
        Backend::Sqlite => TestDatabase::sqlite_in("data"),
        Backend::Postgres => TestDatabase::postgres().await,
    };
    let url = database.url.clone();
    let outcome = tokio::spawn(async move { case(Stores::open(backend, &url).await).await }).await;
    drop(database);
    if let Err(err) = outcome {
        std::panic::resume_unwind(err.into_panic());
    }
}

/// Declares each case of the module `$cases` once per backend, as `sqlite::NAME` and
/// `postgres::NAME`; each case is an `async fn(Stores)`.
///
/// ```ignore
/// dojo_test_support::each_backend!(cases: appends_load_back, compaction_keeps_k_versions);
/// ```
#[macro_export]
macro_rules! each_backend {
    ($cases:ident: $($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    $crate::run_case($crate::Backend::Sqlite, super::$cases::$case).await;
                }
            )*
        }
        mod postgres {
            $(
                #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    $crate::run_case($crate::Backend::Postgres, super::$cases::$case).await;
                }
            )*
        }
    };
}

/// Declares each story once per backend, as `sqlite::NAME` and `postgres::NAME`, for suites
/// whose stories open their own database (a server on it, say): each story is an
/// `async fn(Backend)` in the enclosing module.
///
/// ```ignore
/// dojo_test_support::each_backend_story!(restart_keeps_the_document, outage_then_recovery);
/// ```
#[macro_export]
macro_rules! each_backend_story {
    ($($story:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $story() {
                    super::$story($crate::Backend::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $story() {
                    super::$story($crate::Backend::Postgres).await;
                }
            )*
        }
    };
}
