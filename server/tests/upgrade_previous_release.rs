//! Rolling upgrades with the previous release's own binary (deploy/previous-release.env, built
//! by scripts/build-previous-release.sh, which scripts/test.sh runs first).
//!
//! During a rollout the new release migrates the shared database while instances of the
//! previous release keep serving, and restarting, on it (docs/operations.md, "expand, then
//! contract"). These stories run exactly that: the previous release creates the schema and
//! stores documents, this tree's binary migrates it while the previous release serves the same
//! rooms (across Redis on PostgreSQL), and the previous release then restarts on the migrated
//! schema (a rollback). A migration this tree adds that the previous release cannot live with,
//! or a change to the instances' Redis messages that breaks mixed versions, fails here.

mod common;

use std::path::{Path, PathBuf};

use common::database::{Backend, TestDatabase};
use common::process::{BINARY, ServerProcess};
use common::redis::Redis;
use common::{WAIT, node};
use dojo_room_client::SyncClient;
use dojo_sync_protocol::canvas;
use sqlx::Connection;
use yrs::{Doc, Transact};

/// The previous release's `dojo-server`: `DOJO_PREVIOUS_RELEASE_BIN`, or where
/// scripts/build-previous-release.sh puts it.
fn previous_release() -> PathBuf {
    if let Some(path) = std::env::var_os("DOJO_PREVIOUS_RELEASE_BIN") {
        return path.into();
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the workspace root");
    let release = std::fs::read_to_string(root.join("deploy/previous-release.env"))
        .expect("deploy/previous-release.env");
    let version = release
        .lines()
        .find_map(|line| line.strip_prefix("PREVIOUS_RELEASE_VERSION="))
        .expect("PREVIOUS_RELEASE_VERSION in deploy/previous-release.env")
        .trim();
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let binary = target.join("previous-release").join(version).join("dojo-server");
    assert!(
        binary.is_file(),
        "the previous release's binary {} is missing: run scripts/build-previous-release.sh (scripts/test.sh does)",
        binary.display()
    );
    binary
}

/// The highest migration version recorded in the database.
async fn schema_version(db: &TestDatabase) -> i64 {
    let query = "SELECT MAX(version) FROM _sqlx_migrations WHERE success";
    match db.backend {
        Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(&db.url).await.expect("open the SQLite file");
            let version: i64 =
                sqlx::query_scalar(query).fetch_one(&mut conn).await.expect("the migrations table");
            conn.close().await.expect("close");
            version
        }
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(&db.url).await.expect("connect");
            let version: i64 =
                sqlx::query_scalar(query).fetch_one(&mut conn).await.expect("the migrations table");
            conn.close().await.expect("close");
            version
        }
    }
}

/// The number of the last migration this tree ships (the file names start with it).
fn this_trees_schema_version() -> i64 {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations/postgres");
    std::fs::read_dir(dir)
        .expect("migrations/postgres")
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.split('_').next()?.parse::<i64>().ok())
        .max()
        .expect("at least one migration")
}

fn node_ids(doc: &Doc) -> Vec<String> {
    let txn = doc.transact();
    let mut ids: Vec<String> =
        canvas::read_graph(&txn).map(|g| g.nodes.into_iter().map(|n| n.id).collect()).unwrap_or_default();
    ids.sort();
    ids
}

async fn client(server: &ServerProcess, room: &str) -> SyncClient {
    let client = SyncClient::connect(&server.url(room)).await.expect("connect");
    client.wait_synced(WAIT).await.expect("synced");
    client
}

async fn add_nodes(client: &SyncClient, ids: &[&str]) {
    for (i, id) in ids.iter().enumerate() {
        client.edit(|txn| canvas::write_node(txn, &node(id, i as f64))).await.expect("edit").expect("a node");
    }
}

async fn wait_nodes(client: &SyncClient, expected: &[&str], what: &'static str) {
    let mut expected: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
    expected.sort();
    let want = expected.clone();
    let result = client.wait_doc(what, WAIT, move |doc| node_ids(doc) == want).await;
    assert!(result.is_ok(), "{what}: have {:?}, want {expected:?}", node_ids(client.doc()));
}

/// Adds `ids` to `room` through one client and waits until a second one has them all, with
/// everything `expected` (the room as loaded plus the new nodes). A server broadcasts an update
/// only once it is stored, so the nodes are on disk when this returns.
async fn store(server: &ServerProcess, room: &str, ids: &[&str], expected: &[&str]) {
    let writer = client(server, room).await;
    let observer = client(server, room).await;
    add_nodes(&writer, ids).await;
    wait_nodes(&observer, expected, "the edits are stored and broadcast").await;
    writer.close().await;
    observer.close().await;
}

