//! The agents' job queue (issue 23) over the real API, on SQLite and PostgreSQL: only staff use
//! it (a signed-in user, even a team owner, is refused on every route); jobs are claimed by type
//! in priority order, once each however many workers claim at the same time; a worker that
//! dies mid-job (stops heartbeating) loses it when its lease runs out, another claims it as a
//! new attempt, and the dead worker's late answer is refused (`lease_lost`); failures are
//! retried after a backoff and end as `failed` after the last attempt; schedules enqueue one job
//! per slot; and every change is in the audit log. The support agent on it: a ticket with a
//! canvas attached gets a draft (the language model's, or the template's without one) naming
//! what failed in the canvas, staff answer, and the asker sees the answer and never the draft.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::WAIT;
use common::database::Backend;
use common::replicate::Replicate;
use common::runs::{edge, join, typed_node, write_graph};
use common::teams::{TeamWorld, person};
use dojo_ids::UserId;
use dojo_records::StaffRole;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use wiremock::matchers::{body_string_contains, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

dojo_test_support::each_backend_story!(
    only_staff_use_the_queue_and_claims_follow_priority_once_each,
    a_dead_workers_job_is_claimed_again_and_its_late_answer_refused,
    failures_back_off_then_fail_for_good,
    schedules_enqueue_one_job_per_slot_and_admins_alone_set_them,
    a_ticket_gets_a_template_draft_naming_the_failed_node_and_the_asker_sees_only_the_answer,
);

/// A world whose schedules tick every 100 ms, with the support agent alone in-process (the
/// stories claim `fraud.scan` jobs themselves; `fraud_agent.rs` tests the fraud agent).
async fn world(backend: Backend) -> TeamWorld {
    TeamWorld::start(backend, |config| {
        config.agents.schedule_tick_ms = 100;
        config.agents.agents = "support".into();
    })
    .await
}

/// `token`'s user made `role` (as `dojo-server admin grant-staff` does).
async fn grant(world: &TeamWorld, token: &str, role: Option<StaffRole>) -> String {
    let id = world.user_id(token).await;
    let database = dojo_store::open_database(&world.story.api.database_url).await.expect("open");
    dojo_records::jobs(&database)
        .set_staff_role(&UserId::from(id.as_str()), role, "test")
        .await
        .expect("grant");
    id
}

async fn enqueue(world: &TeamWorld, token: &str, body: Value) -> Value {
    let (status, job) = world.call(Method::POST, "/api/agent-jobs", token, Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{job}");
    job
}

async fn claim(
    world: &TeamWorld,
    token: &str,
    types: &[&str],
    worker: &str,
    lease_secs: u32,
) -> Option<Value> {
    let body = json!({"types": types, "worker": worker, "leaseSecs": lease_secs});
    let (status, job) = world.call(Method::POST, "/api/agent-jobs/claim", token, Some(body)).await;
    match status {
        StatusCode::OK => Some(job),
        StatusCode::NO_CONTENT => None,
        other => panic!("claim answered {other}: {job}"),
    }
}

/// Server-wide audit actions about `target`, oldest first.
async fn audit_actions(world: &TeamWorld, target: &str) -> Vec<String> {
    let database = dojo_store::open_database(&world.story.api.database_url).await.expect("open");
    let sql = "SELECT action FROM audit_log WHERE team_id IS NULL AND target_id = $1 ORDER BY seq";
    match &database {
        dojo_store::Database::Postgres(store) => {
            sqlx::query_scalar(sql).bind(target).fetch_all(store.pool()).await.expect("audit")
        }
        dojo_store::Database::Sqlite(store) => {
            sqlx::query_scalar(sql).bind(target).fetch_all(store.pool()).await.expect("audit")
        }
    }
}

async fn only_staff_use_the_queue_and_claims_follow_priority_once_each(backend: Backend) {
    let world = world(backend).await;
    let (sam, olga) = (person("sam-staff"), person("olga-owner"));
    grant(&world, &sam, Some(StaffRole::Staff)).await;
    // Olga owns a team: that gives her nothing here.
    world.team(&olga, "Olga's").await;
    // The profile says who is staff (the editor shows them its staff screen).
    for (token, role) in [(&sam, json!("staff")), (&olga, Value::Null)] {
        let (status, me) = world.call(Method::GET, "/api/me", token, None).await;
        assert_eq!((status, &me["staffRole"]), (StatusCode::OK, &role), "{me}");
    }

    let job = enqueue(&world, &sam, json!({"type": "fraud.scan", "payload": {"user": "u1"}})).await;
    let id = job["id"].as_str().expect("id").to_owned();
    assert_eq!((job["status"].as_str(), job["attempts"].as_u64()), (Some("queued"), Some(0)), "{job}");
    let refusals = [
        (Method::GET, "/api/agent-jobs".to_owned(), None),
        (Method::POST, "/api/agent-jobs".to_owned(), Some(json!({"type": "x"}))),
        (Method::GET, format!("/api/agent-jobs/{id}"), None),
        (
            Method::POST,
            "/api/agent-jobs/claim".to_owned(),
            Some(json!({"types": ["fraud.scan"], "worker": "w"})),
        ),
        (Method::POST, format!("/api/agent-jobs/{id}/heartbeat"), Some(json!({"worker": "w"}))),
        (Method::POST, format!("/api/agent-jobs/{id}/complete"), Some(json!({"worker": "w"}))),
        (Method::POST, format!("/api/agent-jobs/{id}/fail"), Some(json!({"worker": "w", "error": "e"}))),
        (Method::GET, "/api/agent-schedules".to_owned(), None),
        (Method::PUT, "/api/agent-schedules/s".to_owned(), Some(json!({"cron": "* * * * *", "type": "x"}))),
        (Method::DELETE, "/api/agent-schedules/s".to_owned(), None),
    ];
    for (method, path, body) in refusals {
        world
            .expect(
                "a non-staff user",
                method,
                &path,
                &olga,
                body,
                (StatusCode::FORBIDDEN, Some("forbidden")),
            )
            .await;
    }
    // Staff may not set schedules: that is for admins.
    let path = "/api/agent-schedules/nightly";
    let body = Some(json!({"cron": "0 3 * * *", "type": "workflow.review"}));
    world.expect("staff", Method::PUT, path, &sam, body, (StatusCode::FORBIDDEN, Some("forbidden"))).await;

    // An idempotency key gives one job.
    let keyed = json!({"type": "support.draft", "idempotencyKey": "ticket-7", "priority": 1});
    let first = enqueue(&world, &sam, keyed.clone()).await;
    let (status, again) = world.call(Method::POST, "/api/agent-jobs", &sam, Some(keyed)).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["id"], first["id"]);
    // Bad input is refused with reasons.
    for (body, what) in [
        (json!({"type": "has space"}), "type"),
        (json!({"type": "t", "maxAttempts": 0}), "maxAttempts"),
        (json!({"type": "t", "payload": "x".repeat(70_000)}), "payload"),
    ] {
        let answer = world
            .expect(
                "staff",
                Method::POST,
                "/api/agent-jobs",
                &sam,
                Some(body),
                (StatusCode::BAD_REQUEST, None),
            )
            .await;
        assert!(answer["error"].as_str().is_some_and(|e| e.contains(what)), "{what}: {answer}");
    }
    let body = Some(json!({"types": ["t"], "worker": "w", "leaseSecs": 0}));
    world
        .expect("staff", Method::POST, "/api/agent-jobs/claim", &sam, body, (StatusCode::BAD_REQUEST, None))
        .await;

    // Priority first, then age; other types are not touched.
    let low = enqueue(&world, &sam, json!({"type": "support.draft", "priority": 0})).await;
    let high = enqueue(&world, &sam, json!({"type": "support.draft", "priority": 5})).await;
    let order: Vec<Value> = [
        claim(&world, &sam, &["support.draft"], "w1", 60).await,
        claim(&world, &sam, &["support.draft"], "w1", 60).await,
        claim(&world, &sam, &["support.draft"], "w1", 60).await,
    ]
    .into_iter()
    .map(|job| job.expect("a job")["id"].clone())
    .collect();
    assert_eq!(order, vec![high["id"].clone(), first["id"].clone(), low["id"].clone()]);
    assert!(claim(&world, &sam, &["support.draft"], "w1", 60).await.is_none(), "drained");

    // Twenty jobs, four workers claiming at once: each job is claimed exactly once.
    for i in 0..20 {
        enqueue(&world, &sam, json!({"type": "bulk", "payload": {"i": i}})).await;
    }
    let workers = (0..4).map(|w| {
        let (world, sam) = (&world, &sam);
        async move {
            let mut mine = Vec::new();
            while let Some(job) = claim(world, sam, &["bulk"], &format!("worker-{w}"), 60).await {
                mine.push(job["id"].as_str().expect("id").to_owned());
            }
            mine
        }
    });
    let claimed: Vec<String> = futures_util::future::join_all(workers).await.into_iter().flatten().collect();
    let distinct: BTreeSet<&String> = claimed.iter().collect();
    assert_eq!((claimed.len(), distinct.len()), (20, 20), "{claimed:?}");

    // The original job: claimed, completed, listed with its result; audited.
    let got = claim(&world, &sam, &["fraud.scan"], "w2", 60).await.expect("the fraud job");
    assert_eq!(got["id"], id.as_str());
    let path = format!("/api/agent-jobs/{id}/complete");
    let (status, done) = world
        .call(Method::POST, &path, &sam, Some(json!({"worker": "w2", "result": {"flagged": false}})))
        .await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!((done["status"].as_str(), &done["result"]), (Some("succeeded"), &json!({"flagged": false})));
    let (status, page) = world.call(Method::GET, "/api/agent-jobs?status=succeeded", &sam, None).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let listed: Vec<&str> =
        page["jobs"].as_array().expect("jobs").iter().filter_map(|j| j["id"].as_str()).collect();
    assert_eq!(listed, vec![id.as_str()], "{page}");
    let running =
        page["counts"].as_array().expect("counts").iter().find(|c| c["status"] == "running").cloned();
    assert_eq!(running.map(|c| c["count"].clone()), Some(json!(23)), "{page}");
    assert_eq!(audit_actions(&world, &id).await, ["job.enqueued", "job.claimed", "job.succeeded"]);
    // Paging by cursor walks every job once.
    let mut seen = BTreeSet::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(cursor) => format!("/api/agent-jobs?limit=7&cursor={cursor}"),
            None => "/api/agent-jobs?limit=7".to_owned(),
        };
        let (status, page) = world.call(Method::GET, &path, &sam, None).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        for job in page["jobs"].as_array().expect("jobs") {
            assert!(seen.insert(job["id"].as_str().expect("id").to_owned()), "listed twice: {job}");
        }
        match page["nextCursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 24, "every job once");
}

async fn a_dead_workers_job_is_claimed_again_and_its_late_answer_refused(backend: Backend) {
    let world = world(backend).await;
    let sam = person("sam-staff");
    grant(&world, &sam, Some(StaffRole::Staff)).await;
    let job = enqueue(&world, &sam, json!({"type": "support.draft", "maxAttempts": 3})).await;
    let id = job["id"].as_str().expect("id").to_owned();

    // The first worker claims for a second, heartbeats once, then dies (goes silent).
    let first = claim(&world, &sam, &["support.draft"], "doomed", 1).await.expect("claimed");
    assert_eq!((first["attempts"].as_u64(), first["leaseOwner"].as_str()), (Some(1), Some("doomed")));
    let path = format!("/api/agent-jobs/{id}/heartbeat");
    let (status, beat) =
        world.call(Method::POST, &path, &sam, Some(json!({"worker": "doomed", "leaseSecs": 1}))).await;
    assert_eq!(status, StatusCode::OK, "{beat}");
    // Another worker's heartbeat for it is refused.
    let body = Some(json!({"worker": "other"}));
    world
        .expect("not the holder", Method::POST, &path, &sam, body, (StatusCode::CONFLICT, Some("lease_lost")))
        .await;
    assert!(claim(&world, &sam, &["support.draft"], "survivor", 60).await.is_none(), "leased: not claimable");

    // After the lease, the survivor takes it as attempt 2.
    let deadline = tokio::time::Instant::now() + WAIT;
    let taken = loop {
        if let Some(job) = claim(&world, &sam, &["support.draft"], "survivor", 60).await {
            break job;
        }
        assert!(tokio::time::Instant::now() < deadline, "the lease never ran out");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!((taken["id"].as_str(), taken["attempts"].as_u64()), (Some(id.as_str()), Some(2)), "{taken}");
    // The dead worker comes back: its answer is not recorded.
    let path = format!("/api/agent-jobs/{id}/complete");
    let body = Some(json!({"worker": "doomed", "result": {"stale": true}}));
    world
        .expect("the old holder", Method::POST, &path, &sam, body, (StatusCode::CONFLICT, Some("lease_lost")))
        .await;
    let (status, done) = world
        .call(Method::POST, &path, &sam, Some(json!({"worker": "survivor", "result": {"draft": "hi"}})))
        .await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(done["result"], json!({"draft": "hi"}));
    let body = Some(json!({"worker": "survivor"}));
    world
        .expect("an ended job", Method::POST, &path, &sam, body, (StatusCode::CONFLICT, Some("lease_lost")))
        .await;
    let missing = "/api/agent-jobs/job_000000000000000000000000/complete";
    let body = Some(json!({"worker": "survivor"}));
    world
        .expect("no such job", Method::POST, missing, &sam, body, (StatusCode::NOT_FOUND, Some("not_found")))
        .await;

    // A job whose lease runs out on its last attempt fails for good instead of running again.
    let once = enqueue(&world, &sam, json!({"type": "once", "maxAttempts": 1})).await;
    claim(&world, &sam, &["once"], "doomed", 1).await.expect("claimed");
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    assert!(claim(&world, &sam, &["once"], "survivor", 60).await.is_none(), "not claimed a second time");
    let (_, after) = world
        .call(Method::GET, &format!("/api/agent-jobs/{}", once["id"].as_str().expect("id")), &sam, None)
        .await;
    assert_eq!(after["status"], "failed", "{after}");
    assert!(after["lastError"].as_str().is_some_and(|e| e.contains("lease expired")), "{after}");
}

async fn failures_back_off_then_fail_for_good(backend: Backend) {
    let world = world(backend).await;
    let sam = person("sam-staff");
    grant(&world, &sam, Some(StaffRole::Staff)).await;
    let job = enqueue(&world, &sam, json!({"type": "reengage", "maxAttempts": 2})).await;
    let id = job["id"].as_str().expect("id").to_owned();
    let fail = |worker: &'static str, retry: Option<u32>| {
        let (world, sam, id) = (&world, &sam, id.clone());
        async move {
            let mut body = json!({"worker": worker, "error": "the sender answered 502"});
            if let Some(secs) = retry {
                body["retryInSecs"] = json!(secs);
            }
            let (status, job) =
                world.call(Method::POST, &format!("/api/agent-jobs/{id}/fail"), sam, Some(body)).await;
            assert_eq!(status, StatusCode::OK, "{job}");
            job
        }
    };
    claim(&world, &sam, &["reengage"], "w", 60).await.expect("claimed");
    let before = dojo_server_millis();
    let retried = fail("w", None).await;
    assert_eq!(retried["status"], "queued", "{retried}");
    assert_eq!(retried["lastError"], "the sender answered 502");
    let wait = retried["runAfter"].as_i64().expect("runAfter") - before;
    assert!((1_500..=3_000).contains(&wait), "the first retry waits about 2 s: {wait} ms");
    assert!(claim(&world, &sam, &["reengage"], "w", 60).await.is_none(), "not before its backoff");
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if claim(&world, &sam, &["reengage"], "w", 60).await.is_some() {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "never claimable again");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let failed = fail("w", Some(0)).await;
    assert_eq!(
        (failed["status"].as_str(), failed["attempts"].as_u64()),
        (Some("failed"), Some(2)),
        "{failed}"
    );
    assert!(failed["finishedAt"].as_i64().is_some(), "{failed}");
    assert!(claim(&world, &sam, &["reengage"], "w", 60).await.is_none(), "failed for good");
    assert_eq!(
        audit_actions(&world, &id).await,
        ["job.enqueued", "job.claimed", "job.retrying", "job.claimed", "job.failed"]
    );
}

fn dojo_server_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

async fn schedules_enqueue_one_job_per_slot_and_admins_alone_set_them(backend: Backend) {
    let world = world(backend).await;
    let (ada, sam) = (person("ada-admin"), person("sam-staff"));
    grant(&world, &ada, Some(StaffRole::Admin)).await;
    grant(&world, &sam, Some(StaffRole::Staff)).await;
    let path = "/api/agent-schedules/pulse";
    let body = Some(json!({"cron": "not a cron", "type": "pulse"}));
    world
        .expect("bad cron", Method::PUT, path, &ada, body, (StatusCode::BAD_REQUEST, Some("bad_request")))
        .await;
    // Every second (six fields, seconds first).
    let body = json!({"cron": "* * * * * *", "type": "pulse", "payload": {"n": 1}, "priority": 2});
    let (status, schedule) = world.call(Method::PUT, path, &ada, Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{schedule}");
    assert_eq!(schedule["enabled"], true);
    let (status, list) = world.call(Method::GET, "/api/agent-schedules", &sam, None).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list["schedules"][0]["name"], "pulse", "{list}");

    // Within a few seconds, a few slots have each enqueued one job, keyed by its slot.
    let deadline = tokio::time::Instant::now() + WAIT;
    let jobs = loop {
        let (_, page) = world.call(Method::GET, "/api/agent-jobs?type=pulse", &sam, None).await;
        let jobs = page["jobs"].as_array().cloned().unwrap_or_default();
        if jobs.len() >= 3 {
            break jobs;
        }
        assert!(tokio::time::Instant::now() < deadline, "the schedule enqueued too few: {page}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let keys: BTreeSet<&str> = jobs.iter().filter_map(|j| j["idempotencyKey"].as_str()).collect();
    assert_eq!(keys.len(), jobs.len(), "one job per slot: {jobs:?}");
    for job in &jobs {
        assert!(job["idempotencyKey"].as_str().is_some_and(|k| k.starts_with("schedule:pulse:")), "{job}");
        assert_eq!((job["createdBy"].as_str(), job["priority"].as_i64()), (Some("schedule:pulse"), Some(2)));
        assert_eq!(job["payload"], json!({"n": 1}));
    }

    // Disabled, it enqueues nothing more; removed, it is gone.
    let body = json!({"cron": "* * * * * *", "type": "pulse", "enabled": false});
    let (status, _) = world.call(Method::PUT, path, &ada, Some(body)).await;
    assert_eq!(status, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let count = |page: &Value| page["jobs"].as_array().map(Vec::len).unwrap_or(0);
    let (_, settled) = world.call(Method::GET, "/api/agent-jobs?type=pulse&limit=500", &sam, None).await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let (_, later) = world.call(Method::GET, "/api/agent-jobs?type=pulse&limit=500", &sam, None).await;
    assert_eq!(count(&later), count(&settled), "a disabled schedule enqueues nothing");
    world.expect("staff", Method::DELETE, path, &sam, None, (StatusCode::FORBIDDEN, Some("forbidden"))).await;
    world.expect("an admin", Method::DELETE, path, &ada, None, (StatusCode::NO_CONTENT, None)).await;
    world.expect("again", Method::DELETE, path, &ada, None, (StatusCode::NOT_FOUND, Some("not_found"))).await;
    assert_eq!(audit_actions(&world, "pulse").await, ["schedule.set", "schedule.set", "schedule.deleted"]);
}

/// Polls `path` as `token` until `done` holds for its answer.
async fn wait_for(
    world: &TeamWorld,
    token: &str,
    path: &str,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (status, answer) = world.call(Method::GET, path, token, None).await;
        if status == StatusCode::OK && done(&answer) {
            return answer;
        }
        assert!(tokio::time::Instant::now() < deadline, "{what}: {status} {answer}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn a_ticket_gets_a_template_draft_naming_the_failed_node_and_the_asker_sees_only_the_answer(
    backend: Backend,
) {
    // Replicate is the only provider: no language model, so the template drafts.
    let replicate = Replicate::start().await;
    let providers = replicate.config();
    let world = TeamWorld::start(backend, move |config| {
        config.executor.providers = Some(providers);
        config.agents.agent_poll_ms = 100;
    })
    .await;
    let (uma, sam, eve) = (person("uma"), person("sam-staff"), person("eve"));
    world.story.api.user_with_credits(&uma, 20).await;
    grant(&world, &sam, Some(StaffRole::Staff)).await;
    world.user_id(&eve).await;

    // Uma's canvas, whose run fails at the provider node.
    let room = "uma-canvas";
    world.story.api.workflow(&uma, room).await;
    let editor = join(&world.story.api, room, &uma).await;
    write_graph(
        &world.story.api,
        room,
        &uma,
        &editor,
        &[
            typed_node("prompt", "text-prompt", json!({"text": "a broken fox"})),
            typed_node("flux", "flux-schnell", json!({})),
        ],
        &[edge("prompt", "text", "flux", "prompt")],
    )
    .await;
    replicate.fail("a broken fox", "NSFW content detected");
    let run = world.story.api.submit(&uma, room, "uma-1").await;
    let ended = world
        .story
        .api
        .wait_run(&uma, &run, WAIT, |r| matches!(r["status"].as_str(), Some("failed" | "succeeded")))
        .await;
    assert_eq!(ended["status"], "failed", "{ended}");

    // A room she cannot read cannot be attached; bad text is refused.
    let eve_room = "eve-canvas";
    world.story.api.workflow(&eve, eve_room).await;
    let body = Some(json!({"subject": "help", "body": "x", "room": eve_room}));
    world
        .expect(
            "a stranger's room",
            Method::POST,
            "/api/support/tickets",
            &uma,
            body,
            (StatusCode::NOT_FOUND, Some("room_not_found")),
        )
        .await;
    let body = Some(json!({"subject": "two\nlines", "body": "x"}));
    world
        .expect(
            "a bad subject",
            Method::POST,
            "/api/support/tickets",
            &uma,
            body,
            (StatusCode::BAD_REQUEST, Some("bad_request")),
        )
        .await;

    let body =
        json!({"subject": "My fox run fails", "body": "The flux node stops every time.", "room": room});
    let (status, opened) = world.call(Method::POST, "/api/support/tickets", &uma, Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{opened}");
    let id = opened["id"].as_str().expect("id").to_owned();
    assert_eq!(opened["status"], "open", "{opened}");

    // The agent drafts from the template, naming the failed node and its error.
    let queue = wait_for(&world, &sam, "/api/support/queue?status=drafted", "the agent's draft", |q| {
        q["tickets"].as_array().is_some_and(|t| t.iter().any(|t| t["id"] == id.as_str()))
    })
    .await;
    let drafted = queue["tickets"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["id"] == id.as_str()))
        .cloned()
        .expect("drafted");
    assert_eq!(drafted["draftSource"], "fallback", "{drafted}");
    let draft = drafted["draft"].as_str().expect("a draft").to_owned();
    assert!(
        draft.contains("My fox run fails") && draft.contains("\"flux\" (flux-schnell) failed"),
        "{draft}"
    );
    assert!(draft.contains("NSFW content detected"), "the provider's reason is in the draft: {draft}");

    // Uma sees her ticket without the draft; nobody else sees it; she cannot read the queue.
    let (_, mine) = world.call(Method::GET, &format!("/api/support/tickets/{id}"), &uma, None).await;
    assert_eq!(mine["status"], "drafted", "{mine}");
    assert!(
        mine.get("draft").is_none() && mine["answer"].is_null(),
        "the asker never sees the draft: {mine}"
    );
    world
        .expect(
            "a stranger",
            Method::GET,
            &format!("/api/support/tickets/{id}"),
            &eve,
            None,
            (StatusCode::NOT_FOUND, Some("not_found")),
        )
        .await;
    world
        .expect(
            "a user",
            Method::GET,
            "/api/support/queue",
            &uma,
            None,
            (StatusCode::FORBIDDEN, Some("forbidden")),
        )
        .await;
    let path = format!("/api/support/tickets/{id}/answer");
    let body = Some(json!({"answer": "nope"}));
    world.expect("a user", Method::POST, &path, &uma, body, (StatusCode::FORBIDDEN, Some("forbidden"))).await;

    // Staff edit the draft and answer; Uma sees the answer; a second answer is refused.
    let answer = format!("{draft}\n\nTry a gentler prompt.");
    let (status, answered) = world.call(Method::POST, &path, &sam, Some(json!({"answer": answer}))).await;
    assert_eq!(status, StatusCode::OK, "{answered}");
    let (_, list) = world.call(Method::GET, "/api/support/tickets", &uma, None).await;
    assert_eq!(list["tickets"][0]["answer"], answer.as_str(), "{list}");
    assert!(list["tickets"][0].get("draft").is_none(), "{list}");
    let body = Some(json!({"answer": "again"}));
    world.expect("answered", Method::POST, &path, &sam, body, (StatusCode::CONFLICT, Some("conflict"))).await;
    let actions = audit_actions(&world, &id).await;
    assert_eq!(actions, ["support.ticket_opened", "support.drafted", "support.answered"], "{actions:?}");
    let (_, jobs) = world.call(Method::GET, "/api/agent-jobs?type=support.draft", &sam, None).await;
    assert_eq!(jobs["jobs"][0]["status"], "succeeded", "{jobs}");
    assert_eq!(jobs["jobs"][0]["result"], json!({"source": "fallback"}), "{jobs}");

    // At most ten tickets wait at once (the answered one no longer waits).
    for i in 0..10 {
        let body = json!({"subject": format!("question {i}"), "body": "?"});
        let (status, _) = world.call(Method::POST, "/api/support/tickets", &uma, Some(body)).await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let body = Some(json!({"subject": "one too many", "body": "?"}));
    world
        .expect(
            "the eleventh",
            Method::POST,
            "/api/support/tickets",
            &uma,
            body,
            (StatusCode::TOO_MANY_REQUESTS, Some("quota_exceeded")),
        )
        .await;
    editor.close().await;
}

/// A Chat Completions answer as OpenAI documents it, with `text` as the reply.
fn completion(text: &str) -> Value {
    json!({
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 1_735_689_600,
        "model": "gpt-test-support",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text, "refusal": null},
            "logprobs": null, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 200, "completion_tokens": 40, "total_tokens": 240},
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_support_agent_drafts_with_the_language_model_and_falls_back_when_it_fails() {
    let openai = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .and(body_string_contains("seed"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(completion("Try a different seed, then run it again.")),
        )
        .mount(&openai)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(503))
        .with_priority(10)
        .mount(&openai)
        .await;
    let uri = openai.uri();
    let world = TeamWorld::start(Backend::Sqlite, move |config| {
        let providers = dojo_executor::ProviderConfig::from_lookup(|name| match name {
            "OPENAI_API_KEY" => Some("sk-test-support".to_owned()),
            "OPENAI_BASE_URL" => Some(uri.clone()),
            _ => None,
        })
        .expect("providers");
        config.executor.providers = Some(providers);
        config.executor.compose_model = "gpt-test-support".into();
        config.agents.agent_poll_ms = 100;
    })
    .await;
    let (uma, sam) = (person("uma"), person("sam-staff"));
    world.user_id(&uma).await;
    grant(&world, &sam, Some(StaffRole::Admin)).await;
    let open = |subject: &'static str| {
        let (world, uma) = (&world, &uma);
        async move {
            let body = json!({"subject": subject, "body": "What should I change?"});
            let (status, opened) = world.call(Method::POST, "/api/support/tickets", uma, Some(body)).await;
            assert_eq!(status, StatusCode::CREATED, "{opened}");
            opened["id"].as_str().expect("id").to_owned()
        }
    };
    let with_model = open("Same picture with every seed").await;
    let when_down = open("The canvas is slow").await;
    for (id, source) in [(&with_model, "model"), (&when_down, "fallback")] {
        let ticket = wait_for(&world, &sam, &format!("/api/support/tickets/{id}"), "a draft", |t| {
            t["status"] == "drafted"
        })
        .await;
        assert_eq!(ticket["draftSource"], source, "{ticket}");
    }
    let (_, ticket) =
        world.call(Method::GET, &format!("/api/support/tickets/{with_model}"), &sam, None).await;
    assert_eq!(ticket["draft"], "Try a different seed, then run it again.", "{ticket}");
    let requests = openai.received_requests().await.unwrap_or_default();
    let sent: Vec<Value> = requests.iter().filter_map(|r| serde_json::from_slice(&r.body).ok()).collect();
    assert!(
        sent.iter().all(|b| b["model"] == "gpt-test-support"
            && b["max_completion_tokens"].as_u64().is_some_and(|t| t <= 1000)),
        "{sent:?}"
    );
}
