//! The API's extractors: axum's `Json`, `Path`, `Query` and `Bytes`, refusing in the API's
//! envelope (`{"error", "code"}`, see [`ApiError`]) instead of axum's plain-text rejections.
//!
//! Every handler takes these, so a client that sends bad JSON, the wrong content type, a field of
//! the wrong type, an unparsable path or query, or too large a body learns what was wrong, with
//! a stable code. Messages name the field and what was expected, never the value sent: a body
//! is the client's own data and may be large; echoing it back helps nobody and can leak into
//! logs and proxies. Rust type names from serde (`u32`, `struct CreateWorkflow`) are said in
//! JSON's words.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, FailedToBufferBody, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, OptionalFromRequest, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use serde::de::DeserializeOwned;

use super::ApiError;

/// Longest piece of a client's input (a field path, an unknown field's name) a message repeats.
const MAX_ECHO: usize = 64;
/// Longest message an extractor answers with.
const MAX_MESSAGE: usize = 300;

/// A JSON body (`Content-Type: application/json` or `application/*+json`), under the route's
/// body limit. As an `Option`, an empty body (with any content type, or none) is `None`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        if !json_content_type(request.headers()) {
            return Err(not_json());
        }
        let ApiBytes(bytes) = ApiBytes::from_request(request, state).await?;
        parse_json(&bytes).map(ApiJson)
    }
}

impl<T, S> OptionalFromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Option<Self>, ApiError> {
        let json = json_content_type(request.headers());
        let ApiBytes(bytes) = ApiBytes::from_request(request, state).await?;
        if bytes.is_empty() {
            return Ok(None);
        }
        // A body that is not declared JSON is refused rather than ignored: a client that left
        // the header out would otherwise get the default (a whole-graph run) for its targets.
        if !json {
            return Err(not_json());
        }
        parse_json(&bytes).map(|value| Some(ApiJson(value)))
    }
}

/// The raw body, under the route's body limit (`DefaultBodyLimit`).
#[derive(Debug, Clone)]
pub struct ApiBytes(pub Bytes);

impl<S> FromRequest<S> for ApiBytes
where
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        Bytes::from_request(request, state).await.map(ApiBytes).map_err(body_refused)
    }
}

/// Path parameters.
#[derive(Debug, Clone)]
pub struct ApiPath<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(value)) => Ok(ApiPath(value)),
            Err(rejection) => Err(path_refused(rejection)),
        }
    }
}

/// The query string.
#[derive(Debug, Clone)]
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(value)) => Ok(ApiQuery(value)),
            Err(rejection) => Err(query_refused(&rejection)),
        }
    }
}

/// The client's address, as `http_server` attributed it (the peer, or with trusted proxies the
/// address they vouch for: `client_addr.rs`). `None` when the request came some other way (a
/// test calling the router directly). Never refuses.
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub Option<std::net::IpAddr>);

impl<S> FromRequestParts<S> for ClientIp
where
    S: Send + Sync,
{
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let peer = parts.extensions.get::<axum::extract::ConnectInfo<std::net::SocketAddr>>();
        Ok(ClientIp(peer.map(|axum::extract::ConnectInfo(addr)| addr.ip())))
    }
}

fn not_json() -> ApiError {
    ApiError::UnsupportedMediaType("send the body as JSON, with `Content-Type: application/json`".into())
}

/// `application/json` or `application/<anything>+json`, parameters (`; charset=utf-8`) aside.
fn json_content_type(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    let Some(subtype) = essence.strip_prefix("application/") else { return false };
    subtype == "json" || subtype.ends_with("+json")
}

fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // Syntax first, whole: deserializing into `T` stops at the first field it refuses (an
    // unknown one), which would call a truncated body "the wrong shape" rather than "not JSON".
    // `IgnoredAny` allocates nothing.
    if let Err(error) = serde_json::from_slice::<serde::de::IgnoredAny>(bytes) {
        return Err(ApiError::InvalidJson(bounded(format!("the body is not valid JSON: {error}"))));
    }
    // Every JSON body of this API is an object. serde would read a struct from an array too
    // (`["title"]` as `{"title": …}`, `[]` as an empty update), which no client means.
    if bytes.iter().find(|byte| !byte.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::InvalidBody("the body must be a JSON object".into()));
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| json_refused(&error))?;
    // Trailing bytes after the value are a syntax error, as `axum::Json` has it.
    deserializer
        .end()
        .map_err(|error| ApiError::InvalidJson(bounded(format!("the body is not valid JSON: {error}"))))?;
    Ok(value)
}

