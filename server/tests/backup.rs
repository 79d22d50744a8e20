//! `dojo-server admin backup` and `admin restore` (SQLite), driven as an operator would: the real
//! binary, a live server under edits from real WebSocket clients, a restore into a fresh
//! database served by a fresh server.
//!
//! What can be asserted exactly: the server stores each client's updates in the order it sent
//! them and shows a change to anyone only once it is stored, and a backup is the database at
//! one commit. So the restored document holds, for each writer, exactly its first k edits for
//! some k (no gap, no half transaction), k is at least what an observer had received when the
//! backup started (acknowledged before), and at most what the writer sent.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::process::{BINARY, ServerProcess};
use common::{WAIT, node};
use dojo_room_client::SyncClient;
use dojo_sync_protocol::canvas::{self, CanvasGraph, CanvasNode};
use serde_json::json;
use yrs::{ReadTxn, StateVector, Transact};

const ROOM: &str = "backup-live";
const WRITERS: usize = 3;
/// Writers stop only when told (a bound for safety): the backup always runs under edits.
const MAX_EDITS: usize = 100_000;

/// Writer `w`'s edit `i`, one transaction: adds node `w{w}-{i}` and stamps the previous node's
/// prompt with `edit {i}`. A document holding a writer's first k edits is therefore exactly
/// [`expected_nodes`]`(w, k)`.
async fn chain_edit(client: &SyncClient, w: usize, i: usize) -> bool {
    client
        .edit(|txn| {
            canvas::write_node(txn, &node(&format!("w{w}-{i}"), i as f64)).expect("a node");
            if i > 0 {
                let previous = format!("w{w}-{}", i - 1);
                canvas::set_node_param(txn, &previous, "prompt", &json!(format!("edit {i}")))
                    .expect("a param");
            }
        })
        .await
        .is_ok()
}

/// The nodes writer `w`'s first `k` edits make.
fn expected_nodes(w: usize, k: usize) -> Vec<CanvasNode> {
    (0..k)
        .map(|i| {
            let mut expected = node(&format!("w{w}-{i}"), i as f64);
            if i + 1 < k {
                expected.data.insert("prompt".into(), json!(format!("edit {}", i + 1)));
            }
            expected
        })
        .collect()
}

/// Writer `w`'s nodes in `graph`, in edit order.
fn nodes_of(graph: &CanvasGraph, w: usize) -> Vec<CanvasNode> {
    let prefix = format!("w{w}-");
    let mut nodes: Vec<(usize, CanvasNode)> = graph
        .nodes
        .iter()
        .filter_map(|n| Some((n.id.strip_prefix(&prefix)?.parse().ok()?, n.clone())))
        .collect();
    nodes.sort_by_key(|(i, _)| *i);
    nodes.into_iter().map(|(_, n)| n).collect()
}

fn graph(client: &SyncClient) -> CanvasGraph {
    canvas::read_graph(&client.doc().transact()).expect("the canvas follows the schema")
}

async fn wait_graph(client: &SyncClient, what: &'static str, done: impl Fn(&CanvasGraph) -> bool) {
    let doc = client.doc().clone();
    let waited = client
        .wait_doc(what, WAIT, move |_| canvas::read_graph(&doc.transact()).is_ok_and(|g| done(&g)))
        .await;
    if let Err(error) = waited {
        panic!("{error}; the canvas has {} nodes", graph(client).nodes.len());
    }
}

/// Runs `dojo-server --database-url URL --log warn ARGS…` to completion.
async fn dojo(url: &str, args: &[&str]) -> Output {
    let mut command = Command::new(BINARY);
    command.args(["--database-url", url, "--log", "warn"]).args(args).stdin(Stdio::null());
    let run = tokio::task::spawn_blocking(move || command.output().expect("run dojo-server"));
    tokio::time::timeout(WAIT, run).await.expect("the command finishes").expect("the blocking task")
}

