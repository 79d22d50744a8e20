//! What a provider's error reply says: the human message of each provider's error body shape,
//! and how long it asks us to wait (`Retry-After` headers, or a wait given in the body).

use std::time::{Duration, SystemTime};

use reqwest::header::{self, HeaderMap};
use serde_json::Value;

use super::MAX_MESSAGE_CHARS;

/// The human part of an error body, for every provider's shape:
/// OpenAI `{"error": {"message", "code"}}`, Replicate `{"title", "detail"}`, fal `{"detail": "…"}`
/// or FastAPI's `{"detail": [{"loc", "msg"}]}`, Stability `{"name", "errors": ["…"]}`.
pub(crate) fn error_message(json: &Value) -> String {
    let text = |v: &Value| v.as_str().map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned);
    let message = if let Some(m) = json.pointer("/error/message").and_then(text) {
        m
    } else if let Some(m) = json.get("error").and_then(text) {
        m
    } else if let Some(m) = json.get("detail").and_then(text) {
        m
    } else if let Some(items) = json.get("detail").and_then(Value::as_array) {
        items
            .iter()
            .filter_map(|item| {
                let msg = item.get("msg").and_then(text).or_else(|| text(item))?;
                let loc: Vec<String> = item
                    .get("loc")
                    .and_then(Value::as_array)
                    .map(|l| {
                        l.iter()
                            .filter(|p| p.as_str() != Some("body"))
                            .map(|p| p.as_str().map_or_else(|| p.to_string(), str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default();
                Some(if loc.is_empty() { msg } else { format!("{}: {msg}", loc.join(".")) })
            })
            .collect::<Vec<_>>()
            .join("; ")
    } else if let Some(errors) = json.get("errors").and_then(Value::as_array) {
        let joined = errors.iter().filter_map(text).collect::<Vec<_>>().join("; ");
        match json.get("name").and_then(text) {
            Some(name) if !joined.is_empty() => format!("{name}: {joined}"),
            Some(name) => name,
            None => joined,
        }
    } else if let Some(m) = json.get("message").and_then(text) {
        m
    } else {
        json.get("title").and_then(text).unwrap_or_default()
    };
    truncate(&message, MAX_MESSAGE_CHARS)
}

pub(crate) fn plain_text(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    // An HTML error page says nothing useful on a canvas node.
    if text.starts_with('<') {
        return String::new();
    }
    truncate(text, MAX_MESSAGE_CHARS)
}

pub(crate) fn truncate(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// `Retry-After` (seconds or an HTTP date), or OpenAI's `retry-after-ms`.
pub(crate) fn header_retry_after(headers: &HeaderMap) -> Option<Duration> {
    if let Some(ms) = headers.get("retry-after-ms").and_then(|v| v.to_str().ok())
        && let Ok(ms) = ms.trim().parse::<f64>()
        && ms.is_finite()
        && ms >= 0.0
    {
        return Some(Duration::from_secs_f64(ms / 1000.0));
    }
    let value = headers.get(header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(86_400.0)));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(SystemTime::now()).unwrap_or(Duration::ZERO))
}

/// A wait given in the body: `retry_after` (Replicate; seconds), or a sentence such as
/// "Request was throttled. Expected available in 2 seconds." / "resets in ~30s".
pub(crate) fn body_retry_after(json: &Value) -> Option<Duration> {
    let number = |v: &Value| v.as_f64().or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()));
    let secs = json
        .get("retry_after")
        .and_then(number)
        .or_else(|| json.pointer("/error/retry_after").and_then(number))
        .or_else(|| {
            ["/detail", "/error/message", "/message", "/title"]
                .iter()
                .filter_map(|p| json.pointer(p).and_then(Value::as_str))
                .find_map(seconds_in_text)
        })?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(86_400.0)))
}

/// The first number in `text` followed by a unit of seconds ("2 seconds", "~30s", "1.5 sec").
pub(crate) fn seconds_in_text(text: &str) -> Option<f64> {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if !bytes[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && (bytes[i].is_ascii_digit() || bytes[i] == b'.') {
            i += 1;
        }
        let number = &text[start..i];
        let rest = text[i..].trim_start();
        // The unit must be a word of its own: "30s" and "2 seconds", not "3 steps".
        let unit = ["seconds", "second", "secs", "sec", "s"].into_iter().find(|unit| {
            rest.strip_prefix(unit)
                .is_some_and(|after| after.chars().next().is_none_or(|c| !c.is_ascii_alphabetic()))
        });
        if unit.is_some()
            && let Ok(value) = number.trim_end_matches('.').parse::<f64>()
        {
            return Some(value);
        }
    }
    None
}
