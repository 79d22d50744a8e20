//! The natural-language builder's LLM planner against a local stand-in for OpenAI (wiremock)
//! answering in Chat Completions' documented shapes: a valid plan is used as given; a plan that
//! does not fit the catalog, an error status, a timeout, a refusal or a malformed answer fall
//! back to the deterministic parser with the reason; no key means no call at all.

use std::time::{Duration, Instant};

use dojo_executor::compose::llm::{LlmError, LlmPlanner, LlmSettings, Planner, compose_with};
use dojo_executor::compose::{ComposeError, ComposedEdge};
use dojo_executor::{LoadedCatalog, ProviderConfig};
use serde_json::{Value, json};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const OPENAI_KEY: &str = "sk-test-openai";
/// What the parser makes of it: text-prompt → dev-image → blur.
const TEXT: &str = "prompt, dev image, then blur";

fn catalog() -> &'static LoadedCatalog {
    LoadedCatalog::builtin().expect("catalog")
}

fn providers(server: &MockServer, key: Option<&str>) -> ProviderConfig {
    ProviderConfig::from_lookup(|name| match name {
        "OPENAI_API_KEY" => key.map(str::to_owned),
        "OPENAI_BASE_URL" => Some(server.uri()),
        _ => None,
    })
    .expect("valid test configuration")
}

fn settings() -> LlmSettings {
    LlmSettings { model: "gpt-4o-mini".into(), timeout: Duration::from_secs(3), ..LlmSettings::default() }
}

fn planner(server: &MockServer) -> LlmPlanner {
    LlmPlanner::new(&providers(server, Some(OPENAI_KEY)), settings())
        .expect("config")
        .expect("a key: enabled")
}

/// A Chat Completions answer as OpenAI documents it, with `content` as the message's content.
fn completion(content: Value, refusal: Value) -> Value {
    json!({
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 1_735_689_600,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": content, "refusal": refusal, "annotations": []},
            "logprobs": null,
            "finish_reason": "stop",
        }],
        "usage": {"prompt_tokens": 812, "completion_tokens": 61, "total_tokens": 873},
        "service_tier": "default",
        "system_fingerprint": "fp_test",
    })
}

/// An answer whose content is `plan` serialised, as Structured Outputs return it.
fn plan_answer(plan: Value) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(completion(Value::String(plan.to_string()), Value::Null))
}

async fn answering(response: ResponseTemplate) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .and(header("authorization", format!("Bearer {OPENAI_KEY}").as_str()))
        .respond_with(response)
        .mount(&server)
        .await;
    server
}

async fn requests(server: &MockServer) -> Vec<Request> {
    server.received_requests().await.unwrap_or_default()
}

fn parser_chain() -> Vec<String> {
    ["text-prompt", "dev-image", "blur"].map(String::from).to_vec()
}

#[tokio::test]
async fn a_valid_plan_from_the_model_is_used_as_given() {
    // Not what the parser would make of TEXT: a prompt feeding two generators, one blurred.
    let plan = json!({
        "nodes": ["text-prompt", "flux-schnell", "dall-e-3", "blur"],
        "edges": [
            {"source": 0, "source_handle": "text", "target": 1, "target_handle": "prompt"},
            {"source": 0, "source_handle": "text", "target": 2, "target_handle": "prompt"},
            {"source": 1, "source_handle": "image", "target": 3, "target_handle": "image"},
        ],
    });
    let server = answering(plan_answer(plan)).await;
    let llm = planner(&server);
    let planned = compose_with(Some(&llm), catalog(), &dojo_executor::Availability::all(), TEXT)
        .await
        .expect("planned");
    assert_eq!(planned.planner, Planner::Llm);
    assert_eq!(planned.fallback, None);
    assert_eq!(planned.composition.nodes, ["text-prompt", "flux-schnell", "dall-e-3", "blur"]);
    assert_eq!(planned.composition.edges.len(), 3);
    assert_eq!(
        planned.composition.edges[2],
        ComposedEdge { source: 1, source_handle: "image".into(), target: 3, target_handle: "image".into() }
    );
    assert_eq!(requests(&server).await.len(), 1);
}

