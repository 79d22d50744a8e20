//! Batches and "run from here", end to end through a real server on both databases
//! (docs/batches.md): a batch of twenty with one failing member settles each member on its own
//! and fills the node gallery; a batch is held all or nothing, cancelled with every hold
//! released, accepted once per idempotency key (concurrent retries included), refused over its bounds and when it would overflow the plan's queue; strangers
//! see no batch; "run from here" reuses the cached upstream nodes, uncharged.

mod common;

use std::collections::BTreeMap;

use common::WAIT;
use common::database::Backend;
use common::replicate::Replicate;
use common::runs::{RunApi, RunStory, join, token};
use dojo_server::plan_settings::{Plan, PlanTable};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use yrs::Transact;

async fn story(backend: Backend, replicate: &Replicate, workers: usize, max_queued: u64) -> RunStory {
    let providers = replicate.config();
    let free = Plan { priority: 0, concurrent_runs: 4, max_queued, max_run_secs: 0 };
    RunStory::start_with(backend, move |config| {
        config.executor.providers = Some(providers);
        config.executor.run_workers = workers;
        config.limits.max_queued_runs_per_user = 200;
        config.plans.plans = Some(PlanTable(BTreeMap::from([("free".to_owned(), free)])));
    })
    .await
}

/// `prompt` (text-prompt) → `flux` (Replicate, 1 credit) → `soft` (blur, free), through the
/// HTTP edits API, which the server applies before answering.
async fn graph(api: &RunApi, owner: &str, room: &str, prompt: &str) {
    api.workflow(owner, room).await;
    let ops = json!({"ops": [
        {"op": "addNode", "id": "prompt", "type": "text-prompt", "position": {"x": 0, "y": 0}, "params": {"text": prompt}},
        {"op": "addNode", "id": "flux", "type": "flux-schnell", "position": {"x": 300, "y": 0}},
        {"op": "addNode", "id": "soft", "type": "blur", "position": {"x": 600, "y": 0}, "params": {"sigma": 1}},
        {"op": "connect", "source": "prompt", "sourceHandle": "text", "target": "flux", "targetHandle": "prompt"},
        {"op": "connect", "source": "flux", "target": "soft"},
    ]});
    let (status, applied) =
        api.call(Method::POST, &format!("/api/rooms/{room}/edits"), owner, Some(ops), None).await;
    assert!(status.is_success(), "{applied}");
}

fn prompts(count: usize) -> Value {
    Value::Array((0..count).map(|i| json!(format!("fox {i}"))).collect())
}

async fn submit_batch(api: &RunApi, owner: &str, room: &str, body: Value) -> (StatusCode, Value) {
    api.call(Method::POST, &format!("/api/rooms/{room}/batches"), owner, Some(body), None).await
}

