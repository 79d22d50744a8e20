//! The fraud agent (issue 23) over the real API, on SQLite and PostgreSQL: Stripe's signed
//! charge events (paid, refunded, failed, disputed; one replayed) and a user's spending become
//! flags when staff's `fraud.scan` job runs in the in-process agent; a flagged user's paid runs
//! are refused (`account_under_review`) and one queued before the flag is cancelled when a
//! worker would start it, while free ones still start; a second scan raises
//! nothing new; staff clear or confirm flags (409 for a verdict the state does not allow); only
//! staff read flags and the whole audit log, which records every flag as `agent:fraud` and every
//! verdict as the staff member. The server creates the `fraud-scan` schedule itself.

mod common;

use common::WAIT;
use common::database::Backend;
use common::runs::{join, typed_node, write_graph};
use common::teams::{TeamWorld, person};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const WEBHOOK_SECRET: &str = "whsec_fraud_test";

dojo_test_support::each_backend_story!(
    payments_and_spending_raise_flags_that_hold_paid_runs_until_staff_clear_them,
);

/// Delivers `event` as Stripe would (signed now); it must be accepted.
async fn stripe(world: &TeamWorld, event: Value) {
    let body = event.to_string();
    let now = i64::try_from(dojo_auth::unix_now()).expect("now");
    let signature = dojo_records::stripe::sign(body.as_bytes(), WEBHOOK_SECRET, now);
    let response = world
        .story
        .api
        .http
        .post(world.story.api.http_url("/api/webhooks/stripe"))
        .header("Stripe-Signature", signature)
        .body(body)
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), StatusCode::OK, "{event}");
}

fn event(id: &str, kind: &str, object: Value) -> Value {
    let now = i64::try_from(dojo_auth::unix_now()).expect("now");
    json!({"id": id, "type": kind, "created": now, "data": {"object": object}})
}

async fn open_flags(world: &TeamWorld, staff: &str) -> Vec<Value> {
    let (status, page) = world.call(Method::GET, "/api/fraud/flags?status=open", staff, None).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    page["flags"].as_array().cloned().unwrap_or_default()
}

fn flag_of<'a>(flags: &'a [Value], user: &str, rule: &str) -> &'a Value {
    flags
        .iter()
        .find(|f| f["userId"] == user && f["rule"] == rule)
        .unwrap_or_else(|| panic!("no {rule} flag for {user}: {flags:?}"))
}

