//! The JSON shape every HTTP refusal takes, `{"error": message, "code": code}`, for the code
//! that answers before the API's handlers run: the edge middlewares (foreign origin, public
//! rate limit, metrics access) and WebSocket admission. They build it here rather than through
//! `api::ApiError`, which would make them and the API (which installs them) import each other.
//! `ApiError` answers with the same shape.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// `status` with `{"error": message, "code": code}`.
pub(crate) fn json_error(status: StatusCode, code: &'static str, message: impl Into<String>) -> Response {
    let body = Json(serde_json::json!({ "error": message.into(), "code": code }));
    (status, body).into_response()
}

/// 429 with `Retry-After`, as `ApiError::TooManyRequests` answers.
pub(crate) fn too_many_requests(retry_after_s: u64) -> Response {
    let message = format!("too many requests: retry in {retry_after_s} s");
    let mut response = json_error(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message);
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after_s));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn refusals_carry_the_api_envelope() {
        let response = too_many_requests(3);
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "3");
        let body = axum::body::to_bytes(response.into_body(), 1024).await.expect("a body");
        let body: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(
            body,
            serde_json::json!({"error": "too many requests: retry in 3 s", "code": "rate_limited"})
        );
    }
}
