//! Data rights (issue 22) over the real API, on SQLite and PostgreSQL: Zelda, with a workflow, a
//! run, ledger entries, uploads, a team of her own and a membership in Bob's, exports
//! everything, then deletes her account in two steps (a wrong, another account's or an expired
//! token is refused). Afterwards no text column of any table holds her id, email or name
//! (tables found through the database's catalogue, so new tables are covered), the ledger keeps
//! her entries under a pseudonym, her open connection is closed, and Bob's data is untouched.
//! And the analytics opt-out: stored, shown, and it stops presence events for that user; and a
//! deletion is refused while a run of hers still holds credits, until it is cancelled.

mod common;

use std::io::Read;

use common::WAIT;
use common::database::Backend;
use common::runs::{edge, join, typed_node as node, write_graph};
use common::teams::{TeamWorld, person};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use yrs::{Doc, ReadTxn, Transact, Update, updates::decoder::Decode};

dojo_test_support::each_backend_story!(
    export_has_everything_and_deletion_leaves_nothing_personal,
    the_analytics_opt_out_is_shown_and_stops_presence_events,
    an_export_past_the_size_limit_is_refused,
    deletion_waits_until_no_run_holds_credits,
);

/// The asset directory of one story: its own, since a deletion removes bytes that the shared
/// test directory would hold for other stories too (assets are content-addressed).
fn assets_dir(backend: Backend) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("dojo-data-rights-assets-{}-{backend:?}", std::process::id()))
}

async fn world(backend: Backend) -> TeamWorld {
    TeamWorld::start(backend, |config| {
        config.webhooks.webhook_allow_private = true;
        config.http.export_interval_secs = 3600;
        config.executor.assets_dir = assets_dir(backend);
    })
    .await
}

fn png(shade: u8) -> Vec<u8> {
    let image = image::RgbaImage::from_fn(8, 8, |x, y| image::Rgba([x as u8 * 16, y as u8 * 16, shade, 255]));
    dojo_executor::builtins::imaging::encode_png(&image::DynamicImage::ImageRgba8(image)).expect("encode")
}

async fn upload(world: &TeamWorld, token: &str, room: &str, body: Vec<u8>) -> String {
    let request = world
        .story
        .http
        .post(world.story.http_url(&format!("/api/assets?room={room}")))
        .bearer_auth(token)
        .header("content-type", "image/png")
        .body(body);
    let (status, body) = common::send_json(request).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["id"].as_str().expect("asset id").to_owned()
}

/// `GET /api/me/export`: the status and the archive's files by path.
async fn export(world: &TeamWorld, token: &str) -> (StatusCode, Vec<(String, Vec<u8>)>) {
    let response = world
        .story
        .http
        .get(world.story.http_url("/api/me/export"))
        .bearer_auth(token)
        .send()
        .await
        .expect("export");
    let status = response.status();
    let bytes = response.bytes().await.expect("body").to_vec();
    if status != StatusCode::OK {
        return (status, Vec::new());
    }
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(bytes.as_slice()));
    let mut files = Vec::new();
    for entry in archive.entries().expect("a tar.gz") {
        let mut entry = entry.expect("an entry");
        let path = entry.path().expect("a path").display().to_string();
        let mut content = Vec::new();
        entry.read_to_end(&mut content).expect("read");
        files.push((path, content));
    }
    (status, files)
}

fn file<'a>(files: &'a [(String, Vec<u8>)], path: &str) -> &'a [u8] {
    let paths: Vec<_> = files
        .iter()
        .map(|(p, b)| {
            if p.ends_with(".error.txt") { format!("{p}: {}", String::from_utf8_lossy(b)) } else { p.clone() }
        })
        .collect();
    files
        .iter()
        .find(|(p, _)| p == path)
        .map(|(_, b)| b.as_slice())
        .unwrap_or_else(|| panic!("no {path} in {paths:?}"))
}

