//! What Stripe's charge events say about a payment, for the fraud agent: paid, refunded, failed
//! or disputed, by which customer and card, for how much. Pure functions over the event's JSON
//! (the signature is checked before, in `stripe.rs`'s [`verify_signature`](crate::stripe::verify_signature)).
//! <https://docs.stripe.com/api/charges/object>, <https://docs.stripe.com/api/disputes/object>

use dojo_ids::UserId;
use serde_json::Value;

use crate::fraud::{PaymentEvent, PaymentKind};

/// Longest id kept of a customer, charge, card fingerprint or user: Stripe's are far shorter;
/// a longer one is not Stripe's and is dropped rather than stored.
const MAX_ID_LEN: usize = 255;

/// The payment event a Stripe event describes, or `None` for other event types (and for events
/// missing what a payment event needs).
pub fn parse_payment_event(event: &Value) -> Option<PaymentEvent> {
    let kind = match event.get("type").and_then(Value::as_str)? {
        "charge.succeeded" => PaymentKind::Paid,
        "charge.refunded" => PaymentKind::Refunded,
        "charge.failed" => PaymentKind::Failed,
        "charge.dispute.created" => PaymentKind::Disputed,
        _ => return None,
    };
    let event_id = short(event.get("id"))?;
    let object = event.pointer("/data/object")?;
    let created_at = event.get("created").and_then(Value::as_i64).map(|s| s.saturating_mul(1000))?;
    let (charge, amount) = match kind {
        // A dispute object names its charge; its own id is `dp_…`.
        PaymentKind::Disputed => (short(object.get("charge")), object.get("amount").and_then(Value::as_i64)),
        PaymentKind::Refunded => {
            (short(object.get("id")), object.get("amount_refunded").and_then(Value::as_i64))
        }
        PaymentKind::Paid | PaymentKind::Failed => {
            (short(object.get("id")), object.get("amount").and_then(Value::as_i64))
        }
    };
    Some(PaymentEvent {
        event_id: event_id.to_owned(),
        kind,
        user_id: short(object.pointer("/metadata/user_id")).map(UserId::from),
        customer: short(object.get("customer")).map(str::to_owned),
        charge: charge.map(str::to_owned),
        source: short(object.pointer("/payment_method_details/card/fingerprint")).map(str::to_owned),
        amount: amount.unwrap_or(0).max(0),
        created_at,
    })
}

/// The customer and user of a completed checkout (`checkout.session.completed` with a
/// `customer`), so that later charge events carrying only the customer find the user.
pub fn checkout_customer(event: &Value) -> Option<(String, UserId)> {
    if event.get("type").and_then(Value::as_str) != Some("checkout.session.completed") {
        return None;
    }
    let session = event.pointer("/data/object")?;
    let customer = short(session.get("customer"))?;
    let user =
        short(session.get("client_reference_id")).or_else(|| short(session.pointer("/metadata/user_id")))?;
    Some((customer.to_owned(), UserId::from(user)))
}

fn short(value: Option<&Value>) -> Option<&str> {
    value.and_then(Value::as_str).filter(|s| !s.is_empty() && s.len() <= MAX_ID_LEN)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn charge_event(kind: &str, object: Value) -> Value {
        json!({"id": "evt_1", "type": kind, "created": 1_700_000_000, "data": {"object": object}})
    }

    #[test]
    fn a_succeeded_charge_is_a_payment_with_its_card() {
        let event = charge_event(
            "charge.succeeded",
            json!({"id": "ch_1", "amount": 1500, "customer": "cus_1", "metadata": {"user_id": "u1"},
                   "payment_method_details": {"card": {"fingerprint": "fp_A"}}}),
        );
        let parsed = parse_payment_event(&event).expect("a payment");
        assert_eq!(parsed.kind, PaymentKind::Paid);
        assert_eq!(parsed.user_id, Some(UserId::from("u1")));
        assert_eq!(parsed.customer.as_deref(), Some("cus_1"));
        assert_eq!(parsed.charge.as_deref(), Some("ch_1"));
        assert_eq!(parsed.source.as_deref(), Some("fp_A"));
        assert_eq!(parsed.amount, 1500);
        assert_eq!(parsed.created_at, 1_700_000_000_000);
    }

    #[test]
    fn refunds_count_the_refunded_amount_and_disputes_name_their_charge() {
        let refund =
            charge_event("charge.refunded", json!({"id": "ch_1", "amount": 1500, "amount_refunded": 500}));
        assert_eq!(
            parse_payment_event(&refund).map(|e| (e.kind, e.amount)),
            Some((PaymentKind::Refunded, 500))
        );
        let dispute =
            charge_event("charge.dispute.created", json!({"id": "dp_1", "charge": "ch_9", "amount": 700}));
        let parsed = parse_payment_event(&dispute).expect("a dispute");
        assert_eq!(
            (parsed.kind, parsed.charge.as_deref(), parsed.amount),
            (PaymentKind::Disputed, Some("ch_9"), 700)
        );
    }

    #[test]
    fn other_events_and_incomplete_ones_are_not_payments() {
        assert_eq!(parse_payment_event(&charge_event("customer.created", json!({"id": "cus_1"}))), None);
        let no_created = json!({"id": "evt_1", "type": "charge.failed", "data": {"object": {"id": "ch_1"}}});
        assert_eq!(parse_payment_event(&no_created), None);
        let huge_id = charge_event("charge.failed", json!({"id": "ch_1", "customer": "c".repeat(300)}));
        assert_eq!(parse_payment_event(&huge_id).and_then(|e| e.customer), None);
    }

    #[test]
    fn a_checkout_names_its_customer_and_user() {
        let event = json!({"type": "checkout.session.completed",
            "data": {"object": {"customer": "cus_1", "client_reference_id": "u1"}}});
        assert_eq!(checkout_customer(&event), Some(("cus_1".into(), UserId::from("u1"))));
        let guest =
            json!({"type": "checkout.session.completed", "data": {"object": {"client_reference_id": "u1"}}});
        assert_eq!(checkout_customer(&guest), None);
    }
}
