//! Presence across instances, as stock y-websocket clients see it.
//!
//! The stock client (y-protocols' `Awareness`) renews its own state every 15 s, bumping its
//! clock even when nothing changed, and drops a peer whose clock has not increased for 30 s.
//! So a peer on another instance stays visible only if every renewal crosses instances and
//! reaches the other clients with the client's own clock. `StockClient` below behaves the same
//! way (same periods: the server must not depend on them, so the tests use the real ones), and
//! "sees" exactly the peers a stock client would show.
//!
//! Three `dojo-server` processes share one PostgreSQL database and a private Redis.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::WAIT;
use common::database::{Backend, TestDatabase};
use common::process::ServerProcess;
use common::redis::Redis;
use dojo_room_client::{ClientOptions, Framing, SyncClient};
use dojo_sync_protocol::canvas;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use yrs::{ClientID, Doc};

/// y-protocols' `outdatedTimeout`: a peer whose clock has not increased for this long is gone.
const OUTDATED: Duration = Duration::from_secs(30);
/// y-protocols renews the local state once it is half that old, checking every tenth of it.
const RENEW_AFTER: Duration = Duration::from_secs(15);
const RENEW_CHECK: Duration = Duration::from_secs(3);

async fn instances(db: &TestDatabase, redis: &Redis, count: usize) -> Vec<ServerProcess> {
    let mut out = Vec::new();
    for _ in 0..count {
        out.push(ServerProcess::start(&db.url, &["--redis-url", &redis.url()]).await);
    }
    out
}

fn unix_millis() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// A client that handles presence as y-websocket's provider over y-protocols' `Awareness` does:
/// it repeats to the server every awareness change it applies (the provider's handler ignores
/// where a change came from), renews its own state every 15 s, and every 3 s drops the peers
/// not renewed for 30 s and tells the server so, at their clocks.
struct StockClient {
    client: Arc<SyncClient>,
    renewer: JoinHandle<()>,
}

impl StockClient {
    /// Connects and announces `{"user": name}` at once, as a provider does on open.
    async fn join(server: &ServerProcess, room: &str, name: &str) -> Self {
        let options = ClientOptions { echo_awareness: true, ..ClientOptions::default() };
        let url = server.url(room);
        let client = SyncClient::connect_with(&url, Doc::new(), Framing::YWebsocket, options);
        let client = Arc::new(client.await.expect("connect"));
        let state = serde_json::json!({ "user": name });
        client.set_presence(&state).await.expect("presence");
        let renewing = client.clone();
        let renewer = tokio::spawn(async move {
            let mut renewed = Instant::now();
            loop {
                tokio::time::sleep(RENEW_CHECK).await;
                if renewed.elapsed() >= RENEW_AFTER {
                    // The same state again: only the clock moves.
                    if renewing.set_presence(&state).await.is_err() {
                        return;
                    }
                    renewed = Instant::now();
                }
                if renewing.time_out_presence(OUTDATED).await.is_err() {
                    return;
                }
            }
        });
        Self { client, renewer }
    }

    fn id(&self) -> ClientID {
        self.client.client_id()
    }

    /// The peers this client shows now: live states renewed within `OUTDATED` (what it has not
    /// dropped yet for timing out, without waiting for its next check).
    fn sees(&self) -> BTreeSet<ClientID> {
        let now = unix_millis();
        self.client
            .presence_meta()
            .into_iter()
            .filter(|(id, _, renewed)| {
                *id != self.id() && now.saturating_sub(*renewed) < OUTDATED.as_millis() as u64
            })
            .map(|(id, ..)| id)
            .collect()
    }
}

impl Drop for StockClient {
    fn drop(&mut self) {
        self.renewer.abort();
    }
}

/// How many of the others each client sees, one digit per client ("222" when all is well).
fn row(clients: &[StockClient]) -> String {
    clients.iter().map(|c| c.sees().len().to_string()).collect()
}

/// Each client's id and what it holds: `(id, clock, last renewed)` for every live state.
fn describe(clients: &[StockClient]) -> String {
    let now = unix_millis();
    let each: Vec<String> = clients
        .iter()
        .map(|c| {
            let held: Vec<String> = c
                .client
                .presence_meta()
                .iter()
                .map(|(id, clock, renewed)| format!("{id}@{clock} {}ms ago", now.saturating_sub(*renewed)))
                .collect();
            format!("{} holds [{}]", c.id(), held.join(", "))
        })
        .collect();
    format!("{} | {}", row(clients), each.join(" | "))
}

