//! The natural-language builder's LLM planner: the description and the catalog go to OpenAI Chat
//! Completions with a strict JSON schema (Structured Outputs), the answer is a plan of node types
//! and wires, and the plan is checked against the catalog before anything is added to a canvas.
//!
//! It is enabled exactly when OpenAI has a key ([`LlmPlanner::new`] answers `None` otherwise).
//! Any failure — no answer in time, an error status, a refusal, an answer that is not the schema,
//! a plan that names unknown types or handles or wires mismatched types — is a reason to fall
//! back to the deterministic parser ([`compose_with`]), never a failed request while the parser
//! can plan. One attempt only: the fallback is instant, so a retry would only make the user wait.
//!
//! The OpenAI settings (key, base URL) are the providers' ([`ProviderConfig`]); the model and the
//! timeout are the planner's own ([`LlmSettings`]).

use std::collections::BTreeSet;
use std::time::Duration;

use reqwest::Method;
use reqwest::header::AUTHORIZATION;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ComposeError, ComposedEdge, Composition, MAX_TEXT, compose_runnable};
use crate::availability::Availability;
use crate::catalog::{Category, LoadedCatalog, NodeType, Port};
use crate::providers::chat::ChatEndpoint;
use crate::providers::http::{CallError, Failure, auth_value, truncate};
use crate::providers::{ProviderConfig, ProviderConfigError};

pub const DEFAULT_MODEL: &str = "gpt-4o-mini";
/// Most nodes one plan may add.
pub const MAX_PLAN_NODES: usize = 20;
/// Largest Chat Completions answer read; a plan of twenty nodes is a few kilobytes.
pub const MAX_ANSWER_BYTES: u64 = 256 * 1024;
/// Tokens the model may spend on its answer (bounds the cost of one request).
const MAX_COMPLETION_TOKENS: u32 = 4096;
/// What a model's refusal or a parse error may add to the reason shown to the user.
const MAX_REASON_CHARS: usize = 300;

/// The planner's own settings; the account is OpenAI's in [`ProviderConfig`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LlmSettings {
    /// A Chat Completions model that supports Structured Outputs.
    pub model: String,
    /// The whole call, connection to last byte of the answer.
    pub timeout: Duration,
    /// Plans with more nodes are refused (and the parser plans).
    pub max_nodes: usize,
}

impl Default for LlmSettings {
    fn default() -> Self {
        Self { model: DEFAULT_MODEL.to_owned(), timeout: Duration::from_secs(20), max_nodes: MAX_PLAN_NODES }
    }
}

/// Why the LLM's plan was not used. `Display` is the reason shown to the user (no provider
/// message, which may quote account details); [`LlmError::detail`] adds it, for the logs.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LlmError {
    #[error("OpenAI answered HTTP {status}")]
    Status { status: u16, message: String },
    #[error("OpenAI gave no answer within {}", seconds(*.0))]
    Timeout(Duration),
    #[error("OpenAI could not be reached")]
    Network(String),
    #[error("OpenAI's answer is larger than {max} bytes")]
    TooLarge { max: u64 },
    #[error("the model refused: {0}")]
    Refused(String),
    #[error("the model's answer is not a plan: {0}")]
    Malformed(String),
    #[error("the model's plan is invalid: {0}")]
    Invalid(#[from] PlanProblem),
}

impl LlmError {
    /// The reason with what the provider said, for the server's logs.
    pub fn detail(&self) -> String {
        match self {
            LlmError::Status { message, .. } if !message.is_empty() => format!("{self}: {message}"),
            LlmError::Network(reason) => format!("{self}: {reason}"),
            _ => self.to_string(),
        }
    }

    pub(crate) fn from_failure(failure: Failure) -> Self {
        match failure.error {
            CallError::Status { status, message, .. } => LlmError::Status { status, message },
            CallError::Timeout(limit) => LlmError::Timeout(limit),
            CallError::Network(reason) => LlmError::Network(reason),
            CallError::TooLarge { max } => LlmError::TooLarge { max },
            CallError::Invalid(reason) | CallError::Refused(reason) => LlmError::Malformed(reason),
        }
    }
}

fn seconds(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 { format!("{s:.0} s") } else { format!("{s:.1} s") }
}