fn json_file(files: &[(String, Vec<u8>)], path: &str) -> Value {
    serde_json::from_slice(file(files, path)).expect("json")
}

/// Every (table, column, hits) where a text column holds `needle`, over every table the
/// database's catalogue lists.
async fn find_everywhere(database_url: &str, needle: &str) -> Vec<(String, String, i64)> {
    let database = dojo_store::open_database(database_url).await.expect("open the database");
    let mut found = Vec::new();
    match &database {
        dojo_store::Database::Postgres(store) => {
            let columns: Vec<(String, String)> = sqlx::query_as(
                "SELECT table_name::text, column_name::text FROM information_schema.columns
                 WHERE table_schema = current_schema() AND data_type IN ('text', 'character varying')",
            )
            .fetch_all(store.pool())
            .await
            .expect("columns");
            assert!(columns.len() > 20, "the catalogue lists the text columns: {columns:?}");
            for (table, column) in columns {
                let sql =
                    format!("SELECT COUNT(*) FROM \"{table}\" WHERE \"{column}\" LIKE '%' || $1 || '%'");
                let hits: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                    .bind(needle)
                    .fetch_one(store.pool())
                    .await
                    .expect("search");
                if hits > 0 {
                    found.push((table, column, hits));
                }
            }
        }
        dojo_store::Database::Sqlite(store) => {
            let tables: Vec<String> =
                sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table'")
                    .fetch_all(store.pool())
                    .await
                    .expect("tables");
            assert!(tables.len() > 10, "the catalogue lists the tables: {tables:?}");
            for table in tables {
                let columns: Vec<(String, String)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT name, type FROM pragma_table_info('{table}')"
                )))
                .fetch_all(store.pool())
                .await
                .expect("columns");
                for (column, kind) in columns {
                    if !kind.eq_ignore_ascii_case("TEXT") {
                        continue;
                    }
                    let sql =
                        format!("SELECT COUNT(*) FROM \"{table}\" WHERE \"{column}\" LIKE '%' || $1 || '%'");
                    let hits: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                        .bind(needle)
                        .fetch_one(store.pool())
                        .await
                        .expect("search");
                    if hits > 0 {
                        found.push((table.clone(), column, hits));
                    }
                }
            }
        }
    }
    found
}

