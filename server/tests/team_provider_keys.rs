//! Team provider keys (issue 22) end to end, against a local stand-in for Replicate that
//! records the `Authorization` header of every prediction: a run of a team's workflow uses the
//! team's key and another team's run the server's; with no server key, a team without one is
//! refused before any credit is held; no API answer and no log line carries a key; a row
//! tampered with or moved to another team in the real database fails its node instead of
//! reaching the provider; rotation re-seals every row under the new key-encryption key and
//! runs keep working. On SQLite and PostgreSQL.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use common::WAIT;
use common::database::Backend;
use common::replicate::{KEY as SERVER_KEY, Replicate};
use common::runs::{RunApi, edge, join, typed_node, write_graph};
use common::teams::{TEST_KEKS, TeamWorld, person, with_keks};
use dojo_ids::TeamId;
use dojo_records::key_crypto::Keyring;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

dojo_test_support::each_backend_story!(
    a_team_run_uses_the_teams_key_and_nothing_shows_it,
    without_a_server_key_only_teams_with_one_run_and_moved_or_changed_rows_fail,
    rotation_reseals_every_key_and_runs_keep_working,
);

const TEAM_KEY: &str = "r8_team_a_secret_key_9876";
const OTHER_TEAM_KEY: &str = "r8_team_b_other_key_5555";

/// Everything this test process logs, at every level: the servers run in-process.
fn captured_logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs: Arc<Mutex<Vec<u8>>> = Arc::default();
        let sink = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || LogWriter(sink.clone()))
            .finish();
        // A test binary's first story installs it; each story runs in a process of its own.
        let _ = tracing::subscriber::set_global_default(subscriber);
        logs
    })
    .clone()
}

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl Write for LogWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A team workflow in `room` with one Replicate node prompted with `prompt`.
async fn replicate_canvas(world: &TeamWorld, team: &str, owner: &str, room: &str, prompt: &str) {
    world.team_workflow(team, owner, room).await;
    let api: &RunApi = &world.story.api;
    let editor = join(api, room, owner).await;
    write_graph(
        api,
        room,
        owner,
        &editor,
        &[
            typed_node("prompt", "text-prompt", json!({ "text": prompt })),
            typed_node("flux", "flux-schnell", json!({})),
        ],
        &[edge("prompt", "text", "flux", "prompt")],
    )
    .await;
    editor.close().await;
}

async fn run_to_end(world: &TeamWorld, token: &str, room: &str, key: &str) -> Value {
    let api = &world.story.api;
    let run = api.submit(token, room, key).await;
    api.wait_run(token, &run, WAIT, |run| matches!(run["status"].as_str(), Some("succeeded" | "failed")))
        .await
}

async fn set_key(world: &TeamWorld, team: &str, token: &str, provider: &str, key: &str) -> Value {
    let path = format!("/api/teams/{team}/provider-keys/{provider}");
    world
        .expect("an owner", Method::PUT, &path, token, Some(json!({ "key": key })), (StatusCode::OK, None))
        .await
}

