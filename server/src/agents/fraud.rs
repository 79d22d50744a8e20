//! The fraud agent: for each `fraud.scan` job, runs the rules over payments and spending
//! (`crate::services::fraud::scan`) and flags accounts for staff review. The job's payload may
//! tune the rules' thresholds (`dojo_records::FraudRules`, camelCase); an empty payload keeps
//! the defaults. Scans come from the `fraud-scan` schedule, which the server creates
//! (`super::seed_schedule`).

use dojo_records::{FraudRules, JobOutcome};
use serde_json::{Value, json};

use crate::services::fraud::scan;
use crate::state::AppState;

/// The schedule's name.
pub const SCHEDULE: &str = "fraud-scan";

/// Handles one scan job: the outcome to record for it.
pub async fn run_scan(state: &AppState, payload: &Value) -> JobOutcome {
    let rules = match rules_of(payload) {
        Ok(rules) => rules,
        // A payload staff wrote wrongly is not worth retrying: the job says why it did nothing.
        Err(reason) => return JobOutcome::Succeeded(json!({"skipped": reason})),
    };
    match scan(state, &rules, crate::execution::now_millis()).await {
        Ok(raised) => {
            let flags: Vec<&str> = raised.iter().map(|flag| flag.id.as_str()).collect();
            JobOutcome::Succeeded(json!({"raised": raised.len(), "flags": flags}))
        }
        Err(error) => JobOutcome::Failed { error: error.to_string(), retry_in_ms: None },
    }
}

/// The rules a payload asks for: the defaults for `null` or `{}`.
fn rules_of(payload: &Value) -> Result<FraudRules, String> {
    let rules = match payload {
        Value::Null => FraudRules::default(),
        // An object only: serde would also read a struct from an array, by position.
        Value::Object(_) => serde_json::from_value(payload.clone())
            .map_err(|error| format!("the payload's rules: {error}"))?,
        _ => return Err("the payload is not an object of rules".into()),
    };
    rules.check().map_err(|error| error.to_string())?;
    Ok(rules)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_payload_keeps_the_default_rules() {
        assert_eq!(rules_of(&Value::Null), Ok(FraudRules::default()));
        assert_eq!(rules_of(&json!({})), Ok(FraudRules::default()));
        assert_eq!(rules_of(&json!({"burstCount": 7})).map(|r| r.burst_count), Ok(7));
    }

    #[test]
    fn a_wrong_payload_is_refused_with_its_reason() {
        assert!(rules_of(&json!({"burstCount": "many"})).is_err());
        assert!(rules_of(&json!({"burstCount": 0})).is_err_and(|reason| reason.contains("burstCount")));
        assert!(rules_of(&json!([1])).is_err());
    }
}