fn everyone_sees_everyone(clients: &[StockClient]) -> bool {
    clients.iter().all(|c| {
        let others: BTreeSet<ClientID> =
            clients.iter().map(StockClient::id).filter(|id| *id != c.id()).collect();
        c.sees() == others
    })
}

/// The bug of issue 24: at 33 s every client lost both others, until 45 s. Sampled every second
/// for 90 s: three renewal periods, three times the stock client's timeout and twice the
/// server's own timeout for presence from other instances.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_clients_see_each_other_for_ninety_seconds() {
    const HOLD: Duration = Duration::from_secs(90);
    let db = TestDatabase::new(Backend::Postgres).await;
    let redis = Redis::start().await;
    let servers = instances(&db, &redis, 3).await;
    let mut clients = Vec::new();
    for (i, server) in servers.iter().enumerate() {
        clients.push(StockClient::join(server, "presence", &format!("user-{i}")).await);
    }

    let joined = Instant::now();
    while !everyone_sees_everyone(&clients) {
        assert!(joined.elapsed() < WAIT, "the clients never all met: {}", describe(&clients));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let start = Instant::now();
    let mut timeline = Vec::new();
    let mut lapses = Vec::new();
    let mut first_lapse = String::new();
    for second in 1..=HOLD.as_secs() {
        tokio::time::sleep_until(start + Duration::from_secs(second)).await;
        timeline.push(row(&clients));
        if !everyone_sees_everyone(&clients) && lapses.is_empty() {
            first_lapse = describe(&clients);
        }
        if !everyone_sees_everyone(&clients) {
            lapses.push(second);
        }
    }
    let logs: Vec<String> = servers.iter().map(ServerProcess::log).collect();
    assert!(
        lapses.is_empty(),
        "someone lost sight of someone at seconds {lapses:?}\ntimeline: {}\nfirst lapse: {first_lapse}\nlogs: {logs:#?}",
        timeline.join(" ")
    );

    // The room still works for edits, on every instance.
    let node = common::node("after-the-hold", 1.0);
    clients[0].client.edit(|txn| canvas::write_node(txn, &node)).await.expect("edit").expect("node");
    for c in &clients {
        let has_node = |doc: &yrs::Doc| {
            let txn = yrs::Transact::transact(doc);
            canvas::read_graph(&txn).is_ok_and(|g| g.nodes.iter().any(|n| n.id == "after-the-hold"))
        };
        c.client.wait_doc("the edit on every instance", WAIT, has_node).await.expect("the edit arrives");
    }
}

/// Two clients that join one room at the same moment through two instances: each instance
/// opens the room while the other may not be subscribed yet, so what one publishes first can
/// be lost. These clients never renew: only the server can bring them together.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_joining_at_once_on_two_instances_see_each_other() {
    const ROUNDS: usize = 16;
    let db = TestDatabase::new(Backend::Postgres).await;
    let redis = Redis::start().await;
    let servers = instances(&db, &redis, 2).await;
    for round in 0..ROUNDS {
        let room = format!("together-{round}");
        let join = |server: &ServerProcess, name: &'static str| {
            let url = server.url(&room);
            async move {
                let client = SyncClient::connect(&url).await.expect("connect");
                client.set_presence(&serde_json::json!({ "user": name })).await.expect("presence");
                client
            }
        };
        let (a, b) = tokio::join!(join(&servers[0], "a"), join(&servers[1], "b"));
        for (me, other) in [(&a, &b), (&b, &a)] {
            let other = other.client_id();
            let met = me
                .wait_for("the other client's presence", Duration::from_secs(10), |_| {
                    me.presence().iter().any(|(id, _)| *id == other)
                })
                .await;
            assert!(
                met.is_ok(),
                "round {round}: {} never saw {other} (it sees {:?}, status {:?})\nlogs: {}\n----\n{}",
                me.client_id(),
                me.presence(),
                me.status(),
                servers[0].log(),
                servers[1].log()
            );
        }
    }
}

