//! Running a room's graph end to end: submitted over HTTP, validated and priced, credits held,
//! executed by the in-process queue, every node's states written into the document that a
//! WebSocket client in the room watches, outputs downloadable, credits settled exactly.

mod common;

use common::WAIT;
use common::database::Backend;
use common::runs::{
    RunStory, edge, join, result_json, status_of, token, typed_node as node, wait_server_graph, watch_run,
};
use dojo_executor::ProviderConfig;
use dojo_sync_protocol::canvas::{self, CanvasEdge, CanvasNode};
use reqwest::StatusCode;
use serde_json::{Value, json};
use wiremock::matchers::{body_partial_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};
use yrs::Transact;

const STORY: [&str; 4] = ["prompt", "gen", "blur", "up"];

fn story_graph() -> (Vec<CanvasNode>, Vec<CanvasEdge>) {
    (
        vec![
            node("prompt", "text-prompt", json!({"text": "a red fox in the snow"})),
            node("gen", "dev-image", json!({"seed": 3, "width": 64, "height": 48})),
            node("blur", "blur", json!({"sigma": 1.5})),
            node("up", "resize", json!({"scale": 2})),
        ],
        vec![
            edge("prompt", "text", "gen", "prompt"),
            edge("gen", "image", "blur", "image"),
            edge("blur", "image", "up", "image"),
        ],
    )
}

async fn the_story_runs_and_the_room_watches_every_node(backend: Backend) {
    let story = RunStory::start(backend).await;
    let alice = token("alice");
    let alice_id = story.user_with_credits(&alice, 10).await;
    let room = "canvas-story";
    story.workflow(&alice, room).await;
    let editor = join(&story, room, &alice).await;
    let (nodes, edges) = story_graph();
    editor
        .edit(|txn| {
            for n in &nodes {
                canvas::write_node(txn, n).expect("node");
            }
            for e in &edges {
                canvas::write_edge(txn, e).expect("edge");
            }
        })
        .await
        .expect("edit");
    let watcher = join(&story, room, &alice).await;
    watcher
        .wait_doc("the graph", WAIT, |doc| {
            canvas::read_graph(&doc.transact()).is_ok_and(|g| g.nodes.len() == 4 && g.edges.len() == 3)
        })
        .await
        .expect("the watcher has the graph");

    let path = format!("/api/rooms/{room}/runs");
    let (status, accepted) =
        story.call(reqwest::Method::POST, &path, &alice, Some(json!({})), Some("k-1")).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    let run_id = accepted["runId"].as_str().expect("run id").to_owned();
    assert_eq!(accepted["estimate"], 1, "only the dev generator costs (1 credit)");

    let seen = watch_run(&watcher, &run_id, &STORY, WAIT).await;
    for node in STORY {
        let history = &seen[node];
        assert_eq!(history.last().map(String::as_str), Some("succeeded"), "{node}: {history:?}");
    }
    // The watcher saw the blur queued, then running, then done, in that order.
    let blur = &seen["blur"];
    let at = |s: &str| blur.iter().position(|x| x == s);
    assert!(at("queued") < at("running") && at("running") < at("succeeded"), "{blur:?}");

    // The output is a reference the room's people can download: a real PNG of the right size.
    let up = result_json(watcher.doc(), "up");
    assert_eq!(up["runId"], run_id.as_str());
    let url = up["outputs"]["image"]["url"].as_str().expect("asset url").to_owned();
    let png =
        story.http.get(story.server.http(&format!("{url}?token={alice}"))).send().await.expect("GET asset");
    assert_eq!(png.status(), StatusCode::OK);
    assert_eq!(png.headers()["content-type"], "image/png");
    let bytes = png.bytes().await.expect("bytes");
    let image = dojo_executor::builtins::imaging::decode_png(&bytes).expect("a valid PNG");
    assert_eq!(image.dimensions(), (128, 96));
    // A stranger cannot download it.
    let stranger = token("mallory");
    let denied =
        story.http.get(story.server.http(&format!("{url}?token={stranger}"))).send().await.expect("GET");
    assert_eq!(denied.status(), StatusCode::NOT_FOUND);

    // Credits dropped by exactly the cost; the run record says so.
    let run = story.wait_run(&alice, &run_id, WAIT, |run| run["status"] == "succeeded").await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["charged"], 1);
    assert_eq!(run["nodes"]["gen"]["hold"], "captured");
    assert_eq!(run["nodes"]["gen"]["params"]["seed"], 3);
    // The run's outputs carry the URL the room's `results` map shows, for every asset.
    assert_eq!(run["nodes"]["up"]["outputs"]["image"]["url"], url.as_str(), "{run}");
    let mut assets = 0;
    for (node, detail) in run["nodes"].as_object().expect("nodes") {
        for (name, output) in detail["outputs"].as_object().into_iter().flatten() {
            if output["kind"] == "asset" {
                let id = output["asset"]["id"].as_str().expect("an asset id");
                assert_eq!(output["url"], format!("/assets/{id}"), "{node}.{name}: {output}");
                assets += 1;
            }
        }
    }
    assert_eq!(assets, 3, "gen, blur and up each made an image: {run}");
    assert_eq!(story.balance(&alice).await, 9);
    let (_, runs) =
        story.call(reqwest::Method::GET, &format!("/api/rooms/{room}/runs"), &alice, None, None).await;
    assert_eq!(runs["runs"][0]["id"], run_id.as_str());
    assert_eq!(runs["runs"][0]["userId"], alice_id.as_str());

    // The same submission again (a client retry) is the same run, and holds nothing more.
    let (status, again) =
        story.call(reqwest::Method::POST, &path, &alice, Some(json!({})), Some("k-1")).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(again["runId"], run_id.as_str());
    assert_eq!(story.balance(&alice).await, 9);

    // Running the unchanged graph again: every node cached, nothing charged.
    let (status, second) = story.call(reqwest::Method::POST, &path, &alice, None, Some("k-2")).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{second}");
    let second_id = second["runId"].as_str().expect("run id").to_owned();
    watcher
        .wait_doc("the second run done", WAIT, |doc| {
            STORY.iter().all(|n| {
                result_json(doc, n)["runId"] == second_id.as_str()
                    && status_of(doc, n).as_deref() == Some("cached")
            })
        })
        .await
        .expect("every node cached");
    let second = story.wait_run(&alice, &second_id, WAIT, |run| run["status"] == "succeeded").await;
    assert_eq!(second["charged"], 0, "{second}");
    assert_eq!(story.balance(&alice).await, 9, "the hold of the cached run was released");
    editor.close().await;
    watcher.close().await;
    story.server.stop().await;
}

