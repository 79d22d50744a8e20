//! What the OpenAPI document promises generated clients, beyond what a schema validator checks
//! (`scripts/check-openapi.sh` runs one in CI): a unique camelCase method name per operation, a
//! description on every response, the error envelope on every error, camelCase JSON bodies, and
//! the served document equal to the one `dojo-server openapi` prints.

mod common;

use std::collections::BTreeSet;

use common::TestServer;
use serde_json::Value;

fn document() -> Value {
    serde_json::from_str(&dojo_server::openapi_document()).expect("the document is JSON")
}

/// Every operation as `(method path, operation)`.
fn operations(spec: &Value) -> Vec<(String, &Value)> {
    let mut out = Vec::new();
    for (path, item) in spec["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("a path item") {
            out.push((format!("{} {path}", method.to_uppercase()), operation));
        }
    }
    out
}

#[test]
fn every_operation_has_a_unique_camel_case_operation_id() {
    let spec = document();
    assert_eq!(spec["openapi"].as_str().map(|v| v.starts_with("3.1")), Some(true), "{}", spec["openapi"]);
    let mut seen = BTreeSet::new();
    for (name, operation) in operations(&spec) {
        let id = operation["operationId"].as_str().unwrap_or_else(|| panic!("{name} has no operationId"));
        let camel = id.chars().next().is_some_and(|c| c.is_ascii_lowercase())
            && id.chars().all(|c| c.is_ascii_alphanumeric());
        assert!(camel, "{name}: operationId {id:?} is not camelCase");
        assert!(seen.insert(id.to_owned()), "{name}: operationId {id:?} is used twice");
    }
}

#[test]
fn every_response_is_described_and_every_error_carries_the_envelope() {
    let spec = document();
    let shared = &spec["components"]["responses"];
    for (name, operation) in operations(&spec) {
        let responses = operation["responses"].as_object().expect("responses");
        assert!(!responses.is_empty(), "{name} documents no response");
        for (status, response) in responses {
            // A shared response is described once, in components.
            let response = match response["$ref"].as_str() {
                Some(reference) => {
                    let key = reference.trim_start_matches("#/components/responses/");
                    &shared[key]
                }
                None => response,
            };
            let description = response["description"].as_str().unwrap_or_default();
            assert!(!description.trim().is_empty(), "{name} {status}: no description");
            if status.starts_with('4') || status.starts_with('5') {
                let schema = &response["content"]["application/json"]["schema"]["$ref"];
                let schema = schema.as_str().unwrap_or_default();
                assert!(
                    schema.ends_with("ErrorBody") || schema.ends_with("Body"),
                    "{name} {status}: an error without the error envelope: {response}"
                );
                let body = schema.trim_start_matches("#/components/schemas/");
                let required = &spec["components"]["schemas"][body]["required"];
                for field in ["error", "code"] {
                    assert!(
                        required.as_array().is_some_and(|r| r.contains(&Value::from(field))),
                        "{name} {status}: {body} does not require {field:?}"
                    );
                }
            }
        }
    }
}

#[test]
fn json_bodies_use_camel_case() {
    let spec = document();
    let mut snake = Vec::new();
    for (schema, definition) in spec["components"]["schemas"].as_object().expect("schemas") {
        for property in definition["properties"].as_object().into_iter().flat_map(|p| p.keys()) {
            if property.contains('_') {
                snake.push(format!("{schema}.{property}"));
            }
        }
    }
    assert!(snake.is_empty(), "snake_case properties: {snake:?}");
}

#[tokio::test]
async fn the_served_document_is_the_printed_one() {
    let server = TestServer::start().await;
    let served: Value =
        reqwest::get(server.http("/api/openapi.json")).await.expect("get").json().await.expect("json");
    assert_eq!(served, document());
    server.stop().await;
}
