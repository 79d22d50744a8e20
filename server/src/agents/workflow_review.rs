//! The workflow agent: for each `workflow.review` job (daily, from the `workflow-review`
//! schedule), reads the workflows whose rooms ran recently, applies the rules of
//! [`super::workflow_findings`] to each one's latest graph and recent runs, and stores the
//! suggestions, which the workflow's owner sees on the canvas (`GET
//! /api/workflows/{id}/suggestions`). With OpenAI configured the language model writes the
//! summary; otherwise, or when it fails, a template does. Each workflow given suggestions is
//! audited as `agent:workflow`.

use dojo_records::{ActorKind, JobOutcome, RunNode, Suggestions};
use dojo_sync_protocol::canvas::CanvasGraph;
use serde_json::{Value, json};

use super::workflow_findings::{Finding, ReviewRules, review, template_summary};
use crate::room_name::RoomName;
use crate::services::audit::{Actor, Record, record};
use crate::state::AppState;

pub const JOB: &str = "workflow.review";
pub const SCHEDULE: &str = "workflow-review";
const AGENT_ID: &str = "agent:workflow";
/// Runs read per workflow.
const RUNS_PER_WORKFLOW: u32 = 10;
const SUMMARY_TOKENS: u32 = 400;
const DAY_MS: i64 = 24 * 3_600_000;

const SYSTEM_PROMPT: &str = "You review node-graph workflows for AI images in Dojo, a collaborative \
canvas. Given the findings about one workflow, write a short, friendly note (under 120 words) to its \
owner: what to change first and why. Use only the findings given; do not invent numbers.";

/// Handles one review job.
pub async fn run(state: &AppState, payload: &Value) -> JobOutcome {
    let rules = match rules_of(payload) {
        Ok(rules) => rules,
        Err(reason) => return JobOutcome::Succeeded(json!({"skipped": reason})),
    };
    let now = crate::execution::now_millis();
    let since = now.saturating_sub(i64::from(rules.lookback_days) * DAY_MS);
    let rooms = match state.suggestions().recently_run_rooms(since, rules.limit).await {
        Ok(rooms) => rooms,
        Err(error) => return JobOutcome::Failed { error: error.to_string(), retry_in_ms: None },
    };
    let (mut reviewed, mut with_suggestions) = (0u32, 0u32);
    for room in rooms {
        match review_room(state, &room, since, now, &rules).await {
            Ok(Some(count)) => {
                reviewed += 1;
                with_suggestions += u32::from(count > 0);
            }
            Ok(None) => {}
            Err(error) => return JobOutcome::Failed { error, retry_in_ms: None },
        }
    }
    JobOutcome::Succeeded(json!({"reviewed": reviewed, "withSuggestions": with_suggestions}))
}

fn rules_of(payload: &Value) -> Result<ReviewRules, String> {
    let rules: ReviewRules = match payload {
        Value::Null => ReviewRules::default(),
        Value::Object(_) => {
            serde_json::from_value(payload.clone()).map_err(|e| format!("the payload: {e}"))?
        }
        _ => return Err("the payload is not an object".into()),
    };
    rules.check().map_err(str::to_owned)?;
    Ok(rules)
}

/// Reviews one room's workflow: how many suggestions it got, or `None` when the room is no
/// workflow's (or a deleted one's).
async fn review_room(
    state: &AppState,
    room: &str,
    since: i64,
    now: i64,
    rules: &ReviewRules,
) -> Result<Option<usize>, String> {
    let Ok(name) = RoomName::parse(room) else { return Ok(None) };
    let Some(workflow) = state.auth().accounts().workflow_by_room(&name).await.map_err(|e| e.to_string())?
    else {
        return Ok(None);
    };
    let runs = state.executor().runs().list_runs(room, RUNS_PER_WORKFLOW).await.map_err(|e| e.to_string())?;
    let runs: Vec<_> = runs.into_iter().filter(|run| run.created_at >= since).collect();
    let Some(latest) = runs.first() else { return Ok(None) };
    // The graph as it last ran; a graph that does not decode (written by an older version)
    // is reviewed from the runs alone.
    let graph: CanvasGraph = serde_json::from_str(&latest.graph).unwrap_or_default();
    let mut nodes: Vec<RunNode> = Vec::new();
    for run in &runs {
        nodes.extend(state.executor().runs().run_nodes(&run.id).await.map_err(|e| e.to_string())?);
    }
    let findings = review(state.executor().catalog(), &graph, &nodes, rules);
    let (summary, source) = summarize(state, &workflow.title, &findings).await;
    let suggestions = Suggestions {
        workflow_id: workflow.id.clone(),
        items: serde_json::to_value(&findings).unwrap_or(Value::Array(Vec::new())),
        summary,
        source: source.to_owned(),
        created_at: now,
        dismissed_at: None,
    };
    state.suggestions().put_suggestions(&suggestions).await.map_err(|e| e.to_string())?;
    if !findings.is_empty() {
        let actor = Actor { kind: ActorKind::Service, id: AGENT_ID.into(), addr: None };
        let kinds: Vec<&str> = findings.iter().map(|f| f.kind).collect();
        let detail = json!({"suggestions": findings.len(), "kinds": kinds, "source": source});
        let entry = Record {
            action: "workflow.suggested",
            target_type: "workflow",
            target_id: workflow.id.as_str(),
            team: workflow.team_id.as_ref(),
            detail,
        };
        record(state.audit(), &actor, entry).await;
    }
    Ok(Some(findings.len()))
}

/// The note above the suggestions: the model's, or the template's.
async fn summarize(state: &AppState, title: &str, findings: &[Finding]) -> (String, &'static str) {
    if findings.is_empty() {
        return (String::new(), "template");
    }
    let Some(writer) = state.executor().writer() else {
        return (template_summary(title, findings), "template");
    };
    let mut prompt = format!("Workflow: \"{title}\"\nFindings:");
    for finding in findings {
        prompt.push_str(&format!("\n- [{}] {}", finding.kind, finding.message));
    }
    match writer.write(SYSTEM_PROMPT, &prompt, SUMMARY_TOKENS).await {
        Ok(text) => (dojo_records::engagement::cut_to(&text, 4_000), "model"),
        Err(error) => {
            tracing::warn!(reason = %error.detail(), "workflow agent: the model failed; the template summarizes");
            (template_summary(title, findings), "template")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_tune_the_rules_or_are_refused() {
        assert_eq!(rules_of(&Value::Null), Ok(ReviewRules::default()));
        assert_eq!(rules_of(&json!({"slowSecs": 5})).map(|r| r.slow_secs), Ok(5));
        assert!(rules_of(&json!({"slowSecs": 0})).is_err());
        assert!(rules_of(&json!({"other": 1})).is_err());
        assert!(rules_of(&json!("x")).is_err());
    }
}
