//! The re-engagement agent: for each `reengagement.scan` job (daily, from the `reengagement`
//! schedule), finds users away for `DOJO_REENGAGE_AFTER_DAYS` who have an email, have not
//! opted out of tips, and got no message in `DOJO_REENGAGE_QUIET_DAYS`; drafts each a message
//! with tips drawn from their own workflows and runs (the language model's words with OpenAI
//! configured, a template's otherwise or when it fails), and delivers it through the configured
//! [`MessageSender`] (none: recorded for staff only). A message is written before it is sent,
//! so a retried scan never sends one twice; a failed send is tried again by the next scan.

use std::collections::BTreeSet;

use dojo_records::{ActorKind, InactiveUser, JobOutcome, MessageStatus, NewMessage, RunStatus};
use dojo_sync_protocol::canvas::CanvasGraph;
use serde::Deserialize;
use serde_json::{Value, json};

use super::sender::{MessageSender, Outgoing};
use crate::room_name::RoomName;
use crate::services::audit::{Actor, Record, record};
use crate::state::AppState;

pub const JOB: &str = "reengagement.scan";
pub const SCHEDULE: &str = "reengagement";
const AGENT_ID: &str = "agent:reengagement";
/// Users one scan messages, unless the job says otherwise (at most 500).
const DEFAULT_LIMIT: u32 = 100;
const MESSAGE_TOKENS: u32 = 500;
const DAY_MS: i64 = 24 * 3_600_000;
/// Runs and workflows read per user for the tips.
const RUNS_READ: u32 = 5;
const TITLES_SHOWN: usize = 3;

const SYSTEM_PROMPT: &str = "You write short, warm messages (under 150 words, plain text) inviting a \
user back to Dojo, a collaborative canvas for AI image workflows. Use only the facts given: name their \
canvases, and give at most three concrete tips drawn from the facts. No promises, no discounts.";

/// A scan's overrides of the settings.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
struct ScanRequest {
    limit: Option<u32>,
    after_days: Option<u32>,
    quiet_days: Option<u32>,
}

/// What the tips are drawn from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    pub name: Option<String>,
    pub days_away: i64,
    pub titles: Vec<String>,
    pub node_types: BTreeSet<String>,
    /// The last run's failure: the canvas's title and the reason.
    pub last_failure: Option<(String, String)>,
}

/// Handles one scan job.
pub async fn run(state: &AppState, sender: Option<&dyn MessageSender>, payload: &Value) -> JobOutcome {
    let request: ScanRequest = match payload {
        Value::Null => ScanRequest::default(),
        Value::Object(_) => match serde_json::from_value(payload.clone()) {
            Ok(request) => request,
            Err(error) => return JobOutcome::Succeeded(json!({"skipped": format!("the payload: {error}")})),
        },
        _ => return JobOutcome::Succeeded(json!({"skipped": "the payload is not an object"})),
    };
    let settings = &state.config().agents;
    let days = |value: Option<u32>, default: u32| i64::from(value.unwrap_or(default).clamp(1, 3650)) * DAY_MS;
    let now = crate::execution::now_millis();
    let inactive_before = now.saturating_sub(days(request.after_days, settings.reengage_after_days));
    let quiet_since = now.saturating_sub(days(request.quiet_days, settings.reengage_quiet_days));
    let limit = request.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, dojo_records::engagement::MAX_INACTIVE_PAGE);
    let users = match state.engagement().inactive_users(inactive_before, quiet_since, limit).await {
        Ok(users) => users,
        Err(error) => return JobOutcome::Failed { error: error.to_string(), retry_in_ms: None },
    };
    let mut counts = json!({"considered": users.len(), "sent": 0, "recorded": 0, "failed": 0, "skipped": 0});
    for user in users {
        let outcome = match message_user(state, sender, &user, now, quiet_since).await {
            Ok(outcome) => outcome,
            Err(error) => return JobOutcome::Failed { error, retry_in_ms: None },
        };
        if let Some(count) = counts.get(outcome).and_then(Value::as_u64) {
            counts[outcome] = json!(count + 1);
        }
    }
    JobOutcome::Succeeded(counts)
}