fn json_refused(error: &serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let inner = error.inner();
    match inner.classify() {
        serde_json::error::Category::Data => {
            let text = inner.to_string();
            let (message, position) = split_position(&text);
            let message = describe_data_error(message);
            let path = error.path().to_string();
            let message = if path == "." {
                format!("the body: {message}{position}")
            } else {
                format!("`{}`: {message}{position}", truncate(&path, MAX_ECHO))
            };
            ApiError::InvalidBody(bounded(message))
        }
        // Syntax messages ("expected value", "EOF while parsing an object") quote nothing.
        serde_json::error::Category::Syntax
        | serde_json::error::Category::Eof
        | serde_json::error::Category::Io => {
            ApiError::InvalidJson(bounded(format!("the body is not valid JSON: {inner}")))
        }
    }
}

/// serde_json's " at line 1 column 12" suffix, split off (kept: it says where, not what).
fn split_position(message: &str) -> (&str, &str) {
    match message.rfind(" at line ") {
        Some(at) => message.split_at(at),
        None => (message, ""),
    }
}

/// serde's data error in JSON's words, without the value the client sent.
fn describe_data_error(message: &str) -> String {
    for prefix in ["invalid type: ", "invalid value: "] {
        if let Some(rest) = message.strip_prefix(prefix)
            && let Some((got, expected)) = rest.split_once(", expected ")
        {
            return format!("expected {}, got {}", json_expected(expected), json_kind(got));
        }
    }
    // "unknown field `x`, expected …", "missing field `x`", "unknown variant `x`, …": the name in
    // backticks may be the client's own, so it is cut short.
    if let Some((before, rest)) = message.split_once('`')
        && let Some((name, after)) = rest.split_once('`')
    {
        return format!("{before}`{}`{after}", truncate(name, MAX_ECHO));
    }
    message.to_owned()
}

/// What serde's `Unexpected` names (`string "abc"`, `integer \`5\``), as a JSON kind.
fn json_kind(unexpected: &str) -> &'static str {
    let kind = unexpected.split(['`', '"']).next().unwrap_or("").trim();
    match kind {
        "boolean" => "a boolean",
        "integer" | "floating point" => "a number",
        "string" | "character" => "a string",
        "null" | "unit value" => "null",
        "map" => "an object",
        "sequence" => "an array",
        _ => "a value of another type",
    }
}

/// What serde says it expected, with Rust's type names in JSON's words.
fn json_expected(expected: &str) -> String {
    let expected = expected.trim();
    let said = match expected {
        "u8" => "an integer from 0 to 255",
        "u16" => "an integer from 0 to 65535",
        "u32" => "an integer from 0 to 4294967295",
        "u64" | "usize" => "a non-negative integer",
        "i8" | "i16" | "i32" | "i64" | "isize" => "an integer",
        "f32" | "f64" => "a number",
        "a sequence" => "an array",
        "a map" => "an object",
        _ if expected.starts_with("struct ") => "an object",
        _ => return truncate(expected, MAX_ECHO).to_owned(),
    };
    said.to_owned()
}

fn body_refused(rejection: BytesRejection) -> ApiError {
    match rejection {
        BytesRejection::FailedToBufferBody(FailedToBufferBody::LengthLimitError(_)) => {
            ApiError::BodyTooLarge("the request body is larger than this route accepts".into())
        }
        other => {
            tracing::debug!(error = %other, "a request body could not be read");
            ApiError::BodyUnreadable(
                "the request body could not be read: it stalled or the connection broke".into(),
            )
        }
    }
}

fn path_refused(rejection: PathRejection) -> ApiError {
    use axum::extract::path::ErrorKind;
    let failed = match rejection {
        PathRejection::FailedToDeserializePathParams(failed) => failed,
        // The handler asked for parameters its route does not have: a bug here, not the client's.
        other => return ApiError::Internal(format!("path parameters: {other}")),
    };
    let message = match failed.into_kind() {
        ErrorKind::ParseErrorAtKey { key, expected_type, .. } => {
            format!("path parameter `{key}` must be {}", json_expected(expected_type))
        }
        ErrorKind::ParseErrorAtIndex { index, expected_type, .. } => {
            format!("path parameter {} must be {}", index + 1, json_expected(expected_type))
        }
        ErrorKind::ParseError { expected_type, .. } => {
            format!("the path parameter must be {}", json_expected(expected_type))
        }
        ErrorKind::InvalidUtf8InPathParam { key } => {
            format!("path parameter `{key}` is not UTF-8 once percent-decoded")
        }
        ErrorKind::DeserializeError { key, message, .. } => {
            format!("path parameter `{key}`: {}", describe_data_error(&message))
        }
        other => {
            tracing::debug!(error = %other, "a path did not deserialize");
            "a path parameter does not parse".to_owned()
        }
    };
    ApiError::InvalidPath(bounded(message))
}

