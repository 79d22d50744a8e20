//! The visible, controllable run queue, end to end through a real server: positions under
//! concurrent submission, pausing and resuming a queue, moving a run to the front, and who may
//! do which (docs/queue.md). Provider nodes run against the local Replicate stand-in, whose
//! held prompts keep a run executing until the story releases them.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::WAIT;
use common::database::Backend;
use common::replicate::Replicate;
use common::runs::{RunApi, RunStory, edge, join, token, typed_node, write_graph};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// A server with `workers` run slots, executing against `replicate`.
async fn story(backend: Backend, replicate: &Replicate, workers: usize) -> RunStory {
    let providers = replicate.config();
    RunStory::start_with(backend, move |config| {
        config.executor.providers = Some(providers);
        config.executor.run_workers = workers;
    })
    .await
}

/// A workflow in `room` owned by `owner` whose graph generates an image from `prompt`.
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

async fn queue_of(api: &RunApi, token: &str) -> Value {
    let (status, queue) = api.call(Method::GET, "/api/queue", token, None, None).await;
    assert_eq!(status, StatusCode::OK, "{queue}");
    queue
}

/// Run id → position of every queued run in the queues of `tokens`.
async fn positions(api: &RunApi, tokens: &[&str]) -> BTreeMap<String, i64> {
    let mut out = BTreeMap::new();
    for token in tokens {
        let queue = queue_of(api, token).await;
        for run in queue["runs"].as_array().expect("runs") {
            if run["status"] == "queued" {
                let position = run["queuePosition"].as_i64().expect("a queued run has a position");
                out.insert(run["id"].as_str().expect("id").to_owned(), position);
            } else {
                assert!(run["queuePosition"].is_null(), "only queued runs have a position: {run}");
            }
        }
    }
    out
}