async fn an_invalid_graph_is_refused_per_node_and_holds_nothing(backend: Backend) {
    let story = RunStory::start(backend).await;
    let alice = token("alice");
    story.user_with_credits(&alice, 5).await;
    let room = "canvas-invalid";
    story.workflow(&alice, room).await;
    let editor = join(&story, room, &alice).await;
    editor
        .edit(|txn| {
            // A cycle, and a generator whose size is out of range.
            for n in [
                node("a", "blur", json!({})),
                node("b", "invert", json!({})),
                node("gen", "dev-image", json!({"prompt": "x", "width": 100000})),
            ] {
                canvas::write_node(txn, &n).expect("node");
            }
            canvas::write_edge(txn, &edge("a", "image", "b", "image")).expect("edge");
            canvas::write_edge(txn, &edge("b", "image", "a", "image")).expect("edge");
        })
        .await
        .expect("edit");
    // The run reads the server's copy of the graph, which gets the edit a moment later.
    wait_server_graph(&story, room, &alice, 3, 2).await;

    let (status, body) =
        story.call(reqwest::Method::POST, &format!("/api/rooms/{room}/runs"), &alice, None, None).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["code"], "invalid_graph");
    let types = |node: &str| -> Vec<String> {
        body["nodeErrors"][node]["errors"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e["type"].as_str().map(str::to_owned))
            .collect()
    };
    assert!(types("a").contains(&"cycle".to_owned()), "{body}");
    assert!(types("b").contains(&"cycle".to_owned()), "{body}");
    assert!(types("gen").contains(&"value_out_of_range".to_owned()), "{body}");
    // The errors are on the nodes for everyone in the room.
    editor
        .wait_doc("errors on the nodes", WAIT, |doc| {
            ["a", "b", "gen"].iter().all(|n| status_of(doc, n).as_deref() == Some("invalid"))
        })
        .await
        .expect("invalid written into results");
    assert!(result_json(editor.doc(), "gen")["error"].as_str().is_some_and(|e| !e.is_empty()));
    assert_eq!(story.balance(&alice).await, 5, "nothing held");
    let (_, runs) =
        story.call(reqwest::Method::GET, &format!("/api/rooms/{room}/runs"), &alice, None, None).await;
    assert_eq!(runs["runs"], json!([]));
    editor.close().await;
    story.server.stop().await;
}

