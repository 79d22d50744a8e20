//! Sharing a workflow by email (issue 20), over real HTTP on SQLite and PostgreSQL: an address
//! with an account is shared with at once; any other waits until someone signs in with it as a
//! verified email, and then they have the workflow; unverified emails, revoked and expired
//! invitations claim nothing; only the owner invites, lists and revokes; the pending ones are
//! bounded.

mod common;

use common::database::Backend;
use common::teams::{TeamWorld, person};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

dojo_test_support::each_backend_story!(
    an_address_with_an_account_is_shared_at_once_and_another_when_it_signs_in,
    unverified_revoked_and_expired_invitations_claim_nothing,
    only_the_owner_invites_and_the_pending_ones_are_bounded,
);

async fn invite(world: &TeamWorld, workflow: &str, owner: &str, email: &str, permission: &str) -> Value {
    let path = format!("/api/workflows/{workflow}/invitations");
    let body = json!({ "email": email, "permission": permission });
    let (status, answer) = world.call(Method::POST, &path, owner, Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    answer
}

async fn pending(world: &TeamWorld, workflow: &str, owner: &str) -> Vec<String> {
    let path = format!("/api/workflows/{workflow}/invitations");
    let (status, list) = world.call(Method::GET, &path, owner, None).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    list["invitations"]
        .as_array()
        .expect("invitations")
        .iter()
        .map(|i| {
            format!("{}:{}", i["email"].as_str().unwrap_or("?"), i["permission"].as_str().unwrap_or("?"))
        })
        .collect()
}

/// What `token`'s user may do with the workflow, as `GET /api/workflows/{id}` says (`None`:
/// they cannot see it).
async fn permission(world: &TeamWorld, workflow: &str, token: &str) -> Option<String> {
    let (status, answer) = world.call(Method::GET, &format!("/api/workflows/{workflow}"), token, None).await;
    match status {
        StatusCode::OK => Some(answer["permission"].as_str().expect("permission").to_owned()),
        StatusCode::NOT_FOUND => None,
        other => panic!("{other}: {answer}"),
    }
}

/// A token for `sub` whose email is `email`, verified or not.
fn token_with_email(sub: &str, email: &str, verified: Option<bool>) -> String {
    let mut claims = dojo_auth::Claims::new(sub, 600);
    claims.email = Some(email.into());
    claims.email_verified = verified;
    dojo_auth::Minter::hs256(common::runs::SECRET.as_bytes()).mint(&claims).expect("mint")
}

async fn an_address_with_an_account_is_shared_at_once_and_another_when_it_signs_in(backend: Backend) {
    let world = TeamWorld::start(backend, |_| {}).await;
    let (ada, bob) = (person("ada"), person("bob"));
    let workflow = world.story.api.workflow(&ada, "by-email").await;
    let bob_id = world.user_id(&bob).await;

    // Bob has an account: he is a collaborator at once (addresses compare case-insensitively).
    let shared = invite(&world, &workflow, &ada, " Bob@Example.COM ", "write").await;
    assert_eq!(shared["status"], "shared", "{shared}");
    assert_eq!(shared["collaborator"]["userId"], bob_id.as_str(), "{shared}");
    assert_eq!(permission(&world, &workflow, &bob).await.as_deref(), Some("write"));
    assert!(pending(&world, &workflow, &ada).await.is_empty(), "nothing waits for an account that exists");

    // Cat has none yet: the invitation waits, and signing in with the address claims it.
    let waiting = invite(&world, &workflow, &ada, "cat@example.com", "read").await;
    assert_eq!(waiting["status"], "pending", "{waiting}");
    assert_eq!(waiting["invitation"]["email"], "cat@example.com", "{waiting}");
    assert!(waiting["invitation"]["expiresAt"].as_i64() > waiting["invitation"]["createdAt"].as_i64());
    assert_eq!(pending(&world, &workflow, &ada).await, vec!["cat@example.com:read"]);
    let cat = person("cat");
    assert_eq!(
        permission(&world, &workflow, &cat).await.as_deref(),
        Some("read"),
        "cat has it on first sign-in"
    );
    let (status, mine) = world.call(Method::GET, "/api/workflows", &cat, None).await;
    assert_eq!(status, StatusCode::OK, "{mine}");
    assert!(mine.to_string().contains(&workflow), "listed among cat's workflows: {mine}");
    let (status, graph) = world.call(Method::GET, "/api/rooms/by-email/graph", &cat, None).await;
    assert_eq!(status, StatusCode::OK, "cat reads the canvas: {graph}");
    assert!(pending(&world, &workflow, &ada).await.is_empty(), "a claimed invitation is gone");
    let (_, detail) = world.call(Method::GET, &format!("/api/workflows/{workflow}"), &ada, None).await;
    let collaborators = detail["collaborators"].as_array().expect("collaborators").len();
    assert_eq!(collaborators, 2, "bob and cat: {detail}");

    // Inviting an address again changes what it will get.
    invite(&world, &workflow, &ada, "dan@example.com", "read").await;
    invite(&world, &workflow, &ada, "dan@example.com", "write").await;
    assert_eq!(pending(&world, &workflow, &ada).await, vec!["dan@example.com:write"]);
    assert_eq!(permission(&world, &workflow, &person("dan")).await.as_deref(), Some("write"));
}

async fn unverified_revoked_and_expired_invitations_claim_nothing(backend: Backend) {
    let world = TeamWorld::start(backend, |_| {}).await;
    let ada = person("ada");
    let workflow = world.story.api.workflow(&ada, "by-email-2").await;

    // A token that says its email is unverified carries no email for Dojo.
    invite(&world, &workflow, &ada, "eve@example.com", "write").await;
    let mallory = token_with_email("mallory", "eve@example.com", Some(false));
    assert_eq!(permission(&world, &workflow, &mallory).await, None, "an unverified email claims nothing");
    assert_eq!(pending(&world, &workflow, &ada).await, vec!["eve@example.com:write"], "still waiting");

    // Revoked: the address's owner signs in and gets nothing; revoking twice is 404.
    let path = format!("/api/workflows/{workflow}/invitations/EVE@example.com");
    world.expect("revoke", Method::DELETE, &path, &ada, None, (StatusCode::NO_CONTENT, None)).await;
    world
        .expect("revoke again", Method::DELETE, &path, &ada, None, (StatusCode::NOT_FOUND, Some("not_found")))
        .await;
    let eve = token_with_email("eve", "eve@example.com", Some(true));
    assert_eq!(permission(&world, &workflow, &eve).await, None, "a revoked invitation claims nothing");

    // Expired: made to expire in the database, it is neither listed nor claimed.
    invite(&world, &workflow, &ada, "fay@example.com", "write").await;
    expire_every_invitation(&world.story.api.database_url).await;
    assert!(pending(&world, &workflow, &ada).await.is_empty(), "an expired invitation is not listed");
    assert_eq!(
        permission(&world, &workflow, &person("fay")).await,
        None,
        "an expired invitation claims nothing"
    );

    // A deleted workflow's invitation claims nothing either.
    invite(&world, &workflow, &ada, "gus@example.com", "write").await;
    let (status, body) = world.call(Method::DELETE, &format!("/api/workflows/{workflow}"), &ada, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let gus = person("gus");
    let (_, mine) = world.call(Method::GET, "/api/workflows", &gus, None).await;
    assert!(!mine.to_string().contains(&workflow), "a deleted workflow is nobody's: {mine}");
}

async fn only_the_owner_invites_and_the_pending_ones_are_bounded(backend: Backend) {
    let world = TeamWorld::start(backend, |_| {}).await;
    let (ada, bob, eve) = (person("ada"), person("bob"), person("eve"));
    let workflow = world.story.api.workflow(&ada, "by-email-3").await;
    invite(&world, &workflow, &ada, "bob@example.com", "write").await;
    world.user_id(&bob).await;
    world.user_id(&eve).await;
    let invitations = format!("/api/workflows/{workflow}/invitations");
    let body = || Some(json!({ "email": "zed@example.com", "permission": "read" }));

    // An editor is not the owner; a stranger cannot even see the workflow.
    for (who, token, refusal) in [
        ("an editor", &bob, (StatusCode::FORBIDDEN, Some("forbidden"))),
        ("a stranger", &eve, (StatusCode::NOT_FOUND, Some("not_found"))),
    ] {
        world.expect(who, Method::POST, &invitations, token, body(), refusal).await;
        world.expect(who, Method::GET, &invitations, token, None, refusal).await;
        let revoke = format!("{invitations}/zed@example.com");
        world.expect(who, Method::DELETE, &revoke, token, None, refusal).await;
    }

    // Bad input is refused with its reason.
    let refusals = [
        (json!({ "email": "not an email", "permission": "read" }), "bad_request"),
        (json!({ "email": "x".repeat(300) + "@example.com", "permission": "read" }), "bad_request"),
        (json!({ "email": "a\u{0}b@example.com", "permission": "read" }), "bad_request"),
        (json!({ "email": "zed@example.com", "permission": "admin" }), "bad_request"),
        (json!({ "email": "ada@example.com", "permission": "read" }), "conflict"),
    ];
    for (body, code) in refusals {
        let status = if code == "conflict" { StatusCode::CONFLICT } else { StatusCode::BAD_REQUEST };
        world.expect("bad input", Method::POST, &invitations, &ada, Some(body), (status, Some(code))).await;
    }

    // Fifty may wait; the fifty-first is refused, renewing one of the fifty is not.
    for i in 0..50 {
        invite(&world, &workflow, &ada, &format!("guest{i}@example.com"), "read").await;
    }
    let full = Some(json!({ "email": "one-more@example.com", "permission": "read" }));
    world
        .expect(
            "the 51st",
            Method::POST,
            &invitations,
            &ada,
            full,
            (StatusCode::TOO_MANY_REQUESTS, Some("quota_exceeded")),
        )
        .await;
    invite(&world, &workflow, &ada, "guest7@example.com", "write").await;
    assert_eq!(pending(&world, &workflow, &ada).await.len(), 50);
}

/// Sets every invitation's expiry in the past, straight in the database.
async fn expire_every_invitation(database_url: &str) {
    let database = dojo_store::open_database(database_url).await.expect("open the database");
    let statement = "UPDATE workflow_invitations SET expires_at = 1";
    match &database {
        dojo_store::Database::Postgres(store) => {
            sqlx::query(statement).execute(store.pool()).await.map(|_| ())
        }
        dojo_store::Database::Sqlite(store) => sqlx::query(statement).execute(store.pool()).await.map(|_| ()),
    }
    .expect("expire the invitations");
}