/// What is wrong with a plan, checked against the catalog. Nodes are numbered from 0, as the
/// model numbers them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanProblem {
    #[error("it has no nodes")]
    NoNodes,
    #[error("it has {count} nodes; at most {max} are added at once")]
    TooManyNodes { count: usize, max: usize },
    #[error("node {index} has type {node_type:?}, which is not in the catalog")]
    UnknownType { index: usize, node_type: String },
    #[error("edge {edge} refers to node {node}, but there are {count} nodes")]
    NoSuchNode { edge: usize, node: i64, count: usize },
    #[error("edge {edge} wires node {node} to itself")]
    SelfLoop { edge: usize, node: usize },
    #[error("edge {edge}: node {node} ({node_type}) has no {direction} {handle:?}; it has: {available}")]
    UnknownHandle {
        edge: usize,
        node: usize,
        node_type: String,
        direction: &'static str,
        handle: String,
        available: String,
    },
    #[error(
        "edge {edge}: input {input} of node {to} takes {input_type}, but output {output} of node {from} is {output_type}"
    )]
    TypeMismatch {
        edge: usize,
        from: usize,
        output: String,
        output_type: String,
        to: usize,
        input: String,
        input_type: String,
    },
    #[error("input {input} of node {node} is wired more than once")]
    InputWiredTwice { node: usize, input: String },
    #[error("its wires form a cycle")]
    Cycle,
}

/// The answer's shape, as the schema in the request says.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlan {
    nodes: Vec<String>,
    edges: Vec<RawEdge>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEdge {
    source: i64,
    source_handle: String,
    target: i64,
    target_handle: String,
}

/// Plans with OpenAI Chat Completions. Cheap to share (the HTTP client is pooled).
pub struct LlmPlanner {
    endpoint: ChatEndpoint,
    settings: LlmSettings,
}

impl std::fmt::Debug for LlmPlanner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlmPlanner")
            .field("url", &self.endpoint.url)
            .field("settings", &self.settings)
            .finish()
    }
}

impl LlmPlanner {
    /// The planner on OpenAI's account in `providers`, or `None` when OpenAI has no key.
    pub fn new(
        providers: &ProviderConfig,
        settings: LlmSettings,
    ) -> Result<Option<Self>, ProviderConfigError> {
        Ok(ChatEndpoint::open(providers, settings.timeout)?.map(|endpoint| Self { endpoint, settings }))
    }

    pub fn model(&self) -> &str {
        &self.settings.model
    }

    /// Asks the model for a plan of `text` and checks it against `catalog`.
    pub async fn plan(&self, catalog: &LoadedCatalog, text: &str) -> Result<Composition, LlmError> {
        let body = request_body(&self.settings.model, catalog, text, self.settings.max_nodes);
        let endpoint = &self.endpoint;
        let auth = auth_value("Bearer", &endpoint.key).map_err(|e| LlmError::Malformed(e.to_string()))?;
        let reply = endpoint
            .http
            .call("planning the canvas", self.settings.timeout, MAX_ANSWER_BYTES, || {
                Ok(endpoint
                    .http
                    .request(Method::POST, &endpoint.url)
                    .header(AUTHORIZATION, auth.clone())
                    .json(&body))
            })
            .await
            .map_err(LlmError::from_failure)?;
        let answer: Value = reply.json().map_err(|e| LlmError::Malformed(e.to_string()))?;
        let raw = read_answer(&answer)?;
        Ok(check_plan(catalog, raw, self.settings.max_nodes)?)
    }
}

/// Which planner made a composition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Planner {
    Llm,
    Parser,
}

impl Planner {
    pub fn as_str(self) -> &'static str {
        match self {
            Planner::Llm => "llm",
            Planner::Parser => "parser",
        }
    }
}

/// A composition, who planned it, and why the LLM's plan was not used when it was asked.
#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    pub composition: Composition,
    pub planner: Planner,
    /// The LLM was asked and its plan was not used: why (shown to the user).
    pub fallback: Option<LlmError>,
}

/// Plans with the LLM when there is one, and with the parser when there is none or it failed.
/// Errors are the parser's: an LLM failure alone never fails the request. Only node types that
/// run here are planned: the LLM is shown only those (so a plan naming another is refused and
/// the parser plans), and the parser puts a runnable stand-in in place of any other.
pub async fn compose_with(
    llm: Option<&LlmPlanner>,
    catalog: &LoadedCatalog,
    availability: &Availability,
    text: &str,
) -> Result<Planned, ComposeError> {
    // Bounds first: what the parser refuses outright is not worth a paid call.
    if text.len() > MAX_TEXT {
        return Err(ComposeError::TooLong);
    }
    if text.trim().is_empty() {
        return Err(ComposeError::Empty);
    }
    let mut fallback = None;
    if let Some(llm) = llm {
        match llm.plan(&availability.runnable(catalog), text).await {
            Ok(composition) => return Ok(Planned { composition, planner: Planner::Llm, fallback: None }),
            Err(error) => fallback = Some(error),
        }
    }
    let composition = compose_runnable(catalog, availability, text)?;
    Ok(Planned { composition, planner: Planner::Parser, fallback })
}