/// Drafts, records and sends one user's message: `sent`, `recorded`, `failed` or `skipped`.
async fn message_user(
    state: &AppState,
    sender: Option<&dyn MessageSender>,
    user: &InactiveUser,
    now: i64,
    quiet_since: i64,
) -> Result<&'static str, String> {
    let facts = facts(state, user, now).await;
    let subject = subject(&facts);
    let (body, source) = match state.executor().writer() {
        Some(writer) => match writer.write(SYSTEM_PROMPT, &prompt(&facts), MESSAGE_TOKENS).await {
            Ok(text) => (format!("{text}\n\n{}", footer()), "model"),
            Err(error) => {
                tracing::warn!(reason = %error.detail(), "re-engagement agent: the model failed; the template writes");
                (template(&facts), "template")
            }
        },
        None => (template(&facts), "template"),
    };
    let new = NewMessage { user_id: user.id.clone(), subject, body, source: source.to_owned() };
    // Another scan wrote one meanwhile, or the user opted out since the list was read.
    let Some(message) =
        state.engagement().start_message(new, quiet_since).await.map_err(|e| e.to_string())?
    else {
        return Ok("skipped");
    };
    let (status, error) = match sender {
        None => (MessageStatus::Recorded, None),
        Some(sender) => {
            let outgoing = Outgoing {
                kind: "reengagement",
                id: message.id.clone(),
                user_id: user.id.to_string(),
                email: user.email.clone(),
                name: user.name.clone(),
                subject: message.subject.clone(),
                body: message.body.clone(),
            };
            match sender.send(&outgoing).await {
                Ok(()) => (MessageStatus::Sent, None),
                Err(error) => (MessageStatus::Failed, Some(error.to_string())),
            }
        }
    };
    state
        .engagement()
        .finish_message(&message.id, status, error.as_deref())
        .await
        .map_err(|e| e.to_string())?;
    let action = match status {
        MessageStatus::Sent => "engagement.message_sent",
        MessageStatus::Failed => "engagement.message_failed",
        _ => "engagement.message_recorded",
    };
    let actor = Actor { kind: ActorKind::Service, id: AGENT_ID.into(), addr: None };
    let detail =
        json!({"message": message.id, "source": source, "daysAway": facts.days_away, "error": error});
    let entry = Record { action, target_type: "user", target_id: user.id.as_str(), team: None, detail };
    record(state.audit(), &actor, entry).await;
    Ok(status.as_str())
}

/// What the user's workflows and last runs say. Read failures leave a fact out rather than
/// the message.
async fn facts(state: &AppState, user: &InactiveUser, now: i64) -> Facts {
    let mut facts = Facts {
        name: user.name.clone(),
        days_away: now.saturating_sub(user.last_active_at) / DAY_MS,
        ..Facts::default()
    };
    if let Ok(workflows) = state.auth().accounts().list_workflows(&user.id).await {
        facts.titles = workflows.into_iter().take(TITLES_SHOWN).map(|w| w.workflow.title).collect();
    }
    // Runs of published apps are someone else's graph: not the user's canvases.
    let runs: Vec<_> = state
        .data_rights()
        .runs_of(&user.id, RUNS_READ)
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|run| !run.room.starts_with(dojo_executor::worker::document::APP_RUNS_PREFIX))
        .collect();
    for run in &runs {
        if let Ok(graph) = serde_json::from_str::<CanvasGraph>(&run.graph) {
            facts.node_types.extend(graph.nodes.into_iter().map(|n| n.node_type));
        }
    }
    if let Some(last) = runs.first().filter(|run| run.status == RunStatus::Failed) {
        let title = match RoomName::parse(&last.room) {
            Ok(room) => state.auth().accounts().workflow_by_room(&room).await.ok().flatten().map(|w| w.title),
            Err(_) => None,
        };
        let reason: String = last.error.as_deref().unwrap_or("a node failed").chars().take(200).collect();
        facts.last_failure = Some((title.unwrap_or_else(|| last.room.clone()), reason));
    }
    facts
}

pub fn subject(facts: &Facts) -> String {
    match facts.titles.first() {
        Some(title) => format!("\"{title}\" is where you left it"),
        None => "Your Dojo canvas is waiting".to_owned(),
    }
}

