//! Abusing the team provider key routes (issue 22): keys that are too long, empty, or carry
//! control characters; providers that do not exist; bodies of the wrong shape; a member below
//! admin; a server with no key-encryption key. Every refusal has its code, never echoes the key,
//! and stores nothing. On SQLite and PostgreSQL.

mod common;

use common::database::Backend;
use common::teams::{TEST_KEKS, TeamWorld, person, with_keks};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

dojo_test_support::each_backend_story!(
    bad_keys_providers_and_callers_are_refused_and_nothing_is_stored,
    without_a_key_encryption_key_storing_is_refused_with_its_own_code,
);

async fn keys_of(world: &TeamWorld, team: &str, token: &str) -> Vec<Value> {
    let (status, list) =
        world.call(Method::GET, &format!("/api/teams/{team}/provider-keys"), token, None).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    list["keys"].as_array().cloned().unwrap_or_default()
}

async fn bad_keys_providers_and_callers_are_refused_and_nothing_is_stored(backend: Backend) {
    let world = TeamWorld::start(backend, |config| with_keks(config, TEST_KEKS)).await;
    let (ada, cy) = (person("ada"), person("cy"));
    let team = world.team(&ada, "Guarded").await;
    world.join(&team, &ada, &cy, "member").await;
    let openai = format!("/api/teams/{team}/provider-keys/openai");
    let invalid_key = (StatusCode::BAD_REQUEST, Some("invalid_provider_key"));
    let long_key = format!("sk-{}", "x".repeat(1100));
    for (what, key) in [
        ("a key past 1024 bytes", long_key.as_str()),
        ("an empty key", "   "),
        ("a key with a control character", "sk-secret\u{0}tail-1234"),
        ("a key with a newline", "sk-secret\ntail-1234"),
        ("a key with a space inside", "sk-secret tail-1234"),
    ] {
        let refused =
            world.expect(what, Method::PUT, &openai, &ada, Some(json!({ "key": key })), invalid_key).await;
        assert!(!refused.to_string().contains("tail-1234"), "{what}: the key is echoed: {refused}");
    }
    let unknown = (StatusCode::BAD_REQUEST, Some("unknown_provider"));
    for provider in ["OpenAI", "anthropic", "fal.ai", &"p".repeat(300)] {
        let path = format!("/api/teams/{team}/provider-keys/{provider}");
        let body = Some(json!({ "key": "sk-valid-key-1234" }));
        world.expect("an unknown provider", Method::PUT, &path, &ada, body, unknown).await;
        world.expect("an unknown provider", Method::DELETE, &path, &ada, None, unknown).await;
    }
    let shape = (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_body"));
    for body in [json!({}), json!({ "key": 42 }), json!({ "key": "sk-1", "extra": true }), json!(["sk"])] {
        world.expect("a body of the wrong shape", Method::PUT, &openai, &ada, Some(body), shape).await;
    }
    // (A body past DOJO_MAX_BODY_BYTES is the edge's `body_too_large`, walked for every route by
    // abuse_api_errors; the server may close before a client finishes sending it.)
    // A member sees the team, not its keys; the refusal is `forbidden`, as on other team routes.
    let forbidden = (StatusCode::FORBIDDEN, Some("forbidden"));
    let body = Some(json!({ "key": "sk-member-key-1234" }));
    world.expect("a member", Method::PUT, &openai, &cy, body, forbidden).await;
    world
        .expect("a member", Method::GET, &format!("/api/teams/{team}/provider-keys"), &cy, None, forbidden)
        .await;
    assert!(keys_of(&world, &team, &ada).await.is_empty(), "a refused key was stored");
    world.story.server.stop().await;
}

async fn without_a_key_encryption_key_storing_is_refused_with_its_own_code(backend: Backend) {
    let world = TeamWorld::start(backend, |_| {}).await;
    let ada = person("ada");
    let team = world.team(&ada, "Unsealed").await;
    let path = format!("/api/teams/{team}/provider-keys/replicate");
    let refused = world
        .expect(
            "no KEK",
            Method::PUT,
            &path,
            &ada,
            Some(json!({ "key": "r8_unsealed_key_1234" })),
            (StatusCode::SERVICE_UNAVAILABLE, Some("key_encryption_not_configured")),
        )
        .await;
    assert!(refused["error"].as_str().unwrap_or_default().contains("DOJO_KEY_ENCRYPTION_KEYS"), "{refused}");
    assert!(keys_of(&world, &team, &ada).await.is_empty());
    world.story.server.stop().await;
}
