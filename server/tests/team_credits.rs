//! Team credits (issue 22) end to end, on SQLite and PostgreSQL: a team of three shares one
//! balance that an operator grants and runs of the team's workflows draw on (the member's own
//! balance does not move; a personal workflow still charges its user); a short team balance
//! refuses a run before anything is held and a cancelled run gives its holds back to the team;
//! owners and admins set monthly spending limits that refuse a member at their limit, and that
//! concurrent submissions cannot pass together; a signed Stripe checkout for a team credits it
//! once, and only when its payer manages that team. Every story checks the team's ledger: each
//! entry's balance is the previous one's plus its amount, and the last one is the balance.

mod common;

use common::WAIT;
use common::database::Backend;
use common::process::BINARY;
use common::runs::{SECRET, edge, join, typed_node, write_graph};
use common::teams::{TeamWorld, person};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

dojo_test_support::each_backend_story!(
    a_team_of_three_shares_one_balance_and_personal_runs_charge_the_user,
    a_short_team_balance_refuses_before_holding_and_a_cancelled_run_refunds_the_team,
    spending_limits_refuse_a_member_at_their_limit_even_under_concurrent_submissions,
    a_stripe_checkout_for_a_team_credits_it_once_and_only_from_its_managers,
);

const WEBHOOK_SECRET: &str = "whsec_team_credits_test";