#[tokio::test]
async fn the_request_carries_the_model_the_catalog_and_the_strict_schema() {
    let plan = json!({"nodes": ["text-prompt"], "edges": []});
    let server = answering(plan_answer(plan)).await;
    let llm = planner(&server);
    compose_with(Some(&llm), catalog(), &dojo_executor::Availability::all(), TEXT).await.expect("planned");
    let sent = requests(&server).await;
    assert_eq!(sent.len(), 1);
    let body: Value = serde_json::from_slice(&sent[0].body).expect("a JSON body");
    assert_eq!(body["model"], "gpt-4o-mini");
    assert_eq!(body["messages"][0]["role"], "system");
    assert_eq!(body["messages"][1], json!({"role": "user", "content": TEXT}));
    let system = body["messages"][0]["content"].as_str().expect("system prompt");
    // Every node type with its typed handles.
    assert!(system.contains(
        "flux-pro-1.1-ultra | Flux Pro 1.1 Ultra | image | prompt:text*, image:image | image:image"
    ));
    assert!(system.contains(
        "describe-image | Image describer | tool | image:image* | json:text, width:number, height:number"
    ));
    for node in catalog().nodes() {
        assert!(system.contains(&format!("\n{} | ", node.id)), "{} is not offered", node.id);
    }
    let format = &body["response_format"];
    assert_eq!(format["type"], "json_schema");
    assert_eq!(format["json_schema"]["name"], "canvas_plan");
    assert_eq!(format["json_schema"]["strict"], true);
    let schema = &format["json_schema"]["schema"];
    assert_eq!(schema["type"], "object");
    assert_eq!(schema["required"], json!(["nodes", "edges"]));
    assert_eq!(schema["additionalProperties"], false);
    let ids: Vec<&str> = catalog().nodes().iter().map(|n| n.id.as_str()).collect();
    assert_eq!(schema["properties"]["nodes"]["items"]["enum"], json!(ids));
    let edge = &schema["properties"]["edges"]["items"];
    assert_eq!(edge["required"], json!(["source", "source_handle", "target", "target_handle"]));
    assert_eq!(edge["additionalProperties"], false);
    assert_eq!(edge["properties"]["source"]["type"], "integer");
}

async fn falls_back(response: ResponseTemplate) -> (LlmError, usize) {
    let server = answering(response).await;
    let llm = planner(&server);
    let planned = compose_with(Some(&llm), catalog(), &dojo_executor::Availability::all(), TEXT)
        .await
        .expect("the parser plans");
    assert_eq!(planned.planner, Planner::Parser);
    assert_eq!(planned.composition.nodes, parser_chain());
    assert_eq!(planned.composition.edges.len(), 2);
    let calls = requests(&server).await.len();
    (planned.fallback.expect("the LLM was tried: a reason"), calls)
}

#[tokio::test]
async fn a_plan_with_an_unknown_type_falls_back_with_the_reason() {
    // Outside the schema's enum: a model (or a compatible server) that ignored it.
    let plan = json!({"nodes": ["text-prompt", "midjourney"], "edges": []});
    let (reason, _) = falls_back(plan_answer(plan)).await;
    assert_eq!(
        reason.to_string(),
        "the model's plan is invalid: node 1 has type \"midjourney\", which is not in the catalog"
    );
}

#[tokio::test]
async fn a_plan_with_a_bad_handle_or_a_mismatched_wire_falls_back() {
    let plan = json!({
        "nodes": ["text-prompt", "blur"],
        "edges": [{"source": 0, "source_handle": "text", "target": 1, "target_handle": "picture"}],
    });
    let (reason, _) = falls_back(plan_answer(plan)).await;
    assert_eq!(
        reason.to_string(),
        "the model's plan is invalid: edge 0: node 1 (blur) has no input \"picture\"; it has: image"
    );
    let plan = json!({
        "nodes": ["text-prompt", "blur"],
        "edges": [{"source": 0, "source_handle": "text", "target": 1, "target_handle": "image"}],
    });
    let (reason, _) = falls_back(plan_answer(plan)).await;
    assert!(reason.to_string().contains("takes image, but output text of node 0 is text"), "{reason}");
    let plan = json!({
        "nodes": ["text-prompt", "blur"],
        "edges": [{"source": 0, "source_handle": "text", "target": 7, "target_handle": "image"}],
    });
    let (reason, _) = falls_back(plan_answer(plan)).await;
    assert!(reason.to_string().contains("edge 0 refers to node 7, but there are 2 nodes"), "{reason}");
}

#[tokio::test]
async fn too_many_nodes_fall_back() {
    let plan = json!({"nodes": vec!["blur"; 21], "edges": []});
    let (reason, _) = falls_back(plan_answer(plan)).await;
    assert_eq!(
        reason.to_string(),
        "the model's plan is invalid: it has 21 nodes; at most 20 are added at once"
    );
}

#[tokio::test]
async fn a_server_error_falls_back_without_retrying_and_keeps_the_message_out_of_the_reason() {
    let body = json!({"error": {"message": "The server had an error while processing your request.", "type": "server_error", "code": null}});
    let (reason, calls) = falls_back(ResponseTemplate::new(500).set_body_json(body)).await;
    assert_eq!(
        reason,
        LlmError::Status {
            status: 500,
            message: "The server had an error while processing your request.".into()
        }
    );
    assert_eq!(reason.to_string(), "OpenAI answered HTTP 500");
    assert!(reason.detail().contains("while processing your request"), "{}", reason.detail());
    assert_eq!(calls, 1, "one attempt: the parser answers at once instead");
}

