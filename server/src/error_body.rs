//! The JSON shape every HTTP refusal takes, `{"error": message, "code": code}`, for the code
//! that answers before the API's handlers run: the edge middlewares (foreign origin, public
//! rate limit, metrics access) and WebSocket admission. They build it here rather than through
//! `api::ApiError`, which would make them and the API (which installs them) import each other.
//! `ApiError` answers with the same shape.

use axum::Json;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use crate::error_code::ErrorCode;

/// `{"error": message, "code": code}` with the code's status.
pub(crate) fn json_error(code: ErrorCode, message: impl Into<String>) -> Response {
    let body = Json(serde_json::json!({ "error": message.into(), "code": code.as_str() }));
    (code.status(), body).into_response()
}

/// 429 with `Retry-After`, as `ApiError::TooManyRequests` answers.
pub(crate) fn too_many_requests(retry_after_s: u64) -> Response {
    let message = format!("too many requests: retry in {retry_after_s} s");
    let mut response = json_error(ErrorCode::RateLimited, message);
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after_s));
    response
}

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;

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
