//! Stripe webhooks: checking that an event really comes from Stripe, and reading the credits a
//! completed checkout bought. Pure functions (the clock is a parameter) so that every case is a
//! unit test; the HTTP handler is the server's.
//!
//! Stripe signs each delivery with the endpoint's secret: the `Stripe-Signature` header is
//! `t=<unix seconds>,v1=<hex HMAC-SHA256 of "{t}.{raw body}">`, with several `v1` entries while
//! a secret is being rolled. The timestamp is signed too, so refusing old ones stops a captured
//! delivery from being replayed later; crediting once per event id (the idempotency key
//! `stripe:{event id}`) makes Stripe's own retries harmless.
//! <https://docs.stripe.com/webhooks#verify-manually>

use dojo_ids::{TeamId, UserId};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::Value;
use sha2::Sha256;

use crate::{AccountError, AccountStore, CreditOutcome};

/// Stripe's libraries' default: deliveries older (or newer) than five minutes are refused.
pub const DEFAULT_TOLERANCE_S: i64 = 300;

/// The ledger reason of checkout credits.
pub const CHECKOUT_REASON: &str = "stripe checkout";

type HmacSha256 = Hmac<Sha256>;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// An element without `=`, or an empty header: not something Stripe sends.
    #[error("malformed Stripe-Signature header")]
    MalformedHeader,
    #[error("Stripe-Signature header has no timestamp")]
    MissingTimestamp,
    #[error("Stripe-Signature timestamp is not an integer")]
    MalformedTimestamp,
    /// No `v1` entry (a `v0` alone is Stripe's test-mode legacy scheme, never accepted).
    #[error("Stripe-Signature header has no v1 signature")]
    MissingSignature,
    /// Signed too long ago, or in the future, by more than the tolerance: possibly a replay.
    #[error("Stripe-Signature timestamp {timestamp} is outside the tolerance at {now}")]
    Stale { timestamp: i64, now: i64 },
    /// No `v1` entry is the HMAC of this payload with this secret.
    #[error("no Stripe signature matches the payload")]
    Mismatch,
}

/// Checks a delivery's `Stripe-Signature` `header` against its raw `payload` (the body bytes as
/// received: re-serialised JSON would not match) and the endpoint's `secret` (`whsec_…`).
/// Unknown keys and `v0` are ignored, as Stripe's libraries do, so that new schemes can be
/// added without breaking us. The comparison is constant-time.
pub fn verify_signature(
    header: &str,
    payload: &[u8],
    secret: &str,
    now_unix: i64,
    tolerance_s: i64,
) -> Result<(), SignatureError> {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for element in header.split(',') {
        let (key, value) = element.trim().split_once('=').ok_or(SignatureError::MalformedHeader)?;
        match key {
            "t" => timestamp = Some(value),
            "v1" => signatures.push(value),
            _ => {}
        }
    }
    let timestamp_text = timestamp.ok_or(SignatureError::MissingTimestamp)?;
    let timestamp: i64 = timestamp_text.parse().map_err(|_| SignatureError::MalformedTimestamp)?;
    if signatures.is_empty() {
        return Err(SignatureError::MissingSignature);
    }
    // The MAC covers the timestamp exactly as the header carries it: what Stripe signed.
    let mac = mac(timestamp_text, payload, secret).map_err(|_| SignatureError::Mismatch)?;
    // Every entry is checked (no early exit on a match) so timing does not say which matched.
    let matched = signatures.iter().fold(false, |matched, signature| {
        let valid = hex::decode(signature).is_ok_and(|tag| mac.clone().verify_slice(&tag).is_ok());
        matched | valid
    });
    if !matched {
        return Err(SignatureError::Mismatch);
    }
    // Checked after the signature, so that only a genuine delivery is reported as stale.
    if now_unix.abs_diff(timestamp) > tolerance_s.max(0).unsigned_abs() {
        return Err(SignatureError::Stale { timestamp, now: now_unix });
    }
    Ok(())
}

/// The `Stripe-Signature` header Stripe would send for `payload` at `timestamp`: for tests and
/// for local tools that replay events.
pub fn sign(payload: &[u8], secret: &str, timestamp: i64) -> String {
    match mac(&timestamp.to_string(), payload, secret) {
        Ok(mac) => format!("t={timestamp},v1={}", hex::encode(mac.finalize().into_bytes())),
        // Unreachable (see `mac`); a header without v1 is refused rather than panicking.
        Err(_) => format!("t={timestamp}"),
    }
}