/// The Chat Completions request: the catalog in the system message, the description as the
/// user's, and the plan's JSON schema as a strict `response_format`.
pub fn request_body(model: &str, catalog: &LoadedCatalog, text: &str, max_nodes: usize) -> Value {
    json!({
        "model": model,
        "messages": [
            {"role": "system", "content": system_prompt(catalog, max_nodes)},
            {"role": "user", "content": text},
        ],
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "canvas_plan", "strict": true, "schema": plan_schema(catalog)},
        },
        "max_completion_tokens": MAX_COMPLETION_TOKENS,
    })
}

/// The plan's schema, within what strict Structured Outputs accept: every property required, no
/// additional properties, no length or range keywords (those are checked after).
pub fn plan_schema(catalog: &LoadedCatalog) -> Value {
    let ids: Vec<&str> = catalog.nodes().iter().map(|n| n.id.as_str()).collect();
    json!({
        "type": "object",
        "properties": {
            "nodes": {
                "type": "array",
                "description": "Node type ids, in order; an id may appear more than once.",
                "items": {"type": "string", "enum": ids},
            },
            "edges": {
                "type": "array",
                "description": "Wires from an output of one node to an input of another.",
                "items": {
                    "type": "object",
                    "properties": {
                        "source": {"type": "integer", "description": "Index into nodes of the node whose output is wired."},
                        "source_handle": {"type": "string", "description": "The output's name."},
                        "target": {"type": "integer", "description": "Index into nodes of the node whose input is wired."},
                        "target_handle": {"type": "string", "description": "The input's name."},
                    },
                    "required": ["source", "source_handle", "target", "target_handle"],
                    "additionalProperties": false,
                },
            },
        },
        "required": ["nodes", "edges"],
        "additionalProperties": false,
    })
}

/// The instructions and the catalog, one compact line per node type.
pub fn system_prompt(catalog: &LoadedCatalog, max_nodes: usize) -> String {
    let mut prompt = format!(
        "You plan graphs for a node-based AI canvas. Turn the user's description into the nodes to \
         add and the wires between them.\n\
         Rules: use only the node types below; at most {max_nodes} nodes; an edge wires an output \
         of node `source` to an input of node `target` (indexes into `nodes`, from 0), naming both \
         handles exactly as listed; an output fits an input of the same type (`any` fits every \
         type); each input takes at most one wire; no cycles. Add what the description asks for, \
         in its order, and wire every pair that the description connects.\n\
         Node types, one per line: id | name | category | inputs | outputs \
         (handle:type, * marks a required input):\n"
    );
    for node in catalog.nodes() {
        prompt.push_str(&catalog_line(node));
        prompt.push('\n');
    }
    prompt
}

fn catalog_line(node: &NodeType) -> String {
    let ports = |ports: &[Port]| -> String {
        if ports.is_empty() {
            return "-".to_owned();
        }
        let list: Vec<String> = ports
            .iter()
            .map(|p| format!("{}:{}{}", p.name, p.port_type, if p.required { "*" } else { "" }))
            .collect();
        list.join(", ")
    };
    let mut line = format!(
        "{} | {} | {} | {} | {}",
        node.id,
        node.name,
        category(node.category),
        ports(&node.inputs),
        ports(&node.outputs)
    );
    if let Some(description) = node.description.as_deref().filter(|d| !d.is_empty()) {
        line.push_str(" | ");
        line.push_str(&truncate(description, 100));
    }
    line
}

fn category(category: Category) -> &'static str {
    match category {
        Category::Image => "image",
        Category::Video => "video",
        Category::ThreeD => "3d",
        Category::Text => "text",
        Category::Tool => "tool",
    }
}

