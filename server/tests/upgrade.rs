//! Rolling upgrades: the new release migrates the shared database while instances of the
//! previous release keep running, and restarting, on it. The rule that makes this safe is
//! "expand, then contract" (docs/operations.md; `scripts/check-migrations.py` enforces it).
//!
//! What is tested here is the other half: this binary keeps working on a schema a *later*
//! release has expanded (a migration it does not know, adding a table, columns with defaults and
//! an index). This binary is the next release's "previous release"; the previous release's own
//! binary runs against this tree's schema in `upgrade_previous_release.rs`.

mod common;

use std::process::{Command, Stdio};

use common::database::{Backend, TestDatabase};
use common::process::{BINARY, ServerProcess};
use common::{WAIT, node};
use dojo_room_client::SyncClient;
use dojo_sync_protocol::canvas;
use sqlx::Connection;
use yrs::Transact;

/// A later release's migration, expand-only, as the rule allows.
const NEXT_VERSION: i64 = 9999;

fn expansion(backend: Backend) -> &'static [&'static str] {
    match backend {
        Backend::Sqlite => &[
            "CREATE TABLE next_release_notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL DEFAULT '') STRICT",
            "ALTER TABLE users ADD COLUMN next_release_flag INTEGER NOT NULL DEFAULT 0",
            "ALTER TABLE document_updates ADD COLUMN next_release_origin TEXT",
            "ALTER TABLE runs ADD COLUMN next_release_priority INTEGER NOT NULL DEFAULT 0",
            "CREATE INDEX next_release_users ON users (next_release_flag)",
        ],
        Backend::Postgres => &[
            "CREATE TABLE next_release_notes (id BIGSERIAL PRIMARY KEY, body TEXT NOT NULL DEFAULT '')",
            "ALTER TABLE users ADD COLUMN next_release_flag INTEGER NOT NULL DEFAULT 0",
            "ALTER TABLE document_updates ADD COLUMN next_release_origin TEXT",
            "ALTER TABLE runs ADD COLUMN next_release_priority INTEGER NOT NULL DEFAULT 0",
            "CREATE INDEX next_release_users ON users (next_release_flag)",
        ],
    }
}

const RECORD: &str = "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
                      VALUES ($1, 'next release expands', TRUE, $2, 0)";

/// Applies the later release's migration, and records it as sqlx would.
async fn expand(db: &TestDatabase) {
    let checksum = vec![7u8; 48];
    match db.backend {
        Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(&db.url).await.expect("open the SQLite file");
            for statement in expansion(db.backend) {
                sqlx::query(*statement).execute(&mut conn).await.expect(statement);
            }
            sqlx::query(RECORD).bind(NEXT_VERSION).bind(checksum).execute(&mut conn).await.expect("record");
            conn.close().await.expect("close");
        }
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(&db.url).await.expect("connect");
            for statement in expansion(db.backend) {
                sqlx::query(*statement).execute(&mut conn).await.expect(statement);
            }
            sqlx::query(RECORD).bind(NEXT_VERSION).bind(checksum).execute(&mut conn).await.expect("record");
            conn.close().await.expect("close");
        }
    }
}

fn migrate(url: &str) -> std::process::Output {
    Command::new(BINARY)
        .args(["--database-url", url, "--log", "warn", "migrate"])
        .stdin(Stdio::null())
        .output()
        .expect("run dojo-server migrate")
}

async fn node_ids(client: &SyncClient) -> Vec<String> {
    let graph = canvas::read_graph(&client.doc().transact()).expect("a canvas");
    let mut ids: Vec<String> = graph.nodes.into_iter().map(|n| n.id).collect();
    ids.sort();
    ids
}

async fn this_release_runs_on_the_next_releases_expanded_schema(backend: Backend) {
    let db = TestDatabase::new(backend).await;
    let url = db.url.clone();
    let migrated = tokio::task::spawn_blocking(move || migrate(&url)).await.expect("the blocking task");
    assert!(migrated.status.success(), "migrate: {}", String::from_utf8_lossy(&migrated.stderr));
    expand(&db).await;

    // Starts (sqlx alone would refuse: "migration 9999 was previously applied but is missing"),
    // stores edits, and restarts on the same schema, as during a rollout.
    let url = db.url.clone();
    let again = tokio::task::spawn_blocking(move || migrate(&url)).await.expect("the blocking task");
    assert!(
        again.status.success(),
        "migrate on the expanded schema: {}",
        String::from_utf8_lossy(&again.stderr)
    );
    let server = ServerProcess::start(&db.url, &[]).await;
    let writer = SyncClient::connect(&server.url("upgrade")).await.expect("connect");
    writer.wait_synced(WAIT).await.expect("synced");
    for i in 0..5 {
        writer
            .edit(|txn| canvas::write_node(txn, &node(&format!("n{i}"), i as f64)).expect("a node"))
            .await
            .expect("edit");
    }
    let observer = SyncClient::connect(&server.url("upgrade")).await.expect("connect");
    observer.wait_synced(WAIT).await.expect("synced");
    let doc = observer.doc().clone();
    observer
        .wait_doc("the five nodes, stored", WAIT, move |_| {
            canvas::read_graph(&doc.transact()).is_ok_and(|g| g.nodes.len() == 5)
        })
        .await
        .expect("the edits are stored and broadcast");
    writer.close().await;
    observer.close().await;
    let log = server.log();
    server.kill();
    assert!(!log.contains("panic") && !log.contains("ERROR"), "the server complained: {log}");

    let restarted = ServerProcess::start(&db.url, &[]).await;
    let reader = SyncClient::connect(&restarted.url("upgrade")).await.expect("connect");
    reader.wait_synced(WAIT).await.expect("synced");
    assert_eq!(node_ids(&reader).await, ["n0", "n1", "n2", "n3", "n4"]);

    // Accounts and the ledger, on the expanded users table.
    let storage = dojo_server::Storage::open(&db.url).await.expect("open on the expanded schema");
    let user = storage.accounts.upsert_user("upgrade-subject", Some("Up"), None).await.expect("a user");
    storage.accounts.apply_credits(&user.id, 7, "grant", "grant:upgrade").await.expect("credits");
    assert_eq!(storage.accounts.balance(&user.id).await.expect("balance"), 7);
    reader.close().await;
}

dojo_test_support::each_backend_story!(this_release_runs_on_the_next_releases_expanded_schema);