fn query_refused(rejection: &QueryRejection) -> ApiError {
    // axum's text is "Failed to deserialize query string: <field>: <serde message>".
    let text = rejection.body_text();
    let detail = text.split_once(": ").map_or(text.as_str(), |(_, detail)| detail);
    let (field, message) = detail.split_once(": ").unwrap_or((".", detail));
    let message = describe_data_error(message);
    let message = if field == "." {
        format!("the query string does not parse: {message}")
    } else {
        format!("query parameter `{}`: {message}", truncate(field, MAX_ECHO))
    };
    ApiError::InvalidQuery(bounded(message))
}

/// At most `max` bytes of `text`, cut at a character boundary.
fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// The message without control characters, at most [`MAX_MESSAGE`] bytes.
fn bounded(message: String) -> String {
    let clean: String = message.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    truncate(&clean, MAX_MESSAGE).to_owned()
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        title: String,
        #[serde(default)]
        public: Option<bool>,
        #[serde(default)]
        limit: Option<u32>,
        #[serde(default)]
        inner: Option<Inner>,
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Inner {
        targets: Vec<String>,
    }

    fn refusal(body: &str) -> (&'static str, String) {
        let error = parse_json::<Body>(body.as_bytes()).expect_err("refused");
        (error.code().as_str(), error.to_string())
    }

    #[test]
    fn syntax_errors_are_invalid_json() {
        // Malformed before a field `Body` does not know: still a syntax error.
        assert_eq!(refusal(r#"{"unknown": "#).0, "invalid_json");
        let (code, message) = refusal(r#"{"title": "#);
        assert_eq!(code, "invalid_json");
        assert!(message.starts_with("the body is not valid JSON: EOF"), "{message}");
        assert_eq!(refusal("").0, "invalid_json");
        assert_eq!(refusal(r#"{"title": "a"} trailing"#).0, "invalid_json");
    }

    #[test]
    fn a_wrong_type_names_the_field_and_not_the_value() {
        let (code, message) = refusal(r#"{"title": "t", "public": "a secret value"}"#);
        assert_eq!(code, "invalid_body");
        assert!(message.starts_with("`public`: expected a boolean, got a string"), "{message}");
        assert!(!message.contains("secret"), "{message}");
        let (_, message) = refusal(r#"{"title": "t", "limit": -5}"#);
        assert!(
            message.starts_with("`limit`: expected an integer from 0 to 4294967295, got a number"),
            "{message}"
        );
        let (_, message) = refusal(r#"{"title": "t", "inner": {"targets": "up"}}"#);
        assert!(message.starts_with("`inner.targets`: expected an array, got a string"), "{message}");
        for not_an_object in [r#""title""#, r#"["t", true]"#, " []", "12"] {
            let (code, message) = refusal(not_an_object);
            assert_eq!(
                (code, message.as_str()),
                ("invalid_body", "the body must be a JSON object"),
                "{not_an_object}"
            );
        }
    }

    #[test]
    fn missing_and_unknown_fields_are_invalid_body() {
        let (code, message) = refusal("{}");
        assert_eq!(code, "invalid_body");
        assert!(message.starts_with("the body: missing field `title`"), "{message}");
        let long = "x".repeat(10_000);
        let (_, message) = refusal(&format!(r#"{{"title": "t", "{long}": 1}}"#));
        assert!(message.contains("unknown field `xxxx"), "{message}");
        assert!(message.len() <= MAX_MESSAGE, "{}", message.len());
    }

    #[test]
    fn json_content_types() {
        let with = |value: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::CONTENT_TYPE, axum::http::HeaderValue::from_static(value));
            json_content_type(&headers)
        };
        assert!(with("application/json"));
        assert!(with("Application/JSON; charset=utf-8"));
        assert!(with("application/merge-patch+json"));
        assert!(!with("text/plain"));
        assert!(!with("application/jsonx"));
        assert!(!json_content_type(&HeaderMap::new()));
    }

    #[test]
    fn messages_are_cut_at_a_character_boundary() {
        assert_eq!(truncate("ééé", 3), "é");
        assert_eq!(bounded("a\nb".into()), "a b");
    }
}