async fn runs_of_nothing_are_refused_with_a_reason(backend: Backend) {
    let story = RunStory::start(backend).await;
    let alice = token("alice");
    story.user_with_credits(&alice, 5).await;
    let room = "canvas-nothing";
    story.workflow(&alice, room).await;
    let path = format!("/api/rooms/{room}/runs");

    // A workflow whose canvas is still empty: nothing to run, and no "succeeded" run of nothing.
    let (status, body) = story.call(reqwest::Method::POST, &path, &alice, Some(json!({})), None).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["code"], "empty_graph", "{body}");
    assert!(body["error"].as_str().is_some_and(|e| e.contains("no nodes")), "{body}");

    // Targets are node ids; a name that is none is refused and said to be none.
    let editor = join(&story, room, &alice).await;
    let prompt = node("prompt", "text-prompt", json!({"text": "a fox"}));
    common::runs::write_graph(&story, room, &alice, &editor, &[prompt], &[]).await;
    let (status, body) =
        story.call(reqwest::Method::POST, &path, &alice, Some(json!({"targets": ["up"]})), None).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(
        body,
        json!({
            "error": format!("`up` is not a node id in this room; targets are node ids (GET /api/rooms/{room}/graph lists them)"),
            "code": "unknown_target",
        })
    );
    // A node's type instead of its id: pointed at the id.
    let (status, body) = story
        .call(reqwest::Method::POST, &path, &alice, Some(json!({"targets": ["text-prompt"]})), None)
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.ends_with("`text-prompt` is a node type: its nodes here are `prompt`")),
        "{body}"
    );
    // The node's id runs.
    let (status, body) =
        story.call(reqwest::Method::POST, &path, &alice, Some(json!({"targets": ["prompt"]})), None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let (_, runs) = story.call(reqwest::Method::GET, &path, &alice, None, None).await;
    assert_eq!(runs["runs"].as_array().map(Vec::len), Some(1), "only the valid run was recorded: {runs}");
    assert_eq!(story.balance(&alice).await, 5, "nothing was held for the refusals");
    editor.close().await;
    story.server.stop().await;
}

/// In dev mode (or with a token's grants) any room name may be used; running one nobody
/// created is refused, and does not create it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_a_room_nobody_created_is_404_room_not_found() {
    let server = common::TestServer::start().await;
    let http = reqwest::Client::new();
    let (_, minted) =
        common::send_json(http.post(server.http("/api/dev/token")).json(&json!({"name": "dev"}))).await;
    let dev = minted["token"].as_str().expect("a dev token").to_owned();
    let run = |room: &str| {
        common::send_json(
            http.post(server.http(&format!("/api/rooms/{room}/runs"))).bearer_auth(&dev).json(&json!({})),
        )
    };
    let (status, body) = run("never-made").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["code"], "room_not_found", "{body}");
    assert!(body["error"].as_str().is_some_and(|e| e.contains("nobody created it")), "{body}");
    // The refusal opened nothing: asked again, it is still a room nobody created.
    let (status, body) = run("never-made").await;
    assert_eq!((status, &body["code"]), (StatusCode::NOT_FOUND, &json!("room_not_found")), "{body}");
    // Once someone puts something in it, it exists (and then runs or says why not).
    let client = server.client("never-made").await;
    client
        .edit(|txn| {
            canvas::write_node(txn, &node("prompt", "text-prompt", json!({"text": "hi"}))).expect("node")
        })
        .await
        .expect("edit");
    let probe = server.client("never-made").await;
    probe
        .wait_doc("the node stored", WAIT, |doc| {
            canvas::read_graph(&doc.transact()).is_ok_and(|g| g.nodes.len() == 1)
        })
        .await
        .expect("the server has the node");
    let (status, body) = run("never-made").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    client.close().await;
    probe.close().await;
    server.stop().await;
}

