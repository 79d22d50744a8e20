//! Every route of the HTTP API, walked with bad input: no token, a bad token, a method the route
//! does not take, malformed JSON, the wrong content type, fields of the wrong type, path
//! parameters that do not parse, a body over the limit. Whatever the mistake, the answer is the
//! one envelope, `{"error": string, "code": string}`, with a code from `docs/api-errors.md` and
//! the status that document gives it.
//!
//! The operations come from the served `/api/openapi.json`, so a route added later is walked
//! without touching this file.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::database::Backend;
use common::runs::{RunStory, token};
use reqwest::header::{ALLOW, CONTENT_TYPE};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// Small, so that a body over it is cheap to send.
const BODY_LIMIT: usize = 16 * 1024;
/// The room every operation that names one is walked in (it exists: a workflow has it).
const ROOM: &str = "walk-room";
/// Percent-decodes to a byte that is not UTF-8: no path parameter of any type accepts it.
const NOT_UTF8: &str = "%FF";
const METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];

/// `code → status` from the table in `docs/api-errors.md`.
fn documented_codes() -> BTreeMap<String, u16> {
    include_str!("../../docs/api-errors.md")
        .lines()
        .filter_map(|line| {
            let mut cells = line.strip_prefix('|')?.split('|').map(str::trim);
            let code = cells.next()?.strip_prefix('`')?.strip_suffix('`')?;
            Some((code.to_owned(), cells.next()?.parse().ok()?))
        })
        .collect()
}

/// One documented operation, as far as this walk needs it.
#[derive(Debug)]
struct Operation {
    method: Method,
    /// The path template, `{param}`s and all.
    path: String,
    secured: bool,
    body_required: bool,
    /// The request body's content types.
    body_types: Vec<String>,
    /// The JSON body's properties and the JSON types each accepts (empty: any), when the body is
    /// a described JSON object.
    json_fields: Option<BTreeMap<String, BTreeSet<String>>>,
    /// Query parameters and the JSON types each accepts.
    query: BTreeMap<String, BTreeSet<String>>,
}

impl Operation {
    fn name(&self) -> String {
        format!("{} {}", self.method, self.path)
    }

    fn params(&self) -> Vec<String> {
        self.path
            .split('/')
            .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
            .map(str::to_owned)
            .collect()
    }

    /// The path with every parameter filled with a value of the right shape, but `broken` (if
    /// any) filled with `value`.
    fn concrete(&self, broken: Option<(&str, &str)>) -> String {
        let mut path = self.path.clone();
        for param in self.params() {
            let value = match broken {
                Some((name, value)) if name == param => value,
                _ if param == "room" => ROOM,
                _ => "1",
            };
            path = path.replace(&format!("{{{param}}}"), value);
        }
        path
    }
}

fn resolve<'a>(spec: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str().and_then(|r| r.strip_prefix("#/")) {
        Some(pointer) => spec.pointer(&format!("/{pointer}")).unwrap_or(&Value::Null),
        None => schema,
    }
}

/// The object a schema describes: itself, what it refers to, or (an optional body,
/// `oneOf: [object, null]`) the alternative that is one.
fn object_schema<'a>(spec: &'a Value, schema: &'a Value) -> Option<&'a Value> {
    let schema = resolve(spec, schema);
    if schema["properties"].is_object() {
        return Some(schema);
    }
    ["oneOf", "anyOf"]
        .iter()
        .flat_map(|key| schema[*key].as_array().into_iter().flatten())
        .find_map(|alternative| object_schema(spec, alternative))
}

/// The JSON types a schema accepts (`type` as a string or a list, `$ref`, `oneOf`/`anyOf`);
/// empty when it says nothing (any value).
fn json_types(spec: &Value, schema: &Value) -> BTreeSet<String> {
    let schema = resolve(spec, schema);
    let mut types = BTreeSet::new();
    match &schema["type"] {
        Value::String(t) => {
            types.insert(t.clone());
        }
        Value::Array(list) => types.extend(list.iter().filter_map(|t| t.as_str().map(str::to_owned))),
        _ => {}
    }
    if schema["properties"].is_object() {
        types.insert("object".into());
    }
    for key in ["oneOf", "anyOf"] {
        for alternative in schema[key].as_array().into_iter().flatten() {
            let inner = json_types(spec, alternative);
            if inner.is_empty() {
                return BTreeSet::new();
            }
            types.extend(inner);
        }
    }
    types
}