/// `dojo-server admin …` against the story's database; its standard output.
fn admin(url: &str, args: &[&str]) -> String {
    let output = std::process::Command::new(BINARY)
        .arg("admin")
        .args(args)
        .env("DATABASE_URL", url)
        .env("DOJO_JWT_SECRET", SECRET)
        .env("USER", "operator-ann")
        .output()
        .expect("run the admin command");
    assert!(output.status.success(), "{args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A canvas in `room` (an existing workflow) with one paid node (`dev-image`, 1 credit); the
/// prompt differs per room so that no run is served from another's cache.
async fn image_canvas(world: &TeamWorld, room: &str, token: &str, prompt: &str) {
    let api = &world.story.api;
    let editor = join(api, room, token).await;
    let nodes = [
        typed_node("prompt", "text-prompt", json!({ "text": prompt })),
        typed_node("gen", "dev-image", json!({ "seed": 3, "width": 16, "height": 16 })),
    ];
    write_graph(api, room, token, &editor, &nodes, &[edge("prompt", "text", "gen", "prompt")]).await;
    editor.close().await;
}

async fn submit(world: &TeamWorld, token: &str, room: &str, key: &str) -> (StatusCode, Value) {
    let path = format!("/api/rooms/{room}/runs");
    world.story.api.call(Method::POST, &path, token, Some(json!({})), Some(key)).await
}

async fn team_credits(world: &TeamWorld, team: &str, token: &str) -> Value {
    let path = format!("/api/teams/{team}/credits");
    world.expect("a member", Method::GET, &path, token, None, (StatusCode::OK, None)).await
}

fn spent_of(credits: &Value, user: &str) -> Value {
    credits["members"]
        .as_array()
        .and_then(|members| members.iter().find(|m| m["userId"] == user))
        .map(|m| json!({ "spent": m["spent"], "limit": m["limit"] }))
        .unwrap_or(Value::Null)
}

/// The team's whole ledger, oldest first, read page by page as `token` (an owner or admin),
/// checked: each entry's balance is the previous one's plus its amount (from 0), and the last
/// one is the team's balance.
async fn checked_ledger(world: &TeamWorld, team: &str, token: &str) -> Vec<Value> {
    let mut entries = Vec::new();
    let mut cursor: Option<i64> = None;
    loop {
        let path = match cursor {
            Some(cursor) => format!("/api/teams/{team}/ledger?limit=2&cursor={cursor}"),
            None => format!("/api/teams/{team}/ledger?limit=2"),
        };
        let page = world.expect("a manager", Method::GET, &path, token, None, (StatusCode::OK, None)).await;
        entries.extend(page["entries"].as_array().cloned().unwrap_or_default());
        match page["nextCursor"].as_i64() {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    entries.reverse();
    let mut balance = 0;
    for entry in &entries {
        balance += entry["amount"].as_i64().expect("amount");
        assert_eq!(entry["balanceAfter"], balance, "the chain breaks at {entry}: {entries:?}");
    }
    assert_eq!(team_credits(world, team, token).await["balance"], balance, "{entries:?}");
    entries
}

async fn a_team_of_three_shares_one_balance_and_personal_runs_charge_the_user(backend: Backend) {
    let world = TeamWorld::start(backend, |_| {}).await;
    let (ada, bob, cy) = (person("ada"), person("bob"), person("cy"));
    let cy_id = world.story.user_with_credits(&cy, 5).await;
    let ada_id = world.user_id(&ada).await;
    let team = world.team(&ada, "Studio").await;
    world.join(&team, &ada, &bob, "admin").await;
    world.join(&team, &ada, &cy, "member").await;

    // The operator's grant, run twice with one key: applied once.
    let url = world.story.api.database_url.clone();
    let args = ["grant-credits", "--team", team.as_str(), "10", "--idempotency-key", "studio-1"];
    assert!(admin(&url, &args).starts_with("applied"), "the first grant applies");
    assert!(admin(&url, &args).starts_with("already applied"), "the second changes nothing");
    assert_eq!(team_credits(&world, &team, &cy).await["balance"], 10);

    // A member runs the team's workflow: the team pays, the member's balance does not move.
    world.team_workflow(&team, &ada, "studio-board").await;
    image_canvas(&world, "studio-board", &ada, "a heron at dawn").await;
    let (status, accepted) = submit(&world, &cy, "studio-board", "cy-team-1").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    let run = accepted["runId"].as_str().expect("run id").to_owned();
    let done = world.story.wait_run(&cy, &run, WAIT, |r| r["status"] == "succeeded").await;
    assert_eq!(done["charged"], 1, "{done}");
    let credits = team_credits(&world, &team, &cy).await;
    assert_eq!(credits["balance"], 9, "{credits}");
    assert_eq!(spent_of(&credits, &cy_id), json!({ "spent": 1, "limit": null }), "{credits}");
    assert_eq!(spent_of(&credits, &ada_id), json!({ "spent": 0, "limit": null }), "{credits}");
    assert_eq!(world.story.balance(&cy).await, 5, "the member's own balance is unchanged");

    // A personal workflow still charges its user, and not the team.
    world.story.workflow(&cy, "cy-own").await;
    image_canvas(&world, "cy-own", &cy, "a heron at dusk").await;
    let (status, accepted) = submit(&world, &cy, "cy-own", "cy-own-1").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    let run = accepted["runId"].as_str().expect("run id").to_owned();
    world.story.wait_run(&cy, &run, WAIT, |r| r["status"] == "succeeded").await;
    assert_eq!(world.story.balance(&cy).await, 4);
    assert_eq!(team_credits(&world, &team, &cy).await["balance"], 9);

    // The team's ledger adds up, names the member who ran, and the grant's first owner.
    let entries = checked_ledger(&world, &team, &bob).await;
    assert_eq!(entries.len(), 3, "grant, hold, capture: {entries:?}");
    assert_eq!(entries[0]["userId"], ada_id.as_str(), "{entries:?}");
    assert!(entries[1..].iter().all(|e| e["userId"] == cy_id.as_str()), "{entries:?}");
    // The member's own ledger (and so their export) lists what they spent from the team.
    let (_, mine) = world.call(Method::GET, "/api/me/ledger", &cy, None).await;
    let team_entries: Vec<&Value> =
        mine.as_array().expect("ledger").iter().filter(|e| e["teamId"] == team.as_str()).collect();
    assert_eq!(team_entries.len(), 2, "{mine}");
    // A plain member may not read the team's ledger; the grant is in the audit log, once.
    let path = format!("/api/teams/{team}/ledger");
    world.expect("a member", Method::GET, &path, &cy, None, (StatusCode::FORBIDDEN, Some("forbidden"))).await;
    let granted = world.audit(&team, &ada, "action=team.credits_granted").await;
    assert_eq!(granted.len(), 1, "{granted:?}");
    assert_eq!(granted[0]["actorType"], "operator", "{granted:?}");
    assert_eq!(granted[0]["detail"]["amount"], 10, "{granted:?}");

    // The member deletes their account: the team's entries that named them stay, under their
    // pseudonym, and the team's ledger still adds up.
    let (_, step) = world.call(Method::POST, "/api/me/deletion", &cy, None).await;
    let (status, deleted) =
        world.call(Method::DELETE, "/api/me", &cy, Some(json!({ "confirm": step["confirm"] }))).await;
    assert_eq!(status, StatusCode::OK, "{deleted}");
    let pseudonym = deleted["pseudonym"].as_str().expect("a pseudonym");
    let entries = checked_ledger(&world, &team, &bob).await;
    assert_eq!(entries.len(), 3, "{entries:?}");
    assert!(entries[1..].iter().all(|e| e["userId"] == pseudonym), "{entries:?}");
    assert!(!entries.iter().any(|e| e.to_string().contains(cy_id.as_str())), "{entries:?}");
}

async fn a_short_team_balance_refuses_before_holding_and_a_cancelled_run_refunds_the_team(backend: Backend) {
    // Nothing executes: runs stay queued until cancelled.
    let world = TeamWorld::start(backend, |config| config.executor.run_workers = 0).await;
    let (ada, cy) = (person("ada"), person("cy"));
    world.story.user_with_credits(&cy, 5).await;
    let team = world.team(&ada, "Lean").await;
    world.join(&team, &ada, &cy, "member").await;
    world.team_workflow(&team, &ada, "lean-board").await;
    image_canvas(&world, "lean-board", &ada, "an empty purse").await;

    let (status, refused) = submit(&world, &cy, "lean-board", "broke-1").await;
    assert_eq!(status, StatusCode::PAYMENT_REQUIRED, "{refused}");
    assert_eq!(refused["code"], "insufficient_credits", "{refused}");
    assert_eq!(refused["teamId"], team.as_str(), "names the team's balance: {refused}");
    assert_eq!((refused["balance"].clone(), refused["cost"].clone()), (json!(0), json!(1)), "{refused}");
    assert!(checked_ledger(&world, &team, &ada).await.is_empty(), "nothing was held");
    assert_eq!(world.story.balance(&cy).await, 5, "nor taken from the member");

    world.grant_team(&team, 3, "lean-1").await;
    let (status, accepted) = submit(&world, &cy, "lean-board", "lean-2").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    assert_eq!(team_credits(&world, &team, &cy).await["balance"], 2, "held from the team");
    let run = accepted["runId"].as_str().expect("run id").to_owned();
    let path = format!("/api/runs/{run}/cancel");
    let (status, cancelled) = world.call(Method::POST, &path, &cy, None).await;
    assert!(status.is_success(), "{cancelled}");
    world.story.wait_run(&cy, &run, WAIT, |r| r["status"] == "cancelled").await;
    let credits = team_credits(&world, &team, &cy).await;
    assert_eq!(credits["balance"], 3, "the hold went back to the team: {credits}");
    assert!(credits["members"].as_array().expect("members").iter().all(|m| m["spent"] == 0), "{credits}");
    let entries = checked_ledger(&world, &team, &ada).await;
    let amounts: Vec<i64> = entries.iter().filter_map(|e| e["amount"].as_i64()).collect();
    assert_eq!(amounts, [3, -1, 1], "grant, hold, release: {entries:?}");
    assert_eq!(world.story.balance(&cy).await, 5);
}

async fn spending_limits_refuse_a_member_at_their_limit_even_under_concurrent_submissions(backend: Backend) {
    let world = TeamWorld::start(backend, |config| config.executor.run_workers = 0).await;
    let (ada, bob, cy, dee, vic) = (person("ada"), person("bob"), person("cy"), person("dee"), person("vic"));
    let team = world.team(&ada, "Budget").await;
    world.join(&team, &ada, &bob, "admin").await;
    world.join(&team, &ada, &cy, "member").await;
    world.join(&team, &ada, &dee, "member").await;
    world.join(&team, &ada, &vic, "viewer").await;
    let (cy_id, dee_id) = (world.user_id(&cy).await, world.user_id(&dee).await);
    world.grant_team(&team, 100, "budget-1").await;
    world.team_workflow(&team, &ada, "budget-board").await;
    image_canvas(&world, "budget-board", &ada, "a careful fox").await;

    // Who may set a limit, and what a limit may be.
    let limit_path = |user: &str| format!("/api/teams/{team}/members/{user}/spending-limit");
    let one = Some(json!({ "limit": 1 }));
    for (why, body, code) in [
        ("no limit field", json!({}), "bad_request"),
        ("a negative limit", json!({ "limit": -1 }), "bad_request"),
        ("a limit past 2^53", json!({ "limit": 9_007_199_254_740_993_i64 }), "bad_request"),
    ] {
        let (status, answer) = world.call(Method::PUT, &limit_path(&cy_id), &bob, Some(body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{why}: {answer}");
        assert!(answer["code"] == code || answer["code"] == "invalid_body", "{why}: {answer}");
    }
    let forbidden = (StatusCode::FORBIDDEN, Some("forbidden"));
    world.expect("a member", Method::PUT, &limit_path(&cy_id), &cy, one.clone(), forbidden).await;
    world.expect("a viewer", Method::PUT, &limit_path(&cy_id), &vic, one.clone(), forbidden).await;
    let stranger = world.user_id(&person("stranger")).await;
    let not_found = (StatusCode::NOT_FOUND, Some("not_found"));
    world.expect("not a member", Method::PUT, &limit_path(&stranger), &bob, one.clone(), not_found).await;
    let set =
        world.expect("an admin", Method::PUT, &limit_path(&cy_id), &bob, one, (StatusCode::OK, None)).await;
    assert_eq!(set, json!({ "userId": cy_id, "limit": 1 }));

    // At the limit: refused with the numbers; another member is not.
    let (status, _) = submit(&world, &cy, "budget-board", "cy-1").await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (status, refused) = submit(&world, &cy, "budget-board", "cy-2").await;
    assert_eq!(status, StatusCode::PAYMENT_REQUIRED, "{refused}");
    assert_eq!(refused["code"], "spending_limit_reached", "{refused}");
    assert_eq!((refused["limit"].clone(), refused["spent"].clone()), (json!(1), json!(1)), "{refused}");
    assert_eq!(refused["requested"], 1, "{refused}");
    let (status, accepted) = submit(&world, &dee, "budget-board", "dee-1").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");

    // Concurrent submissions by one member cannot pass their limit together.
    let three = Some(json!({ "limit": 3 }));
    world.expect("the owner", Method::PUT, &limit_path(&dee_id), &ada, three, (StatusCode::OK, None)).await;
    let attempts = (0..8).map(|i| {
        let (world, dee) = (&world, &dee);
        async move { submit(world, dee, "budget-board", &format!("dee-burst-{i}")).await }
    });
    let answers = futures_util::future::join_all(attempts).await;
    let accepted = answers.iter().filter(|(status, _)| *status == StatusCode::ACCEPTED).count();
    for (status, answer) in &answers {
        assert!(
            *status == StatusCode::ACCEPTED || answer["code"] == "spending_limit_reached",
            "{status}: {answer}"
        );
    }
    assert_eq!(accepted, 2, "1 spent before, 3 allowed: {answers:?}");
    // Viewers read the team's credits too; the numbers hold.
    let credits = team_credits(&world, &team, &vic).await;
    assert_eq!(spent_of(&credits, &dee_id), json!({ "spent": 3, "limit": 3 }), "{credits}");
    assert_eq!(spent_of(&credits, &cy_id), json!({ "spent": 1, "limit": 1 }), "{credits}");
    assert_eq!(credits["balance"], 100 - 4, "{credits}");
    checked_ledger(&world, &team, &bob).await;
    // Removing a limit lets the member run again; every change is audited.
    let none = Some(json!({ "limit": null }));
    world.expect("an admin", Method::PUT, &limit_path(&cy_id), &bob, none, (StatusCode::OK, None)).await;
    let (status, _) = submit(&world, &cy, "budget-board", "cy-3").await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let changes = world.audit(&team, &ada, "action=team.spending_limit_set").await;
    assert_eq!(changes.len(), 3, "{changes:?}");
    assert_eq!(changes[0]["detail"]["limit"], Value::Null, "newest first: {changes:?}");
}

async fn a_stripe_checkout_for_a_team_credits_it_once_and_only_from_its_managers(backend: Backend) {
    let world = TeamWorld::start(backend, |config| {
        config.auth.stripe_webhook_secret = Some(WEBHOOK_SECRET.into());
    })
    .await;
    let (ada, bob, cy, eve) = (person("ada"), person("bob"), person("cy"), person("eve"));
    let team = world.team(&ada, "Paying").await;
    world.join(&team, &ada, &bob, "admin").await;
    world.join(&team, &ada, &cy, "member").await;
    world.team(&eve, "Elsewhere").await;
    let (bob_id, cy_id, eve_id) =
        (world.user_id(&bob).await, world.user_id(&cy).await, world.user_id(&eve).await);

    let deliver = |event_id: &str, payer: &str, team: &str| {
        let event = json!({
            "id": event_id,
            "type": "checkout.session.completed",
            "data": { "object": {
                "id": "cs_team", "payment_status": "paid", "client_reference_id": payer,
                "metadata": { "credits": "40", "team_id": team },
            } },
        })
        .to_string();
        let api = &world.story.api;
        let now = i64::try_from(dojo_auth::unix_now()).expect("now");
        let signature = dojo_records::stripe::sign(event.as_bytes(), WEBHOOK_SECRET, now);
        let request = api
            .http
            .post(api.http_url("/api/webhooks/stripe"))
            .header("Stripe-Signature", signature)
            .body(event);
        common::send_json(request)
    };
    // Paid by an admin: credited once, however often Stripe delivers it.
    let (status, ack) = deliver("evt_team_1", &bob_id, &team).await;
    assert_eq!(status, StatusCode::OK, "{ack}");
    assert_eq!(ack, json!({ "received": true, "credited": 40, "duplicate": false }));
    let (status, ack) = deliver("evt_team_1", &bob_id, &team).await;
    assert_eq!(status, StatusCode::OK, "{ack}");
    assert_eq!(ack, json!({ "received": true, "credited": 0, "duplicate": true }));
    assert_eq!(team_credits(&world, &team, &cy).await["balance"], 40);
    assert_eq!(world.story.balance(&bob).await, 0, "the payer's own balance is not credited");

    // A plain member, another team's owner, or an unknown team: refused, nothing credited.
    for (why, event, payer, target) in [
        ("a plain member pays", "evt_team_2", cy_id.as_str(), team.as_str()),
        ("another team's owner pays", "evt_team_3", eve_id.as_str(), team.as_str()),
        ("an unknown team", "evt_team_4", bob_id.as_str(), "team_0000000000000000"),
    ] {
        let (status, refused) = deliver(event, payer, target).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{why}: {refused}");
        assert_eq!(refused["code"], "bad_request", "{why}: {refused}");
    }
    let entries = checked_ledger(&world, &team, &ada).await;
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0]["userId"], bob_id.as_str(), "the payer is named: {entries:?}");
    let credited = world.audit(&team, &ada, "action=team.stripe_credited").await;
    assert_eq!(credited.len(), 1, "{credited:?}");
    assert_eq!(credited[0]["actorId"], "stripe", "{credited:?}");
    assert_eq!(credited[0]["detail"]["member"], bob_id.as_str(), "{credited:?}");
}