async fn a_team_run_uses_the_teams_key_and_nothing_shows_it(backend: Backend) {
    let logs = captured_logs();
    let replicate = Replicate::start().await;
    let providers = replicate.config();
    let world = TeamWorld::start(backend, move |config| {
        config.executor.providers = Some(providers);
        with_keks(config, TEST_KEKS);
    })
    .await;
    let (ada, cy) = (person("ada"), person("cy"));
    world.story.api.user_with_credits(&ada, 20).await;
    world.story.api.user_with_credits(&cy, 20).await;
    let team_a = world.team(&ada, "Keyed").await;
    let team_b = world.team(&cy, "Unkeyed").await;
    world.grant_team(&team_a, 20, "keyed").await;
    world.grant_team(&team_b, 20, "unkeyed").await;
    let mut answers = Vec::new();
    answers.push(set_key(&world, &team_a, &ada, "replicate", TEAM_KEY).await);
    assert_eq!(answers[0]["lastFour"], "9876", "{}", answers[0]);
    assert_eq!(answers[0]["kekId"], "k1", "{}", answers[0]);

    replicate_canvas(&world, &team_a, &ada, "keyed-board", "a keyed fox").await;
    replicate_canvas(&world, &team_b, &cy, "unkeyed-board", "an unkeyed fox").await;
    let run_a = run_to_end(&world, &ada, "keyed-board", "team-a-1").await;
    assert_eq!(run_a["status"], "succeeded", "{run_a}");
    let run_b = run_to_end(&world, &cy, "unkeyed-board", "team-b-1").await;
    assert_eq!(run_b["status"], "succeeded", "{run_b}");
    // The provider saw the team's key for the team's run, the server's for the other team's.
    assert_eq!(replicate.authorizations("a keyed fox"), vec![format!("Bearer {TEAM_KEY}")]);
    assert_eq!(replicate.authorizations("an unkeyed fox"), vec![format!("Bearer {SERVER_KEY}")]);

    // The list shows the last four, who and when, never the key.
    let (status, list) =
        world.call(Method::GET, &format!("/api/teams/{team_a}/provider-keys"), &ada, None).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let ada_id = world.user_id(&ada).await;
    assert_eq!(list["keys"][0]["provider"], "replicate", "{list}");
    assert_eq!(list["keys"][0]["lastFour"], "9876", "{list}");
    assert_eq!(list["keys"][0]["setBy"], ada_id.as_str(), "{list}");
    let (_, empty) = world.call(Method::GET, &format!("/api/teams/{team_b}/provider-keys"), &cy, None).await;
    assert_eq!(empty["keys"].as_array().map(Vec::len), Some(0), "another team's keys do not show: {empty}");
    // The audit log says who set and removed what (provider, last four), never the key.
    answers.push(set_key(&world, &team_a, &ada, "fal", "fal-key-abcdefgh-0001").await);
    let path = format!("/api/teams/{team_a}/provider-keys/fal");
    world.expect("the owner", Method::DELETE, &path, &ada, None, (StatusCode::NO_CONTENT, None)).await;
    world
        .expect("again", Method::DELETE, &path, &ada, None, (StatusCode::NOT_FOUND, Some("not_found")))
        .await;
    let audit = world.audit(&team_a, &ada, "").await;
    let actions: Vec<&str> = audit.iter().filter_map(|e| e["action"].as_str()).collect();
    assert!(actions.contains(&"provider_key.set") && actions.contains(&"provider_key.deleted"), "{audit:?}");
    let set = audit.iter().find(|e| e["action"] == "provider_key.set" && e["targetId"] == "replicate");
    assert_eq!(set.map(|e| e["detail"]["lastFour"].clone()), Some(json!("9876")), "{audit:?}");

    answers.extend([list, empty, run_a, run_b, Value::Array(audit)]);
    let (_, jsonl) =
        world.call(Method::GET, &format!("/api/teams/{team_a}/audit?format=jsonl"), &ada, None).await;
    answers.push(jsonl);
    for answer in &answers {
        let text = answer.to_string();
        assert!(
            !text.contains(TEAM_KEY) && !text.contains("fal-key-abcdefgh"),
            "an answer shows a key: {text}"
        );
    }
    // The row holds ciphertext, not the key.
    let database = dojo_store::open_database(&world.story.api.database_url).await.expect("open");
    let stored = dojo_records::provider_keys(&database)
        .provider_key(&TeamId::from(team_a.as_str()), "replicate")
        .await
        .expect("read")
        .expect("a row");
    assert!(!stored.sealed.ciphertext.windows(TEAM_KEY.len()).any(|w| w == TEAM_KEY.as_bytes()));
    assert_eq!(stored.sealed.nonce.len(), 12);

    world.story.server.stop().await;
    let logs = String::from_utf8_lossy(&logs.lock().expect("lock")).into_owned();
    assert!(logs.contains("run finished"), "the logs were captured: {} bytes", logs.len());
    assert!(!logs.contains(TEAM_KEY), "the team's key is in the server's logs");
    assert!(!logs.contains("fal-key-abcdefgh"), "a key is in the server's logs");
    assert!(!logs.contains(&TEST_KEKS[3..]), "the key-encryption key is in the server's logs");
}

