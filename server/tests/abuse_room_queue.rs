//! A busy room's command queue is bounded in bytes, not only in commands: writers who flood a
//! stalled room with large frames wait (back-pressure) instead of making it hold
//! `DOJO_ROOM_QUEUE` × frame size. The story stalls the room for real: a PostgreSQL transaction
//! holds the room's row lock, so its store write waits; once 32 MiB of changes wait for the
//! store, the room stops reading its queue, and only the queue's byte budget stands between
//! the flood and the server's memory.

mod common;

use std::process::Command;
use std::time::Duration;

use common::WAIT;
use dojo_room_client::SyncClient;
use dojo_sync_protocol::canvas;
use dojo_sync_protocol::codec::encode_message;
use dojo_test_support::TestDatabase;
use futures_util::SinkExt;
use sqlx::Connection;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use yrs::sync::{Message, SyncMessage};
use yrs::{Doc, Map, ReadTxn, Transact, WriteTxn};

const MIB: usize = 1024 * 1024;
const WRITERS: usize = 12;
const FRAMES_PER_WRITER: usize = 40;
const FRAME_BYTES: usize = 2 * MIB;
/// The room's queue budget in this story.
const QUEUE_BYTES: usize = 4 * MIB;

/// One new 2 MiB change from a writer's own document, as a sync update frame.
fn large_update(doc: &Doc, key: &str) -> Vec<u8> {
    let before = doc.transact().state_vector();
    {
        let mut txn = doc.transact_mut();
        let scratch = txn.get_or_insert_map("scratch");
        scratch.insert(&mut txn, key, "x".repeat(FRAME_BYTES));
    }
    let update = doc.transact().encode_state_as_update_v1(&before);
    encode_message(&Message::Sync(SyncMessage::Update(update)))
}

struct Server {
    addr: std::net::SocketAddr,
    started: common::process::Started,
}

impl Server {
    async fn start(database_url: &str) -> Self {
        let mut command = Command::new(common::process::BINARY);
        command.args(["--addr", "127.0.0.1:0", "--database-url", database_url, "--log", "warn"]).args([
            "--room-queue-bytes",
            &QUEUE_BYTES.to_string(),
            "--max-frame-bytes",
            &(4 * MIB).to_string(),
            // The story is about the queue, not the document: let it grow.
            "--max-document-bytes",
            "0",
        ]);
        let started = common::process::Started::spawn(command, "dojo-server").await;
        let Some(addr) =
            started.line.trim().strip_prefix("dojo-server listening on ").and_then(|a| a.parse().ok())
        else {
            started.fail("an unexpected first line");
        };
        Self { addr, started }
    }

    fn rss_mib(&self) -> u64 {
        common::procfs::status_kib(Some(self.started.child.id()), "VmRSS").expect("/proc status") / 1024
    }

    fn url(&self, room: &str) -> String {
        format!("ws://{}/rooms/{room}", self.addr)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.started.child.kill();
        let _ = self.started.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writers_flooding_a_stalled_room_wait_and_its_queue_stays_within_its_byte_budget() {
    let database = TestDatabase::postgres().await;
    let server = Server::start(&database.url).await;
    let room = "queue-flood";

    // The owner's first edit creates the room's row; then a transaction takes its lock, and
    // every store write of the room waits for it.
    let owner = SyncClient::connect(&server.url(room)).await.expect("owner joins");
    owner.edit(|txn| txn.get_or_insert_map("scratch").insert(txn, "owner", "first")).await.unwrap();
    let mut lock = sqlx::PgConnection::connect(&database.url).await.expect("connect to PostgreSQL");
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        sqlx::query("BEGIN").execute(&mut lock).await.expect("begin");
        let locked = sqlx::query("SELECT room FROM documents WHERE room = $1 FOR UPDATE")
            .bind(room)
            .fetch_optional(&mut lock)
            .await
            .expect("lock the room's row");
        if locked.is_some() {
            break;
        }
        // The owner's edit is not stored yet.
        sqlx::query("ROLLBACK").execute(&mut lock).await.expect("rollback");
        assert!(tokio::time::Instant::now() < deadline, "the owner's first edit was never stored");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let baseline = server.rss_mib();

    // Writers send 40 new 2 MiB changes each (960 MiB in all) and never read. Without a byte
    // budget the queue alone would hold up to 512 of them: a gigabyte.
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let url = server.url(room);
        writers.push(tokio::spawn(async move {
            let Ok((mut socket, _)) = tokio_tungstenite::connect_async(url).await else { return };
            let doc = Doc::new();
            for f in 0..FRAMES_PER_WRITER {
                let frame = large_update(&doc, &format!("w{w}-{f}"));
                if socket.send(WsMessage::Binary(frame.into())).await.is_err() {
                    return;
                }
            }
        }));
    }
    // Let the flood run into the stalled room until the server's memory stops growing.
    let mut peak = baseline;
    let mut steady = 0;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = server.rss_mib();
        if now > peak + 4 {
            peak = now;
            steady = 0;
        } else {
            steady += 1;
            if steady >= 6 {
                break;
            }
        }
    }
    let growth = server.rss_mib().max(peak).saturating_sub(baseline);
    eprintln!("server memory while the room was stalled: baseline {baseline} MiB, growth {growth} MiB");
    // What may be held: 32 MiB of changes waiting for the store and the same applied in the
    // document, the queue's 4 MiB, one decoded frame per waiting reader (12 × 2 MiB) and each
    // socket's partly read frame, with allocator slack. A queue bounded by count alone holds
    // up to 1 GiB here.
    assert!(
        growth < 400,
        "the server grew by {growth} MiB while the room was stalled (baseline {baseline} MiB)"
    );
    assert!(
        writers.iter().any(|writer| !writer.is_finished()),
        "the writers are held back while the room is stalled"
    );

    // The writers give up; the store comes back: the room drains its queue and stores it all,
    // and the owner's edits still go through.
    for writer in &writers {
        writer.abort();
    }
    sqlx::query("ROLLBACK").execute(&mut lock).await.expect("release the lock");
    // A legitimate edit over HTTP (the owner's socket may be closed as too slow when the whole
    // backlog is broadcast at once; its editor would resync on reconnect).
    let edit = Doc::new();
    let update = {
        let mut txn = edit.transact_mut();
        canvas::write_node(&mut txn, &common::node("after-the-flood", 1.0)).expect("write a node");
        txn.encode_update_v1()
    };
    let http = reqwest::Client::new();
    let posted = http
        .post(format!("http://{}/api/rooms/{room}/update", server.addr))
        .header("content-type", "application/octet-stream")
        .body(update)
        .timeout(WAIT * 3)
        .send()
        .await
        .expect("POST update");
    assert!(posted.status().is_success(), "the edit was refused: {}", posted.status());
    let graph_url = format!("http://{}/api/rooms/{room}/graph", server.addr);
    let deadline = tokio::time::Instant::now() + WAIT * 3;
    loop {
        // HTTP reads answer once everything they return is stored.
        let graph: serde_json::Value =
            reqwest::get(&graph_url).await.expect("GET graph").json().await.expect("json");
        if graph["nodes"]["after-the-flood"].is_object() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the owner's edit never reached the stored graph: {graph}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
