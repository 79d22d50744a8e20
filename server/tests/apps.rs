//! App mode end to end (docs/apps.md): an owner publishes a workflow as a form; another user
//! opens it, runs it on their own credits and sees the chosen output, and never the graph, a
//! hidden node or a hidden parameter; the owner's room and workflow stay closed to them; bad
//! values are refused like a run's; edits after publishing change nothing until the next
//! publish; unpublishing stops new runs; a fixed image of the publisher's is read for runners who
//! may not read it, and only for that. On both databases.

mod common;

use std::io::Read;
use std::time::Duration;

use common::WAIT;
use common::database::Backend;
use common::runs::{RunStory, edge, join, png, result_json, token, typed_node as node, write_graph};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// A node id and a parameter value that only the graph holds: neither may reach a runner.
const HIDDEN_NODE: &str = "secret-blur";
const HIDDEN_VALUE: f64 = 7.25;

fn assert_hidden(what: &str, body: &Value) {
    let text = body.to_string();
    for secret in [HIDDEN_NODE, "7.25", "sigma", "\"gen\"", "\"prompt\"", "dev-image", "edges"] {
        assert!(!text.contains(secret), "{what} shows {secret:?}: {text}");
    }
}

/// `GET /api/apps/{app}/runs/{run}` until the run is finished.
async fn wait_app_run(story: &RunStory, token: &str, app: &str, run: &str) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (status, body) =
            story.call(Method::GET, &format!("/api/apps/{app}/runs/{run}"), token, None, None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        if matches!(body["status"].as_str(), Some("succeeded" | "failed" | "cancelled")) {
            return body;
        }
        assert!(tokio::time::Instant::now() < deadline, "the app's run never finished: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn publish_body(inputs: Value, outputs: Value) -> Value {
    json!({"title": "Fox maker", "description": "Makes a fox.", "inputs": inputs, "outputs": outputs})
}

fn good_inputs() -> Value {
    json!([{"node": "prompt", "param": "text", "label": "Prompt"}, {"node": "gen", "param": "seed", "label": "Seed"}])
}

fn good_outputs() -> Value {
    json!([{"node": HIDDEN_NODE, "output": "image", "label": "Result"}])
}

async fn an_app_runs_on_the_runners_credits_and_shows_only_its_form(backend: Backend) {
    let story = RunStory::start(backend).await;
    let (alice, bob, carol) = (token("alice"), token("bob"), token("carol"));
    story.user_with_credits(&alice, 5).await;
    story.user_with_credits(&bob, 10).await;
    let carol_id = story.user_with_credits(&carol, 10).await;
    let room = "app-story";
    let workflow = story.workflow(&alice, room).await;
    let editor = join(&story, room, &alice).await;
    let nodes = [
        node("prompt", "text-prompt", json!({"text": "a fox"})),
        node("gen", "dev-image", json!({"seed": 3, "width": 64, "height": 48})),
        node(HIDDEN_NODE, "blur", json!({"sigma": HIDDEN_VALUE})),
    ];
    let edges = [edge("prompt", "text", "gen", "prompt"), edge("gen", "image", HIDDEN_NODE, "image")];
    write_graph(&story, room, &alice, &editor, &nodes, &edges).await;
    let app_path = format!("/api/workflows/{workflow}/app");

    // Only the owner publishes: a stranger does not see the workflow, a reader may not.
    let body = publish_body(good_inputs(), good_outputs());
    let (status, refused) = story.call(Method::PUT, &app_path, &bob, Some(body.clone()), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{refused}");
    let share = format!("/api/workflows/{workflow}/collaborators/{carol_id}");
    let (status, shared) =
        story.call(Method::PUT, &share, &alice, Some(json!({"permission": "read"})), None).await;
    assert_eq!(status, StatusCode::OK, "{shared}");
    let (status, refused) = story.call(Method::PUT, &app_path, &carol, Some(body.clone()), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");

    // Bounds and names are refused with the field.
    let too_many: Vec<Value> =
        (0..21).map(|_| json!({"node": "gen", "param": "seed", "label": "Seed"})).collect();
    let cases = [
        (json!({"title": " ", "outputs": good_outputs()}), "title"),
        (json!({"title": "x".repeat(121), "outputs": good_outputs()}), "title"),
        (publish_body(json!(too_many), good_outputs()), "inputs"),
        (publish_body(json!([]), json!([])), "outputs"),
        (
            publish_body(json!([{"node": "nope", "param": "text", "label": "P"}]), good_outputs()),
            "inputs[0].node",
        ),
        (
            publish_body(json!([{"node": "gen", "param": "nope", "label": "P"}]), good_outputs()),
            "inputs[0].param",
        ),
        (
            publish_body(json!([{"node": "gen", "param": "seed", "label": "L".repeat(81)}]), good_outputs()),
            "inputs[0].label",
        ),
        (
            publish_body(json!([]), json!([{"node": HIDDEN_NODE, "output": "nope", "label": "R"}])),
            "outputs[0].output",
        ),
        (json!({"title": "T", "outputs": good_outputs(), "visibility": "team"}), "visibility"),
        (json!({"title": "T", "outputs": good_outputs(), "visibility": "everyone"}), "visibility"),
    ];
    for (body, field) in cases {
        let (status, refused) = story.call(Method::PUT, &app_path, &alice, Some(body), None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{field}: {refused}");
        assert_eq!(refused["code"], "invalid_app", "{refused}");
        assert_eq!(refused["field"], field, "{refused}");
    }
    let (status, none) = story.call(Method::GET, &app_path, &alice, None, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "nothing was published by the refusals: {none}");

    // Published.
    let (status, published) = story.call(Method::PUT, &app_path, &alice, Some(body), None).await;
    assert_eq!(status, StatusCode::OK, "{published}");
    let app = published["id"].as_str().expect("an app id").to_owned();
    assert_eq!(published["visibility"], "link");
    assert_eq!(published["inputs"][0]["key"], "in1");

    // The runner sees the form and nothing of the graph.
    let (status, form) = story.call(Method::GET, &format!("/api/apps/{app}"), &bob, None, None).await;
    assert_eq!(status, StatusCode::OK, "{form}");
    assert_hidden("the form", &form);
    assert_eq!(form["title"], "Fox maker");
    assert_eq!(form["inputs"][0]["key"], "in1");
    assert_eq!(form["inputs"][0]["default"], "a fox");
    assert_eq!(form["inputs"][1]["type"], "integer");
    assert_eq!(form["inputs"][1]["default"], 3);
    assert_eq!(form["inputs"][1]["min"], 0.0);
    assert_eq!(form["outputs"], json!([{"key": "out1", "label": "Result", "type": "image"}]));
    // Anonymous callers cannot open it.
    let anonymous = story.http.get(story.http_url(&format!("/api/apps/{app}"))).send().await.expect("GET");
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);

    // The owner's workflow and room stay closed to the runner.
    for path in [format!("/api/workflows/{workflow}"), format!("/api/rooms/{room}/graph"), app_path.clone()] {
        let (status, body) = story.call(Method::GET, &path, &bob, None, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
    }

    // Values are checked as a run checks them, and refused with the input's key.
    let runs = format!("/api/apps/{app}/runs");
    for (inputs, field) in [
        (json!({"in2": -5}), "inputs.in2"),
        (json!({"in2": "three"}), "inputs.in2"),
        (json!({"in9": 1}), "inputs.in9"),
        (json!({"in1": ["a", "list"]}), "inputs.in1"),
    ] {
        let (status, refused) =
            story.call(Method::POST, &runs, &bob, Some(json!({"inputs": inputs})), None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
        assert_eq!(refused["code"], "invalid_app_input", "{refused}");
        assert_eq!(refused["field"], field, "{refused}");
        assert_hidden("a refusal", &refused);
    }
    assert_eq!(story.balance(&bob).await, 10, "nothing held for refused values");

    // The run: billed to the runner, the chosen output only.
    let values = json!({"inputs": {"in1": "a cat", "in2": 7}});
    let (status, accepted) = story.call(Method::POST, &runs, &bob, Some(values), Some("k1")).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    assert_eq!(accepted["estimate"], 1, "only the generator costs");
    let run = accepted["runId"].as_str().expect("a run id").to_owned();
    let finished = wait_app_run(&story, &bob, &app, &run).await;
    assert_eq!(finished["status"], "succeeded", "{finished}");
    assert_hidden("the run", &finished);
    assert_eq!(finished["charged"], 1);
    assert_eq!(finished["outputs"][0]["key"], "out1");
    assert_eq!(finished["outputs"][0]["label"], "Result");
    let url = finished["outputs"][0]["value"]["url"].as_str().expect("an image url").to_owned();
    let png = story.http.get(story.http_url(&format!("{url}?token={bob}"))).send().await.expect("GET asset");
    assert_eq!(png.status(), StatusCode::OK);
    assert_eq!(png.headers()["content-type"], "image/png");
    assert_eq!(story.balance(&bob).await, 9, "the runner paid");
    assert_eq!(story.balance(&alice).await, 5, "the owner did not");

    // Only the runner sees the run, and not through the room-level run API (its graph and
    // parameters are the owner's).
    let path = format!("/api/apps/{app}/runs/{run}");
    let (status, body) = story.call(Method::GET, &path, &alice, None, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = story.call(Method::GET, &format!("/api/runs/{run}"), &bob, None, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    // The owner's document got nothing of the runner's run.
    let watcher = join(&story, room, &alice).await;
    let blur = result_json(watcher.doc(), HIDDEN_NODE);
    assert!(blur.is_null() || blur["runId"] != run.as_str(), "{blur}");
    watcher.close().await;

    // Edits after publishing change nothing until the next publish.
    let edit =
        json!({"ops": [{"op": "setParam", "node": "prompt", "name": "text", "value": "a changed prompt"}]});
    let (status, edited) =
        story.call(Method::POST, &format!("/api/rooms/{room}/edits"), &alice, Some(edit), None).await;
    assert_eq!(status, StatusCode::OK, "{edited}");
    let (_, graph) = story.call(Method::GET, &format!("/api/rooms/{room}/graph"), &alice, None, None).await;
    assert!(graph.to_string().contains("a changed prompt"), "the canvas changed: {graph}");
    let (_, form) = story.call(Method::GET, &format!("/api/apps/{app}"), &bob, None, None).await;
    assert_eq!(form["inputs"][0]["default"], "a fox", "{form}");
    // Republished (private this time: only those who may read the workflow), same id.
    let private = json!({"title": "Fox maker", "inputs": good_inputs(), "outputs": good_outputs(), "visibility": "private"});
    let (status, republished) = story.call(Method::PUT, &app_path, &alice, Some(private), None).await;
    assert_eq!(status, StatusCode::OK, "{republished}");
    assert_eq!(republished["id"], app.as_str());
    let (status, form) = story.call(Method::GET, &format!("/api/apps/{app}"), &carol, None, None).await;
    assert_eq!(status, StatusCode::OK, "a reader of the workflow opens a private app: {form}");
    assert_eq!(form["inputs"][0]["default"], "a changed prompt", "{form}");
    let (status, body) = story.call(Method::GET, &format!("/api/apps/{app}"), &bob, None, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "a private app is hidden from others: {body}");

    // Unpublished: no new runs; the runner's finished run stays theirs.
    let (status, _) = story.call(Method::DELETE, &app_path, &alice, None, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(audited(&story, "app.published").await, 2, "both publishes are audited");
    assert_eq!(audited(&story, "app.unpublished").await, 1, "unpublishing is audited");
    let (status, body) = story.call(Method::POST, &runs, &carol, Some(json!({"inputs": {}})), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = story.call(Method::GET, &format!("/api/apps/{app}"), &carol, None, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = story.call(Method::GET, &path, &bob, None, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "succeeded");
    let (status, _) = story.call(Method::DELETE, &app_path, &alice, None, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "nothing left to unpublish");

    editor.close().await;
    story.server.stop().await;
}

/// `GET /api/me/export`, unpacked: path → content.
async fn export(story: &RunStory, token: &str) -> Vec<(String, String)> {
    let response =
        story.http.get(story.http_url("/api/me/export")).bearer_auth(token).send().await.expect("export");
    assert_eq!(response.status(), StatusCode::OK);
    let bytes = response.bytes().await.expect("body").to_vec();
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(bytes.as_slice()));
    let mut files = Vec::new();
    for entry in archive.entries().expect("a tar.gz") {
        let mut entry = entry.expect("an entry");
        let path = entry.path().expect("a path").display().to_string();
        let mut content = Vec::new();
        entry.read_to_end(&mut content).expect("read");
        files.push((path, String::from_utf8_lossy(&content).into_owned()));
    }
    files
}

fn file<'a>(files: &'a [(String, String)], path: &str) -> &'a str {
    files.iter().find(|(p, _)| p == path).map(|(_, c)| c.as_str()).unwrap_or_else(|| panic!("no {path}"))
}

async fn audited(story: &RunStory, action: &str) -> i64 {
    let database = dojo_store::open_database(&story.database_url).await.expect("open the database");
    let sql = "SELECT COUNT(*) FROM audit_log WHERE action = $1";
    match &database {
        dojo_store::Database::Postgres(s) => sqlx::query_scalar(sql).bind(action).fetch_one(s.pool()).await,
        dojo_store::Database::Sqlite(s) => sqlx::query_scalar(sql).bind(action).fetch_one(s.pool()).await,
    }
    .expect("audit")
}

async fn exports_keep_the_graph_with_its_publisher_and_deleting_them_unpublishes(backend: Backend) {
    let story = RunStory::start(backend).await;
    let (alice, bob) = (token("alice"), token("bob"));
    story.user_with_credits(&alice, 5).await;
    story.user_with_credits(&bob, 10).await;
    let room = "app-rights";
    let workflow = story.workflow(&alice, room).await;
    let editor = join(&story, room, &alice).await;
    let nodes = [
        node("prompt", "text-prompt", json!({"text": "a fox"})),
        node("gen", "dev-image", json!({"seed": 3, "width": 32, "height": 32})),
        node(HIDDEN_NODE, "blur", json!({"sigma": HIDDEN_VALUE})),
    ];
    let edges = [edge("prompt", "text", "gen", "prompt"), edge("gen", "image", HIDDEN_NODE, "image")];
    write_graph(&story, room, &alice, &editor, &nodes, &edges).await;
    editor.close().await;
    let app_path = format!("/api/workflows/{workflow}/app");
    let body = publish_body(good_inputs(), good_outputs());
    let (status, published) = story.call(Method::PUT, &app_path, &alice, Some(body), None).await;
    assert_eq!(status, StatusCode::OK, "{published}");
    let app = published["id"].as_str().expect("an app id").to_owned();
    assert_eq!(audited(&story, "app.published").await, 1, "publishing is audited");

    let runs = format!("/api/apps/{app}/runs");
    let (status, accepted) = story.call(Method::POST, &runs, &bob, Some(json!({"inputs": {}})), None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    let run = accepted["runId"].as_str().expect("a run id").to_owned();
    assert_eq!(wait_app_run(&story, &bob, &app, &run).await["status"], "succeeded");

    // The runner's export has their run, without the publisher's graph or parameters.
    let files = export(&story, &bob).await;
    let runs_json = file(&files, "runs.json");
    assert!(runs_json.contains(&run), "{runs_json}");
    for secret in [HIDDEN_NODE, "7.25", "sigma"] {
        assert!(!runs_json.contains(secret), "the runner's export shows {secret:?}: {runs_json}");
    }
    assert_eq!(file(&files, "apps.json"), "[]", "the runner published nothing");
    // The publisher's lists the app, with its snapshot.
    let files = export(&story, &alice).await;
    let apps: Value = serde_json::from_str(file(&files, "apps.json")).expect("apps.json");
    assert_eq!(apps[0]["id"], app.as_str(), "{apps}");
    assert!(apps[0]["graph"].as_str().is_some_and(|g| g.contains(HIDDEN_NODE)), "{apps}");

    // Deleting the publisher's account unpublishes the app.
    let (_, step) = story.call(Method::POST, "/api/me/deletion", &alice, None, None).await;
    let (status, deleted) =
        story.call(Method::DELETE, "/api/me", &alice, Some(json!({"confirm": step["confirm"]})), None).await;
    assert_eq!(status, StatusCode::OK, "{deleted}");
    let (status, body) = story.call(Method::GET, &format!("/api/apps/{app}"), &bob, None, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = story.call(Method::POST, &runs, &bob, Some(json!({"inputs": {}})), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    story.server.stop().await;
}

/// The publisher's image fixed in the app (`fixed` → `soft`) is read for the app's runners, who
/// may not read it themselves; the runner's own image (`theirs` → `sharp`, the form's input) is
/// read under the runner's rights. A runner who sends the publisher's asset id as their value
/// gets nothing of it: the grant is withdrawn for that run and both steps fail as "not found".
async fn an_apps_fixed_image_is_read_for_its_runners_and_theirs_under_their_rights(backend: Backend) {
    let story = RunStory::start(backend).await;
    let (alice, bob) = (token("alice"), token("bob"));
    story.user_with_credits(&alice, 5).await;
    story.user_with_credits(&bob, 5).await;
    let room = "app-fixed-image";
    let workflow = story.workflow(&alice, room).await;
    let logo = story.uploaded(&alice, Some(room), png(16, 12, 1)).await;
    let editor = join(&story, room, &alice).await;
    let nodes = [
        node("fixed", "image-input", json!({"asset": logo})),
        node("soft", "blur", json!({"sigma": 1.0})),
        node("theirs", "image-input", json!({"asset": logo})),
        node("sharp", "blur", json!({"sigma": 0.5})),
    ];
    let edges = [edge("fixed", "image", "soft", "image"), edge("theirs", "image", "sharp", "image")];
    write_graph(&story, room, &alice, &editor, &nodes, &edges).await;
    editor.close().await;
    let body = json!({"title": "Framer", "inputs": [{"node": "theirs", "param": "asset", "label": "Your image"}],
        "outputs": [{"node": "soft", "output": "image", "label": "Logo"}, {"node": "sharp", "output": "image", "label": "Yours"}]});
    let (status, published) =
        story.call(Method::PUT, &format!("/api/workflows/{workflow}/app"), &alice, Some(body), None).await;
    assert_eq!(status, StatusCode::OK, "{published}");
    let app = published["id"].as_str().expect("an app id").to_owned();
    let runs = format!("/api/apps/{app}/runs");

    // Bob may not read the publisher's image himself.
    let (status, _) = story.download(&bob, &logo).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // With his own image: both steps run, the fixed one from the publisher's image.
    let mine = story.uploaded(&bob, None, png(8, 8, 2)).await;
    let values = json!({"inputs": {"in1": mine}});
    let (status, accepted) = story.call(Method::POST, &runs, &bob, Some(values), None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    let run = accepted["runId"].as_str().expect("a run id").to_owned();
    let finished = wait_app_run(&story, &bob, &app, &run).await;
    assert_eq!(finished["status"], "succeeded", "{finished}");
    for output in finished["outputs"].as_array().expect("outputs") {
        let url = output["value"]["url"].as_str().unwrap_or_else(|| panic!("an image: {finished}"));
        let got = story.http.get(story.http_url(&format!("{url}?token={bob}"))).send().await.expect("GET");
        assert_eq!(got.status(), StatusCode::OK, "{output}");
    }
    // Still not his to download.
    let (status, _) = story.download(&bob, &logo).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Sending the publisher's asset id as his value: the run reads nothing of it.
    let values = json!({"inputs": {"in1": logo}});
    let (status, accepted) = story.call(Method::POST, &runs, &bob, Some(values), None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    let run = accepted["runId"].as_str().expect("a run id").to_owned();
    let finished = wait_app_run(&story, &bob, &app, &run).await;
    assert_eq!(finished["status"], "failed", "{finished}");
    assert!(
        finished["outputs"].as_array().is_none_or(|o| o.iter().all(|o| o["value"].is_null())),
        "{finished}"
    );
    story.server.stop().await;
}

dojo_test_support::each_backend_story!(
    an_apps_fixed_image_is_read_for_its_runners_and_theirs_under_their_rights,
    an_app_runs_on_the_runners_credits_and_shows_only_its_form,
    exports_keep_the_graph_with_its_publisher_and_deleting_them_unpublishes,
);