/// `choices[0].message`: its refusal, or its content parsed as the plan.
fn read_answer(answer: &Value) -> Result<RawPlan, LlmError> {
    let choice = answer
        .pointer("/choices/0")
        .ok_or_else(|| LlmError::Malformed("the answer has no choices".into()))?;
    let message =
        choice.get("message").ok_or_else(|| LlmError::Malformed("the answer has no message".into()))?;
    if let Some(refusal) = message.get("refusal").and_then(Value::as_str).filter(|r| !r.trim().is_empty()) {
        return Err(LlmError::Refused(truncate(refusal.trim(), MAX_REASON_CHARS)));
    }
    let Some(content) = message.get("content").and_then(Value::as_str) else {
        return Err(LlmError::Malformed("the message has no content".into()));
    };
    serde_json::from_str::<RawPlan>(content).map_err(|e| {
        let cut = choice.get("finish_reason").and_then(Value::as_str) == Some("length");
        let reason = if cut { "it was cut off at the token limit".to_owned() } else { e.to_string() };
        LlmError::Malformed(truncate(&reason, MAX_REASON_CHARS))
    })
}

/// The plan as a [`Composition`], if every node type, index, handle and type fits the catalog.
fn check_plan(catalog: &LoadedCatalog, raw: RawPlan, max_nodes: usize) -> Result<Composition, PlanProblem> {
    if raw.nodes.is_empty() {
        return Err(PlanProblem::NoNodes);
    }
    if raw.nodes.len() > max_nodes {
        return Err(PlanProblem::TooManyNodes { count: raw.nodes.len(), max: max_nodes });
    }
    let mut types: Vec<&NodeType> = Vec::with_capacity(raw.nodes.len());
    for (index, id) in raw.nodes.iter().enumerate() {
        let node_type =
            catalog.get(id).ok_or_else(|| PlanProblem::UnknownType { index, node_type: truncate(id, 80) })?;
        types.push(node_type);
    }
    let count = types.len();
    let index = |edge: usize, node: i64| {
        usize::try_from(node).ok().filter(|&i| i < count).ok_or(PlanProblem::NoSuchNode { edge, node, count })
    };
    let mut wired: BTreeSet<(usize, &str)> = BTreeSet::new();
    let mut edges = Vec::with_capacity(raw.edges.len());
    for (e, edge) in raw.edges.iter().enumerate() {
        let (source, target) = (index(e, edge.source)?, index(e, edge.target)?);
        if source == target {
            return Err(PlanProblem::SelfLoop { edge: e, node: source });
        }
        let (source_type, target_type) = (types[source], types[target]);
        let unknown = |node: usize, node_type: &NodeType, direction: &'static str, handle: &str| {
            let ports = if direction == "output" { &node_type.outputs } else { &node_type.inputs };
            let names: Vec<&str> = ports.iter().map(|p| p.name.as_str()).collect();
            PlanProblem::UnknownHandle {
                edge: e,
                node,
                node_type: node_type.id.clone(),
                direction,
                handle: truncate(handle, 80),
                available: if names.is_empty() { "none".to_owned() } else { names.join(", ") },
            }
        };
        let output = source_type
            .output(&edge.source_handle)
            .ok_or_else(|| unknown(source, source_type, "output", &edge.source_handle))?;
        let input = target_type
            .input(&edge.target_handle)
            .ok_or_else(|| unknown(target, target_type, "input", &edge.target_handle))?;
        // The same check as a run's validation (`validate`): `any` fits every type.
        if !output.port_type.fits(input.port_type) {
            return Err(PlanProblem::TypeMismatch {
                edge: e,
                from: source,
                output: output.name.clone(),
                output_type: output.port_type.to_string(),
                to: target,
                input: input.name.clone(),
                input_type: input.port_type.to_string(),
            });
        }
        if !wired.insert((target, input.name.as_str())) {
            return Err(PlanProblem::InputWiredTwice { node: target, input: input.name.clone() });
        }
        edges.push(ComposedEdge {
            source,
            source_handle: output.name.clone(),
            target,
            target_handle: input.name.clone(),
        });
    }
    if has_cycle(count, &edges) {
        return Err(PlanProblem::Cycle);
    }
    Ok(Composition { nodes: types.iter().map(|t| t.id.clone()).collect(), edges, substitutions: Vec::new() })
}

/// Kahn's algorithm: a cycle leaves nodes that never reach in-degree 0.
fn has_cycle(count: usize, edges: &[ComposedEdge]) -> bool {
    let mut in_degree = vec![0usize; count];
    for edge in edges {
        in_degree[edge.target] += 1;
    }
    let mut ready: Vec<usize> = (0..count).filter(|&i| in_degree[i] == 0).collect();
    let mut done = 0;
    while let Some(node) = ready.pop() {
        done += 1;
        for edge in edges.iter().filter(|e| e.source == node) {
            in_degree[edge.target] -= 1;
            if in_degree[edge.target] == 0 {
                ready.push(edge.target);
            }
        }
    }
    done < count
}

#[cfg(test)]
mod tests;
