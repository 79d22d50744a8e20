//! Plans and their limits, end to end through a real server (docs/queue.md): a full queue
//! answers 429 `queue_full` with the position the run would have had, no user runs more at once
//! than their plan allows however many worker slots compete, a run past its plan's maximum run
//! time is cancelled with its holds released, and a higher plan's runs are claimed first.

mod common;

use std::collections::BTreeMap;

use common::WAIT;
use common::database::Backend;
use common::replicate::Replicate;
use common::runs::{RunApi, RunStory, edge, join, token, typed_node, write_graph};
use dojo_ids::UserId;
use dojo_records::QueueOwner;
use dojo_server::plan_settings::{Plan, PlanTable};
use reqwest::{Method, StatusCode};
use serde_json::json;

fn plans(free: Plan) -> PlanTable {
    let pro = Plan { priority: 10, concurrent_runs: 2, max_queued: 50, max_run_secs: 0 };
    PlanTable(BTreeMap::from([("free".to_owned(), free), ("pro".to_owned(), pro)]))
}

async fn story(backend: Backend, replicate: &Replicate, workers: usize, free: Plan) -> RunStory {
    let providers = replicate.config();
    RunStory::start_with(backend, move |config| {
        config.executor.providers = Some(providers);
        config.executor.run_workers = workers;
        config.plans.plans = Some(plans(free));
    })
    .await
}

async fn prompt_room(api: &RunApi, owner: &str, room: &str, prompt: &str) {
    api.workflow(owner, room).await;
    let editor = join(api, room, owner).await;
    write_graph(
        api,
        room,
        owner,
        &editor,
        &[
            typed_node("prompt", "text-prompt", json!({"text": prompt})),
            typed_node("flux", "flux-schnell", json!({})),
        ],
        &[edge("prompt", "text", "flux", "prompt")],
    )
    .await;
    editor.close().await;
}

async fn a_full_queue_answers_429_with_the_position_it_would_have_had(backend: Backend) {
    let replicate = Replicate::start().await;
    let free = Plan { priority: 0, concurrent_runs: 1, max_queued: 2, max_run_secs: 0 };
    // No workers: runs stay queued.
    let story = story(backend, &replicate, 0, free).await;
    let (ann, ben) = (token("ann"), token("ben"));
    story.user_with_credits(&ann, 10).await;
    story.user_with_credits(&ben, 10).await;
    prompt_room(&story, &ann, "ann-room", "fox").await;
    prompt_room(&story, &ben, "ben-room", "fox").await;
    story.submit(&ben, "ben-room", "b1").await;
    story.submit(&ann, "ann-room", "a1").await;
    story.submit(&ann, "ann-room", "a2").await;
    let (status, refused) =
        story.call(Method::POST, "/api/rooms/ann-room/runs", &ann, Some(json!({})), Some("a3")).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{refused}");
    assert_eq!(refused["code"], "queue_full", "{refused}");
    assert_eq!(refused["limit"], 2, "{refused}");
    assert_eq!(refused["position"], 4, "behind Ben's run and Ann's two: {refused}");
    assert_eq!(story.balance(&ann).await, 8, "nothing held for the refused run");
    // Another user's queue is their own.
    story.submit(&ben, "ben-room", "b2").await;
    story.server.stop().await;
}

async fn no_user_runs_more_at_once_than_their_plan_allows(backend: Backend) {
    let replicate = Replicate::start().await;
    let free = Plan { priority: 0, concurrent_runs: 1, max_queued: 20, max_run_secs: 0 };
    // Four slots compete for runs; Ann's plan lets one of hers execute at a time.
    let story = story(backend, &replicate, 4, free).await;
    let (ann, ben) = (token("ann"), token("ben"));
    story.user_with_credits(&ann, 20).await;
    story.user_with_credits(&ben, 20).await;
    replicate.hold("ann's fox");
    prompt_room(&story, &ann, "ann-room", "ann's fox").await;
    prompt_room(&story, &ben, "ben-room", "ben's fox").await;
    let mut ann_runs = Vec::new();
    for n in 0..4 {
        ann_runs.push(story.submit(&ann, "ann-room", &format!("a{n}")).await);
    }
    // Ben's runs get the free slots while Ann's wait for her one.
    let ben_run = story.submit(&ben, "ben-room", "b1").await;
    story.wait_run(&ben, &ben_run, WAIT, |run| run["status"] == "succeeded").await;
    replicate.wait("Ann's first prediction", WAIT, |r| r.created("ann's fox") >= 1).await;
    let running = |queue: &serde_json::Value| {
        queue["runs"].as_array().expect("runs").iter().filter(|run| run["status"] == "running").count()
    };
    let (_, queue) = story.call(Method::GET, "/api/queue", &ann, None, None).await;
    assert_eq!(running(&queue), 1, "{queue}");
    assert_eq!(replicate.created("ann's fox"), 1, "one of Ann's runs executes: {queue}");
    // Let them through; at no point do two of hers execute.
    replicate.release("ann's fox");
    for id in &ann_runs {
        story.wait_run(&ann, id, WAIT, |run| run["status"] == "succeeded").await;
    }
    let mut spans = Vec::new();
    for id in &ann_runs {
        let (_, run) = story.call(Method::GET, &format!("/api/runs/{id}"), &ann, None, None).await;
        spans.push((
            run["startedAt"].as_i64().expect("started"),
            run["finishedAt"].as_i64().expect("finished"),
        ));
    }
    spans.sort_unstable();
    for pair in spans.windows(2) {
        assert!(pair[0].1 <= pair[1].0, "two of Ann's runs overlapped: {spans:?}");
    }
    story.server.stop().await;
}

