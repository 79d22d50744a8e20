//! The support agent: for each `support.draft` job, drafts an answer to the ticket it names, from
//! the ticket and what went wrong in the attached canvas's recent runs. With OpenAI configured
//! the language model writes the draft; without it, or when the model fails, a deterministic
//! template does, so every ticket gets a draft. Staff see the draft and approve or edit it
//! (`services::support`); it never reaches the user on its own.

use dojo_records::{JobOutcome, RunNodeState, Ticket};
use serde_json::json;

use crate::services::audit::{Actor, Record, record};
use crate::state::AppState;

/// Runs of the attached room read for context, failed nodes kept per run, and characters kept
/// of each error: the prompt stays small whatever the canvas holds.
const RECENT_RUNS: u32 = 3;
const FAILURES_PER_RUN: usize = 5;
const ERROR_CHARS: usize = 300;
/// Tokens the model may spend on a draft.
const DRAFT_TOKENS: u32 = 700;

const SYSTEM_PROMPT: &str = "You are the support assistant of Dojo, a collaborative canvas for AI image \
workflows. Draft a short, friendly reply (under 200 words) to the user's ticket. A staff member reviews \
it before it is sent. Use only the facts given; if they do not explain the problem, ask one precise \
question. Do not promise refunds or features.";

/// One failed node of a recent run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub node: String,
    pub node_type: String,
    pub error: String,
}

/// Handles one draft job: the outcome to record for it.
pub async fn draft(state: &AppState, payload: &serde_json::Value) -> JobOutcome {
    let Some(id) = payload.get("ticketId").and_then(serde_json::Value::as_str) else {
        // A malformed job is not worth retrying.
        return JobOutcome::Succeeded(json!({"skipped": "the payload names no ticket"}));
    };
    let ticket = match state.support().ticket(id).await {
        Ok(Some(ticket)) => ticket,
        Ok(None) => return JobOutcome::Succeeded(json!({"skipped": "no such ticket"})),
        Err(error) => return JobOutcome::Failed { error: error.to_string(), retry_in_ms: None },
    };
    if ticket.answer.is_some() {
        return JobOutcome::Succeeded(json!({"skipped": "answered already"}));
    }
    let failures = recent_failures(state, &ticket).await;
    let (text, source, fallback_reason) = match state.executor().writer() {
        Some(writer) => match writer.write(SYSTEM_PROMPT, &prompt(&ticket, &failures), DRAFT_TOKENS).await {
            Ok(text) => (text, "model", None),
            Err(error) => {
                tracing::warn!(ticket = %ticket.id, reason = %error.detail(), "support agent: the model failed; the template drafts");
                (fallback(&ticket, &failures), "fallback", Some(error.to_string()))
            }
        },
        None => (fallback(&ticket, &failures), "fallback", None),
    };
    match state.support().set_draft(&ticket.id, &text, source).await {
        Ok(Some(_)) => {}
        Ok(None) => return JobOutcome::Succeeded(json!({"skipped": "answered meanwhile"})),
        Err(error) => return JobOutcome::Failed { error: error.to_string(), retry_in_ms: None },
    }
    let actor = Actor { kind: dojo_records::ActorKind::Service, id: "agent:support".into(), addr: None };
    let detail = json!({"source": source, "failuresSeen": failures.len(), "fallbackReason": fallback_reason});
    let entry = Record {
        action: "support.drafted",
        target_type: "ticket",
        target_id: &ticket.id,
        team: None,
        detail,
    };
    record(state.audit(), &actor, entry).await;
    JobOutcome::Succeeded(json!({"source": source}))
}

/// What failed in the attached room's last runs (none without a room).
async fn recent_failures(state: &AppState, ticket: &Ticket) -> Vec<Failure> {
    let Some(room) = &ticket.room else { return Vec::new() };
    let runs = state.executor().runs();
    let Ok(recent) = runs.list_runs(room, RECENT_RUNS).await else { return Vec::new() };
    let mut failures = Vec::new();
    for run in recent {
        let Ok(nodes) = runs.run_nodes(&run.id).await else { continue };
        failures.extend(
            nodes.into_iter().filter(|node| node.state == RunNodeState::Failed).take(FAILURES_PER_RUN).map(
                |node| Failure {
                    node: node.node_id.to_string(),
                    node_type: node.node_type,
                    error: cut(node.error.as_deref().unwrap_or("no reason recorded"), ERROR_CHARS),
                },
            ),
        );
    }
    failures
}

