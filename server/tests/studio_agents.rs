//! The workflow and re-engagement agents (issue 23) over the real API, on SQLite and
//! PostgreSQL. The workflow agent reads a workflow's recent runs (a Replicate stand-in fails
//! one node twice) and its graph, and stores suggestions its managers alone read and dismiss.
//! The re-engagement agent messages users away long enough (never those who opted out or were
//! active, never twice in the quiet window), through a signed webhook (a stand-in receiver);
//! a failed delivery is tried again by the next scan. With an OpenAI stand-in both write with
//! the language model.

mod common;

use std::time::Duration;

use common::WAIT;
use common::database::Backend;
use common::replicate::Replicate;
use common::runs::{edge, join, typed_node, write_graph};
use common::teams::{TeamWorld, person};
use dojo_ids::UserId;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use wiremock::matchers::{body_string_contains, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const HOOK_SECRET: &str = "hook-secret-for-tips";

dojo_test_support::each_backend_story!(
    the_workflow_agent_suggests_fixes_its_owner_alone_reads_and_dismisses,
    the_reengagement_agent_sends_signed_tips_once_and_honours_opt_outs,
);

/// Runs `sql` with `user` and `at` bound, on the world's database.
async fn execute(world: &TeamWorld, sql: &'static str, user: &str, at: i64) {
    let database = dojo_store::open_database(&world.story.api.database_url).await.expect("open");
    match &database {
        dojo_store::Database::Postgres(store) => {
            sqlx::query(sql).bind(user).bind(at).execute(store.pool()).await.expect("sql");
        }
        dojo_store::Database::Sqlite(store) => {
            sqlx::query(sql).bind(user).bind(at).execute(store.pool()).await.expect("sql");
        }
    }
}

async fn last_active(world: &TeamWorld, user: &str) -> Option<i64> {
    let database = dojo_store::open_database(&world.story.api.database_url).await.expect("open");
    let sql = "SELECT last_active_at FROM users WHERE id = $1";
    match &database {
        dojo_store::Database::Postgres(store) => {
            sqlx::query_scalar(sql).bind(user).fetch_one(store.pool()).await.expect("sql")
        }
        dojo_store::Database::Sqlite(store) => {
            sqlx::query_scalar(sql).bind(user).fetch_one(store.pool()).await.expect("sql")
        }
    }
}

/// `token`'s user, last active `days` ago: their sign-in is recorded first (in the background),
/// then moved back; the server records a user at most once an hour, so it stays moved.
async fn away_for(world: &TeamWorld, token: &str, days: i64) -> String {
    let id = world.user_id(token).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while last_active(world, &id).await.is_none() {
        assert!(tokio::time::Instant::now() < deadline, "the sign-in was never recorded as activity");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let at = i64::try_from(dojo_auth::unix_now()).expect("now") * 1000 - days * 24 * 3_600_000;
    execute(world, "UPDATE users SET last_active_at = $2 WHERE id = $1", &id, at).await;
    id
}

async fn the_workflow_agent_suggests_fixes_its_owner_alone_reads_and_dismisses(backend: Backend) {
    let replicate = Replicate::start().await;
    let providers = replicate.config();
    let world = TeamWorld::start(backend, move |config| {
        config.executor.providers = Some(providers);
        config.agents.agents = "workflow".into();
        config.agents.agent_poll_ms = 50;
    })
    .await;
    let (owen, sam, cora, eve) = (person("owen"), person("sam-staff"), person("cora"), person("eve"));
    world.grant_staff(&sam).await;
    world.story.api.user_with_credits(&owen, 50).await;
    world.user_id(&eve).await;
    let cora_id = world.user_id(&cora).await;

    // Owen's canvas: a prompt into flux (which fails), a prompt wired to nothing, and an
    // Imagen node (5 credits) that flux-schnell (1) could replace.
    let room = "owen-canvas";
    let workflow = world.story.api.workflow(&owen, room).await;
    let share = format!("/api/workflows/{workflow}/collaborators/{cora_id}");
    let (status, shared) = world.call(Method::PUT, &share, &owen, Some(json!({"permission": "write"}))).await;
    assert!(status.is_success(), "{shared}");
    let editor = join(&world.story.api, room, &owen).await;
    write_graph(
        &world.story.api,
        room,
        &owen,
        &editor,
        &[
            typed_node("prompt", "text-prompt", json!({"text": "a broken fox"})),
            typed_node("flux", "flux-schnell", json!({})),
            typed_node("lonely", "text-prompt", json!({"text": "forgotten"})),
            typed_node("imagen", "imagen-4", json!({})),
        ],
        &[edge("prompt", "text", "flux", "prompt")],
    )
    .await;
    replicate.fail("a broken fox", "NSFW content detected");
    for attempt in 0..2 {
        let path = format!("/api/rooms/{room}/runs");
        let (status, accepted) = world
            .story
            .api
            .call(
                Method::POST,
                &path,
                &owen,
                Some(json!({"targets": ["flux"]})),
                Some(&format!("owen-{attempt}")),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
        let run = accepted["runId"].as_str().expect("run id");
        let ended = world
            .story
            .api
            .wait_run(&owen, run, WAIT, |r| r["status"] == "failed" || r["status"] == "succeeded")
            .await;
        assert_eq!(ended["status"], "failed", "{ended}");
    }

    let result = world.run_agent_job(&sam, "workflow.review", json!({})).await;
    assert_eq!((&result["reviewed"], &result["withSuggestions"]), (&json!(1), &json!(1)), "{result}");
    let path = format!("/api/workflows/{workflow}/suggestions");
    let (status, found) = world.call(Method::GET, &path, &owen, None).await;
    assert_eq!(status, StatusCode::OK, "{found}");
    let kinds: Vec<(String, String)> = found["suggestions"]
        .as_array()
        .expect("a list")
        .iter()
        .map(|s| {
            (
                s["kind"].as_str().unwrap_or_default().to_owned(),
                s["node"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    for expected in [("failing", "flux"), ("unused", "lonely"), ("cheaper", "imagen")] {
        assert!(kinds.contains(&(expected.0.to_owned(), expected.1.to_owned())), "{expected:?} in {found}");
    }
    let failing = found["suggestions"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["kind"] == "failing"))
        .expect("failing");
    assert!(
        failing["message"]
            .as_str()
            .is_some_and(|m| m.contains("failed 2 of its last 2") && m.contains("NSFW")),
        "{failing}"
    );
    let cheaper = found["suggestions"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["kind"] == "cheaper"))
        .expect("cheaper");
    assert_eq!(cheaper["alternative"], "flux-schnell", "{cheaper}");
    assert_eq!((&found["source"], &found["dismissed"]), (&json!("template"), &json!(false)), "{found}");
    assert!(found["summary"].as_str().is_some_and(|s| s.contains("owen-canvas")), "{found}");

    // A collaborator who may edit does not manage the workflow; a stranger does not see it.
    world
        .expect("a writer", Method::GET, &path, &cora, None, (StatusCode::FORBIDDEN, Some("forbidden")))
        .await;
    world
        .expect("a stranger", Method::GET, &path, &eve, None, (StatusCode::NOT_FOUND, Some("not_found")))
        .await;
    let dismiss = format!("{path}/dismiss");
    world
        .expect("a writer", Method::POST, &dismiss, &cora, None, (StatusCode::FORBIDDEN, Some("forbidden")))
        .await;

    // Dismissed, they stay dismissed while the findings are the same.
    let (status, dismissed) = world.call(Method::POST, &dismiss, &owen, None).await;
    assert_eq!((status, &dismissed["dismissed"]), (StatusCode::OK, &json!(true)), "{dismissed}");
    world.run_agent_job(&sam, "workflow.review", json!({})).await;
    let (_, again) = world.call(Method::GET, &path, &owen, None).await;
    assert_eq!(again["dismissed"], true, "{again}");
    // Different findings show again: with a higher failure threshold flux is no longer failing.
    world.run_agent_job(&sam, "workflow.review", json!({"minFailures": 3})).await;
    let (_, changed) = world.call(Method::GET, &path, &owen, None).await;
    assert_eq!(changed["dismissed"], false, "{changed}");
    assert!(
        changed["suggestions"].as_array().is_some_and(|s| s.iter().all(|s| s["kind"] != "failing")),
        "{changed}"
    );
    // Thresholds out of range: the job says why it did nothing.
    let skipped = world.run_agent_job(&sam, "workflow.review", json!({"slowSecs": 0})).await;
    assert!(skipped["skipped"].as_str().is_some_and(|s| s.contains("slowSecs")), "{skipped}");

    let (_, page) = world.call(Method::GET, "/api/audit?action=workflow.suggested", &sam, None).await;
    let entries = page["entries"].as_array().cloned().unwrap_or_default();
    assert!(
        !entries.is_empty()
            && entries.iter().all(|e| e["actorId"] == "agent:workflow" && e["targetId"] == workflow.as_str()),
        "{page}"
    );
}

async fn the_reengagement_agent_sends_signed_tips_once_and_honours_opt_outs(backend: Backend) {
    let receiver = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/tips"))
        .and(body_string_contains("dan@example.com"))
        .respond_with(ResponseTemplate::new(503))
        .with_priority(1)
        .mount(&receiver)
        .await;
    Mock::given(method("POST"))
        .and(path("/tips"))
        .respond_with(ResponseTemplate::new(202))
        .mount(&receiver)
        .await;
    let hook = format!("{}/tips", receiver.uri());
    let world = TeamWorld::start(backend, move |config| {
        config.agents.agents = "reengagement".into();
        config.agents.agent_poll_ms = 50;
        config.agents.reengage_webhook = Some(hook);
        config.agents.reengage_webhook_secret = Some(HOOK_SECRET.into());
    })
    .await;
    let (sam, ann, bob, cid, dan) =
        (person("sam-staff"), person("ann"), person("bob"), person("cid"), person("dan"));
    world.grant_staff(&sam).await;
    world.story.api.workflow(&ann, "ann-fox-canvas").await;
    let ann_id = away_for(&world, &ann, 20).await;
    // Bob is away too, but opted out of tips; Cid was here a day ago.
    let (status, privacy) =
        world.call(Method::PUT, "/api/me/privacy", &bob, Some(json!({"tipsOptOut": true}))).await;
    assert_eq!(
        (status, &privacy["tipsOptOut"], &privacy["analyticsOptOut"]),
        (StatusCode::OK, &json!(true), &json!(false)),
        "{privacy}"
    );
    away_for(&world, &bob, 40).await;
    away_for(&world, &cid, 1).await;
    world
        .expect(
            "an unknown field",
            Method::PUT,
            "/api/me/privacy",
            &bob,
            Some(json!({"tips": true})),
            (StatusCode::UNPROCESSABLE_ENTITY, None),
        )
        .await;

    let result = world.run_agent_job(&sam, "reengagement.scan", json!({})).await;
    assert_eq!((&result["considered"], &result["sent"]), (&json!(1), &json!(1)), "{result}");
    let requests = receiver.received_requests().await.unwrap_or_default();
    assert_eq!(requests.len(), 1, "one message");
    let request = &requests[0];
    let signature = request.headers.get("dojo-signature").and_then(|v| v.to_str().ok()).expect("signed");
    let now = i64::try_from(dojo_auth::unix_now()).expect("now");
    dojo_records::webhooks::verify(signature, &request.body, HOOK_SECRET, now, 300)
        .expect("the signature verifies");
    let message: Value = serde_json::from_slice(&request.body).expect("json");
    assert_eq!(
        (&message["type"], &message["email"], &message["userId"]),
        (&json!("reengagement"), &json!("ann@example.com"), &json!(ann_id)),
        "{message}"
    );
    assert!(message["subject"].as_str().is_some_and(|s| s.contains("ann-fox-canvas")), "{message}");
    let body = message["body"].as_str().unwrap_or_default();
    assert!(body.contains("20 days") && body.contains("Send me tips"), "{body}");

    // Within the quiet window nobody is messaged again.
    let result = world.run_agent_job(&sam, "reengagement.scan", json!({})).await;
    assert_eq!(result["considered"], 0, "{result}");
    assert_eq!(receiver.received_requests().await.unwrap_or_default().len(), 1);

    // Dan's delivery fails: the next scan tries him again.
    away_for(&world, &dan, 15).await;
    for _ in 0..2 {
        let result = world.run_agent_job(&sam, "reengagement.scan", json!({})).await;
        assert_eq!((&result["considered"], &result["failed"]), (&json!(1), &json!(1)), "{result}");
    }
    // A shorter absence threshold still leaves out Bob (opted out) and Ann (quiet window).
    let result = world.run_agent_job(&sam, "reengagement.scan", json!({"afterDays": 1})).await;
    assert!(result["considered"].as_u64().is_some_and(|n| n >= 1), "{result}");

    let (_, page) = world.call(Method::GET, &format!("/api/audit?target={ann_id}"), &sam, None).await;
    let actions: Vec<&str> =
        page["entries"].as_array().into_iter().flatten().filter_map(|e| e["action"].as_str()).collect();
    assert_eq!(actions, ["engagement.message_sent"], "{page}");
    assert_eq!(page["entries"][0]["actorId"], "agent:reengagement", "{page}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_agents_write_with_the_language_model_when_one_is_configured() {
    let openai = MockServer::start().await;
    let completion = |text: &str| {
        json!({"id": "chatcmpl-test", "object": "chat.completion", "created": 1_735_689_600, "model": "gpt-test",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text, "refusal": null},
                "logprobs": null, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120}})
    };
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .and(body_string_contains("Findings"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(completion("Wire the lonely prompt or remove it.")),
        )
        .mount(&openai)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .and(body_string_contains("Days away"))
        .respond_with(ResponseTemplate::new(200).set_body_json(completion("We kept your fox canvas warm.")))
        .mount(&openai)
        .await;
    let uri = openai.uri();
    let world = TeamWorld::start(Backend::Sqlite, move |config| {
        let providers = dojo_executor::ProviderConfig::from_lookup(|name| match name {
            "OPENAI_API_KEY" => Some("sk-test-agents".to_owned()),
            "OPENAI_BASE_URL" => Some(uri.clone()),
            _ => None,
        })
        .expect("providers");
        config.executor.providers = Some(providers);
        config.agents.agents = "workflow,reengagement".into();
        config.agents.agent_poll_ms = 50;
    })
    .await;
    let (sam, owen) = (person("sam-staff"), person("owen"));
    world.grant_staff(&sam).await;
    world.story.api.user_with_credits(&owen, 10).await;
    let room = "owen-model-canvas";
    let workflow = world.story.api.workflow(&owen, room).await;
    let editor = join(&world.story.api, room, &owen).await;
    let nodes = [
        typed_node("lonely", "text-prompt", json!({"text": "forgotten"})),
        typed_node("img", "dev-image", json!({"prompt": "fox", "width": 16, "height": 16})),
    ];
    write_graph(&world.story.api, room, &owen, &editor, &nodes, &[]).await;
    let run = world.story.api.submit(&owen, room, "owen-model").await;
    world.story.api.wait_run(&owen, &run, WAIT, |r| r["status"] == "succeeded").await;

    world.run_agent_job(&sam, "workflow.review", json!({})).await;
    let (_, found) =
        world.call(Method::GET, &format!("/api/workflows/{workflow}/suggestions"), &owen, None).await;
    assert_eq!(
        (&found["source"], &found["summary"]),
        (&json!("model"), &json!("Wire the lonely prompt or remove it.")),
        "{found}"
    );

    // Staged by hand: Owen away for three weeks. No sender is configured: the message is kept.
    let owen_id = away_for(&world, &owen, 21).await;
    let result = world.run_agent_job(&sam, "reengagement.scan", json!({})).await;
    assert_eq!((&result["considered"], &result["recorded"]), (&json!(1), &json!(1)), "{result}");
    let database = dojo_store::open_database(&world.story.api.database_url).await.expect("open");
    let messages = dojo_records::engagement(&database)
        .messages_of(&UserId::from(owen_id.as_str()), 10)
        .await
        .expect("messages");
    assert_eq!(messages.len(), 1);
    assert_eq!((messages[0].source.as_str(), messages[0].status.as_str()), ("model", "recorded"));
    assert!(messages[0].body.starts_with("We kept your fox canvas warm."), "{}", messages[0].body);
}