async fn a_run_past_its_plans_max_run_time_is_cancelled_and_its_hold_released(backend: Backend) {
    let replicate = Replicate::start().await;
    let free = Plan { priority: 0, concurrent_runs: 2, max_queued: 20, max_run_secs: 1 };
    let story = story(backend, &replicate, 1, free).await;
    let ann = token("ann");
    let ann_id = story.user_with_credits(&ann, 5).await;
    // Held forever: only the plan's limit ends it.
    replicate.hold("an endless fox");
    prompt_room(&story, &ann, "ann-room", "an endless fox").await;
    let run_id = story.submit(&ann, "ann-room", "a1").await;
    assert_eq!(story.balance(&ann).await, 4, "the flux node's cost is held");
    let run = story.wait_run(&ann, &run_id, WAIT, |run| run["status"] == "cancelled").await;
    let error = run["error"].as_str().unwrap_or_default();
    assert!(error.contains("max_run_time_exceeded"), "{run}");
    assert_eq!(run["nodes"]["flux"]["hold"], "released", "{run}");
    assert_eq!(run["charged"], 0, "{run}");
    assert_eq!(story.balance(&ann).await, 5, "the hold is released");
    let ledger = story.ledger(&ann_id).await;
    let key = |suffix: &str| format!("run:{run_id}:flux:{suffix}");
    assert!(ledger.contains(&(-1, key("hold"))), "{ledger:?}");
    assert!(ledger.contains(&(1, key("release"))), "{ledger:?}");
    assert!(!ledger.iter().any(|(_, k)| *k == key("capture")), "{ledger:?}");
    story.server.stop().await;
}

async fn a_higher_plans_runs_are_claimed_first(backend: Backend) {
    let replicate = Replicate::start().await;
    let free = Plan { priority: 0, concurrent_runs: 2, max_queued: 20, max_run_secs: 0 };
    let story = story(backend, &replicate, 1, free).await;
    let (ann, ben) = (token("ann"), token("ben"));
    story.user_with_credits(&ann, 10).await;
    let ben_id = story.user_with_credits(&ben, 10).await;
    let database = dojo_store::open_database(&story.database_url).await.expect("open the database");
    dojo_records::queue(&database)
        .set_plan(&QueueOwner::User(UserId::from(ben_id.as_str())), Some("pro"))
        .await
        .expect("set the plan");
    replicate.hold("blocker");
    prompt_room(&story, &ann, "blocker-room", "blocker").await;
    prompt_room(&story, &ann, "ann-room", "ann's fox").await;
    prompt_room(&story, &ben, "ben-room", "ben's fox").await;
    let blocker = story.submit(&ann, "blocker-room", "x").await;
    replicate.wait("the blocker running", WAIT, |r| r.created("blocker") == 1).await;
    let ann_run = story.submit(&ann, "ann-room", "a1").await;
    let ben_run = story.submit(&ben, "ben-room", "b1").await;
    let (_, ben_view) = story.call(Method::GET, &format!("/api/runs/{ben_run}"), &ben, None, None).await;
    assert_eq!(ben_view["queuePosition"], 1, "pro goes first: {ben_view}");
    let (_, ann_view) = story.call(Method::GET, &format!("/api/runs/{ann_run}"), &ann, None, None).await;
    assert_eq!(ann_view["queuePosition"], 2, "{ann_view}");
    replicate.release("blocker");
    story.wait_run(&ann, &blocker, WAIT, |run| run["status"] == "succeeded").await;
    let ben_done = story.wait_run(&ben, &ben_run, WAIT, |run| run["status"] == "succeeded").await;
    let ann_done = story.wait_run(&ann, &ann_run, WAIT, |run| run["status"] == "succeeded").await;
    assert!(ben_done["startedAt"].as_i64() <= ann_done["startedAt"].as_i64(), "{ben_done} {ann_done}");
    story.server.stop().await;
}

