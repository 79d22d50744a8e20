//! Scale-out: several `dojo-server` processes on one PostgreSQL database and one Redis, serving
//! the same rooms. Each test runs its own Redis (a `redis-server` child on a free port), so it
//! can restart it, and its own database.

mod common;

use std::process::Command;
use std::time::Duration;

use common::database::{Backend, TestDatabase};
use common::process::ServerProcess;
use common::redis::Redis;
use common::{WAIT, node};
use dojo_room_client::SyncClient;
use dojo_sync_protocol::canvas;
use yrs::{Doc, Transact};

async fn instances(db: &TestDatabase, redis: &Redis, count: usize) -> Vec<ServerProcess> {
    let mut out = Vec::new();
    for _ in 0..count {
        out.push(ServerProcess::start(&db.url, &["--redis-url", &redis.url()]).await);
    }
    out
}

async fn client(server: &ServerProcess, room: &str) -> SyncClient {
    let client = SyncClient::connect(&server.url(room)).await.expect("connect");
    client.wait_synced(WAIT).await.expect("synced");
    client
}

fn node_ids(doc: &Doc) -> Vec<String> {
    let txn = doc.transact();
    let mut ids: Vec<String> =
        canvas::read_graph(&txn).map(|g| g.nodes.into_iter().map(|n| n.id).collect()).unwrap_or_default();
    ids.sort();
    ids
}

async fn wait_nodes(client: &SyncClient, expected: &[String], what: &'static str) {
    let expected = expected.to_vec();
    let result = client.wait_doc(what, WAIT, |doc| node_ids(doc) == expected).await;
    assert!(result.is_ok(), "{what}: have {:?}, want {expected:?}", node_ids(client.doc()));
}