/// Up to three tips, most specific first.
pub fn tips(facts: &Facts) -> Vec<String> {
    let mut tips = Vec::new();
    if let Some((title, reason)) = &facts.last_failure {
        tips.push(format!(
            "Your last run of \"{title}\" stopped ({reason}). Open it and press Run again; failed nodes show their reason on the canvas."
        ));
    }
    let catalog = dojo_executor::LoadedCatalog::builtin().ok();
    let costly = facts
        .node_types
        .iter()
        .filter_map(|t| catalog.and_then(|c| c.get(t)))
        .filter(|t| !t.is_builtin() && t.cost >= 5)
        .max_by_key(|t| t.cost);
    if let Some(model) = costly {
        tips.push(format!(
            "Draft with Flux Schnell (1 credit) and switch to {} ({} credits) for the final image.",
            model.name, model.cost
        ));
    }
    let tools = ["blur", "resize", "crop", "composite", "grayscale", "invert", "threshold"];
    if !facts.node_types.iter().any(|t| tools.contains(&t.as_str())) {
        tips.push(
            "Built-in tools (blur, crop, resize, composite) cost no credits: chain them after a generator to finish images on the canvas.".to_owned(),
        );
    }
    if facts.titles.is_empty() {
        tips.push(
            "Start with a Text prompt and the Dev image generator: one credit, no provider account needed."
                .to_owned(),
        );
    }
    tips.push("Invite a teammate: everyone on a canvas sees edits and results live.".to_owned());
    tips.truncate(3);
    tips
}

fn footer() -> &'static str {
    "You get this because you have a Dojo account. To stop these tips, untick \"Send me tips\" in your account's data settings."
}

/// The deterministic message.
pub fn template(facts: &Facts) -> String {
    let greeting = match &facts.name {
        Some(name) if !name.is_empty() => format!("Hi {name},"),
        _ => "Hi,".to_owned(),
    };
    let mut text = format!("{greeting}\n\nIt has been {} days since you last opened Dojo.", facts.days_away);
    if !facts.titles.is_empty() {
        let titles: Vec<String> = facts.titles.iter().map(|t| format!("\"{t}\"")).collect();
        text.push_str(&format!(" Your canvases {} are where you left them.", titles.join(", ")));
    }
    text.push_str("\n\nA few tips:");
    for tip in tips(facts) {
        text.push_str("\n- ");
        text.push_str(&tip);
    }
    text.push_str("\n\n");
    text.push_str(footer());
    text
}

fn prompt(facts: &Facts) -> String {
    let mut text =
        format!("Name: {}\nDays away: {}\n", facts.name.as_deref().unwrap_or("(none)"), facts.days_away);
    text.push_str(&format!("Canvases: {}\n", facts.titles.join("; ")));
    text.push_str(&format!(
        "Node types used: {}\n",
        facts.node_types.iter().cloned().collect::<Vec<_>>().join(", ")
    ));
    if let Some((title, reason)) = &facts.last_failure {
        text.push_str(&format!("Last run failed in \"{title}\": {reason}\n"));
    }
    text.push_str("Tips you may use:\n");
    for tip in tips(facts) {
        text.push_str(&format!("- {tip}\n"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tips_start_with_the_users_own_failure_and_costly_model() {
        let facts = Facts {
            name: Some("Ann".into()),
            days_away: 20,
            titles: vec!["Fox".into()],
            node_types: ["dall-e-3".to_owned(), "blur".to_owned()].into(),
            last_failure: Some(("Fox".into(), "NSFW content detected".into())),
        };
        let tips = tips(&facts);
        assert_eq!(tips.len(), 3);
        assert!(tips[0].contains("\"Fox\" stopped (NSFW content detected)"), "{tips:?}");
        assert!(tips[1].contains("DALL") && tips[1].contains("8 credits"), "{tips:?}");
        let text = template(&facts);
        assert!(text.starts_with("Hi Ann,\n\nIt has been 20 days") && text.contains("\"Fox\""), "{text}");
        assert!(text.contains("untick \"Send me tips\""), "{text}");
        assert_eq!(subject(&facts), "\"Fox\" is where you left it");
    }

    #[test]
    fn a_user_with_nothing_gets_the_first_steps() {
        let facts = Facts { days_away: 30, ..Facts::default() };
        let tips = tips(&facts);
        assert!(tips.iter().any(|t| t.contains("Dev image generator")), "{tips:?}");
        assert_eq!(subject(&facts), "Your Dojo canvas is waiting");
        assert!(template(&facts).starts_with("Hi,\n"));
    }
}