#[tokio::test]
async fn rate_limits_fall_back() {
    let body = json!({"error": {"message": "Rate limit reached for gpt-4o-mini", "type": "requests", "code": "rate_limit_exceeded"}});
    let (reason, _) =
        falls_back(ResponseTemplate::new(429).insert_header("retry-after", "20").set_body_json(body)).await;
    assert_eq!(reason.to_string(), "OpenAI answered HTTP 429");
}

#[tokio::test]
async fn no_answer_in_time_falls_back_within_the_timeout() {
    let server =
        answering(plan_answer(json!({"nodes": ["blur"], "edges": []})).set_delay(Duration::from_secs(5)))
            .await;
    let settings = LlmSettings { timeout: Duration::from_millis(300), ..settings() };
    let llm =
        LlmPlanner::new(&providers(&server, Some(OPENAI_KEY)), settings).expect("config").expect("enabled");
    let started = Instant::now();
    let planned = compose_with(Some(&llm), catalog(), &dojo_executor::Availability::all(), TEXT)
        .await
        .expect("the parser plans");
    assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
    assert_eq!(planned.planner, Planner::Parser);
    assert_eq!(planned.composition.nodes, parser_chain());
    assert_eq!(planned.fallback, Some(LlmError::Timeout(Duration::from_millis(300))));
    assert_eq!(
        planned.fallback.map(|f| f.to_string()).as_deref(),
        Some("OpenAI gave no answer within 0.3 s")
    );
}

#[tokio::test]
async fn a_refusal_falls_back_with_what_the_model_said() {
    let answer = completion(Value::Null, json!("I'm sorry, I can't assist with that request."));
    let (reason, _) = falls_back(ResponseTemplate::new(200).set_body_json(answer)).await;
    assert_eq!(reason, LlmError::Refused("I'm sorry, I can't assist with that request.".into()));
}

#[tokio::test]
async fn malformed_answers_fall_back() {
    // Content that is not JSON.
    let (reason, _) = falls_back(
        ResponseTemplate::new(200)
            .set_body_json(completion(json!("Sure! Here is a plan: blur"), Value::Null)),
    )
    .await;
    assert!(matches!(reason, LlmError::Malformed(_)), "{reason:?}");
    // JSON of another shape.
    let (reason, _) = falls_back(plan_answer(json!({"steps": ["blur"]}))).await;
    assert!(matches!(reason, LlmError::Malformed(_)), "{reason:?}");
    // Not a Chat Completions answer at all.
    let (reason, _) = falls_back(ResponseTemplate::new(200).set_body_string("<html>gateway</html>")).await;
    assert!(reason.to_string().starts_with("the model's answer is not a plan"), "{reason}");
}

#[tokio::test]
async fn when_both_fail_the_parsers_error_is_the_answer() {
    let server = answering(ResponseTemplate::new(503)).await;
    let llm = planner(&server);
    let error = compose_with(Some(&llm), catalog(), &dojo_executor::Availability::all(), "frobnicate")
        .await
        .expect_err("nothing plans");
    assert_eq!(error, ComposeError::Unknown("frobnicate".into()));
    // Refused before any call: too long, or empty.
    let long = "blur ".repeat(300);
    assert_eq!(
        compose_with(Some(&llm), catalog(), &dojo_executor::Availability::all(), &long).await,
        Err(ComposeError::TooLong)
    );
    assert_eq!(
        compose_with(Some(&llm), catalog(), &dojo_executor::Availability::all(), "   ").await,
        Err(ComposeError::Empty)
    );
    assert_eq!(requests(&server).await.len(), 1, "only the first text was worth a call");
}

#[tokio::test]
async fn without_a_key_there_is_no_planner_and_no_call() {
    let server = answering(plan_answer(json!({"nodes": ["blur"], "edges": []}))).await;
    let disabled = LlmPlanner::new(&providers(&server, None), settings()).expect("config");
    assert!(disabled.is_none());
    let blank = LlmPlanner::new(&providers(&server, Some("  ")), settings()).expect("config");
    assert!(blank.is_none(), "a blank key is no key");
    let planned = compose_with(disabled.as_ref(), catalog(), &dojo_executor::Availability::all(), TEXT)
        .await
        .expect("the parser plans");
    assert_eq!(planned.planner, Planner::Parser);
    assert_eq!(planned.fallback, None, "the LLM was not tried: nothing to explain");
    assert_eq!(planned.composition.nodes, parser_chain());
    assert!(requests(&server).await.is_empty());
}