fn operations(spec: &Value) -> Vec<Operation> {
    let mut operations = Vec::new();
    for (path, item) in spec["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().into_iter().flatten() {
            let Ok(method) = Method::from_bytes(method.to_uppercase().as_bytes()) else { continue };
            let secured = op["security"].as_array().is_some_and(|s| !s.is_empty());
            let body_required = op["requestBody"]["required"] == json!(true);
            let content = op["requestBody"]["content"].as_object();
            let body_types = content.map(|c| c.keys().cloned().collect()).unwrap_or_default();
            let query = op["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["in"] == "query")
                .filter_map(|p| Some((p["name"].as_str()?.to_owned(), json_types(spec, &p["schema"]))))
                .collect();
            let json_fields = content
                .and_then(|c| c.get("application/json"))
                .and_then(|media| object_schema(spec, &media["schema"]))
                .and_then(|schema| schema["properties"].as_object())
                .map(|properties| {
                    properties.iter().map(|(name, schema)| (name.clone(), json_types(spec, schema))).collect()
                });
            operations.push(Operation {
                method,
                path: path.clone(),
                secured,
                body_required,
                body_types,
                query,
                json_fields,
            });
        }
    }
    operations
}

/// A JSON value none of `types` accepts; `None` when every one is accepted.
fn wrong_value(types: &BTreeSet<String>) -> Option<Value> {
    if types.is_empty() {
        return None;
    }
    let candidates = [
        (json!(12345), ["integer", "number"]),
        (json!("not this"), ["string", "string"]),
        (json!(true), ["boolean", "boolean"]),
        (json!([1]), ["array", "array"]),
        (json!({"x": 1}), ["object", "object"]),
    ];
    candidates
        .into_iter()
        .find(|(_, names)| !names.iter().any(|n| types.contains(*n)))
        .map(|(value, _)| value)
}

/// The server, a user with a token, the room, and the documented codes.
struct Walk {
    story: RunStory,
    token: String,
    codes: BTreeMap<String, u16>,
}

impl Walk {
    async fn start() -> Self {
        let story = RunStory::start_with(Backend::Sqlite, |config| {
            config.http.max_body_bytes = BODY_LIMIT;
            config.executor.max_upload_bytes = BODY_LIMIT;
            // Hundreds of requests from one user and one address: no rate limit may answer.
            config.http.http_rate_per_sec = 100_000;
            config.http.http_burst = 100_000;
            config.http.public_rate_per_sec = 100_000;
            config.http.public_burst = 100_000;
        })
        .await;
        let token = token("walker");
        story.workflow(&token, ROOM).await;
        let codes = documented_codes();
        assert!(codes.len() > 20, "the table of docs/api-errors.md was not found");
        Self { story, token, codes }
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.story.http.request(method, self.story.server.http(path))
    }

    /// Sends `request` and checks the answer is the envelope with a documented code and that
    /// code's status; returns the status, code, message and headers.
    async fn refused(&self, what: &str, request: reqwest::RequestBuilder) -> Refusal {
        let response = request.send().await.unwrap_or_else(|e| panic!("{what}: {e}"));
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap_or_default();
        assert!(status.is_client_error() || status.is_server_error(), "{what}: {status} {text}");
        let body: Value =
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("{what}: {status} not JSON: {text:?}"));
        let (Some(error), Some(code)) = (body["error"].as_str(), body["code"].as_str()) else {
            panic!("{what}: {status} not the envelope: {body}");
        };
        assert!(!error.is_empty(), "{what}: an empty message");
        let documented = self.codes.get(code).unwrap_or_else(|| panic!("{what}: undocumented code {code}"));
        assert_eq!(status.as_u16(), *documented, "{what}: {code} answers {documented} in the doc: {body}");
        Refusal { status, code: code.to_owned(), error: error.to_owned(), headers }
    }

    /// Like [`refused`](Self::refused), and the code is `code`.
    async fn refused_with(&self, what: &str, code: &str, request: reqwest::RequestBuilder) -> Refusal {
        let refusal = self.refused(what, request).await;
        assert_eq!(refusal.code, code, "{what}: {}", refusal.error);
        refusal
    }
}