async fn export_has_everything_and_deletion_leaves_nothing_personal(backend: Backend) {
    let world = world(backend).await;
    let (zelda, bob, carl) = (person("zelda-q7x"), person("bob"), person("carl"));
    let name = "zelda-q7x";
    let zelda_id = world.story.user_with_credits(&zelda, 50).await;
    world.story.user_with_credits(&bob, 30).await;
    let bob_id = world.user_id(&bob).await;
    world.user_id(&carl).await;

    // Her workflow, with a graph, a run, an upload and a webhook.
    let room = "canvas-one";
    let workflow = world.story.workflow(&zelda, room).await;
    let editor = join(&world.story.api, room, &zelda).await;
    let nodes = [
        node("prompt", "text-prompt", json!({"text": "a heron"})),
        node("gen", "dev-image", json!({"seed": 3, "width": 16, "height": 16})),
    ];
    write_graph(&world.story.api, room, &zelda, &editor, &nodes, &[edge("prompt", "text", "gen", "prompt")])
        .await;
    let run = world.story.submit(&zelda, room, "z-1").await;
    world.story.wait_run(&zelda, &run, WAIT, |r| r["status"] == "succeeded").await;
    let picture = png(7);
    let asset = upload(&world, &zelda, room, picture.clone()).await;
    let hook = json!({"url": "http://127.0.0.1:9/zelda-hook", "events": ["run.finished"]});
    let (status, body) =
        world.call(Method::POST, &format!("/api/workflows/{workflow}/webhooks"), &zelda, Some(hook)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    // Bob's team, which she joins; her own team; Bob shares a workflow with her.
    let bob_team = world.team(&bob, "Bob's studio").await;
    world.join(&bob_team, &bob, &zelda, "member").await;
    let bob_team_room = world.team_workflow(&bob_team, &bob, "bob-team-canvas").await;
    // Her visit to the team's canvas is reported (with her name) in its change feed.
    let visit = join(&world.story.api, "bob-team-canvas", &zelda).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while !world.story.events(&bob, &bob_team_room).await.iter().any(|(kind, _)| kind == "user.entered") {
        assert!(tokio::time::Instant::now() < deadline, "her visit is reported");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    drop(visit);
    let own_team = world.team(&zelda, "Solo").await;
    world.team_workflow(&own_team, &zelda, "solo-canvas").await;
    let bob_workflow = world.story.workflow(&bob, "bob-canvas").await;
    let path = format!("/api/workflows/{bob_workflow}/collaborators/{zelda_id}");
    let (status, body) = world.call(Method::PUT, &path, &bob, Some(json!({"permission": "write"}))).await;
    assert!(status.is_success(), "{body}");
    // She invited an address nobody has yet to her workflow: the pending invitation names her
    // as who sent it.
    let path = format!("/api/workflows/{workflow}/invitations");
    let body = Some(json!({"email": "not-yet-here@example.com", "permission": "read"}));
    let (status, answer) = world.call(Method::POST, &path, &zelda, body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["status"], "pending", "{answer}");

    // The export has all of it.
    let (status, files) = export(&world, &zelda).await;
    assert_eq!(status, StatusCode::OK);
    let profile = json_file(&files, "profile.json");
    assert_eq!(profile["id"], zelda_id.as_str());
    assert_eq!(profile["email"], "zelda-q7x@example.com");
    let workflows = json_file(&files, "workflows.json");
    assert!(
        workflows.as_array().expect("a list").iter().any(|w| w["id"] == workflow.as_str()),
        "{workflows}"
    );
    let canvas = json_file(&files, &format!("workflows/{workflow}/document.json"));
    assert!(canvas["nodes"].get("gen").is_some(), "{canvas}");
    let doc = Doc::new();
    let update =
        Update::decode_v1(file(&files, &format!("workflows/{workflow}/document.yjs"))).expect("a v1 update");
    doc.transact_mut().apply_update(update).expect("applies");
    let graph = dojo_sync_protocol::canvas::read_graph(&doc.transact()).expect("a canvas");
    assert!(graph.nodes.iter().any(|n| n.id == "gen"), "the Yjs copy has the graph");
    assert!(!doc.transact().state_vector().is_empty());
    let hooks = json_file(&files, &format!("workflows/{workflow}/webhooks.json"));
    assert_eq!(hooks[0]["url"], "http://127.0.0.1:9/zelda-hook", "{hooks}");
    assert!(
        !String::from_utf8_lossy(file(&files, &format!("workflows/{workflow}/webhooks.json")))
            .contains("whsec_")
    );
    let runs = json_file(&files, "runs.json");
    assert!(runs.as_array().expect("runs").iter().any(|r| r["run"]["id"] == run.as_str()), "{runs}");
    let ledger = json_file(&files, "ledger.json");
    assert!(ledger.as_array().expect("entries").len() >= 2, "the grant and the run's charge: {ledger}");
    let assets = json_file(&files, "assets.json");
    assert!(assets.as_array().expect("assets").iter().any(|a| a["id"] == asset.as_str()), "{assets}");
    assert_eq!(file(&files, &format!("assets/{asset}")), picture.as_slice());
    let teams = json_file(&files, "teams.json");
    let team_ids: Vec<&str> =
        teams.as_array().expect("teams").iter().filter_map(|t| t["team"]["id"].as_str()).collect();
    assert!(team_ids.contains(&bob_team.as_str()) && team_ids.contains(&own_team.as_str()), "{teams}");
    // Once per interval.
    let (status, _) = export(&world, &zelda).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);

    // Bob may not leave his team without an owner: step one refuses him.
    world
        .expect(
            "the last owner",
            Method::POST,
            "/api/me/deletion",
            &bob,
            None,
            (StatusCode::CONFLICT, Some("last_owner")),
        )
        .await;

    // Step one: a summary and a token. Nothing is deleted by it.
    let (status, step) = world.call(Method::POST, "/api/me/deletion", &zelda, None).await;
    assert_eq!(status, StatusCode::OK, "{step}");
    assert_eq!(step["summary"]["workflowsDeleted"], 2, "her own and her solo team's: {step}");
    assert_eq!(step["summary"]["teamsDeleted"], 1, "{step}");
    assert_eq!(step["summary"]["teamMemberships"], 2, "{step}");
    let token = step["confirm"].as_str().expect("a token").to_owned();
    let refused = (StatusCode::FORBIDDEN, Some("deletion_not_confirmed"));
    world
        .expect(
            "a wrong token",
            Method::DELETE,
            "/api/me",
            &zelda,
            Some(json!({"confirm": "del_00"})),
            refused,
        )
        .await;
    let (_, carls) = world.call(Method::POST, "/api/me/deletion", &carl, None).await;
    let carls = json!({"confirm": carls["confirm"]});
    world.expect("another account's token", Method::DELETE, "/api/me", &zelda, Some(carls), refused).await;
    world
        .expect(
            "no body",
            Method::DELETE,
            "/api/me",
            &zelda,
            None,
            (StatusCode::UNSUPPORTED_MEDIA_TYPE, None),
        )
        .await;
    // Expired: the confirmation's time is moved into the past.
    let database = dojo_store::open_database(&world.story.database_url).await.expect("open");
    let expire = "UPDATE account_deletions SET expires_at = 1 WHERE user_id = $1";
    match &database {
        dojo_store::Database::Postgres(s) => {
            sqlx::query(expire).bind(&zelda_id).execute(s.pool()).await.map(drop)
        }
        dojo_store::Database::Sqlite(s) => {
            sqlx::query(expire).bind(&zelda_id).execute(s.pool()).await.map(drop)
        }
    }
    .expect("expire");
    let confirm = json!({ "confirm": token });
    world.expect("an expired token", Method::DELETE, "/api/me", &zelda, Some(confirm), refused).await;
    assert_eq!(world.user_id(&zelda).await, zelda_id, "refusals delete nothing");

    // The search finds her while she exists (so its silence afterwards means something).
    let before = find_everywhere(&world.story.database_url, &zelda_id).await;
    assert!(before.iter().any(|(table, _, _)| table == "credit_ledger"), "{before:?}");
    assert!(!find_everywhere(&world.story.database_url, "zelda-q7x@example.com").await.is_empty());

    let (_, step) = world.call(Method::POST, "/api/me/deletion", &zelda, None).await;
    let bob_ledger = world.story.ledger(&bob_id).await;
    let (status, deleted) =
        world.call(Method::DELETE, "/api/me", &zelda, Some(json!({"confirm": step["confirm"]}))).await;
    assert_eq!(status, StatusCode::OK, "{deleted}");
    let pseudonym = deleted["pseudonym"].as_str().expect("a pseudonym").to_owned();
    let stored = assets_dir(backend).join(&asset[..2]).join(&asset);
    assert!(!stored.exists(), "her upload's bytes are gone from the asset store");
    assert!(pseudonym.starts_with("deleted-"), "{deleted}");
    editor.wait_closed(WAIT).await.expect("her open connection is closed");

    // Nothing personal is left, in any text column of any table.
    for needle in [zelda_id.as_str(), name, "zelda-q7x@example.com"] {
        let found = find_everywhere(&world.story.database_url, needle).await;
        assert!(found.is_empty(), "{needle:?} is still in {found:?}");
    }
    // The ledger keeps her entries, under the pseudonym, down to a zero balance.
    let kept = world.story.ledger(&pseudonym).await;
    assert!(kept.len() >= 3, "grant, charge, forfeiture: {kept:?}");
    assert!(
        kept.iter().any(|(amount, key)| *amount == -49 || key.starts_with("account-deleted:")),
        "{kept:?}"
    );
    // The deletion is in the audit log, as the pseudonym.
    let audited = "SELECT COUNT(*) FROM audit_log WHERE actor_id = $1 AND action = 'account.deleted'";
    let audited: i64 = match &database {
        dojo_store::Database::Postgres(s) => {
            sqlx::query_scalar(audited).bind(&pseudonym).fetch_one(s.pool()).await
        }
        dojo_store::Database::Sqlite(s) => {
            sqlx::query_scalar(audited).bind(&pseudonym).fetch_one(s.pool()).await
        }
    }
    .expect("audit");
    assert_eq!(audited, 1, "the deletion is audited under the pseudonym");

    // Bob's data is untouched: his team (with its workflow) and his workflow, his ledger.
    let (status, team) = world.call(Method::GET, &format!("/api/teams/{bob_team}"), &bob, None).await;
    assert_eq!(status, StatusCode::OK, "{team}");
    let (status, _) = world.call(Method::GET, &format!("/api/workflows/{bob_team_room}"), &bob, None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = world.call(Method::GET, &format!("/api/workflows/{bob_workflow}"), &bob, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(world.story.ledger(&bob_id).await, bob_ledger);
    assert_eq!(world.story.balance(&bob).await, 30);
}

async fn the_analytics_opt_out_is_shown_and_stops_presence_events(backend: Backend) {
    let world = world(backend).await;
    let ada = person("ada");
    let (_, me) = world.call(Method::GET, "/api/me", &ada, None).await;
    assert_eq!(me["analyticsOptOut"], false, "{me}");
    let room = "ada-canvas";
    let workflow = world.story.workflow(&ada, room).await;

    let (status, body) =
        world.call(Method::PUT, "/api/me/privacy", &ada, Some(json!({"analyticsOptOut": true}))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, me) = world.call(Method::GET, "/api/me", &ada, None).await;
    assert_eq!(me["analyticsOptOut"], true, "{me}");
    let (_, privacy) = world.call(Method::GET, "/api/me/privacy", &ada, None).await;
    assert_eq!(privacy["analyticsOptOut"], true, "{privacy}");
    world
        .expect(
            "an unknown field",
            Method::PUT,
            "/api/me/privacy",
            &ada,
            Some(json!({"analyticsOptOut": true, "x": 1})),
            (StatusCode::UNPROCESSABLE_ENTITY, None),
        )
        .await;

    // Opted out: her visit is not reported.
    let client = join(&world.story.api, room, &ada).await;
    drop(client);
    // Time for a report of it to be written, were it made; then a marker event, after which
    // every presence event must come.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    world.user_id(&person("bea")).await;
    let bea = world.user_id(&person("bea")).await;
    let path = format!("/api/workflows/{workflow}/collaborators/{bea}");
    let (status, body) = world.call(Method::PUT, &path, &ada, Some(json!({"permission": "read"}))).await;
    assert!(status.is_success(), "{body}");
    // Opted in again: the next one is.
    let (status, _) =
        world.call(Method::PUT, "/api/me/privacy", &ada, Some(json!({"analyticsOptOut": false}))).await;
    assert_eq!(status, StatusCode::OK);
    let _client = join(&world.story.api, room, &ada).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let events = world.story.events(&ada, &workflow).await;
        let entered = events.iter().filter(|(kind, _)| kind == "user.entered").count();
        if entered > 0 {
            let marker = events.iter().position(|(kind, _)| kind == "workflow.shared").expect("the marker");
            let first_presence =
                events.iter().position(|(kind, _)| kind.starts_with("user.")).expect("presence");
            assert!(first_presence > marker, "only the visit after opting in is reported: {events:?}");
            assert_eq!(entered, 1, "{events:?}");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the visit after opting in is reported: {events:?}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

async fn an_export_past_the_size_limit_is_refused(backend: Backend) {
    let world = TeamWorld::start(backend, |config| {
        config.http.export_max_bytes = 8 * 1024;
        config.http.export_interval_secs = 1;
        config.executor.assets_dir = assets_dir(backend);
    })
    .await;
    let ada = person("ada");
    world.story.workflow(&ada, "ada-small").await;
    let (status, files) = export(&world, &ada).await;
    assert_eq!(status, StatusCode::OK, "a small account fits");
    assert!(files.iter().any(|(path, _)| path == "profile.json"));
    // An upload larger than what is left: refused by its recorded size, before its bytes load.
    let noise: Vec<u8> = (0..64u32 * 64).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let image = image::RgbaImage::from_fn(64, 64, |x, y| {
        let v = noise[(y * 64 + x) as usize];
        image::Rgba([v, v.rotate_left(3), v ^ 0x5a, 255])
    });
    let big =
        dojo_executor::builtins::imaging::encode_png(&image::DynamicImage::ImageRgba8(image)).expect("png");
    assert!(big.len() > 8 * 1024, "the picture is past the limit: {}", big.len());
    upload(&world, &ada, "ada-small", big).await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let response = world
        .story
        .http
        .get(world.story.http_url("/api/me/export"))
        .bearer_auth(&ada)
        .send()
        .await
        .expect("export");
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let body: Value = response.json().await.expect("the envelope");
    assert_eq!(body["code"], "export_too_large", "{body}");
}

/// A queued run holds credits, so the account cannot go yet (409 `runs_active`, at both steps);
/// once the run is cancelled and its hold released, the deletion goes through.
async fn deletion_waits_until_no_run_holds_credits(backend: Backend) {
    // No worker in this process: the run stays queued, holding its credits.
    let world = TeamWorld::start(backend, |config| {
        config.executor.run_workers = 0;
        config.executor.assets_dir = assets_dir(backend);
    })
    .await;
    let yara = person("yara");
    world.story.user_with_credits(&yara, 40).await;
    let room = "yara-canvas";
    world.story.workflow(&yara, room).await;
    let editor = join(&world.story.api, room, &yara).await;
    let nodes = [
        node("prompt", "text-prompt", json!({"text": "a kite"})),
        node("gen", "dev-image", json!({"seed": 1, "width": 16, "height": 16})),
    ];
    write_graph(&world.story.api, room, &yara, &editor, &nodes, &[edge("prompt", "text", "gen", "prompt")])
        .await;
    let run = world.story.submit(&yara, room, "y-1").await;

    let (status, body) = world.call(Method::POST, "/api/me/deletion", &yara, None).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["code"], "runs_active", "{body}");
    let (_, current) = world.call(Method::GET, &format!("/api/runs/{run}"), &yara, None).await;
    assert_eq!(current["status"], "queued", "the refusal changed nothing: {current}");

    let (status, body) = world.call(Method::POST, &format!("/api/runs/{run}/cancel"), &yara, None).await;
    assert!(status.is_success(), "{body}");
    world.story.wait_run(&yara, &run, WAIT, |r| r["status"] == "cancelled").await;
    let (status, pending) = world.call(Method::POST, "/api/me/deletion", &yara, None).await;
    assert_eq!(status, StatusCode::OK, "{pending}");
    let confirm = pending["confirm"].as_str().expect("a confirmation token").to_owned();
    let (status, body) =
        world.call(Method::DELETE, "/api/me", &yara, Some(json!({"confirm": confirm}))).await;
    assert!(status.is_success(), "{body}");
    let (status, _) = world.call(Method::GET, &format!("/api/runs/{run}"), &yara, None).await;
    assert_ne!(status, StatusCode::OK, "her run went with her account");
}