/// Across processes: a `dojo-server` executing runs itself and a `dojo-worker`, both taking
/// runs from one Redis Stream on one PostgreSQL database (as `workers.rs`). Ann's plan lets one
/// of her runs execute at a time, whichever process claims it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_limits_hold_across_a_server_and_a_worker_process() {
    use common::database::TestDatabase;
    use common::process::ServerProcess;
    use common::redis::Redis;
    use common::runs::SECRET;
    use common::worker::WorkerProcess;
    use dojo_test_support::S3StandIn;

    let db = TestDatabase::new(Backend::Postgres).await;
    let redis = Redis::start().await;
    let s3 = S3StandIn::start().await;
    let replicate = Replicate::start().await;
    let plans = r#"{"free":{"priority":0,"concurrentRuns":1,"maxQueued":20,"maxRunSecs":0}}"#;
    let mut env: Vec<(&str, String)> = replicate.env().into_iter().collect();
    let s3_env = s3.env();
    env.extend(s3_env.iter().map(|(k, v)| (k.as_str(), v.clone())));
    env.push(("DOJO_PLANS", plans.to_owned()));
    let assets_url = s3.url("assets");
    let redis_url = redis.url();
    let server = ServerProcess::start_with_env(
        &db.url,
        &[
            "--redis-url",
            &redis_url,
            "--run-workers",
            "2",
            "--jwt-secret",
            SECRET,
            "--assets-url",
            &assets_url,
        ],
        &env,
    )
    .await;
    let mut worker_env = vec![
        ("DATABASE_URL", db.url.clone()),
        ("REDIS_URL", redis.url()),
        ("DOJO_SERVER_URL", format!("http://{}", server.addr)),
        ("DOJO_JWT_SECRET", SECRET.to_owned()),
        ("DOJO_ASSETS_URL", s3.url("assets")),
        ("DOJO_WORKER_CONCURRENCY", "2".to_owned()),
    ];
    worker_env.extend(replicate.env());
    worker_env.extend(s3_env.iter().map(|(k, v)| (k.as_str(), v.clone())));
    let mut worker = WorkerProcess::start(&worker_env).await;

    let api = RunApi::new(server.addr, &db.url);
    let (ann, ben) = (token("ann"), token("ben"));
    api.user_with_credits(&ann, 20).await;
    api.user_with_credits(&ben, 20).await;
    replicate.hold("ann's fox");
    prompt_room(&api, &ann, "ann-room", "ann's fox").await;
    prompt_room(&api, &ben, "ben-room", "ben's fox").await;
    let mut ann_runs = Vec::new();
    for n in 0..4 {
        ann_runs.push(api.submit(&ann, "ann-room", &format!("a{n}")).await);
    }
    let ben_run = api.submit(&ben, "ben-room", "b1").await;
    // Four slots in two processes: Ben's run gets one while Ann's wait for her one.
    api.wait_run(&ben, &ben_run, WAIT, |run| run["status"] == "succeeded").await;
    replicate.wait("Ann's first prediction", WAIT, |r| r.created("ann's fox") >= 1).await;
    let (_, queue) = api.call(Method::GET, "/api/queue", &ann, None, None).await;
    let running =
        queue["runs"].as_array().expect("runs").iter().filter(|run| run["status"] == "running").count();
    assert_eq!(running, 1, "{queue}");
    assert_eq!(replicate.created("ann's fox"), 1, "{queue}");
    replicate.release("ann's fox");
    let mut spans = Vec::new();
    for id in &ann_runs {
        let run = api.wait_run(&ann, id, WAIT, |run| run["status"] == "succeeded").await;
        spans.push((
            run["startedAt"].as_i64().expect("started"),
            run["finishedAt"].as_i64().expect("finished"),
        ));
    }
    spans.sort_unstable();
    for pair in spans.windows(2) {
        assert!(pair[0].1 <= pair[1].0, "two of Ann's runs overlapped: {spans:?}");
    }
    worker.terminate().await;
    server.kill();
}

dojo_test_support::each_backend_story!(
    a_full_queue_answers_429_with_the_position_it_would_have_had,
    no_user_runs_more_at_once_than_their_plan_allows,
    a_run_past_its_plans_max_run_time_is_cancelled_and_its_hold_released,
    a_higher_plans_runs_are_claimed_first,
);
