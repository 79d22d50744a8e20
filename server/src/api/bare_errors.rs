//! The envelope for refusals no handler or extractor wrote: a path no route has (404), a
//! method the route does not take (405), and anything else that leaves an API path as an error
//! without a JSON body (a layer's 413, a rejection of an extractor that is not one of
//! `extract.rs`'s).
//!
//! Only `/api/…` and `/assets/…` are covered: the WebSocket endpoints answer their own way and
//! the editor's static files are not API. The replacement keeps the original status and headers
//! (`Allow` on a 405, `Retry-After` on a 429, CORS) and drops the original body.

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::ApiError;

/// Paths whose errors are the API's.
const COVERED_PREFIXES: [&str; 2] = ["/api/", "/assets/"];

pub async fn envelope(request: Request, next: Next) -> Response {
    let covered = COVERED_PREFIXES.iter().any(|prefix| request.uri().path().starts_with(prefix));
    let response = next.run(request).await;
    if !covered || is_json(response.headers()) {
        return response;
    }
    let Some(error) = error_for(response.status(), response.headers()) else { return response };
    let (parts, _body) = response.into_parts();
    if !matches!(parts.status, StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED) {
        // Something answered an API path in plain text: an extractor that should be one of
        // `extract.rs`'s, or a layer. Worth knowing, not worth a warning per hostile request.
        tracing::debug!(status = %parts.status, "an API error without the envelope was wrapped");
    }
    let mut replaced = error.into_response();
    let ours: Vec<HeaderName> = replaced.headers().keys().cloned().collect();
    for (name, value) in &parts.headers {
        if !ours.contains(name) && name != header::CONTENT_LENGTH {
            replaced.headers_mut().append(name.clone(), value.clone());
        }
    }
    replaced
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("application/json"))
}

/// The refusal a bare error status stands for; `None` for statuses that are not errors, or
/// that nothing here is known to produce (left as they are rather than guessed at).
fn error_for(status: StatusCode, headers: &HeaderMap) -> Option<ApiError> {
    let error = match status {
        StatusCode::NOT_FOUND => ApiError::RouteNotFound(
            "no route has this path; GET /api/openapi.json lists the API's routes".into(),
        ),
        // The router adds `Allow` after this layer has run (a layer wraps each route's
        // handlers, the method dispatch is outside them), so the message points at the header.
        StatusCode::METHOD_NOT_ALLOWED => ApiError::MethodNotAllowed(
            "this route does not take this method; the Allow header lists the ones it takes".into(),
        ),
        StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::BodyTooLarge("the request body is larger than this route accepts".into())
        }
        StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            ApiError::UnsupportedMediaType("this route does not take a body of this content type".into())
        }
        StatusCode::UNPROCESSABLE_ENTITY => {
            ApiError::InvalidBody("the body does not have the shape this route expects".into())
        }
        StatusCode::BAD_REQUEST => ApiError::BadRequest("the request is malformed".into()),
        StatusCode::UNAUTHORIZED => ApiError::Unauthorized("this needs a valid token".into()),
        StatusCode::FORBIDDEN => ApiError::Forbidden("not allowed".into()),
        StatusCode::TOO_MANY_REQUESTS => {
            let retry_after_s = headers
                .get(header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(1);
            ApiError::TooManyRequests { retry_after_s }
        }
        StatusCode::INTERNAL_SERVER_ERROR => ApiError::Internal("a bare 500 on an API path".into()),
        StatusCode::SERVICE_UNAVAILABLE => {
            ApiError::Unavailable("the service is not available; try again".into())
        }
        _ => return None,
    };
    Some(error)
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::body::Body;
    use axum::routing::post;
    use tower::ServiceExt;

    use super::*;

    fn app() -> Router {
        Router::new()
            .route("/api/thing", post(|| async { "made" }))
            .route("/rooms/{room}", post(|| async { "room" }))
            .route("/api/teapot", post(|| async { (StatusCode::IM_A_TEAPOT, "short and stout") }))
            .layer(axum::middleware::from_fn(envelope))
    }

    async fn send(method: &str, path: &str) -> (StatusCode, HeaderMap, serde_json::Value) {
        let request = Request::builder().method(method).uri(path).body(Body::empty()).expect("request");
        let response = app().oneshot(request).await.expect("infallible");
        let (parts, body) = response.into_parts();
        let bytes = axum::body::to_bytes(body, 4096).await.expect("body");
        let json = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&bytes).into()));
        (parts.status, parts.headers, json)
    }

    #[tokio::test]
    async fn unknown_api_paths_and_wrong_methods_answer_in_the_envelope() {
        let (status, _, body) = send("GET", "/api/nope").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body["code"], "route_not_found", "{body}");
        let (status, headers, body) = send("GET", "/api/thing").await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(body["code"], "method_not_allowed", "{body}");
        assert_eq!(headers[header::ALLOW], "POST");
        assert_eq!(headers[header::CONTENT_TYPE], "application/json");
    }

    #[tokio::test]
    async fn other_paths_and_successes_are_left_alone() {
        let (status, _, body) = send("GET", "/rooms/r").await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(body, serde_json::Value::String(String::new()));
        let (status, _, body) = send("POST", "/api/thing").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, "made");
        // A status nothing is known to produce is not guessed at.
        let (status, _, body) = send("POST", "/api/teapot").await;
        assert_eq!(status, StatusCode::IM_A_TEAPOT);
        assert_eq!(body, "short and stout");
    }
}