fn cut(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

/// The user message the model drafts from.
pub fn prompt(ticket: &Ticket, failures: &[Failure]) -> String {
    let mut text = format!("Subject: {}\nMessage:\n{}\n", ticket.subject, ticket.body);
    if ticket.room.is_some() {
        if failures.is_empty() {
            text.push_str("\nThe attached canvas has no failed node in its recent runs.\n");
        } else {
            text.push_str("\nFailed nodes in the attached canvas's recent runs:\n");
            for failure in failures {
                text.push_str(&format!("- {} ({}): {}\n", failure.node, failure.node_type, failure.error));
            }
        }
    }
    text
}

/// A hint for a failure's error text, by what it says.
fn hint(error: &str) -> &'static str {
    let error = error.to_ascii_lowercase();
    if error.contains("credit") || error.contains("402") {
        "Your credit balance did not cover it: add credits (or ask your team's admin), then run it again."
    } else if error.contains("key") || error.contains("401") || error.contains("403") {
        "The provider refused the API key: ask your team's admin to check the team's provider key."
    } else if error.contains("timed out") || error.contains("timeout") || error.contains("within") {
        "The provider did not answer in time: running it again usually works; a smaller size is faster."
    } else if error.contains("input") || error.contains("missing") || error.contains("connect") {
        "A required input is not connected: check the node's input handles."
    } else {
        "Running just that node again from its menu shows whether it was a passing problem."
    }
}

/// The deterministic draft: the ticket's subject, what failed and a hint for each kind of failure.
pub fn fallback(ticket: &Ticket, failures: &[Failure]) -> String {
    let mut text = format!("Hello, and thanks for writing about \"{}\".\n\n", ticket.subject);
    match failures.first() {
        Some(first) => {
            text.push_str(&format!(
                "In your canvas's recent runs, the node \"{}\" ({}) failed: {}\n{}\n",
                first.node,
                first.node_type,
                first.error,
                hint(&first.error)
            ));
            if failures.len() > 1 {
                text.push_str(&format!("{} other node(s) failed too; the same checks apply.\n", failures.len() - 1));
            }
        }
        None if ticket.room.is_some() => text.push_str(
            "We found no failed node in your canvas's recent runs. Could you tell us which node and what you expected?\n",
        ),
        None => text.push_str("Could you attach the canvas this is about, and tell us which node and what you expected?\n"),
    }
    text.push_str("\nWe will follow up if this does not solve it.");
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ticket(room: Option<&str>) -> Ticket {
        Ticket {
            id: "tkt_1".into(),
            user_id: dojo_ids::UserId::from("u"),
            room: room.map(str::to_owned),
            subject: "Upscale fails".into(),
            body: "It stops.".into(),
            status: dojo_records::TicketStatus::Open,
            draft: None,
            draft_source: None,
            answer: None,
            answered_by: None,
            created_at: 0,
            updated_at: 0,
            answered_at: None,
        }
    }

    #[test]
    fn the_template_names_the_failure_and_a_hint_for_it() {
        let failures = [Failure {
            node: "up".into(),
            node_type: "upscale".into(),
            error: "insufficient credits: balance 0".into(),
        }];
        let text = fallback(&ticket(Some("room")), &failures);
        assert!(text.contains("\"up\" (upscale) failed: insufficient credits"), "{text}");
        assert!(text.contains("add credits"), "{text}");
        assert!(fallback(&ticket(Some("room")), &[]).contains("no failed node"));
        assert!(fallback(&ticket(None), &[]).contains("attach the canvas"));
    }

    #[test]
    fn hints_follow_the_error() {
        assert!(hint("Replicate answered 401").contains("API key"));
        assert!(hint("no answer within 20 s").contains("in time"));
        assert!(hint("input image is missing").contains("input"));
        assert!(hint("something else").contains("again"));
    }

    #[test]
    fn the_prompt_lists_failures_and_long_errors_are_cut() {
        let long = cut(&"é".repeat(400), ERROR_CHARS);
        assert_eq!(long.chars().count(), ERROR_CHARS + 1);
        let failures = [Failure { node: "gen".into(), node_type: "flux".into(), error: "boom".into() }];
        let text = prompt(&ticket(Some("room")), &failures);
        assert!(text.contains("Subject: Upscale fails") && text.contains("- gen (flux): boom"), "{text}");
    }
}