/// HMAC-SHA256 of `"{timestamp}.{payload}"`. HMAC takes keys of any length (long ones are
/// hashed first), so the error the key constructor declares never happens.
fn mac(timestamp: &str, payload: &[u8], secret: &str) -> Result<HmacSha256, hmac::digest::InvalidLength> {
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(secret.as_bytes())?;
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(payload);
    Ok(mac)
}

/// What a completed checkout bought.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckoutCredit {
    /// The event's id (`evt_…`): Stripe delivers an event at least once, always with this id.
    pub event_id: String,
    /// Our user id, which the checkout session was created with.
    pub user_id: UserId,
    /// Always positive.
    pub credits: i64,
    /// `metadata.team_id`: the team these credits are for; `user_id` is then the paying member,
    /// who must manage that team. `None`: the user's own balance.
    pub team_id: Option<TeamId>,
}

impl CheckoutCredit {
    /// The ledger key that makes crediting once per event idempotent.
    pub fn idempotency_key(&self) -> String {
        format!("stripe:{}", self.event_id)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CheckoutError {
    #[error("webhook payload is not JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("checkout event has no {0}")]
    MissingField(&'static str),
    /// Neither `client_reference_id` nor `metadata.user_id` names a user.
    #[error("checkout session names no user")]
    MissingUser,
    #[error("checkout session metadata.credits is not a positive integer: {0}")]
    InvalidCredits(String),
}

/// The credits a `checkout.session.completed` event bought, or `None` for every other event
/// type and for sessions not paid yet (`payment_status: "unpaid"`: delayed payment methods such
/// as bank debits complete the session before the money arrives).
///
/// The checkout session must have been created with our user id as `client_reference_id` (or
/// `metadata.user_id`) and the credits it buys as `metadata.credits`: Stripe returns both
/// unchanged, so nothing about the purchase has to be trusted from the browser.
pub fn parse_checkout_completed(payload: &[u8]) -> Result<Option<CheckoutCredit>, CheckoutError> {
    let event: Value = serde_json::from_slice(payload)?;
    if event.get("type").and_then(Value::as_str) != Some("checkout.session.completed") {
        return Ok(None);
    }
    let event_id = non_empty_str(event.get("id")).ok_or(CheckoutError::MissingField("id"))?;
    let session = event.pointer("/data/object").ok_or(CheckoutError::MissingField("data.object"))?;
    if session.get("payment_status").and_then(Value::as_str) == Some("unpaid") {
        return Ok(None);
    }
    let user_id = non_empty_str(session.get("client_reference_id"))
        .or_else(|| non_empty_str(session.pointer("/metadata/user_id")))
        .ok_or(CheckoutError::MissingUser)?;
    let credits =
        session.pointer("/metadata/credits").ok_or(CheckoutError::MissingField("metadata.credits"))?;
    let credits =
        positive_integer(credits).ok_or_else(|| CheckoutError::InvalidCredits(credits.to_string()))?;
    let team_id = non_empty_str(session.pointer("/metadata/team_id")).map(TeamId::from);
    Ok(Some(CheckoutCredit {
        event_id: event_id.to_owned(),
        user_id: UserId::from(user_id),
        credits,
        team_id,
    }))
}

/// Credits a checkout once, however many times its event is delivered.
pub async fn credit_checkout(
    accounts: &dyn AccountStore,
    credit: &CheckoutCredit,
) -> Result<CreditOutcome, AccountError> {
    accounts.apply_credits(&credit.user_id, credit.credits, CHECKOUT_REASON, &credit.idempotency_key()).await
}

fn non_empty_str(value: Option<&Value>) -> Option<&str> {
    value.and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// Stripe metadata values are strings; a number is accepted too for events built by hand.
fn positive_integer(value: &Value) -> Option<i64> {
    let credits = match value {
        Value::String(text) if text.bytes().all(|b| b.is_ascii_digit()) => text.parse().ok()?,
        Value::Number(number) => number.as_i64()?,
        _ => return None,
    };
    (credits > 0).then_some(credits)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_test_secret";
    const NOW: i64 = 1_700_000_000;
    const PAYLOAD: &[u8] = br#"{"id":"evt_1","type":"checkout.session.completed"}"#;

    fn verify(header: &str, payload: &[u8]) -> Result<(), SignatureError> {
        verify_signature(header, payload, SECRET, NOW, DEFAULT_TOLERANCE_S)
    }

    #[test]
    fn a_valid_signature_is_accepted() {
        assert_eq!(verify(&sign(PAYLOAD, SECRET, NOW), PAYLOAD), Ok(()));
        assert_eq!(verify(&sign(PAYLOAD, SECRET, NOW - 299), PAYLOAD), Ok(()));
    }

    #[test]
    fn signatures_match_an_independent_implementation() {
        // Python's hmac.new(b"whsec_example", b'1492774577.{"id":"evt_test","object":"event"}',
        // hashlib.sha256).hexdigest(): the scheme, not just agreement with ourselves.
        let payload = br#"{"id":"evt_test","object":"event"}"#;
        let expected = "t=1492774577,v1=7caaec8b01e3eb520b5a948f84467eaf4675d6baaeac548ed6db5fc01cd54750";
        assert_eq!(sign(payload, "whsec_example", 1_492_774_577), expected);
        assert_eq!(verify_signature(expected, payload, "whsec_example", 1_492_774_600, 300), Ok(()));
    }

    #[test]
    fn a_wrong_secret_or_tampered_payload_is_a_mismatch() {
        let other = sign(PAYLOAD, "whsec_other", NOW);
        assert_eq!(verify(&other, PAYLOAD), Err(SignatureError::Mismatch));
        let header = sign(PAYLOAD, SECRET, NOW);
        let tampered = br#"{"id":"evt_1","type":"checkout.session.completed" }"#;
        assert_eq!(verify(&header, tampered), Err(SignatureError::Mismatch));
    }

    #[test]
    fn a_resigned_timestamp_is_a_mismatch() {
        // Moving t forward to dodge the tolerance breaks the signature.
        let header = sign(PAYLOAD, SECRET, NOW - 3600);
        let (_, v1) = header.split_once(',').expect("two parts");
        assert_eq!(verify(&format!("t={NOW},{v1}"), PAYLOAD), Err(SignatureError::Mismatch));
    }

    #[test]
    fn old_and_future_timestamps_are_stale() {
        for t in [NOW - 301, NOW + 301, 0] {
            assert_eq!(
                verify(&sign(PAYLOAD, SECRET, t), PAYLOAD),
                Err(SignatureError::Stale { timestamp: t, now: NOW })
            );
        }
    }

    #[test]
    fn missing_parts_are_refused() {
        let header = sign(PAYLOAD, SECRET, NOW);
        let (t, v1) = header.split_once(',').expect("two parts");
        assert_eq!(verify(t, PAYLOAD), Err(SignatureError::MissingSignature));
        assert_eq!(verify(&format!("{t},v0=abcdef"), PAYLOAD), Err(SignatureError::MissingSignature));
        assert_eq!(verify(v1, PAYLOAD), Err(SignatureError::MissingTimestamp));
        assert_eq!(verify(&format!("t=soon,{v1}"), PAYLOAD), Err(SignatureError::MalformedTimestamp));
    }

    #[test]
    fn garbage_headers_are_refused() {
        for garbage in ["", "garbage", "t", "t=1,,v1=00", "\u{0}\u{1}"] {
            assert_eq!(verify(garbage, PAYLOAD), Err(SignatureError::MalformedHeader), "{garbage:?}");
        }
        assert_eq!(verify(&format!("t={NOW},v1=not-hex"), PAYLOAD), Err(SignatureError::Mismatch));
        assert_eq!(verify(&format!("t={NOW},v1="), PAYLOAD), Err(SignatureError::Mismatch));
        assert_eq!(verify(&format!("t={NOW},v1=abcd"), PAYLOAD), Err(SignatureError::Mismatch));
    }

    #[test]
    fn any_matching_v1_among_several_is_accepted_and_unknown_keys_ignored() {
        let good = sign(PAYLOAD, SECRET, NOW);
        let (_, good_v1) = good.split_once(',').expect("two parts");
        let stale_secret = sign(PAYLOAD, "whsec_old", NOW);
        let (_, old_v1) = stale_secret.split_once(',').expect("two parts");
        let header = format!("t={NOW},{old_v1},v0=deadbeef,scheme2=xyz,{good_v1}");
        assert_eq!(verify(&header, PAYLOAD), Ok(()));
        let spaced = format!("t={NOW}, {good_v1}");
        assert_eq!(verify(&spaced, PAYLOAD), Ok(()));
    }

    /// Shaped like a real `checkout.session.completed` delivery (trimmed of fields we ignore).
    fn checkout_event(client_reference_id: Value, metadata: Value, payment_status: &str) -> Vec<u8> {
        serde_json::json!({
            "id": "evt_1PZx0aKq9yA3bC2dE4fG5hI6",
            "object": "event",
            "api_version": "2024-06-20",
            "created": 1_719_859_200,
            "livemode": false,
            "pending_webhooks": 1,
            "request": {"id": null, "idempotency_key": null},
            "type": "checkout.session.completed",
            "data": {
                "object": {
                    "id": "cs_test_a1B2c3D4e5F6g7H8",
                    "object": "checkout.session",
                    "amount_subtotal": 1000,
                    "amount_total": 1000,
                    "client_reference_id": client_reference_id,
                    "currency": "usd",
                    "customer": "cus_QAbCdEfGhIjKlM",
                    "customer_details": {"email": "ada@example.com", "name": "Ada"},
                    "metadata": metadata,
                    "mode": "payment",
                    "payment_intent": "pi_3PZx0aKq9yA3bC2d0",
                    "payment_status": payment_status,
                    "status": "complete",
                    "success_url": "https://karate.example/credits?ok=1"
                }
            }
        })
        .to_string()
        .into_bytes()
    }

    #[test]
    fn a_paid_checkout_credits_its_user() {
        let payload =
            checkout_event(Value::from("u_0123456789abcdef"), serde_json::json!({"credits": "500"}), "paid");
        let credit = parse_checkout_completed(&payload).expect("parses").expect("a credit");
        assert_eq!(
            credit,
            CheckoutCredit {
                event_id: "evt_1PZx0aKq9yA3bC2dE4fG5hI6".to_owned(),
                user_id: UserId::from("u_0123456789abcdef"),
                credits: 500,
                team_id: None,
            }
        );
        assert_eq!(credit.idempotency_key(), "stripe:evt_1PZx0aKq9yA3bC2dE4fG5hI6");
    }

    #[test]
    fn a_team_checkout_names_the_team_and_its_payer() {
        let metadata = serde_json::json!({"credits": "40", "team_id": "t_0123456789abcdef"});
        let payload = checkout_event(Value::from("u_0123456789abcdef"), metadata, "paid");
        let credit = parse_checkout_completed(&payload).expect("parses").expect("a credit");
        assert_eq!(credit.team_id, Some(TeamId::from("t_0123456789abcdef")));
        assert_eq!(credit.user_id, UserId::from("u_0123456789abcdef"));
        // One key per event, whichever balance it credits.
        assert_eq!(credit.idempotency_key(), "stripe:evt_1PZx0aKq9yA3bC2dE4fG5hI6");
    }

    #[test]
    fn the_user_falls_back_to_metadata_and_credits_may_be_a_number() {
        let payload = checkout_event(
            Value::Null,
            serde_json::json!({"user_id": "u_fedcba9876543210", "credits": 25}),
            "no_payment_required",
        );
        let credit = parse_checkout_completed(&payload).expect("parses").expect("a credit");
        assert_eq!((credit.user_id.as_str(), credit.credits), ("u_fedcba9876543210", 25));
    }

    #[test]
    fn other_events_and_unpaid_sessions_credit_nothing() {
        let other = br#"{"id":"evt_2","type":"payment_intent.succeeded","data":{"object":{}}}"#;
        assert!(parse_checkout_completed(other).expect("parses").is_none());
        let unpaid = checkout_event(Value::from("u_1"), serde_json::json!({"credits": "5"}), "unpaid");
        assert!(parse_checkout_completed(&unpaid).expect("parses").is_none());
    }

    #[test]
    fn bad_checkouts_are_refused() {
        assert!(matches!(parse_checkout_completed(b"not json"), Err(CheckoutError::Json(_))));
        let no_user = checkout_event(Value::from(""), serde_json::json!({"credits": "5"}), "paid");
        assert!(matches!(parse_checkout_completed(&no_user), Err(CheckoutError::MissingUser)));
        let no_credits = checkout_event(Value::from("u_1"), serde_json::json!({}), "paid");
        assert!(matches!(parse_checkout_completed(&no_credits), Err(CheckoutError::MissingField(_))));
        for credits in [
            Value::from("0"),
            Value::from("-5"),
            Value::from("+5"),
            Value::from("1.5"),
            Value::from("lots"),
            Value::from(""),
            Value::from("99999999999999999999"),
            Value::from(-3),
            Value::from(2.5),
            Value::Bool(true),
        ] {
            let payload =
                checkout_event(Value::from("u_1"), serde_json::json!({ "credits": credits }), "paid");
            assert!(
                matches!(parse_checkout_completed(&payload), Err(CheckoutError::InvalidCredits(_))),
                "{credits}"
            );
        }
        let no_id = br#"{"type":"checkout.session.completed","data":{"object":{}}}"#;
        assert!(matches!(parse_checkout_completed(no_id), Err(CheckoutError::MissingField("id"))));
    }
}