async fn a_run_beyond_the_balance_is_402_with_balance_and_cost(backend: Backend) {
    let story = RunStory::start(backend).await;
    let alice = token("alice");
    // Granting 0 is refused by nothing; start from no credits at all.
    let (_, me) = story.call(reqwest::Method::GET, "/api/me", &alice, None, None).await;
    assert_eq!(me["credits"], 0);
    let room = "canvas-poor";
    story.workflow(&alice, room).await;
    let editor = join(&story, room, &alice).await;
    editor
        .edit(|txn| canvas::write_node(txn, &node("gen", "dev-image", json!({"prompt": "x"}))).expect("node"))
        .await
        .expect("edit");
    wait_server_graph(&story, room, &alice, 1, 0).await;
    let (status, body) =
        story.call(reqwest::Method::POST, &format!("/api/rooms/{room}/runs"), &alice, None, None).await;
    assert_eq!(status, StatusCode::PAYMENT_REQUIRED, "{body}");
    assert_eq!(body["code"], "insufficient_credits");
    assert_eq!(body["balance"], 0);
    assert_eq!(body["cost"], 1);
    // A stranger cannot run someone else's room (nor learn that it exists).
    let (status, _) = story
        .call(reqwest::Method::POST, &format!("/api/rooms/{room}/runs"), &token("mallory"), None, None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    editor.close().await;
    story.server.stop().await;
}

async fn a_description_becomes_connected_nodes_everyone_sees(backend: Backend) {
    // No provider keys, whatever the environment holds: the parser plans.
    let story =
        RunStory::start_with(backend, |config| config.executor.providers = Some(ProviderConfig::default()))
            .await;
    let alice = token("alice");
    story.user_with_credits(&alice, 1).await;
    let room = "canvas-compose";
    story.workflow(&alice, room).await;
    let watcher = join(&story, room, &alice).await;
    let path = format!("/api/rooms/{room}/compose");
    let body = json!({"text": "prompt, dev image, then blur"});
    let (status, composed) = story.call(reqwest::Method::POST, &path, &alice, Some(body), None).await;
    assert_eq!(status, StatusCode::OK, "{composed}");
    assert_eq!(composed["nodes"].as_array().map(Vec::len), Some(3), "{composed}");
    assert_eq!(composed["edges"].as_array().map(Vec::len), Some(2), "{composed}");
    assert_eq!(composed["planner"], "parser", "{composed}");
    assert!(composed.get("fallback").is_none(), "no LLM was asked: {composed}");
    watcher
        .wait_doc("the composed chain", WAIT, |doc| {
            canvas::read_graph(&doc.transact()).is_ok_and(|g| {
                let types: Vec<&str> = g.nodes.iter().map(|n| n.node_type.as_str()).collect();
                g.edges.len() == 2 && ["text-prompt", "dev-image", "blur"].iter().all(|t| types.contains(t))
            })
        })
        .await
        .expect("the watcher sees the nodes and wires");
    let (status, refused) =
        story.call(reqwest::Method::POST, &path, &alice, Some(json!({"text": "frobnicate"})), None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    assert!(refused["error"].as_str().is_some_and(|e| e.contains("frobnicate")), "{refused}");
    let (status, _) = story
        .call(reqwest::Method::POST, &path, &token("mallory"), Some(json!({"text": "blur"})), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    watcher.close().await;
    story.server.stop().await;
}

async fn nodes_without_a_provider_key_are_marked_refused_and_never_composed(backend: Backend) {
    // No provider keys, whatever the environment holds: only the built-in nodes run.
    let story =
        RunStory::start_with(backend, |config| config.executor.providers = Some(ProviderConfig::default()))
            .await;
    let alice = token("alice");
    story.user_with_credits(&alice, 50).await;

    // The catalog says which nodes run here, and why the others do not.
    let catalog: Value = story
        .http
        .get(story.server.http("/api/catalog"))
        .send()
        .await
        .expect("catalog")
        .json()
        .await
        .expect("json");
    let entry = |id: &str| {
        catalog["nodes"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|n| n["id"] == id)
            .cloned()
            .unwrap_or(Value::Null)
    };
    assert_eq!(entry("blur")["available"], true, "{catalog}");
    assert!(entry("blur").get("unavailableReason").is_none());
    assert_eq!(entry("flux-schnell")["available"], false);
    let reason = entry("flux-schnell")["unavailableReason"].as_str().unwrap_or_default().to_owned();
    assert!(reason.contains("Replicate") && reason.contains("REPLICATE_API_TOKEN"), "{reason}");
    assert_eq!(entry("dall-e-3")["available"], false);
    let nodes = catalog["nodes"].as_array().cloned().unwrap_or_default();
    assert!(nodes.iter().all(|n| n["available"].is_boolean()), "every node is marked");

    // A run containing one is refused by name, before any credit is held.
    let room = "canvas-unavailable";
    story.workflow(&alice, room).await;
    let editor = join(&story, room, &alice).await;
    editor
        .edit(|txn| {
            for n in [
                node("prompt", "text-prompt", json!({"text": "a fox"})),
                node("flux", "flux-schnell", json!({})),
                node("gen", "dev-image", json!({})),
            ] {
                canvas::write_node(txn, &n).expect("node");
            }
            canvas::write_edge(txn, &edge("prompt", "text", "flux", "prompt")).expect("edge");
            canvas::write_edge(txn, &edge("prompt", "text", "gen", "prompt")).expect("edge");
        })
        .await
        .expect("edit");
    wait_server_graph(&story, room, &alice, 3, 2).await;
    let runs = format!("/api/rooms/{room}/runs");
    let (status, body) = story.call(reqwest::Method::POST, &runs, &alice, None, None).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["code"], "invalid_graph");
    assert_eq!(body["nodeErrors"]["flux"]["errors"][0]["type"], "provider_unavailable", "{body}");
    assert!(
        body["nodeErrors"]["flux"]["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("REPLICATE_API_TOKEN")),
        "{body}"
    );
    assert_eq!(body["nodeErrors"].as_object().map(|m| m.len()), Some(1), "only the flux node: {body}");
    assert_eq!(story.balance(&alice).await, 50, "nothing held");
    let (_, listed) = story.call(reqwest::Method::GET, &runs, &alice, None, None).await;
    assert_eq!(listed["runs"], json!([]));
    // Running only what can run is fine.
    let (status, body) =
        story.call(reqwest::Method::POST, &runs, &alice, Some(json!({"targets": ["gen"]})), None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");

    // The builder never plans a node that cannot run: "flux" gets the dev image generator, said
    // so in the answer; a video (nothing built in makes one) is refused with the reason.
    let compose = format!("/api/rooms/{room}/compose");
    let (status, composed) = story
        .call(
            reqwest::Method::POST,
            &format!("{compose}?apply=false"),
            &alice,
            Some(json!({"text": "prompt, flux image, then upscale"})),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{composed}");
    let types: Vec<String> = composed["ops"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|op| op["op"] == "addNode")
        .filter_map(|op| op["type"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(types, ["text-prompt", "dev-image", "resize"], "{composed}");
    assert_eq!(composed["substitutions"][0]["asked"], "flux-pro-1.1-ultra", "{composed}");
    assert_eq!(composed["substitutions"][0]["used"], "dev-image", "{composed}");
    let (status, refused) = story
        .call(reqwest::Method::POST, &compose, &alice, Some(json!({"text": "prompt, veo video"})), None)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    assert!(refused["error"].as_str().is_some_and(|e| e.contains("FAL_KEY")), "{refused}");
    editor.close().await;
    story.server.stop().await;
}

const OPENAI_KEY: &str = "sk-test-openai";

/// A Chat Completions answer as OpenAI documents it, whose content is `plan` (Structured Outputs).
fn completion(plan: Value) -> Value {
    json!({
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 1_735_689_600,
        "model": "gpt-test-planner",
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": plan.to_string(), "refusal": null},
            "logprobs": null,
            "finish_reason": "stop",
        }],
        "usage": {"prompt_tokens": 800, "completion_tokens": 60, "total_tokens": 860},
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compose_plans_with_the_llm_when_openai_is_configured() {
    let openai = MockServer::start().await;
    // The parser would refuse this text ("no node matches"): only the model can plan it.
    let wanted = "something dreamy, softened";
    let plan = json!({
        // An OpenAI model: the only provider with a key here, so the only one it may plan.
        "nodes": ["text-prompt", "dall-e-3", "blur"],
        "edges": [
            {"source": 0, "source_handle": "text", "target": 1, "target_handle": "prompt"},
            {"source": 1, "source_handle": "image", "target": 2, "target_handle": "image"},
        ],
    });
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .and(header("authorization", format!("Bearer {OPENAI_KEY}").as_str()))
        .and(body_partial_json(json!({"model": "gpt-test-planner", "messages": [{"role": "system"}, {"role": "user", "content": wanted}]})))
        .respond_with(ResponseTemplate::new(200).set_body_json(completion(plan)))
        .mount(&openai)
        .await;
    // Anything else: OpenAI is down.
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(503))
        .with_priority(10)
        .mount(&openai)
        .await;
    let uri = openai.uri();
    let story = RunStory::start_with(Backend::Sqlite, |config| {
        let providers = ProviderConfig::from_lookup(|name| match name {
            "OPENAI_API_KEY" => Some(OPENAI_KEY.to_owned()),
            "OPENAI_BASE_URL" => Some(uri.clone()),
            _ => None,
        })
        .expect("providers");
        config.executor.providers = Some(providers);
        config.executor.compose_model = "gpt-test-planner".into();
    })
    .await;
    let alice = token("alice");
    story.user_with_credits(&alice, 1).await;
    let room = "canvas-compose-llm";
    story.workflow(&alice, room).await;
    let watcher = join(&story, room, &alice).await;
    let path = format!("/api/rooms/{room}/compose");

    let (status, composed) =
        story.call(reqwest::Method::POST, &path, &alice, Some(json!({"text": wanted})), None).await;
    assert_eq!(status, StatusCode::OK, "{composed}");
    assert_eq!(composed["planner"], "llm", "{composed}");
    assert!(composed.get("fallback").is_none(), "{composed}");
    let ids: Vec<String> = composed["nodes"]
        .as_array()
        .expect("node ids")
        .iter()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect();
    assert_eq!(ids.len(), 3, "{composed}");
    assert_eq!(composed["edges"].as_array().map(Vec::len), Some(2), "{composed}");
    // The second client in the room sees the model's nodes, wired as it planned.
    watcher
        .wait_doc("the model's plan", WAIT, |doc| {
            canvas::read_graph(&doc.transact()).is_ok_and(|g| {
                let type_of = |id: &str| g.nodes.iter().find(|n| n.id == id).map(|n| n.node_type.as_str());
                let wired = |s: &str, sh: &str, t: &str, th: &str| {
                    g.edges.iter().any(|e| {
                        e.source == s
                            && e.source_handle.as_deref() == Some(sh)
                            && e.target == t
                            && e.target_handle.as_deref() == Some(th)
                    })
                };
                type_of(&ids[0]) == Some("text-prompt")
                    && type_of(&ids[1]) == Some("dall-e-3")
                    && type_of(&ids[2]) == Some("blur")
                    && wired(&ids[0], "text", &ids[1], "prompt")
                    && wired(&ids[1], "image", &ids[2], "image")
            })
        })
        .await
        .expect("the watcher sees the model's nodes and wires");

    // OpenAI failing is not the request failing: the parser plans, and the answer says why.
    let (status, composed) = story
        .call(
            reqwest::Method::POST,
            &path,
            &alice,
            Some(json!({"text": "prompt, dev image, then blur"})),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{composed}");
    assert_eq!(composed["planner"], "parser", "{composed}");
    assert_eq!(composed["fallback"], "OpenAI answered HTTP 503", "{composed}");
    assert_eq!(composed["nodes"].as_array().map(Vec::len), Some(3), "{composed}");
    watcher
        .wait_doc("the parser's chain too", WAIT, |doc| {
            canvas::read_graph(&doc.transact()).is_ok_and(|g| g.nodes.len() == 6 && g.edges.len() == 4)
        })
        .await
        .expect("the watcher sees the parser's nodes as well");
    assert_eq!(openai.received_requests().await.map(|r| r.len()), Some(2));
    // The answer's two new fields are documented.
    let spec: Value = story
        .http
        .get(story.server.http("/api/openapi.json"))
        .send()
        .await
        .expect("spec")
        .json()
        .await
        .expect("json");
    let schemas = &spec["components"]["schemas"];
    assert_eq!(schemas["PlannerName"]["enum"], json!(["llm", "parser"]), "{schemas}");
    let required = schemas["Composed"]["required"].as_array().cloned().unwrap_or_default();
    assert!(required.contains(&json!("planner")) && !required.contains(&json!("fallback")), "{required:?}");
    assert!(schemas["Composed"]["properties"]["fallback"].is_object(), "{schemas}");
    watcher.close().await;
    story.server.stop().await;
}

dojo_test_support::each_backend_story!(
    the_story_runs_and_the_room_watches_every_node,
    an_invalid_graph_is_refused_per_node_and_holds_nothing,
    runs_of_nothing_are_refused_with_a_reason,
    a_run_beyond_the_balance_is_402_with_balance_and_cost,
    a_description_becomes_connected_nodes_everyone_sees,
    nodes_without_a_provider_key_are_marked_refused_and_never_composed,
);