fn said(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

fn sqlite_url(path: &Path) -> String {
    format!("sqlite:{}", path.display())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_of_a_live_server_under_edits_restores_into_a_fresh_server() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let live_url = sqlite_url(&dir.path().join("live.db"));
    let backup = dir.path().join("backup.db");
    let backup_arg = backup.to_str().expect("a UTF-8 path");
    // Compactions during the burst: the backup then holds snapshots and log rows.
    let server = ServerProcess::start(&live_url, &["--compact-after-updates", "40"]).await;

    // An account and a ledger entry in the same file, written beside the running server.
    {
        let storage = dojo_server::Storage::open(&live_url).await.expect("open the live database");
        let user =
            storage.accounts.upsert_user("backup-subject", Some("Backup"), None).await.expect("a user");
        storage.accounts.apply_credits(&user.id, 42, "grant", "grant:backup-test").await.expect("credits");
    }

    let observer = SyncClient::connect(&server.url(ROOM)).await.expect("connect");
    observer.wait_synced(WAIT).await.expect("synced");
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let client = SyncClient::connect(&server.url(ROOM)).await.expect("connect");
        client.wait_synced(WAIT).await.expect("synced");
        let stop = stop.clone();
        writers.push(tokio::spawn(async move {
            let mut sent = 0;
            while sent < MAX_EDITS && !stop.load(Ordering::Relaxed) {
                assert!(chain_edit(&client, w, sent).await, "writer {w} lost its connection");
                sent += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            (client, sent)
        }));
    }
    wait_graph(&observer, "every writer's first edits", |g| (0..WRITERS).all(|w| nodes_of(g, w).len() >= 20))
        .await;

    // Acknowledged: the observer receives a change only once it is stored.
    let before = graph(&observer);
    let before_sv = observer.doc().transact().state_vector();
    let backed_up = dojo(&live_url, &["admin", "backup", "--to", backup_arg]).await;
    assert!(backed_up.status.success(), "backup failed: {}", said(&backed_up));
    assert!(said(&backed_up).contains("integrity check ok"), "{}", said(&backed_up));
    let still_editing = !stop.load(Ordering::Relaxed) && writers.iter().all(|w| !w.is_finished());
    assert!(still_editing, "the writers stopped before the backup finished; the story tests nothing");

    // Refusals on the live setup: no overwrite without --force, no restore under a running server.
    let backup_bytes = std::fs::read(&backup).expect("the backup");
    let again = dojo(&live_url, &["admin", "backup", "--to", backup_arg]).await;
    assert!(!again.status.success(), "a second backup overwrote the first: {}", said(&again));
    assert!(said(&again).contains("already exists"), "{}", said(&again));
    assert_eq!(
        std::fs::read(&backup).expect("the backup"),
        backup_bytes,
        "the refused backup changed the file"
    );
    let over_live = dojo(&live_url, &["admin", "restore", "--from", backup_arg, "--force"]).await;
    assert!(!over_live.status.success(), "restored under a running server: {}", said(&over_live));
    assert!(said(&over_live).contains("in use"), "{}", said(&over_live));

    // Stop the writers; the observer then receives everything they sent.
    stop.store(true, Ordering::Relaxed);
    let mut sent = Vec::new();
    let mut clients = Vec::new();
    for writer in writers {
        let (client, n) =
            tokio::time::timeout(WAIT, writer).await.expect("writers stop").expect("writer task");
        sent.push(n);
        clients.push(client);
    }
    // Compared by state vector (cheap on every frame), not by reading the whole canvas.
    let clocks: Vec<_> = clients
        .iter()
        .map(|c| (c.client_id(), c.doc().transact().state_vector().get(&c.client_id())))
        .collect();
    observer
        .wait_doc("every edit sent", WAIT, move |doc| {
            let have = doc.transact().state_vector();
            clocks.iter().all(|(client, clock)| have.get(client) >= *clock)
        })
        .await
        .expect("the observer receives every edit");
    let final_sv = observer.doc().transact().state_vector();
    let final_graph = graph(&observer);
    for (w, &n) in sent.iter().enumerate() {
        assert_eq!(nodes_of(&final_graph, w), expected_nodes(w, n), "writer {w}: the live document");
    }

    // Restore into a fresh database and serve it.
    let restored_path = dir.path().join("restored").join("dojo.db");
    let restored_url = sqlite_url(&restored_path);
    let restored_run = dojo(&restored_url, &["admin", "restore", "--from", backup_arg]).await;
    assert!(restored_run.status.success(), "restore failed: {}", said(&restored_run));
    let fresh = ServerProcess::start(&restored_url, &[]).await;
    let reader = SyncClient::connect(&fresh.url(ROOM)).await.expect("connect");
    reader.wait_synced(WAIT).await.expect("synced");
    let restored = graph(&reader);
    let restored_sv = reader.doc().transact().state_vector();

    for (w, &n) in sent.iter().enumerate() {
        let have = nodes_of(&restored, w);
        let k = have.len();
        let acknowledged = nodes_of(&before, w).len();
        assert!(
            k >= acknowledged,
            "writer {w}: {acknowledged} edits acknowledged before the backup, {k} restored"
        );
        assert!(k <= n, "writer {w}: {k} edits restored, only {n} sent");
        assert_eq!(have, expected_nodes(w, k), "writer {w}: the restored nodes are not its first {k} edits");
    }
    assert_eq!(
        restored.nodes.len(),
        (0..WRITERS).map(|w| nodes_of(&restored, w).len()).sum::<usize>(),
        "the restored canvas holds nodes nobody wrote"
    );
    assert!(
        covers(&restored_sv, &before_sv),
        "acknowledged changes are missing: {restored_sv:?} vs {before_sv:?}"
    );
    assert!(covers(&final_sv, &restored_sv), "the backup holds changes nobody made");
    eprintln!(
        "backup under edits: acknowledged before {:?}, restored {:?}, sent {sent:?}",
        (0..WRITERS).map(|w| nodes_of(&before, w).len()).collect::<Vec<_>>(),
        (0..WRITERS).map(|w| nodes_of(&restored, w).len()).collect::<Vec<_>>(),
    );

    // Accounts and the ledger came along.
    let storage = dojo_server::Storage::open(&restored_url).await.expect("open the restored database");
    let user = storage.accounts.user_by_subject("backup-subject").await.expect("read").expect("the user");
    assert_eq!(storage.accounts.balance(&user.id).await.expect("balance"), 42);
    let ledger = storage.accounts.ledger(&user.id, 10).await.expect("ledger");
    assert_eq!(ledger.iter().map(|e| e.amount).collect::<Vec<_>>(), vec![42], "the ledger: {ledger:?}");
    for client in clients {
        client.close().await;
    }
    let log = server.log();
    assert!(!log.contains("panic"), "the live server panicked: {log}");
}

/// `have` holds everything `seen` does.
fn covers(have: &StateVector, seen: &StateVector) -> bool {
    seen.iter().all(|(client, clock)| have.get(client) >= *clock)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_and_restore_refuse_what_they_cannot_do_safely() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = |name: &str| dir.path().join(name);
    let arg = |p: &Path| p.to_str().expect("a UTF-8 path").to_owned();

    // PostgreSQL: pointed at its own tools, without trying to connect.
    let postgres =
        dojo("postgres://nobody@127.0.0.1:1/none", &["admin", "backup", "--to", &arg(&path("pg.dump"))])
            .await;
    assert!(!postgres.status.success());
    assert!(
        said(&postgres).contains("pg_dump") && said(&postgres).contains("point-in-time"),
        "{}",
        said(&postgres)
    );
    assert!(!path("pg.dump").exists());

    // No database there: nothing is created on either side.
    let missing =
        dojo(&sqlite_url(&path("missing.db")), &["admin", "backup", "--to", &arg(&path("b.db"))]).await;
    assert!(!missing.status.success(), "{}", said(&missing));
    assert!(!path("missing.db").exists() && !path("b.db").exists());

    // Something that is not a Dojo database is not restored, and the target is not created.
    std::fs::write(path("garbage.db"), b"not a database at all").expect("write");
    let garbage =
        dojo(&sqlite_url(&path("target.db")), &["admin", "restore", "--from", &arg(&path("garbage.db"))])
            .await;
    assert!(!garbage.status.success());
    assert!(said(&garbage).contains("not a usable Dojo database"), "{}", said(&garbage));
    assert!(!path("target.db").exists());

    // A real database (migrated, one document) backed up with no server running.
    let source_url = sqlite_url(&path("source.db"));
    let migrated = dojo(&source_url, &["migrate"]).await;
    assert!(migrated.status.success(), "{}", said(&migrated));
    {
        let store = dojo_store::open(&source_url).await.expect("open");
        store.append("room-a", &[b"an opaque update".as_slice()]).await.expect("append");
    }
    let backed_up = dojo(&source_url, &["admin", "backup", "--to", &arg(&path("good.db"))]).await;
    assert!(backed_up.status.success(), "{}", said(&backed_up));
    assert!(said(&backed_up).contains("1 documents"), "{}", said(&backed_up));

    // An existing target needs --force; one that another process holds open is refused even then
    // (a raw SQLite connection: no dojo-server lock file involved).
    std::fs::copy(path("source.db"), path("held.db")).expect("copy");
    let held_url = sqlite_url(&path("held.db"));
    let no_force = dojo(&held_url, &["admin", "restore", "--from", &arg(&path("good.db"))]).await;
    assert!(said(&no_force).contains("already exists") && !no_force.status.success(), "{}", said(&no_force));
    let holder = {
        use sqlx::ConnectOptions;
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(path("held.db"))
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal);
        let mut conn = options.connect().await.expect("open held.db");
        sqlx::query("SELECT COUNT(*) FROM documents").execute(&mut conn).await.expect("read");
        conn
    };
    let held = dojo(&held_url, &["admin", "restore", "--from", &arg(&path("good.db")), "--force"]).await;
    assert!(!held.status.success(), "restored over an open database: {}", said(&held));
    assert!(said(&held).contains("in use"), "{}", said(&held));
    {
        use sqlx::Connection;
        holder.close().await.expect("close");
    }
    let forced = dojo(&held_url, &["admin", "restore", "--from", &arg(&path("good.db")), "--force"]).await;
    assert!(forced.status.success(), "{}", said(&forced));
    assert!(said(&forced).contains("kept as"), "the replaced file is kept: {}", said(&forced));
    let store = dojo_store::open(&held_url).await.expect("open the restored file");
    let stored = store.load("room-a").await.expect("load");
    assert_eq!(
        stored.updates.iter().map(|u| u.data.clone()).collect::<Vec<_>>(),
        vec![b"an opaque update".to_vec()]
    );
}