struct Refusal {
    status: StatusCode,
    code: String,
    error: String,
    headers: reqwest::header::HeaderMap,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_bad_input_in_the_documented_envelope() {
    let walk = Walk::start().await;
    let spec: Value = walk
        .request(Method::GET, "/api/openapi.json")
        .send()
        .await
        .expect("spec")
        .json()
        .await
        .expect("json");
    let operations = operations(&spec);
    assert!(operations.len() >= 20, "the spec lists {} operations", operations.len());
    let (mut bodies_checked, mut queries_checked) = (0, 0);
    for op in &operations {
        let name = op.name();
        let path = op.concrete(None);
        if op.secured {
            walk.refused_with(
                &format!("{name} without a token"),
                "unauthorized",
                walk.request(op.method.clone(), &path),
            )
            .await;
            let bad = walk.request(op.method.clone(), &path).bearer_auth("not.a.token");
            walk.refused_with(&format!("{name} with a bad token"), "unauthorized", bad).await;
        }
        let authorized = |request: reqwest::RequestBuilder| request.bearer_auth(&walk.token);

        for param in op.params() {
            let broken = op.concrete(Some((&param, NOT_UTF8)));
            let what = format!("{name} with {{{param}}} = {NOT_UTF8}");
            let refusal = walk
                .refused_with(&what, "invalid_path", authorized(walk.request(op.method.clone(), &broken)))
                .await;
            assert!(refusal.error.contains(&param), "{what}: {}", refusal.error);
            // Long values of the right kind: refused or not found, in the envelope.
            let long = op.concrete(Some((&param, &"x".repeat(300))));
            walk.refused(
                &format!("{name} with a long {{{param}}}"),
                authorized(walk.request(op.method.clone(), &long)),
            )
            .await;
        }

        for (param, types) in &op.query {
            // A query value is text; only a number can be given one that does not parse.
            if !(types.contains("integer") || types.contains("number")) || types.contains("string") {
                continue;
            }
            let what = format!("{name} with ?{param}=lots");
            let request = authorized(walk.request(op.method.clone(), &format!("{path}?{param}=lots")));
            let refusal = walk.refused_with(&what, "invalid_query", request).await;
            queries_checked += 1;
            assert!(refusal.error.contains(&format!("`{param}`")), "{what}: {}", refusal.error);
        }

        if let Some(content_type) = op.body_types.first() {
            let too_large = authorized(walk.request(op.method.clone(), &path))
                .header(CONTENT_TYPE, content_type.as_str())
                .body(vec![b' '; BODY_LIMIT + 1]);
            walk.refused_with(&format!("{name} with a body over the limit"), "body_too_large", too_large)
                .await;
            let wrong_type = authorized(walk.request(op.method.clone(), &path))
                .header(CONTENT_TYPE, "text/plain")
                .body("{}");
            let refusal = walk.refused(&format!("{name} with a text/plain body"), wrong_type).await;
            if op.json_fields.is_some() || op.body_types.iter().all(|t| t.starts_with("image/")) {
                assert_eq!(refusal.code, "unsupported_media_type", "{name}: {}", refusal.error);
            }
        }

        if let Some(fields) = &op.json_fields {
            bodies_checked += 1;
            let json_request = || {
                authorized(walk.request(op.method.clone(), &path)).header(CONTENT_TYPE, "application/json")
            };
            walk.refused_with(
                &format!("{name} with malformed JSON"),
                "invalid_json",
                json_request().body(r#"{"a": "#),
            )
            .await;
            let untyped = authorized(walk.request(op.method.clone(), &path)).body("{}");
            walk.refused_with(&format!("{name} with no content type"), "unsupported_media_type", untyped)
                .await;
            if op.body_required {
                // (An optional body may be empty: a run of the whole graph is asked that way.)
                walk.refused_with(&format!("{name} with no body"), "invalid_json", json_request().body(""))
                    .await;
            }
            let string = json_request().body(r#""an object was expected""#);
            walk.refused_with(&format!("{name} with a string for an object"), "invalid_body", string).await;
            // serde reads a struct from an array too (`["title"]` as `{"title": …}`): refused.
            let fields_in_order = json!(fields.keys().map(|_| Value::Null).collect::<Vec<_>>()).to_string();
            let array = walk
                .refused_with(
                    &format!("{name} with an array for an object"),
                    "invalid_body",
                    json_request().body(fields_in_order),
                )
                .await;
            assert!(array.error.contains("object"), "{name}: {}", array.error);
            for (field, types) in fields {
                let Some(value) = wrong_value(types) else { continue };
                let what = format!("{name} with `{field}` = {value} (accepts {types:?})");
                let body = json!({ field.as_str(): value }).to_string();
                let refusal = walk.refused_with(&what, "invalid_body", json_request().body(body)).await;
                assert!(refusal.error.contains(&format!("`{field}`")), "{what}: {}", refusal.error);
                assert!(
                    !refusal.error.contains("not this"),
                    "{what}: the value is echoed: {}",
                    refusal.error
                );
            }
        }
    }
    assert!(bodies_checked >= 5, "only {bodies_checked} operations have a described JSON body");
    assert!(queries_checked >= 1, "no numeric query parameter was walked");

    // A method each path does not take: 405, `Allow` naming the ones it does.
    let mut by_path: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for op in &operations {
        by_path.entry(op.path.as_str()).or_default().insert(op.method.to_string());
    }
    for (template, methods) in &by_path {
        let op = operations.iter().find(|op| op.path == *template).expect("an operation");
        let wrong = METHODS.iter().find(|m| !methods.contains(**m)).expect("a method the path does not take");
        let method = Method::from_bytes(wrong.as_bytes()).expect("method");
        let what = format!("{wrong} {template}");
        let request = walk.request(method, &op.concrete(None)).bearer_auth(&walk.token);
        let refusal = walk.refused_with(&what, "method_not_allowed", request).await;
        let allow = refusal.headers.get(ALLOW).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        let allowed: BTreeSet<String> = allow.split(',').map(|m| m.trim().to_owned()).collect();
        assert!(methods.is_subset(&allowed), "{what}: Allow: {allow:?}, documented {methods:?}");
        assert_eq!(refusal.headers.get_all(ALLOW).iter().count(), 1, "{what}: one Allow header");
    }
    walk.story.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_api_routes_are_route_not_found_and_other_paths_are_left_alone() {
    let walk = Walk::start().await;
    for (method, path) in [
        (Method::GET, "/api/nope"),
        (Method::POST, "/api/nope"),
        (Method::GET, "/api/rooms/walk-room/nope"),
        (Method::DELETE, "/api/"),
        (Method::GET, "/assets/a/b"),
    ] {
        let what = format!("{method} {path}");
        let refusal = walk.refused_with(&what, "route_not_found", walk.request(method, path)).await;
        assert_eq!(refusal.status, StatusCode::NOT_FOUND);
        assert!(refusal.error.contains("/api/openapi.json"), "{what}: {}", refusal.error);
    }
    // Not the API's: a page path the editor would route, and the WebSocket endpoint's.
    for (method, path) in [(Method::GET, "/no-such-page/x"), (Method::POST, "/rooms/walk-room")] {
        let response = walk.request(method.clone(), path).send().await.expect("request");
        let is_json = response
            .headers()
            .get(CONTENT_TYPE)
            .is_some_and(|v| v.to_str().unwrap_or("").starts_with("application/json"));
        assert!(!is_json, "{method} {path} answered as the API");
    }
    walk.story.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_keep_retry_after_in_the_envelope() {
    let story = RunStory::start_with(Backend::Sqlite, |config| {
        config.http.http_rate_per_sec = 1;
        config.http.http_burst = 1;
    })
    .await;
    let alice = token("alice");
    let mut limited = None;
    for _ in 0..20 {
        let response =
            story.http.get(story.server.http("/api/me")).bearer_auth(&alice).send().await.expect("get");
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            limited = Some(response);
            break;
        }
    }
    let response = limited.expect("the per-user limit answered 429");
    let retry_after = response.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_owned);
    assert!(retry_after.is_some_and(|s| s.parse::<u64>().is_ok()), "a Retry-After in seconds");
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["code"], "rate_limited", "{body}");
    story.server.stop().await;
}