async fn payments_and_spending_raise_flags_that_hold_paid_runs_until_staff_clear_them(backend: Backend) {
    let world = TeamWorld::start(backend, |config| {
        config.auth.stripe_webhook_secret = Some(WEBHOOK_SECRET.into());
        config.agents.agents = "fraud".into();
        config.agents.agent_poll_ms = 50;
    })
    .await;
    let (sam, pat, ann, ben, cat, sid) =
        (person("sam-staff"), person("pat"), person("ann"), person("ben"), person("cat"), person("sid"));
    world.grant_staff(&sam).await;
    let pat_id = world.user_id(&pat).await;
    let (ann_id, ben_id, cat_id) =
        (world.user_id(&ann).await, world.user_id(&ben).await, world.user_id(&cat).await);

    // The server made its own schedule of scans.
    let (_, schedules) = world.call(Method::GET, "/api/agent-schedules", &sam, None).await;
    let seeded = schedules["schedules"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == "fraud-scan").cloned())
        .unwrap_or_else(|| panic!("no fraud-scan schedule: {schedules}"));
    assert_eq!(
        (seeded["jobType"].as_str(), seeded["cron"].as_str()),
        (Some("fraud.scan"), Some("*/15 * * * *"))
    );

    // Pat: a checkout tells us her customer; then a charge, its refund, a dispute that names
    // only the charge, and a failed charge delivered twice (Stripe retries).
    let checkout = json!({"id": "cs_1", "customer": "cus_pat", "client_reference_id": pat_id,
        "metadata": {"credits": "5"}});
    stripe(&world, event("evt_checkout", "checkout.session.completed", checkout)).await;
    let card = |fp: &str| json!({"card": {"fingerprint": fp}});
    let paid = json!({"id": "ch_pat", "amount": 500, "customer": "cus_pat", "payment_method_details": card("fp_pat")});
    stripe(&world, event("evt_paid", "charge.succeeded", paid)).await;
    let refunded = json!({"id": "ch_pat", "amount": 500, "amount_refunded": 500, "customer": "cus_pat"});
    stripe(&world, event("evt_refund", "charge.refunded", refunded)).await;
    stripe(
        &world,
        event(
            "evt_dispute",
            "charge.dispute.created",
            json!({"id": "dp_1", "charge": "ch_pat", "amount": 500}),
        ),
    )
    .await;
    let failed =
        event("evt_failed", "charge.failed", json!({"id": "ch_pat2", "amount": 500, "customer": "cus_pat"}));
    stripe(&world, failed.clone()).await;
    stripe(&world, failed).await;
    // Ann, Ben and Cat pay with one card.
    for (n, user) in [&ann_id, &ben_id, &cat_id].into_iter().enumerate() {
        let charge = json!({"id": format!("ch_s{n}"), "amount": 900, "metadata": {"user_id": user},
            "payment_method_details": card("fp_shared")});
        stripe(&world, event(&format!("evt_shared_{n}"), "charge.succeeded", charge)).await;
    }

    // Sid spends 3 credits (three paid nodes) in one run: far above his history of nothing.
    let sid_id = world.story.api.user_with_credits(&sid, 100).await;
    let room = "sid-canvas";
    world.story.api.workflow(&sid, room).await;
    let editor = join(&world.story.api, room, &sid).await;
    let mut nodes: Vec<_> = (0..3)
        .map(|i| {
            typed_node(
                &format!("img{i}"),
                "dev-image",
                json!({"prompt": "fox", "seed": i, "width": 16, "height": 16}),
            )
        })
        .collect();
    nodes.push(typed_node("words", "text-prompt", json!({"text": "free"})));
    write_graph(&world.story.api, room, &sid, &editor, &nodes, &[]).await;
    let run = world.story.api.submit(&sid, room, "sid-1").await;
    let done = world
        .story
        .api
        .wait_run(&sid, &run, WAIT, |r| r["status"] == "succeeded" || r["status"] == "failed")
        .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(world.story.api.balance(&sid).await, 97);

    // Nobody is flagged before a scan; only staff may look.
    assert!(open_flags(&world, &sam).await.is_empty());
    for path in ["/api/fraud/flags", "/api/fraud/flags/flg_x", "/api/audit"] {
        world
            .expect(
                "a non-staff user",
                Method::GET,
                path,
                &sid,
                None,
                (StatusCode::FORBIDDEN, Some("forbidden")),
            )
            .await;
    }
    let body = Some(json!({"verdict": "cleared"}));
    world
        .expect(
            "a non-staff user",
            Method::POST,
            "/api/fraud/flags/flg_x/review",
            &sid,
            body,
            (StatusCode::FORBIDDEN, Some("forbidden")),
        )
        .await;

    // A paid run Sid queued before the scan (his queue paused, so no worker took it yet).
    let (status, paused) = world.call(Method::POST, "/api/queue/pause", &sid, None).await;
    assert_eq!(status, StatusCode::OK, "{paused}");
    let path = format!("/api/rooms/{room}/runs");
    let (status, waiting) = world.call(Method::POST, &path, &sid, Some(json!({"targets": ["img0"]}))).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{waiting}");
    let waiting = waiting["runId"].as_str().expect("run id").to_owned();
    assert_eq!(world.story.api.balance(&sid).await, 96, "the queued run holds its credit");

    let rules = json!({"spendMinimum": 3});
    let result = world.run_agent_job(&sam, "fraud.scan", rules.clone()).await;
    assert_eq!(result["raised"], 5, "{result}");
    let flags = open_flags(&world, &sam).await;
    assert_eq!(flags.len(), 5, "{flags:?}");
    let trouble = flag_of(&flags, &pat_id, "payment_trouble");
    // The replayed failure counted once; the dispute found Pat through its charge.
    assert_eq!(
        (&trouble["detail"]["refunded"], &trouble["detail"]["failed"], &trouble["detail"]["disputed"]),
        (&json!(1), &json!(1), &json!(1)),
        "{trouble}"
    );
    for user in [&ann_id, &ben_id, &cat_id] {
        let shared = flag_of(&flags, user, "shared_payment_source");
        assert_eq!(shared["detail"]["source"], "fp_shared", "{shared}");
        assert_eq!(shared["detail"]["otherAccounts"].as_array().map(Vec::len), Some(2), "{shared}");
    }
    let spike = flag_of(&flags, &sid_id, "spend_spike");
    // Spending counts what is held too: three credits charged, one held by the queued run.
    assert_eq!(spike["detail"]["spent"], 4, "{spike}");

    // The run queued before the flag does not start once his queue resumes: it is cancelled
    // with the reason, and its hold is released.
    let (status, resumed) = world.call(Method::POST, "/api/queue/resume", &sid, None).await;
    assert_eq!(status, StatusCode::OK, "{resumed}");
    let stopped = world
        .story
        .api
        .wait_run(&sid, &waiting, WAIT, |r| r["status"] != "queued" && r["status"] != "running")
        .await;
    assert_eq!(stopped["status"], "cancelled", "{stopped}");
    assert!(stopped["error"].as_str().is_some_and(|e| e.starts_with("account_under_review")), "{stopped}");
    assert_eq!(stopped["charged"], 0, "{stopped}");
    assert_eq!(world.story.api.balance(&sid).await, 97);

    // Sid's paid runs wait for staff; nothing was held. A free run still starts.
    world
        .expect(
            "a flagged user's paid run",
            Method::POST,
            &path,
            &sid,
            Some(json!({})),
            (StatusCode::FORBIDDEN, Some("account_under_review")),
        )
        .await;
    assert_eq!(world.story.api.balance(&sid).await, 97);
    let (status, free) = world.call(Method::POST, &path, &sid, Some(json!({"targets": ["words"]}))).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{free}");
    assert_eq!(free["estimate"], 0, "{free}");

    // Scanning again finds the same things and raises nothing new.
    assert_eq!(world.run_agent_job(&sam, "fraud.scan", rules.clone()).await["raised"], 0);

    // Staff clear Sid: he runs again, and the cleared evidence raises nothing.
    let sid_flag = spike["id"].as_str().expect("id");
    let review = format!("/api/fraud/flags/{sid_flag}/review");
    let body = json!({"verdict": "cleared", "note": "a studio's launch day"});
    let (status, reviewed) = world.call(Method::POST, &review, &sam, Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{reviewed}");
    assert_eq!(
        (&reviewed["flag"]["status"], &reviewed["blocked"]),
        (&json!("cleared"), &json!(false)),
        "{reviewed}"
    );
    assert_eq!(world.run_agent_job(&sam, "fraud.scan", rules).await["raised"], 0);
    let (status, accepted) = world.call(Method::POST, &path, &sid, Some(json!({"targets": ["img0"]}))).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");

    // Pat's flag is confirmed: she stays blocked; a second verdict of the kind is a conflict.
    let pat_flag = trouble["id"].as_str().expect("id");
    let review = format!("/api/fraud/flags/{pat_flag}/review");
    let (status, reviewed) =
        world.call(Method::POST, &review, &sam, Some(json!({"verdict": "confirmed"}))).await;
    assert_eq!(status, StatusCode::OK, "{reviewed}");
    assert_eq!(reviewed["blocked"], true, "{reviewed}");
    let body = Some(json!({"verdict": "confirmed"}));
    world
        .expect(
            "confirming twice",
            Method::POST,
            &review,
            &sam,
            body,
            (StatusCode::CONFLICT, Some("conflict")),
        )
        .await;
    let body = Some(json!({"verdict": "maybe"}));
    world
        .expect(
            "an unknown verdict",
            Method::POST,
            &review,
            &sam,
            body,
            (StatusCode::BAD_REQUEST, Some("bad_request")),
        )
        .await;
    let body = Some(json!({"verdict": "cleared"}));
    world
        .expect(
            "no such flag",
            Method::POST,
            "/api/fraud/flags/flg_none/review",
            &sam,
            body,
            (StatusCode::NOT_FOUND, Some("not_found")),
        )
        .await;

    // The whole audit log, for staff: the agent's five flags and the two verdicts.
    let (status, page) = world.call(Method::GET, "/api/audit?action=fraud.flagged", &sam, None).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let flagged = page["entries"].as_array().cloned().unwrap_or_default();
    assert_eq!(flagged.len(), 5, "{page}");
    assert!(flagged.iter().all(|e| e["actorType"] == "service" && e["actorId"] == "agent:fraud"), "{page}");
    let (_, page) = world.call(Method::GET, &format!("/api/audit?target={sid_id}"), &sam, None).await;
    let actions: Vec<&str> =
        page["entries"].as_array().into_iter().flatten().filter_map(|e| e["action"].as_str()).collect();
    assert_eq!(actions, ["fraud.cleared", "fraud.flagged"], "{page}");
    let sam_id = world.user_id(&sam).await;
    let (_, page) =
        world.call(Method::GET, &format!("/api/audit?target={pat_id}&actor={sam_id}"), &sam, None).await;
    assert_eq!(page["entries"][0]["action"], "fraud.confirmed", "{page}");
    assert_eq!(page["entries"][0]["actorType"], "user", "{page}");
    let (status, lines) = world.call(Method::GET, "/api/audit?format=xml", &sam, None).await;
    assert_eq!((status, &lines["code"]), (StatusCode::BAD_REQUEST, &json!("bad_request")), "{lines}");
}
