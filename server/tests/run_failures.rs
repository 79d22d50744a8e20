//! Runs that do not go to plan, end to end through the server: a provider that fails, and a
//! run cancelled while a provider is still generating. The provider is a local stand-in for
//! Replicate's HTTP API; everything else is real (server, store, ledger, room clients).

mod common;

use common::database::{Backend, TestDatabase};
use common::replicate::Replicate;
use common::runs::{RunApi, SECRET, edge, join, status_of, token, typed_node, watch_run, write_graph};
use common::{TestServer, WAIT};
use reqwest::{Method, StatusCode};
use serde_json::json;

async fn server_with_replicate(db: &TestDatabase, replicate: &Replicate) -> TestServer {
    let providers = replicate.config();
    TestServer::start_on(&db.url, move |config| {
        config.auth.jwt_secret = Some(SECRET.into());
        config.executor.providers = Some(providers);
    })
    .await
}

async fn a_failing_provider_fails_its_node_skips_what_needs_it_and_releases_its_hold(backend: Backend) {
    let db = TestDatabase::new(backend).await;
    let replicate = Replicate::start().await;
    replicate.fail("a forbidden fox", "NSFW content detected. Try a different prompt.");
    let server = server_with_replicate(&db, &replicate).await;
    let api = RunApi::new(server.addr, &db.url);
    let alice = token("alice");
    let alice_id = api.user_with_credits(&alice, 5).await;
    let room = "canvas-provider-fails";
    api.workflow(&alice, room).await;
    let editor = join(&api, room, &alice).await;
    // prompt → flux (fails) → blur, and an independent branch: dev image → invert.
    write_graph(
        &api,
        room,
        &alice,
        &editor,
        &[
            typed_node("prompt", "text-prompt", json!({"text": "a forbidden fox"})),
            typed_node("flux", "flux-schnell", json!({})),
            typed_node("soft", "blur", json!({})),
            typed_node("gen", "dev-image", json!({"prompt": "a fox", "width": 32, "height": 32})),
            typed_node("neg", "invert", json!({})),
        ],
        &[
            edge("prompt", "text", "flux", "prompt"),
            edge("flux", "image", "soft", "image"),
            edge("gen", "image", "neg", "image"),
        ],
    )
    .await;
    let watcher = join(&api, room, &alice).await;

    let run_id = api.submit(&alice, room, "fails-1").await;
    let seen = watch_run(&watcher, &run_id, &["prompt", "flux", "soft", "gen", "neg"], WAIT).await;
    let last = |node: &str| seen[node].last().cloned().unwrap_or_default();
    assert_eq!(last("flux"), "failed", "{seen:?}");
    assert_eq!(last("soft"), "skipped", "{seen:?}");
    assert_eq!(last("gen"), "succeeded", "{seen:?}");
    assert_eq!(last("neg"), "succeeded", "the independent branch kept running: {seen:?}");
    let error =
        common::runs::result_json(watcher.doc(), "flux")["error"].as_str().unwrap_or_default().to_owned();
    assert!(error.contains("NSFW content detected"), "the provider's reason reaches the node: {error:?}");

    let run = api.wait_run(&alice, &run_id, WAIT, |run| run["status"] == "failed").await;
    assert_eq!(run["nodes"]["flux"]["hold"], "released", "{run}");
    assert_eq!(run["nodes"]["gen"]["hold"], "captured", "{run}");
    assert_eq!(run["charged"], 1, "{run}");
    assert_eq!(api.balance(&alice).await, 4, "only the dev image (1 credit) was paid for");
    // The ledger says the same: each hold once, the failed one released, the other captured.
    let ledger = api.ledger(&alice_id).await;
    let keyed = |suffix: &str| ledger.iter().filter(|(_, key)| key.ends_with(suffix)).count();
    assert_eq!(keyed(":flux:hold"), 1, "{ledger:?}");
    assert_eq!(keyed(":flux:release"), 1, "{ledger:?}");
    assert_eq!(keyed(":flux:capture"), 0, "{ledger:?}");
    assert_eq!(ledger.iter().map(|(amount, _)| amount).sum::<i64>(), 4, "the ledger sums to the balance");
    assert_eq!(replicate.created("a forbidden fox"), 1, "a failed prediction is not retried");
    editor.close().await;
    watcher.close().await;
    server.stop().await;
}

async fn cancelling_during_a_slow_provider_call_cancels_the_remote_job(backend: Backend) {
    let db = TestDatabase::new(backend).await;
    let replicate = Replicate::start().await;
    replicate.hold("a very slow fox");
    let server = server_with_replicate(&db, &replicate).await;
    let api = RunApi::new(server.addr, &db.url);
    let alice = token("alice");
    api.user_with_credits(&alice, 5).await;
    let room = "canvas-cancel";
    api.workflow(&alice, room).await;
    let editor = join(&api, room, &alice).await;
    write_graph(
        &api,
        room,
        &alice,
        &editor,
        &[
            typed_node("prompt", "text-prompt", json!({"text": "a very slow fox"})),
            typed_node("flux", "flux-schnell", json!({})),
            typed_node("soft", "blur", json!({})),
        ],
        &[edge("prompt", "text", "flux", "prompt"), edge("flux", "image", "soft", "image")],
    )
    .await;

    let run_id = api.submit(&alice, room, "cancel-1").await;
    assert_eq!(api.balance(&alice).await, 4, "the flux node's cost is held");
    replicate.wait("the prediction created", WAIT, |r| r.created("a very slow fox") == 1).await;
    editor
        .wait_doc("flux running", WAIT, |doc| status_of(doc, "flux").as_deref() == Some("running"))
        .await
        .expect("the node is running while the provider generates");

    let (status, body) =
        api.call(Method::POST, &format!("/api/runs/{run_id}/cancel"), &alice, None, None).await;
    assert!(status.is_success(), "{status} {body}");
    replicate.wait("the remote cancel", WAIT, |r| r.cancelled("a very slow fox") == 1).await;
    editor
        .wait_doc("cancelled states", WAIT, |doc| {
            status_of(doc, "flux").as_deref() == Some("cancelled")
                && matches!(status_of(doc, "soft").as_deref(), Some("cancelled" | "skipped"))
        })
        .await
        .expect("the states become cancelled");
    let run = api.wait_run(&alice, &run_id, WAIT, |run| run["status"] == "cancelled").await;
    assert_eq!(run["nodes"]["flux"]["hold"], "released", "{run}");
    assert_eq!(run["charged"], 0, "{run}");
    assert_eq!(api.balance(&alice).await, 5, "every hold released");
    // Cancelling again is harmless.
    let (status, _) = api.call(Method::POST, &format!("/api/runs/{run_id}/cancel"), &alice, None, None).await;
    assert_ne!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(api.balance(&alice).await, 5);
    assert_eq!(replicate.created("a very slow fox"), 1, "a cancelled node is not started again");
    editor.close().await;
    server.stop().await;
}

dojo_test_support::each_backend_story!(
    a_failing_provider_fails_its_node_skips_what_needs_it_and_releases_its_hold,
    cancelling_during_a_slow_provider_call_cancels_the_remote_job,
);
