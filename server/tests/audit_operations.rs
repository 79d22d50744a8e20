//! The audit log beyond teams (issue 22): a Stripe payment credited once is recorded once, by
//! the server on Stripe's word; an operator's `admin` commands are recorded as the operator's,
//! with what a minted token allows and never the token itself.

mod common;

use common::database::Backend;
use common::process::BINARY;
use common::runs::SECRET;
use common::teams::{TeamWorld, person};
use reqwest::StatusCode;
use serde_json::{Value, json};

const WEBHOOK_SECRET: &str = "whsec_audit_test";

/// Every audit entry with no team, oldest first: `(actor_type, actor_id, action, target_id, detail)`.
async fn entries_without_team(url: &str) -> Vec<(String, String, String, String, Value)> {
    let dojo_store::Database::Sqlite(store) = dojo_store::open_database(url).await.expect("open") else {
        panic!("an SQLite story")
    };
    let rows: Vec<(String, String, String, String, String)> = sqlx::query_as(
        "SELECT actor_type, actor_id, action, target_id, detail FROM audit_log WHERE team_id IS NULL ORDER BY seq",
    )
    .fetch_all(store.pool())
    .await
    .expect("read the audit log");
    rows.into_iter()
        .map(|(kind, actor, action, target, detail)| {
            (kind, actor, action, target, serde_json::from_str(&detail).expect("JSON detail"))
        })
        .collect()
}

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payments_and_operators_commands_are_recorded_once_and_without_secrets() {
    let world = TeamWorld::start(Backend::Sqlite, |config| {
        config.auth.stripe_webhook_secret = Some(WEBHOOK_SECRET.into());
    })
    .await;
    let buyer = person("buyer");
    let user = world.user_id(&buyer).await;
    let url = world.story.api.database_url.clone();

    // A checkout delivered twice: credited once, recorded once.
    let event = json!({
        "id": "evt_audit",
        "type": "checkout.session.completed",
        "data": { "object": { "id": "cs_1", "client_reference_id": user, "metadata": { "credits": "25" } } }
    })
    .to_string();
    let now = i64::try_from(dojo_auth::unix_now()).expect("now");
    let signature = dojo_records::stripe::sign(event.as_bytes(), WEBHOOK_SECRET, now);
    for _ in 0..2 {
        let response = world
            .story
            .api
            .http
            .post(world.story.api.http_url("/api/webhooks/stripe"))
            .header("Stripe-Signature", &signature)
            .body(event.clone())
            .send()
            .await
            .expect("post");
        assert_eq!(response.status(), StatusCode::OK);
    }
    // An operator's grant, run twice with one key: applied and recorded once.
    for _ in 0..2 {
        admin(&url, &["grant-credits", "buyer", "7", "--idempotency-key", "audit-1"]);
    }
    let token = admin(&url, &["mint-token", "render-service", "--grant", "render-*=write"]);
    let token = token.trim();
    assert!(token.len() > 40, "a token was printed");
    admin(&url, &["list-users", "--limit", "5"]);

    let entries = entries_without_team(&url).await;
    let actions: Vec<&str> = entries.iter().map(|e| e.2.as_str()).collect();
    assert_eq!(
        actions,
        ["credits.purchased", "credits.granted", "admin.token_minted", "admin.users_listed"],
        "{entries:?}"
    );
    let (kind, actor, _, target, detail) = &entries[0];
    assert_eq!((kind.as_str(), actor.as_str(), target.as_str()), ("system", "stripe", user.as_str()));
    assert_eq!(detail["amount"], 25);
    let (kind, actor, _, target, detail) = &entries[1];
    assert_eq!((kind.as_str(), actor.as_str(), target.as_str()), ("operator", "operator-ann", user.as_str()));
    assert_eq!(detail["amount"], 7);
    let (_, _, _, target, detail) = &entries[2];
    assert_eq!(target, "render-service");
    assert_eq!(detail["grants"], json!(["render-*=write"]));
    let everything = format!("{entries:?}");
    assert!(!everything.contains(token), "the minted token is not recorded");
    assert!(!everything.contains(WEBHOOK_SECRET) && !everything.contains(SECRET), "no secret is recorded");
    world.story.server.stop().await;
}