/// Polls until `done` holds for the positions (at most WAIT).
async fn wait_positions(
    api: &RunApi,
    tokens: &[&str],
    what: &str,
    done: impl Fn(&BTreeMap<String, i64>) -> bool,
) -> BTreeMap<String, i64> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let now = positions(api, tokens).await;
        if done(&now) {
            return now;
        }
        assert!(tokio::time::Instant::now() < deadline, "{what}: never got there: {now:?}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// The positions are exactly 1..=n: distinct and without gaps.
fn consistent(positions: &BTreeMap<String, i64>) -> bool {
    let set: BTreeSet<i64> = positions.values().copied().collect();
    set.len() == positions.len() && set.iter().copied().eq(1..=i64::try_from(set.len()).unwrap_or(0))
}

async fn positions_under_concurrent_submission_are_distinct_and_drop_as_runs_are_claimed(backend: Backend) {
    let replicate = Replicate::start().await;
    let story = story(backend, &replicate, 1).await;
    let people = [token("ann"), token("ben"), token("cat")];
    let mut rooms = Vec::new();
    for (i, person) in people.iter().enumerate() {
        story.user_with_credits(person, 100).await;
        let prompt = format!("held prompt {i}");
        replicate.hold(&prompt);
        let room = format!("queue-room-{i}");
        prompt_room(&story, person, &room, &prompt).await;
        rooms.push((person.clone(), room, prompt));
    }
    // Nine runs at once, three per person.
    let api = &story.api;
    let mut submissions = Vec::new();
    for (person, room, _) in &rooms {
        for n in 0..3 {
            submissions.push(async move {
                let id = api.submit(person, room, &format!("{room}-{n}")).await;
                (id, person.clone())
            });
        }
    }
    let ids: Vec<(String, String)> = futures_util::future::join_all(submissions).await;
    assert_eq!(ids.iter().map(|(id, _)| id).collect::<BTreeSet<_>>().len(), 9);
    let tokens: Vec<&str> = people.iter().map(String::as_str).collect();
    // One slot: one run executes (held), eight wait, numbered 1 to 8.
    let first = wait_positions(&story, &tokens, "eight queued", |p| p.len() == 8 && consistent(p)).await;
    // Releasing the prompt of whoever's run executes lets it (and later their other runs)
    // through; every position only drops and the rest stay numbered 1..n.
    let mut before = first;
    while !before.is_empty() {
        let mut running = None;
        for (person, _, prompt) in &rooms {
            let queue = queue_of(&story, person).await;
            if queue["runs"].as_array().expect("runs").iter().any(|run| run["status"] == "running") {
                running = Some(prompt.clone());
            }
        }
        if let Some(prompt) = running {
            replicate.release(&prompt);
        }
        let count = before.len();
        let after =
            wait_positions(&story, &tokens, "runs claimed", |p| p.len() < count && consistent(p)).await;
        for (id, position) in &after {
            assert!(position <= &before[id], "{id} went back: {before:?} → {after:?}");
        }
        before = after;
    }
    for (id, owner) in &ids {
        let run = story.wait_run(owner, id, WAIT, |run| run["status"] == "succeeded").await;
        assert!(run["queuePosition"].is_null(), "{run}");
    }
    story.server.stop().await;
}

async fn a_paused_queue_waits_while_others_run_and_resume_lets_it_run(backend: Backend) {
    let replicate = Replicate::start().await;
    let story = story(backend, &replicate, 1).await;
    let (ann, ben) = (token("ann"), token("ben"));
    story.user_with_credits(&ann, 10).await;
    story.user_with_credits(&ben, 10).await;
    prompt_room(&story, &ann, "ann-room", "ann's fox").await;
    prompt_room(&story, &ben, "ben-room", "ben's fox").await;

    let (status, paused) = story.call(Method::POST, "/api/queue/pause", &ann, None, None).await;
    assert_eq!((status, &paused["paused"]), (StatusCode::OK, &json!(true)), "{paused}");
    let ann_run = story.submit(&ann, "ann-room", "a1").await;
    let ben_run = story.submit(&ben, "ben-room", "b1").await;
    // Ben's run, submitted after Ann's, runs to the end while Ann's queue is paused.
    story.wait_run(&ben, &ben_run, WAIT, |run| run["status"] == "succeeded").await;
    let (_, run) = story.call(Method::GET, &format!("/api/runs/{ann_run}"), &ann, None, None).await;
    assert_eq!(run["status"], "queued", "{run}");
    assert_eq!(run["startedAt"], Value::Null, "never claimed: {run}");
    assert_eq!(replicate.created("ann's fox"), 0);
    let queue = queue_of(&story, &ann).await;
    assert_eq!(queue["paused"], true, "{queue}");

    let (status, resumed) = story.call(Method::POST, "/api/queue/resume", &ann, None, None).await;
    assert_eq!((status, &resumed["paused"]), (StatusCode::OK, &json!(false)), "{resumed}");
    story.wait_run(&ann, &ann_run, WAIT, |run| run["status"] == "succeeded").await;
    assert_eq!(replicate.created("ann's fox"), 1);
    story.server.stop().await;
}

async fn a_run_moved_to_the_front_is_claimed_before_its_peers(backend: Backend) {
    let replicate = Replicate::start().await;
    let story = story(backend, &replicate, 1).await;
    let (ann, ben) = (token("ann"), token("ben"));
    story.user_with_credits(&ann, 10).await;
    story.user_with_credits(&ben, 10).await;
    replicate.hold("blocker");
    prompt_room(&story, &ben, "ben-room", "blocker").await;
    prompt_room(&story, &ann, "ann-room", "ann's fox").await;
    // Ben's held run takes the only slot; Ann's three wait behind it.
    let blocker = story.submit(&ben, "ben-room", "b1").await;
    replicate.wait("the blocker running", WAIT, |r| r.created("blocker") == 1).await;
    let mut ann_runs = Vec::new();
    for n in 0..3 {
        ann_runs.push(story.submit(&ann, "ann-room", &format!("a{n}")).await);
    }
    let last = ann_runs[2].clone();
    let (_, before) = story.call(Method::GET, &format!("/api/runs/{last}"), &ann, None, None).await;
    assert_eq!(before["queuePosition"], 3, "{before}");
    let (status, moved) =
        story.call(Method::POST, &format!("/api/runs/{last}/move-to-front"), &ann, None, None).await;
    assert_eq!(status, StatusCode::OK, "{moved}");
    assert_eq!(moved["queuePosition"], 1, "{moved}");
    let (_, first) = story.call(Method::GET, &format!("/api/runs/{}", ann_runs[0]), &ann, None, None).await;
    assert_eq!(first["queuePosition"], 2, "{first}");
    // The room's run summaries show the new order to everyone watching.
    let watcher = join(&story, "ann-room", &ann).await;
    watcher
        .wait_doc("positions in the run summaries", WAIT, |doc| {
            summary_of(doc, &last)["queuePosition"] == 1
                && summary_of(doc, &ann_runs[0])["queuePosition"] == 2
        })
        .await
        .expect("the summaries carry the positions");

    replicate.release("blocker");
    story.wait_run(&ben, &blocker, WAIT, |run| run["status"] == "succeeded").await;
    let mut started = Vec::new();
    for id in &ann_runs {
        let run = story.wait_run(&ann, id, WAIT, |run| run["status"] == "succeeded").await;
        started.push(run["startedAt"].as_i64().expect("started"));
    }
    // Claimed and finished: the summaries no longer carry a position.
    watcher
        .wait_doc("the summaries final", WAIT, |doc| {
            ann_runs.iter().all(|id| {
                summary_of(doc, id)["status"] == "succeeded" && summary_of(doc, id)["queuePosition"].is_null()
            })
        })
        .await
        .expect("the final summaries");
    watcher.close().await;
    assert!(started[2] <= started[0] && started[2] <= started[1], "the moved run started first: {started:?}");
    // A finished run cannot move.
    let (status, refused) =
        story.call(Method::POST, &format!("/api/runs/{last}/move-to-front"), &ann, None, None).await;
    assert_eq!((status, refused["code"].as_str()), (StatusCode::CONFLICT, Some("not_queued")), "{refused}");
    story.server.stop().await;
}

/// The run's summary in the room's `runs` map.
fn summary_of(doc: &yrs::Doc, run: &str) -> Value {
    use yrs::types::ToJson;
    use yrs::{Map, ReadTxn, Transact};
    let txn = doc.transact();
    let Some(runs) = txn.get_map("runs") else { return Value::Null };
    runs.get(&txn, run)
        .map_or(Value::Null, |summary| serde_json::to_value(summary.to_json(&txn)).unwrap_or(Value::Null))
}

async fn nobody_moves_cancels_or_pauses_another_users_runs(backend: Backend) {
    let replicate = Replicate::start().await;
    // No workers: every run stays queued. `root` is a queue admin.
    let providers = replicate.config();
    let story = RunStory::start_with(backend, move |config| {
        config.executor.providers = Some(providers);
        config.executor.run_workers = 0;
        config.plans.queue_admins = vec!["root".into()];
    })
    .await;
    let (ann, mallory) = (token("ann"), token("mallory"));
    story.user_with_credits(&ann, 10).await;
    story.user_with_credits(&mallory, 10).await;
    prompt_room(&story, &ann, "ann-room", "ann's fox").await;
    let run = story.submit(&ann, "ann-room", "a1").await;

    for path in [format!("/api/runs/{run}/move-to-front"), format!("/api/runs/{run}/cancel")] {
        let (status, refused) = story.call(Method::POST, &path, &mallory, None, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {refused}");
    }
    // Mallory's pause is her own queue's; Ann's queue and run are untouched.
    let (status, _) = story.call(Method::POST, "/api/queue/pause", &mallory, None, None).await;
    assert_eq!(status, StatusCode::OK);
    let queue = queue_of(&story, &ann).await;
    assert_eq!(queue["paused"], false, "{queue}");
    assert_eq!(queue["runs"][0]["id"], run.as_str(), "{queue}");
    assert_eq!(queue["runs"][0]["queuePosition"], 1, "{queue}");
    // Mallory's queue lists none of Ann's runs.
    let theirs = queue_of(&story, &mallory).await;
    assert_eq!(theirs["runs"], json!([]), "{theirs}");
    // Nor a team's she is not in.
    let (status, _) = story.call(Method::GET, "/api/queue?team=team_nope", &mallory, None, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) =
        story.call(Method::POST, "/api/teams/team_nope/queue/pause", &mallory, None, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Without a token, nothing.
    let anonymous = story.http.get(story.http_url("/api/queue")).send().await.expect("GET");
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    // A queue admin may move anyone's run, in a room they cannot read too.
    let (status, moved) =
        story.call(Method::POST, &format!("/api/runs/{run}/move-to-front"), &token("root"), None, None).await;
    assert_eq!(status, StatusCode::OK, "{moved}");
    assert_eq!(moved["queuePosition"], 1, "{moved}");
    // Ann's run is still queued and still hers to cancel.
    let (status, cancelled) =
        story.call(Method::POST, &format!("/api/runs/{run}/cancel"), &ann, None, None).await;
    assert!(status.is_success(), "{cancelled}");
    assert_eq!(cancelled["status"], "cancelled", "{cancelled}");
    story.server.stop().await;
}

dojo_test_support::each_backend_story!(
    positions_under_concurrent_submission_are_distinct_and_drop_as_runs_are_claimed,
    a_paused_queue_waits_while_others_run_and_resume_lets_it_run,
    a_run_moved_to_the_front_is_claimed_before_its_peers,
    nobody_moves_cancels_or_pauses_another_users_runs,
);