async fn add_node(client: &SyncClient, id: &str) {
    client.edit(|txn| canvas::write_node(txn, &node(id, 1.0))).await.expect("edit").expect("node");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_on_three_instances_converge_and_see_each_others_presence() {
    let db = TestDatabase::new(Backend::Postgres).await;
    let redis = Redis::start().await;
    let servers = instances(&db, &redis, 3).await;
    let mut clients = Vec::new();
    for server in &servers {
        for _ in 0..2 {
            clients.push(client(server, "shared").await);
        }
    }
    // Everyone edits at once.
    let mut expected = Vec::new();
    for (i, c) in clients.iter().enumerate() {
        for j in 0..5 {
            let id = format!("n{i}-{j}");
            add_node(c, &id).await;
            expected.push(id);
        }
    }
    expected.sort();
    for c in &clients {
        wait_nodes(c, &expected, "every instance's edits").await;
    }

    // Presence crosses instances, and leaves with its client.
    clients[0].set_presence(&serde_json::json!({ "user": "ada" })).await.expect("presence");
    let ada = clients[0].client_id();
    let first = clients.remove(0);
    let far = &clients[4];
    far.wait_for("ada's presence on another instance", WAIT, |_| {
        far.presence().iter().any(|(id, _)| *id == ada)
    })
    .await
    .expect("presence crosses instances");
    first.close().await;
    far.wait_for("ada's presence to go", WAIT, |_| far.presence().iter().all(|(id, _)| *id != ada))
        .await
        .expect("presence removed across instances when its client leaves");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_an_instance_loses_nothing_anyone_saw() {
    let db = TestDatabase::new(Backend::Postgres).await;
    let redis = Redis::start().await;
    let mut servers = instances(&db, &redis, 2).await;
    let on_a = client(&servers[0], "room").await;
    let on_b = client(&servers[1], "room").await;
    let mut expected = Vec::new();
    for i in 0..20 {
        let id = format!("a{i:02}");
        add_node(&on_a, &id).await;
        expected.push(id);
    }
    wait_nodes(&on_b, &expected, "B sees A's edits").await;

    // A dies without any shutdown code running; its client moves to B with its document.
    servers.remove(0).kill();
    let moved_doc = on_a.doc().clone();
    on_a.abort();
    let moved = SyncClient::connect_with_doc(&servers[0].url("room"), moved_doc).await.expect("reconnect");
    moved.wait_synced(WAIT).await.expect("synced");
    add_node(&moved, "after-failover").await;
    expected.push("after-failover".into());
    expected.sort();
    wait_nodes(&on_b, &expected, "B sees the moved client's edit").await;
    // A newcomer gets everything anyone saw.
    let newcomer = client(&servers[0], "room").await;
    wait_nodes(&newcomer, &expected, "a newcomer sees everything").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_recover_on_their_own_when_redis_restarts() {
    let db = TestDatabase::new(Backend::Postgres).await;
    let mut redis = Redis::start().await;
    let servers = instances(&db, &redis, 2).await;
    let on_a = client(&servers[0], "room").await;
    let on_b = client(&servers[1], "room").await;
    add_node(&on_a, "before").await;
    wait_nodes(&on_b, &["before".into()], "before the restart").await;

    redis.stop();
    // Stored on A while Redis is down: B cannot hear of it now.
    add_node(&on_a, "during").await;
    on_a.wait_doc("A's own edit stored and echoed", WAIT, |doc| node_ids(doc).contains(&"during".to_owned()))
        .await
        .expect("echo");
    redis.launch().await;
    // B re-subscribes and catches up from the store; new edits flow again.
    wait_nodes(&on_b, &["before".into(), "during".into()], "B catches up after Redis restarts").await;
    add_node(&on_b, "after").await;
    wait_nodes(&on_a, &["after".into(), "before".into(), "during".into()], "edits flow after the restart")
        .await;
    let resubscribed = servers[1].metric("dojo_cluster_resubscribes_total", "").await;
    let caught_up = servers[1].metric("dojo_cluster_catch_ups_total", "").await;
    let received = servers[1].metric("dojo_cluster_messages_received_total", "").await;
    assert!(
        resubscribed >= 1.0,
        "B noticed: resubscribed {resubscribed}, caught up {caught_up}, received {received}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_on_one_instance_costs_the_others_nothing() {
    let db = TestDatabase::new(Backend::Postgres).await;
    let redis = Redis::start().await;
    let servers = instances(&db, &redis, 2).await;
    let alone = client(&servers[0], "alone").await;
    for i in 0..10 {
        add_node(&alone, &format!("n{i}")).await;
    }
    alone.wait_doc("all stored", WAIT, |doc| node_ids(doc).len() == 10).await.expect("stored");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(servers[1].metric("dojo_cluster_messages_received_total", "").await, 0.0);

    // The same edits in a room both hold do reach the other instance (the counter works).
    let shared_a = client(&servers[0], "shared").await;
    let _shared_b = client(&servers[1], "shared").await;
    // (B's subscription completes shortly after its client syncs: keep editing until it hears.)
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut received = 0.0;
    for i in 0.. {
        add_node(&shared_a, &format!("x{i}")).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        received = servers[1].metric("dojo_cluster_messages_received_total", "").await;
        if received > 0.0 || tokio::time::Instant::now() > deadline {
            break;
        }
    }
    let dump = reqwest::get(format!("http://{}/metrics", servers[1].addr))
        .await
        .expect("get")
        .text()
        .await
        .expect("text");
    let dump: Vec<&str> = dump
        .lines()
        .filter(|l| l.contains("cluster") || l.contains("rooms_open") || l.contains("persisted"))
        .collect();
    assert!(
        received > 0.0,
        "the other instance never heard of the shared room: {dump:#?}\n{}",
        servers[1].log()
    );
}

#[tokio::test]
async fn scale_out_on_sqlite_is_refused_at_start_up() {
    let dir = tempfile::tempdir().expect("dir");
    let url = format!("sqlite:{}", dir.path().join("dojo.db").display());
    let output = Command::new(common::process::BINARY)
        .args(["--addr", "127.0.0.1:0", "--database-url", &url, "--redis-url", "redis://127.0.0.1:1"])
        .output()
        .expect("run dojo-server");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("needs PostgreSQL"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_from_a_dead_instance_expires() {
    let db = TestDatabase::new(Backend::Postgres).await;
    let redis = Redis::start().await;
    let mut servers = instances(&db, &redis, 2).await;
    let doomed = client(&servers[0], "room").await;
    let survivor = client(&servers[1], "room").await;
    doomed.set_presence(&serde_json::json!({ "user": "doomed" })).await.expect("presence");
    let id = doomed.client_id();
    survivor
        .wait_for("the presence to arrive", WAIT, |_| survivor.presence().iter().any(|(c, _)| *c == id))
        .await
        .expect("presence crosses instances");
    // SIGKILL: no goodbye reaches Redis. The survivor drops the entry once the dead instance's
    // heartbeat is stale (15 s) and its next check runs (every 5 s).
    servers.remove(0).kill();
    doomed.abort();
    survivor
        .wait_for("the dead instance's presence to expire", Duration::from_secs(40), |_| {
            survivor.presence().iter().all(|(c, _)| *c != id)
        })
        .await
        .expect("presence of a dead instance's client expires");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsharing_on_one_instance_ends_the_connection_on_another() {
    use dojo_auth::{Claims, Minter};
    const SECRET: &str = "a cluster test secret of at least thirty-two bytes";
    let token = |sub: &str| Minter::hs256(SECRET.as_bytes()).mint(&Claims::new(sub, 600)).expect("mint");
    let db = TestDatabase::new(Backend::Postgres).await;
    let redis = Redis::start().await;
    let a = ServerProcess::start(&db.url, &["--redis-url", &redis.url(), "--jwt-secret", SECRET]).await;
    let b = ServerProcess::start(&db.url, &["--redis-url", &redis.url(), "--jwt-secret", SECRET]).await;
    let (owner, guest) = (token("owner"), token("guest"));
    let http = reqwest::Client::new();
    let api = |server: &ServerProcess, path: &str| format!("http://{}{path}", server.addr);
    let workflow: serde_json::Value = http
        .post(api(&a, "/api/workflows"))
        .bearer_auth(&owner)
        .json(&serde_json::json!({ "title": "shared" }))
        .send()
        .await
        .expect("create")
        .json()
        .await
        .expect("json");
    let (id, room) = (workflow["id"].as_str().expect("id"), workflow["room"].as_str().expect("room"));
    let me: serde_json::Value = http
        .get(api(&b, "/api/me"))
        .bearer_auth(&guest)
        .send()
        .await
        .expect("me")
        .json()
        .await
        .expect("json");
    let guest_id = me["id"].as_str().expect("id");
    let share = api(&a, &format!("/api/workflows/{id}/collaborators/{guest_id}"));
    let shared =
        http.put(&share).bearer_auth(&owner).json(&serde_json::json!({ "permission": "write" })).send();
    assert!(shared.await.expect("share").status().is_success());

    // The guest is connected to B; the owner unshares through A.
    let live = SyncClient::connect(&format!("{}?token={guest}", b.url(room))).await.expect("connect");
    live.wait_synced(WAIT).await.expect("synced");
    assert!(http.delete(&share).bearer_auth(&owner).send().await.expect("unshare").status().is_success());
    let (code, reason) = live.wait_closed(WAIT).await.expect("closed").expect("a close frame");
    assert_eq!(code, 1012, "{reason}");
}
