//! The multi-process setup: a `dojo-server` that executes nothing itself (`--run-workers 0`),
//! separate `dojo-worker` processes taking runs from a Redis Stream and writing node states
//! into the room over the WebSocket protocol, all on one PostgreSQL database. A worker killed
//! with SIGKILL mid-run leaves its run to another, which resumes it without re-running or
//! re-charging the nodes that had finished. Assets go to an S3-compatible bucket that every
//! process shares. A team's provider key, sealed by the server, is opened by the worker process
//! that runs the team's node (with the same key-encryption keys), and only there.

mod common;

use std::time::Duration;

use common::WAIT;
use common::database::{Backend, TestDatabase};
use common::process::ServerProcess;
use common::redis::Redis;
use common::replicate::Replicate;
use common::runs::{
    RunApi, SECRET, edge, join, result_json, status_of, token, typed_node, watch_run, write_graph,
};
use common::teams::TEST_KEKS;
use common::worker::WorkerProcess;
use dojo_test_support::S3StandIn;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// Time for a run whose worker died to be taken over: the lease and visibility timeout below,
/// plus generous slack for a loaded machine.
const TAKEOVER: Duration = Duration::from_secs(60);

struct Cluster {
    db: TestDatabase,
    redis: Redis,
    /// Assets live in an S3-compatible bucket that the server and every worker share.
    s3: S3StandIn,
    replicate: Replicate,
    server: ServerProcess,
}

impl Cluster {
    async fn start() -> Self {
        Self::start_with(&[]).await
    }

    /// A cluster whose server also has `settings` in its environment.
    async fn start_with(settings: &[(&str, &str)]) -> Self {
        let db = TestDatabase::new(Backend::Postgres).await;
        let redis = Redis::start().await;
        let s3 = S3StandIn::start().await;
        let replicate = Replicate::start().await;
        let assets_url = s3.url("assets");
        let mut env: Vec<(&str, String)> = replicate.env().into_iter().collect();
        let s3_env = s3.env();
        env.extend(s3_env.iter().map(|(k, v)| (k.as_str(), v.clone())));
        env.extend(settings.iter().map(|(k, v)| (*k, (*v).to_owned())));
        let server = ServerProcess::start_with_env(
            &db.url,
            &[
                "--redis-url",
                &redis.url(),
                "--run-workers",
                "0",
                "--jwt-secret",
                SECRET,
                "--assets-url",
                &assets_url,
            ],
            &env,
        )
        .await;
        Self { db, redis, s3, replicate, server }
    }

    async fn worker(&self) -> WorkerProcess {
        self.worker_with(&[]).await
    }

    /// A worker with settings of its own on top of the defaults below.
    async fn worker_with(&self, settings: &[(&str, &str)]) -> WorkerProcess {
        let mut env = vec![
            ("DATABASE_URL", self.db.url.clone()),
            ("REDIS_URL", self.redis.url()),
            ("DOJO_SERVER_URL", format!("http://{}", self.server.addr)),
            ("DOJO_JWT_SECRET", SECRET.to_owned()),
            ("DOJO_ASSETS_URL", self.s3.url("assets")),
            ("DOJO_RUN_LEASE_SECS", "2".to_owned()),
            ("DOJO_RUN_VISIBILITY_SECS", "3".to_owned()),
        ];
        env.extend(self.replicate.env());
        let s3_env = self.s3.env();
        env.extend(s3_env.iter().map(|(k, v)| (k.as_str(), v.clone())));
        // Later entries win: `Command::envs` keeps the last value of a name.
        env.extend(settings.iter().map(|(k, v)| (*k, (*v).to_owned())));
        WorkerProcess::start(&env).await
    }

    fn api(&self) -> RunApi {
        RunApi::new(self.server.addr, &self.db.url)
    }
}

const NODES: [&str; 7] = ["p1", "quick", "soft", "p2", "slow", "gen", "up"];