fn assert_quiet(server: &ServerProcess, which: &str) {
    let log = server.log();
    assert!(!log.contains("panicked") && !log.contains("ERROR"), "{which} complained:\n{log}");
}

/// PostgreSQL and Redis, as a cluster is upgraded: the previous release serves a room, this
/// tree's binary starts beside it (migrating the schema under it), clients of both versions
/// edit the same room and converge, and the previous release restarts on the migrated schema.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_previous_release_keeps_serving_while_this_tree_migrates_and_joins_its_rooms() {
    let previous = previous_release();
    let db = TestDatabase::new(Backend::Postgres).await;
    let redis = Redis::start().await;
    let cluster = ["--redis-url", &redis.url()];

    let old = ServerProcess::start_binary(&previous, &db.url, &cluster, &[]).await;
    let on_old = client(&old, "rolling").await;
    add_nodes(&on_old, &["old-1", "old-2"]).await;
    wait_nodes(&on_old, &["old-1", "old-2"], "the previous release stores edits").await;

    // The new release starts on the same database and migrates it while the old one serves.
    let new = ServerProcess::start(&db.url, &cluster).await;
    assert_eq!(schema_version(&db).await, this_trees_schema_version(), "the new release migrated the schema");
    let on_new = client(&new, "rolling").await;
    wait_nodes(&on_new, &["old-1", "old-2"], "the new release reads what the previous one stored").await;

    // Both versions edit the same room on the migrated schema; Redis carries each to the other.
    add_nodes(&on_new, &["new-1", "new-2"]).await;
    add_nodes(&on_old, &["old-3"]).await;
    let all = ["old-1", "old-2", "old-3", "new-1", "new-2"];
    wait_nodes(&on_old, &all, "the previous release's client sees the new release's edits").await;
    wait_nodes(&on_new, &all, "the new release's client sees the previous release's edits").await;
    on_old.close().await;
    assert_quiet(&old, "the previous release");
    old.kill();

    // A rollback, or an old instance restarted mid-rollout: the previous release starts on the
    // migrated schema and serves everything, including what the new release stored.
    let restarted = ServerProcess::start_binary(&previous, &db.url, &cluster, &[]).await;
    let on_restarted = client(&restarted, "rolling").await;
    wait_nodes(&on_restarted, &all, "the restarted previous release loads the room").await;
    add_nodes(&on_restarted, &["old-4"]).await;
    let with_four = ["old-1", "old-2", "old-3", "old-4", "new-1", "new-2"];
    wait_nodes(&on_new, &with_four, "the new release sees the restarted previous release's edit").await;
    assert_eq!(
        schema_version(&db).await,
        this_trees_schema_version(),
        "the previous release left the schema alone"
    );
    on_restarted.close().await;
    on_new.close().await;
    assert_quiet(&restarted, "the restarted previous release");
    assert_quiet(&new, "the new release");
}

/// The SQLite file (one process at a time): the previous release creates and fills it, this
/// tree's binary migrates and edits it, and the previous release opens it again (a rollback)
/// with everything there, then this tree's binary once more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_previous_release_reopens_an_sqlite_file_this_tree_migrated() {
    let previous = previous_release();
    let db = TestDatabase::new(Backend::Sqlite).await;

    let old = ServerProcess::start_binary(&previous, &db.url, &[], &[]).await;
    store(&old, "rollback", &["old-1", "old-2"], &["old-1", "old-2"]).await;
    assert_quiet(&old, "the previous release");
    old.kill();

    let new = ServerProcess::start(&db.url, &[]).await;
    assert_eq!(schema_version(&db).await, this_trees_schema_version(), "the new release migrated the file");
    store(&new, "rollback", &["new-1"], &["old-1", "old-2", "new-1"]).await;
    assert_quiet(&new, "the new release");
    new.kill();

    let rolled_back = ServerProcess::start_binary(&previous, &db.url, &[], &[]).await;
    store(&rolled_back, "rollback", &["old-3"], &["old-1", "old-2", "old-3", "new-1"]).await;
    assert_quiet(&rolled_back, "the rolled-back previous release");
    rolled_back.kill();

    let again = ServerProcess::start(&db.url, &[]).await;
    let last = client(&again, "rollback").await;
    wait_nodes(&last, &["old-1", "old-2", "old-3", "new-1"], "the new release reads the rolled-back edits")
        .await;
    last.close().await;
    assert!(
        std::path::Path::new(BINARY) != previous.as_path(),
        "the previous release must be another binary than this tree's"
    );
}