/// Presence published while Redis was down (a client joined then) reaches the other instances
/// once it is back, without waiting for the client to renew: re-subscribed rooms ask again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_from_while_redis_was_down_arrives_when_it_is_back() {
    let db = TestDatabase::new(Backend::Postgres).await;
    let mut redis = Redis::start().await;
    let servers = instances(&db, &redis, 2).await;
    let on_a = SyncClient::connect(&servers[0].url("room")).await.expect("connect");
    on_a.set_presence(&serde_json::json!({ "user": "a" })).await.expect("presence");
    let on_b = SyncClient::connect(&servers[1].url("room")).await.expect("connect");
    on_b.set_presence(&serde_json::json!({ "user": "b" })).await.expect("presence");
    let a = on_a.client_id();
    on_b.wait_for("a's presence", WAIT, |_| on_b.presence().iter().any(|(id, _)| *id == a))
        .await
        .expect("presence crosses instances");

    redis.stop();
    let late = SyncClient::connect(&servers[0].url("room")).await.expect("connect");
    late.set_presence(&serde_json::json!({ "user": "late" })).await.expect("presence");
    let late_id = late.client_id();
    on_a.wait_for("the late client on the same instance", WAIT, |_| {
        on_a.presence().iter().any(|(id, _)| *id == late_id)
    })
    .await
    .expect("local presence needs no Redis");
    redis.launch().await;

    let met = on_b
        .wait_for("the late client's presence", WAIT, |_| {
            on_b.presence().iter().any(|(id, _)| *id == late_id)
        })
        .await;
    assert!(
        met.is_ok(),
        "b never saw the client that joined during the outage: {:?}\n{}\n----\n{}",
        on_b.presence(),
        servers[0].log(),
        servers[1].log()
    );
    // And the others still know each other.
    assert!(on_b.presence().iter().any(|(id, _)| *id == a));
}

/// A connection may change only the presence it owns; a client on another instance is not
/// fair game. Mallory, on B, forges Alice's presence (on A) with a far newer clock, then
/// removes it at its current clock. A witness on B must still see Alice as Alice, and Alice's
/// own renewals must still reach it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_cannot_change_presence_held_on_another_instance() {
    use dojo_sync_protocol::codec::encode_message;
    use std::collections::HashMap;
    use yrs::sync::Message;
    use yrs::sync::awareness::{AwarenessUpdate, AwarenessUpdateEntry};

    let db = TestDatabase::new(Backend::Postgres).await;
    let redis = Redis::start().await;
    let servers = instances(&db, &redis, 2).await;
    let alice = SyncClient::connect(&servers[0].url("room")).await.expect("connect");
    alice.set_presence(&serde_json::json!({ "user": "alice" })).await.expect("presence");
    let witness = SyncClient::connect(&servers[1].url("room")).await.expect("connect");
    let mallory = SyncClient::connect(&servers[1].url("room")).await.expect("connect");
    let alice_id = alice.client_id();
    let state_of = |client: &SyncClient, id: ClientID| {
        client.presence().into_iter().find(|(c, _)| *c == id).map(|(_, state)| state)
    };
    witness
        .wait_for("alice's presence", WAIT, |_| state_of(&witness, alice_id).is_some())
        .await
        .expect("presence crosses instances");
    mallory
        .wait_for("alice's presence", WAIT, |_| state_of(&mallory, alice_id).is_some())
        .await
        .expect("presence crosses instances");
    let clock = mallory.presence_meta().iter().find(|(id, ..)| *id == alice_id).map(|m| m.1).expect("clock");

    let forge = |clock: u32, json: &str| {
        let entry = AwarenessUpdateEntry { clock, json: json.into() };
        encode_message(&Message::Awareness(AwarenessUpdate { clients: HashMap::from([(alice_id, entry)]) }))
    };
    mallory.send_message(forge(clock + 100, r#"{"user":"mallory"}"#)).await.expect("send");
    mallory.send_message(forge(clock, "null")).await.expect("send");
    // Mallory's own presence, sent after: once the witness has it, the forgeries (handled
    // before it, in order) would have arrived too.
    mallory.set_presence(&serde_json::json!({ "user": "mallory" })).await.expect("presence");
    let mallory_id = mallory.client_id();
    witness
        .wait_for("mallory's own presence", WAIT, |_| state_of(&witness, mallory_id).is_some())
        .await
        .expect("mallory's own presence is relayed");
    assert_eq!(state_of(&witness, alice_id), Some(serde_json::json!({ "user": "alice" })));

    // Alice's own renewal still gets through.
    alice.set_presence(&serde_json::json!({ "user": "alice", "renewed": true })).await.expect("presence");
    let renewed = serde_json::json!({ "user": "alice", "renewed": true });
    let seen = witness
        .wait_for("alice's renewal", WAIT, |_| state_of(&witness, alice_id).as_ref() == Some(&renewed))
        .await;
    assert!(seen.is_ok(), "the witness has {:?}", state_of(&witness, alice_id));
}