async fn without_a_server_key_only_teams_with_one_run_and_moved_or_changed_rows_fail(backend: Backend) {
    let replicate = Replicate::start().await;
    let mut providers = replicate.config();
    // The stand-in's address, without the server's own key.
    providers.replicate.api_key = None;
    let world = TeamWorld::start(backend, move |config| {
        config.executor.providers = Some(providers);
        with_keks(config, TEST_KEKS);
    })
    .await;
    let (ada, cy) = (person("ada"), person("cy"));
    world.story.api.user_with_credits(&ada, 20).await;
    world.story.api.user_with_credits(&cy, 20).await;
    let team_a = world.team(&ada, "Keyed").await;
    let team_b = world.team(&cy, "Unkeyed").await;
    world.grant_team(&team_a, 20, "keyed").await;
    world.grant_team(&team_b, 20, "unkeyed").await;
    replicate_canvas(&world, &team_a, &ada, "keyed-board", "a keyed fox").await;
    replicate_canvas(&world, &team_b, &cy, "unkeyed-board", "an unkeyed fox").await;

    // No key anywhere: refused by name before anything is held.
    let (status, refused) =
        world.story.api.call(Method::POST, "/api/rooms/unkeyed-board/runs", &cy, Some(json!({})), None).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    assert_eq!(refused["nodeErrors"]["flux"]["errors"][0]["type"], "provider_unavailable", "{refused}");
    let message = refused["nodeErrors"]["flux"]["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(message.contains("nor the team"), "the reason says a team key would do: {refused}");
    assert_eq!(world.story.api.balance(&cy).await, 20, "nothing was held");
    let (_, credits) = world.call(Method::GET, &format!("/api/teams/{team_b}/credits"), &cy, None).await;
    assert_eq!(credits["balance"], 20, "nothing was held from the team either: {credits}");
    // The catalog of a team without a key agrees; once a team has one, its catalog says so
    // (the server's does not), and its run goes through.
    let flux_of = |catalog: &Value| {
        catalog["nodes"]
            .as_array()
            .and_then(|nodes| nodes.iter().find(|n| n["id"] == "flux-schnell").cloned())
    };
    let path_a = format!("/api/teams/{team_a}/catalog");
    let (_, before) = world.call(Method::GET, &path_a, &ada, None).await;
    assert_eq!(flux_of(&before).map(|n| n["available"].clone()), Some(json!(false)), "{before}");
    set_key(&world, &team_a, &ada, "replicate", TEAM_KEY).await;
    let (_, after) = world.call(Method::GET, &path_a, &ada, None).await;
    assert_eq!(flux_of(&after).map(|n| n["available"].clone()), Some(json!(true)));
    let (_, other) = world.call(Method::GET, &format!("/api/teams/{team_b}/catalog"), &cy, None).await;
    assert_eq!(flux_of(&other).map(|n| n["available"].clone()), Some(json!(false)));
    let (_, server) = world.call(Method::GET, "/api/catalog", &cy, None).await;
    assert_eq!(flux_of(&server).map(|n| n["available"].clone()), Some(json!(false)));
    let (status, _) = world.call(Method::GET, &path_a, &cy, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "another team's catalog is hidden");
    let run = run_to_end(&world, &ada, "keyed-board", "keyed-1").await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(replicate.authorizations("a keyed fox"), vec![format!("Bearer {TEAM_KEY}")]);

    // Team B sets a key of its own; then its row is overwritten with team A's sealed value,
    // straight in the database: it does not decrypt for team B, so the node fails and the
    // provider never sees team A's key on team B's behalf.
    set_key(&world, &team_b, &cy, "replicate", OTHER_TEAM_KEY).await;
    let database = dojo_store::open_database(&world.story.api.database_url).await.expect("open");
    let store = dojo_records::provider_keys(&database);
    let a_row =
        store.provider_key(&TeamId::from(team_a.as_str()), "replicate").await.expect("read").expect("row");
    let mut moved = a_row.clone();
    moved.team_id = TeamId::from(team_b.as_str());
    store.put_provider_key(moved).await.expect("write");
    let run = run_to_end(&world, &cy, "unkeyed-board", "moved-1").await;
    assert_eq!(run["status"], "failed", "{run}");
    let error = run["nodes"]["flux"]["error"].as_str().unwrap_or_default().to_owned();
    assert!(error.contains("does not decrypt"), "{run}");
    assert!(replicate.authorizations("an unkeyed fox").is_empty(), "the provider was called");
    assert_eq!(run["nodes"]["flux"]["hold"], "released", "{run}");

    // One flipped byte in team A's own row: its next run (a new prompt, so nothing is served
    // from the node cache) fails the same way.
    let mut tampered = a_row.clone();
    tampered.sealed.ciphertext[0] ^= 0x01;
    store.put_provider_key(tampered).await.expect("write");
    replicate_canvas(&world, &team_a, &ada, "tampered-board", "a tampered fox").await;
    let run = run_to_end(&world, &ada, "tampered-board", "tampered-1").await;
    assert_eq!(run["status"], "failed", "{run}");
    let error = run["nodes"]["flux"]["error"].as_str().unwrap_or_default().to_owned();
    assert!(error.contains("does not decrypt"), "{run}");
    assert!(replicate.authorizations("a tampered fox").is_empty(), "the provider was called with a bad key");
    world.story.server.stop().await;
}

async fn rotation_reseals_every_key_and_runs_keep_working(backend: Backend) {
    const NEW_FIRST: &str =
        "k2:AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=,k1:BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";
    let replicate = Replicate::start().await;
    let mut providers = replicate.config();
    providers.replicate.api_key = None;
    let world = TeamWorld::start(backend, move |config| {
        config.executor.providers = Some(providers);
        // The operator put a new KEK first; the old one stays listed.
        with_keks(config, NEW_FIRST);
    })
    .await;
    let ada = person("ada");
    world.story.api.user_with_credits(&ada, 20).await;
    let team = world.team(&ada, "Rotating").await;
    world.grant_team(&team, 20, "rotating").await;
    // Two canvases with different prompts: the second run is not served from the node cache.
    replicate_canvas(&world, &team, &ada, "rotating-before", "a fox before").await;
    replicate_canvas(&world, &team, &ada, "rotating-after", "a fox after").await;
    // A key sealed under the old KEK, as the previous configuration stored it.
    let database = dojo_store::open_database(&world.story.api.database_url).await.expect("open");
    let store = dojo_records::provider_keys(&database);
    let old = Keyring::parse(TEST_KEKS).expect("old keyring");
    let team_id = TeamId::from(team.as_str());
    let sealed = old
        .seal(dojo_records::key_crypto::KeyContext { team: &team, provider: "replicate" }, TEAM_KEY)
        .expect("seal");
    let user = world.user_id(&ada).await;
    store
        .put_provider_key(dojo_records::StoredProviderKey {
            team_id: team_id.clone(),
            provider: "replicate".into(),
            sealed,
            last_four: "9876".into(),
            set_by: user.as_str().into(),
            set_at: 1,
        })
        .await
        .expect("write");
    // Readable before the rotation…
    assert_eq!(run_to_end(&world, &ada, "rotating-before", "before").await["status"], "succeeded");
    // …re-sealed by the rotation (what `dojo-server admin rotate-provider-keys` runs)…
    let audit = dojo_records::audit_log(&database);
    let keyring = Keyring::parse(NEW_FIRST).expect("keyring");
    let actor = dojo_server::services::audit::Actor::operator();
    let done = dojo_server::services::provider_keys::rewrap_all(&store, &keyring, &audit, &actor)
        .await
        .expect("rotate");
    // (The server may have re-wrapped it at start-up already; either way it is now under k2.)
    assert!(done.failed == 0, "{done:?}");
    let (_, list) = world.call(Method::GET, &format!("/api/teams/{team}/provider-keys"), &ada, None).await;
    assert_eq!(list["keys"][0]["kekId"], "k2", "{list}");
    let row = store.provider_key(&team_id, "replicate").await.expect("read").expect("row");
    let new_only = Keyring::parse("k2:AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=").expect("keyring");
    let context = dojo_records::key_crypto::KeyContext { team: &team, provider: "replicate" };
    assert_eq!(new_only.open(context, &row.sealed).expect("opens without the old KEK").expose(), TEAM_KEY);
    // …and used after it.
    assert_eq!(run_to_end(&world, &ada, "rotating-after", "after").await["status"], "succeeded");
    assert_eq!(replicate.authorizations("a fox before"), vec![format!("Bearer {TEAM_KEY}")]);
    assert_eq!(replicate.authorizations("a fox after"), vec![format!("Bearer {TEAM_KEY}")]);
    let entries = world.audit(&team, &ada, "action=provider_key.rotated").await;
    assert_eq!(entries.len(), 1, "one rotation entry for the one key: {entries:?}");
    world.story.server.stop().await;
}