async fn wait_batch(api: &RunApi, owner: &str, id: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (status, batch) = api.call(Method::GET, &format!("/api/batches/{id}"), owner, None, None).await;
        assert_eq!(status, StatusCode::OK, "{batch}");
        if done(&batch) {
            return batch;
        }
        assert!(tokio::time::Instant::now() < deadline, "the batch never got there: {batch}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

async fn a_batch_of_twenty_with_one_failing_member_settles_each_member(backend: Backend) {
    let replicate = Replicate::start().await;
    let story = story(backend, &replicate, 2, 50).await;
    let (ann, ben) = (token("ann"), token("ben"));
    let ann_id = story.user_with_credits(&ann, 25).await;
    story.user_with_credits(&ben, 5).await;
    graph(&story, &ann, "sweep", "a fox").await;
    replicate.fail("fox 7", "NSFW content detected");

    let body =
        json!({"sweeps": [{"node": "prompt", "param": "text", "values": prompts(20)}], "targets": ["flux"]});
    let (status, accepted) = submit_batch(&story, &ann, "sweep", body).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    assert_eq!(accepted["size"], 20, "{accepted}");
    assert_eq!(accepted["estimate"], 20, "one flux credit per member: {accepted}");
    assert_eq!(story.balance(&ann).await, 5, "every member held at once");
    let id = accepted["id"].as_str().expect("a batch id").to_owned();
    assert!(id.starts_with("batch_"), "{id}");
    assert_eq!(accepted["members"][7]["params"]["prompt"]["text"], "fox 7", "{accepted}");

    let done =
        wait_batch(&story, &ann, &id, |b| b["counts"]["queued"] == 0 && b["counts"]["running"] == 0).await;
    assert_eq!(done["status"], "failed", "{done}");
    assert_eq!(done["counts"]["succeeded"], 19, "{done}");
    assert_eq!(done["counts"]["failed"], 1, "{done}");
    assert_eq!(done["charged"], 19, "{done}");
    let failed: Vec<&Value> = done["members"]
        .as_array()
        .expect("members")
        .iter()
        .filter(|m| m["run"]["status"] == "failed")
        .collect();
    assert_eq!(failed.len(), 1, "{done}");
    assert_eq!(failed[0]["index"], 7, "{done}");
    assert_eq!(story.balance(&ann).await, 25 - 19, "the failing member's hold is released");
    let ledger = story.ledger(&ann_id).await;
    let releases = ledger.iter().filter(|(_, key)| key.ends_with(":release")).count();
    let holds = ledger.iter().filter(|(_, key)| key.ends_with(":hold")).count();
    assert_eq!((holds, releases), (20, 1), "{ledger:?}");
    let sum: i64 = ledger.iter().map(|(amount, _)| amount).sum();
    assert_eq!(sum, 25 - 19, "the ledger explains the balance: {ledger:?}");
    assert_eq!(replicate.created("fox 3"), 1);

    // The room lists it; the gallery on the flux node holds the 19 new images with their sets.
    let (_, listed) = story.call(Method::GET, "/api/rooms/sweep/batches", &ann, None, None).await;
    assert_eq!(listed["batches"][0]["id"], id.as_str(), "{listed}");
    let editor = join(&story, "sweep", &ann).await;
    let filled = editor
        .wait_doc("19 images in the gallery", WAIT, |doc| {
            dojo_sync_protocol::canvas::read_gallery(&doc.transact(), "flux").len() == 19
        })
        .await;
    let gallery = dojo_sync_protocol::canvas::read_gallery(&editor.doc().transact(), "flux");
    assert!(filled.is_ok(), "the gallery holds {} entries: {gallery:?}", gallery.len());
    assert!(gallery.iter().all(|entry| entry["batchId"] == id.as_str()), "{gallery:?}");
    assert!(gallery.iter().all(|entry| entry["outputs"]["image"]["url"].is_string()), "{gallery:?}");
    assert!(!gallery.iter().any(|entry| entry["params"]["prompt"]["text"] == "fox 7"), "{gallery:?}");
    editor.close().await;

    // Someone else's batch is as invisible as someone else's run.
    for (method, path) in
        [(Method::GET, format!("/api/batches/{id}")), (Method::POST, format!("/api/batches/{id}/cancel"))]
    {
        let (status, answer) = story.call(method, &path, &ben, None, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{answer}");
    }
    let (status, _) = story.call(Method::GET, "/api/rooms/sweep/batches", &ben, None, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    story.server.stop().await;
}

async fn a_batch_is_held_whole_and_cancelled_with_every_hold_released(backend: Backend) {
    let replicate = Replicate::start().await;
    // No workers: the members stay queued.
    let story = story(backend, &replicate, 0, 50).await;
    let ann = token("ann");
    let ann_id = story.user_with_credits(&ann, 8).await;
    graph(&story, &ann, "held", "a fox").await;

    // Ten members cost ten credits; Ann has eight: nothing is held.
    let sets: Vec<Value> = (0..10).map(|i| json!({"flux": {"seed": i}})).collect();
    let (status, refused) = submit_batch(&story, &ann, "held", json!({"sets": sets})).await;
    assert_eq!(status, StatusCode::PAYMENT_REQUIRED, "{refused}");
    assert_eq!(refused["code"], "insufficient_credits", "{refused}");
    assert_eq!(refused["cost"], 10, "the whole batch's cost: {refused}");
    assert_eq!(refused["balance"], 8, "{refused}");
    assert_eq!(story.balance(&ann).await, 8);
    let (_, listed) = story.call(Method::GET, "/api/rooms/held/batches", &ann, None, None).await;
    assert_eq!(listed["batches"], json!([]), "{listed}");
    let (_, runs) = story.call(Method::GET, "/api/rooms/held/runs", &ann, None, None).await;
    assert_eq!(runs["runs"], json!([]), "no member was accepted: {runs}");

    // Submitted with an idempotency key, three times at once and once more after (a client
    // retrying a lost answer): one batch, held once.
    let sets: Vec<Value> = (0..6).map(|i| json!({"flux": {"seed": i}})).collect();
    let body = json!({"sets": sets});
    let submit =
        || story.call(Method::POST, "/api/rooms/held/batches", &ann, Some(body.clone()), Some("sweep-1"));
    let answers = futures_util::future::join_all([submit(), submit(), submit()]).await;
    let (status, accepted) = answers[0].clone();
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    assert_eq!(accepted["status"], "queued", "{accepted}");
    let id = accepted["id"].as_str().expect("id");
    for (status, again) in answers.iter().skip(1).cloned().chain([submit().await]) {
        assert_eq!(status, StatusCode::ACCEPTED, "{again}");
        assert_eq!(again["id"], id, "one key, one batch: {again}");
        assert_eq!(again["members"].as_array().map(Vec::len), Some(6), "{again}");
    }
    assert_eq!(story.balance(&ann).await, 2, "held once");
    let (_, listed) = story.call(Method::GET, "/api/rooms/held/batches", &ann, None, None).await;
    assert_eq!(listed["batches"].as_array().map(Vec::len), Some(1), "{listed}");
    let (status, cancelled) =
        story.call(Method::POST, &format!("/api/batches/{id}/cancel"), &ann, None, None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{cancelled}");
    assert_eq!(cancelled["status"], "cancelled", "{cancelled}");
    assert_eq!(cancelled["counts"]["cancelled"], 6, "{cancelled}");
    assert_eq!(story.balance(&ann).await, 8, "every hold released");
    let ledger = story.ledger(&ann_id).await;
    assert_eq!(ledger.iter().filter(|(_, key)| key.ends_with(":release")).count(), 6, "{ledger:?}");
    for member in cancelled["members"].as_array().expect("members") {
        let run_id = member["run"]["id"].as_str().expect("run id");
        let (_, run) = story.call(Method::GET, &format!("/api/runs/{run_id}"), &ann, None, None).await;
        assert_eq!(run["nodes"]["flux"]["hold"], "released", "{run}");
    }
    story.server.stop().await;
}

async fn batches_over_the_bounds_or_the_queue_are_refused(backend: Backend) {
    let replicate = Replicate::start().await;
    let story = story(backend, &replicate, 0, 5).await;
    let ann = token("ann");
    story.user_with_credits(&ann, 500).await;
    graph(&story, &ann, "bounds", "a fox").await;
    let refused = |body: Value, status: StatusCode, code: &'static str| {
        let (story, ann) = (&story, &ann);
        async move {
            let (got, answer) = submit_batch(story, ann, "bounds", body).await;
            assert_eq!(got, status, "{answer}");
            assert_eq!(answer["code"], code, "{answer}");
            answer
        }
    };
    let many: Vec<Value> = (0..101).map(|i| json!({"flux": {"seed": i}})).collect();
    refused(json!({"sets": many}), StatusCode::UNPROCESSABLE_ENTITY, "batch_too_large").await;
    let eleven: Vec<i64> = (0..11).collect();
    let grid = json!({"sweeps": [
        {"node": "flux", "param": "seed", "values": eleven},
        {"node": "prompt", "param": "text", "values": prompts(11)},
    ]});
    refused(grid, StatusCode::UNPROCESSABLE_ENTITY, "batch_too_large").await;
    let huge = json!({"sets": [{"prompt": {"text": "x".repeat(20_000)}}]});
    refused(huge, StatusCode::UNPROCESSABLE_ENTITY, "batch_too_large").await;
    refused(json!({"sets": []}), StatusCode::UNPROCESSABLE_ENTITY, "invalid_batch").await;
    refused(json!({"sets": [{"ghost": {"seed": 1}}]}), StatusCode::UNPROCESSABLE_ENTITY, "invalid_batch")
        .await;
    refused(json!({"sets": [{"flux": {"colour": 1}}]}), StatusCode::UNPROCESSABLE_ENTITY, "invalid_batch")
        .await;
    let wrong = refused(
        json!({"sets": [{"flux": {"seed": 1}}, {"flux": {"seed": "one"}}]}),
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_graph",
    )
    .await;
    assert_eq!(wrong["member"], 1, "{wrong}");
    refused(
        json!({"sets": [{}], "targets": ["flux"], "from": "prompt"}),
        StatusCode::BAD_REQUEST,
        "bad_request",
    )
    .await;
    assert_eq!(story.balance(&ann).await, 500, "nothing was held for a refused batch");

    // The plan queues five runs: one queued already, a batch of five would make six.
    story.submit(&ann, "bounds", "single").await;
    let sets: Vec<Value> = (0..5).map(|i| json!({"flux": {"seed": i}})).collect();
    let full = refused(json!({"sets": sets}), StatusCode::TOO_MANY_REQUESTS, "queue_full").await;
    assert_eq!(full["limit"], 5, "{full}");
    assert_eq!(story.balance(&ann).await, 499, "only the single run holds");
    let sets: Vec<Value> = (0..4).map(|i| json!({"flux": {"seed": i}})).collect();
    let (status, accepted) = submit_batch(&story, &ann, "bounds", json!({"sets": sets})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "four fit: {accepted}");
    story.server.stop().await;
}

async fn run_from_here_reuses_the_cached_upstream_nodes_uncharged(backend: Backend) {
    let replicate = Replicate::start().await;
    let story = story(backend, &replicate, 1, 50).await;
    let ann = token("ann");
    story.user_with_credits(&ann, 10).await;
    graph(&story, &ann, "chain", "a cached fox").await;
    let first = story.submit(&ann, "chain", "first").await;
    story.wait_run(&ann, &first, WAIT, |run| run["status"] == "succeeded").await;
    assert_eq!(replicate.created("a cached fox"), 1);
    assert_eq!(story.balance(&ann).await, 9);

    // A new sigma downstream, then "run from here" on the blur.
    let edit = json!({"ops": [{"op": "setParam", "node": "soft", "name": "sigma", "value": 3}]});
    let (status, applied) = story.call(Method::POST, "/api/rooms/chain/edits", &ann, Some(edit), None).await;
    assert!(status.is_success(), "{applied}");
    let (status, accepted) =
        story.call(Method::POST, "/api/rooms/chain/runs", &ann, Some(json!({"from": "soft"})), None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    let id = accepted["runId"].as_str().expect("run id");
    let run = story.wait_run(&ann, id, WAIT, |run| run["status"] == "succeeded").await;
    assert_eq!(run["targets"], json!(["soft"]), "{run}");
    assert_eq!(run["nodes"]["flux"]["state"], "cached", "{run}");
    assert_eq!(run["nodes"]["flux"]["charged"], 0, "{run}");
    assert_eq!(run["nodes"]["flux"]["hold"], "released", "{run}");
    assert_eq!(run["nodes"]["soft"]["state"], "succeeded", "{run}");
    assert_eq!(run["charged"], 0, "{run}");
    assert_eq!(replicate.created("a cached fox"), 1, "no second prediction upstream");
    assert_eq!(story.balance(&ann).await, 9, "nothing charged for the cached upstream");

    // From the prompt: everything downstream of it is planned.
    let (status, accepted) =
        story.call(Method::POST, "/api/rooms/chain/runs", &ann, Some(json!({"from": "prompt"})), None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    let id = accepted["runId"].as_str().expect("run id");
    let run = story.wait_run(&ann, id, WAIT, |run| run["status"] == "succeeded").await;
    assert_eq!(run["targets"], json!(["flux", "prompt", "soft"]), "{run}");

    for (body, status, code) in [
        (json!({"from": "ghost"}), StatusCode::UNPROCESSABLE_ENTITY, "unknown_target"),
        (json!({"from": "soft", "targets": ["flux"]}), StatusCode::BAD_REQUEST, "bad_request"),
    ] {
        let (got, answer) = story.call(Method::POST, "/api/rooms/chain/runs", &ann, Some(body), None).await;
        assert_eq!(got, status, "{answer}");
        assert_eq!(answer["code"], code, "{answer}");
    }
    story.server.stop().await;
}

dojo_test_support::each_backend_story!(
    a_batch_of_twenty_with_one_failing_member_settles_each_member,
    a_batch_is_held_whole_and_cancelled_with_every_hold_released,
    batches_over_the_bounds_or_the_queue_are_refused,
    run_from_here_reuses_the_cached_upstream_nodes_uncharged,
);