/// Two provider chains and a local one: `p1 → quick → soft`, `p2 → slow`, `gen → up`. Three
/// nodes cost 1 credit each (quick, slow, gen).
async fn build_graph(api: &RunApi, room: &str, token: &str, client: &dojo_room_client::SyncClient) {
    write_graph(
        api,
        room,
        token,
        client,
        &[
            typed_node("p1", "text-prompt", json!({"text": "a quick fox"})),
            typed_node("quick", "flux-schnell", json!({})),
            typed_node("soft", "blur", json!({"sigma": 1.0})),
            typed_node("p2", "text-prompt", json!({"text": "a slow fox"})),
            typed_node("slow", "flux-schnell", json!({})),
            typed_node("gen", "dev-image", json!({"prompt": "a fox", "width": 32, "height": 32})),
            typed_node("up", "resize", json!({"scale": 2})),
        ],
        &[
            edge("p1", "text", "quick", "prompt"),
            edge("quick", "image", "soft", "image"),
            edge("p2", "text", "slow", "prompt"),
            edge("gen", "image", "up", "image"),
        ],
    )
    .await;
}

fn finished_before_the_kill(doc: &yrs::Doc) -> bool {
    ["p1", "quick", "soft", "p2", "gen", "up"]
        .iter()
        .all(|n| status_of(doc, n).as_deref() == Some("succeeded"))
        && status_of(doc, "slow").as_deref() == Some("running")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_run_the_graph_and_a_killed_worker_s_run_is_resumed_without_rerunning_or_recharging() {
    let cluster = Cluster::start().await;
    let api = cluster.api();
    let alice = token("alice");
    let alice_id = api.user_with_credits(&alice, 10).await;
    let room = "canvas-workers";
    api.workflow(&alice, room).await;
    let editor = join(&api, room, &alice).await;
    build_graph(&api, room, &alice, &editor).await;
    let watcher = join(&api, room, &alice).await;

    cluster.replicate.hold("a slow fox");
    let doomed = cluster.worker().await;
    let run_id = api.submit(&alice, room, "workers-1").await;
    assert_eq!(api.balance(&alice).await, 7, "three nodes' costs are held");
    watcher
        .wait_doc("everything but the slow node finished", WAIT, finished_before_the_kill)
        .await
        .expect("the first worker runs the graph and writes its states into the room");
    assert_eq!(cluster.replicate.created("a quick fox"), 1);
    assert_eq!(cluster.replicate.created("a slow fox"), 1);
    let before: Vec<Value> = NODES.iter().map(|n| result_json(watcher.doc(), n)).collect();

    let survivor = cluster.worker().await;
    doomed.kill();
    cluster.replicate.release("a slow fox");
    let seen = watch_run(&watcher, &run_id, &NODES, TAKEOVER).await;
    for node in NODES {
        assert_eq!(seen[node].last().map(String::as_str), Some("succeeded"), "{node}: {seen:?}");
    }
    // What had finished was not executed again: after the kill the watcher saw those nodes
    // only as succeeded (the resuming worker re-asserts their state, never queued or running),
    // with the same outputs (the same assets); the provider saw one prediction for the finished
    // provider node. Only the interrupted node was started again.
    for (node, earlier) in NODES.iter().zip(&before) {
        if *node != "slow" {
            assert_eq!(seen[*node], ["succeeded"], "{node} was not re-run: {seen:?}");
            assert_eq!(
                result_json(watcher.doc(), node)["outputs"],
                earlier["outputs"],
                "{node} kept its outputs"
            );
        }
    }
    assert_eq!(cluster.replicate.created("a quick fox"), 1, "the finished provider node did not run again");
    assert_eq!(cluster.replicate.created("a slow fox"), 2, "the interrupted node ran again");
    // The output a worker stored in the bucket is served by the server (which executed none of it).
    let slow = result_json(watcher.doc(), "slow");
    let url = slow["outputs"]["image"]["url"].as_str().expect("an asset url").to_owned();
    let png = api.http.get(api.http_url(&format!("{url}?token={alice}"))).send().await.expect("GET asset");
    assert_eq!(png.status(), reqwest::StatusCode::OK, "{url}");
    assert_eq!(png.headers()["content-type"], "image/png");
    let bytes = png.bytes().await.expect("bytes");
    assert!(dojo_executor::builtins::imaging::decode_png(&bytes).is_ok(), "a valid PNG");
    let id = url.trim_start_matches("/assets/");
    assert!(
        cluster.s3.keys().iter().any(|k| k.ends_with(id)),
        "stored in the bucket: {:?}",
        cluster.s3.keys()
    );

    let run = api.wait_run(&alice, &run_id, WAIT, |run| run["status"] == "succeeded").await;
    assert_eq!(run["charged"], 3, "{run}");
    assert_eq!(api.balance(&alice).await, 7, "charged exactly once per paid node");
    let ledger = api.ledger(&alice_id).await;
    for paid in ["quick", "slow", "gen"] {
        let count =
            |phase: &str| ledger.iter().filter(|(_, k)| k.ends_with(&format!(":{paid}:{phase}"))).count();
        assert_eq!((count("hold"), count("capture")), (1, 1), "{paid}: {ledger:?}");
    }
    assert_eq!(ledger.iter().map(|(amount, _)| amount).sum::<i64>(), 7, "the ledger sums to the balance");

    // The same graph again, on the surviving worker: every node cached, nothing charged, no
    // provider called.
    let again = api.submit(&alice, room, "workers-2").await;
    let seen = watch_run(&watcher, &again, &NODES, WAIT).await;
    for node in NODES {
        assert_eq!(seen[node].last().map(String::as_str), Some("cached"), "{node}: {seen:?}");
    }
    let run = api.wait_run(&alice, &again, WAIT, |run| run["status"] == "succeeded").await;
    assert_eq!(run["charged"], 0, "{run}");
    assert_eq!(api.balance(&alice).await, 7);
    assert_eq!(cluster.replicate.created("a quick fox") + cluster.replicate.created("a slow fox"), 3);
    assert!(survivor.log().contains(&run_id), "the survivor took over the run:\n{}", survivor.log());
    editor.close().await;
    watcher.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_stopped_with_sigterm_hands_its_run_back_and_another_resumes_it_at_once() {
    let cluster = Cluster::start().await;
    let api = cluster.api();
    let bob = token("bob");
    api.user_with_credits(&bob, 10).await;
    let room = "canvas-handback";
    let workflow = api.workflow(&bob, room).await;
    let editor = join(&api, room, &bob).await;
    build_graph(&api, room, &bob, &editor).await;
    let watcher = join(&api, room, &bob).await;

    // Leases and stream visibility far longer than this test waits: only a run handed back on
    // SIGTERM can be resumed by the other worker in time. One second of grace for runs in flight.
    let settings = [
        ("DOJO_RUN_LEASE_SECS", "600"),
        ("DOJO_RUN_VISIBILITY_SECS", "600"),
        ("DOJO_SHUTDOWN_GRACE_SECS", "1"),
    ];
    cluster.replicate.hold("a slow fox");
    let mut stopping = cluster.worker_with(&settings).await;
    let run_id = api.submit(&bob, room, "handback-1").await;
    watcher
        .wait_doc("everything but the slow node finished", WAIT, finished_before_the_kill)
        .await
        .expect("the first worker runs the graph until the slow node");
    let next = cluster.worker_with(&settings).await;

    let status = stopping.terminate().await;
    assert!(status.success(), "the worker exits cleanly on SIGTERM: {status:?}\n{}", stopping.log());
    cluster.replicate.release("a slow fox");
    // Within WAIT, far less than the 10-minute lease and visibility timeout.
    let run = api.wait_run(&bob, &run_id, WAIT, |run| run["status"] == "succeeded").await;
    // The worker's log line about the run may land a moment after the run's end is visible.
    let deadline = tokio::time::Instant::now() + WAIT;
    while !next.log().contains(run_id.as_str()) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(next.log().contains(run_id.as_str()), "the other worker resumed the run:\n{}", next.log());
    assert!(
        stopping.log().contains("handed the run back to the queue"),
        "the stopping worker says it handed its run back:\n{}",
        stopping.log()
    );
    assert_eq!(run["charged"], 3, "charged once per paid node: {run}");
    assert_eq!(cluster.replicate.created("a quick fox"), 1, "the finished provider node did not run again");
    assert_eq!(api.balance(&bob).await, 7);

    // The run ended in a worker, not in the server: the server's sweep still reports it, once,
    // with each of its nodes, and the workers' own connections are no one entering the room.
    let deadline = tokio::time::Instant::now() + WAIT;
    let feed = loop {
        let feed = api.events(&bob, &workflow).await;
        if feed.iter().any(|(kind, _)| kind == "run.finished") {
            break feed;
        }
        assert!(tokio::time::Instant::now() < deadline, "no run.finished in the change feed: {feed:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let count = |kind: &str| feed.iter().filter(|(k, _)| k == kind).count();
    assert_eq!(count("run.finished"), 1, "{feed:?}");
    let finished =
        feed.iter().find(|(k, _)| k == "run.finished").map(|(_, data)| data.clone()).unwrap_or_default();
    assert_eq!(finished["runId"], run_id.as_str(), "{finished}");
    assert_eq!(finished["status"], "succeeded", "{finished}");
    assert_eq!(
        count("node.finished"),
        NODES.len(),
        "one per node, however many servers and workers saw it: {feed:?}"
    );
    // Bob's two connections are one person entering; the two workers' are no one.
    assert_eq!(count("user.entered"), 1, "{feed:?}");
    editor.close().await;
    watcher.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_process_opens_the_teams_sealed_key_for_the_teams_node_and_never_logs_it() {
    const TEAM_KEY: &str = "r8_team_worker_secret_4321";
    let cluster = Cluster::start_with(&[("DOJO_KEY_ENCRYPTION_KEYS", TEST_KEKS)]).await;
    let api = cluster.api();
    let ada = token("ada");
    api.user_with_credits(&ada, 10).await;
    let (status, team) =
        api.call(Method::POST, "/api/teams", &ada, Some(json!({"name": "Keyed"})), None).await;
    assert_eq!(status, StatusCode::CREATED, "{team}");
    let team = team["id"].as_str().expect("team id").to_owned();
    // The team pays for its workflows' runs.
    let database = dojo_store::open_database(&cluster.db.url).await.expect("open the database");
    dojo_records::teams(&database)
        .apply_team_credits(
            &dojo_ids::TeamId::from(team.as_str()),
            None,
            10,
            "test grant",
            "team-worker-grant",
        )
        .await
        .expect("team grant");
    let path = format!("/api/teams/{team}/provider-keys/replicate");
    let (status, stored) = api.call(Method::PUT, &path, &ada, Some(json!({"key": TEAM_KEY})), None).await;
    assert_eq!(status, StatusCode::OK, "{stored}");
    let room = "team-worker-canvas";
    let body = json!({"title": room, "room": room, "teamId": team});
    let (status, created) = api.call(Method::POST, "/api/workflows", &ada, Some(body), None).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let editor = join(&api, room, &ada).await;
    write_graph(
        &api,
        room,
        &ada,
        &editor,
        &[
            typed_node("prompt", "text-prompt", json!({"text": "a team fox"})),
            typed_node("flux", "flux-schnell", json!({})),
        ],
        &[edge("prompt", "text", "flux", "prompt")],
    )
    .await;

    // The worker has the server's Replicate key too (from the stand-in's settings) and the same
    // key-encryption keys as the server; the server executes nothing itself.
    let worker = cluster.worker_with(&[("DOJO_KEY_ENCRYPTION_KEYS", TEST_KEKS), ("DOJO_LOG", "debug")]).await;
    let run = api.submit(&ada, room, "team-worker-1").await;
    let run = api
        .wait_run(&ada, &run, WAIT, |r| matches!(r["status"].as_str(), Some("succeeded" | "failed")))
        .await;
    assert_eq!(run["status"], "succeeded", "{run}\n{}", worker.log());
    assert_eq!(
        cluster.replicate.authorizations("a team fox"),
        vec![format!("Bearer {TEAM_KEY}")],
        "the provider saw the team's key, not the server's"
    );
    let run_id = run["id"].as_str().expect("run id");
    // The worker may log the run's end just after the API shows it finished.
    let deadline = tokio::time::Instant::now() + WAIT;
    let log = loop {
        let log = worker.log();
        if log.contains(run_id) || tokio::time::Instant::now() > deadline {
            break log;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert!(log.contains(run_id), "the worker process ran it:\n{log}");
    assert!(!log.contains(TEAM_KEY), "the team's key is in the worker's log");
    assert!(!log.contains(&TEST_KEKS[3..]), "the key-encryption key is in the worker's log");
    editor.close().await;
}
