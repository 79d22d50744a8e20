//! How agents' messages reach people: a pluggable [`MessageSender`]. The one built is a webhook
//! (`DOJO_REENGAGE_WEBHOOK`): each message is POSTed as JSON, signed like workflow webhooks,
//! for the studio's own mailer or messaging service to deliver. Without one, messages are
//! recorded and sent to nobody.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::agent_settings::AgentSettings;

/// How long the receiver may take.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// One message to one person.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Outgoing {
    /// `reengagement`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The message's id: a receiver that sees it twice delivers it once.
    pub id: String,
    pub user_id: String,
    pub email: String,
    pub name: Option<String>,
    pub subject: String,
    pub body: String,
}

#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("the receiver answered {0}")]
    Refused(reqwest::StatusCode),
    #[error("the receiver could not be reached: {0}")]
    Unreachable(#[source] reqwest::Error),
}

/// Delivers messages.
#[async_trait::async_trait]
pub trait MessageSender: Send + Sync {
    async fn send(&self, message: &Outgoing) -> Result<(), SendError>;
}

/// POSTs each message to a URL.
pub struct WebhookSender {
    client: reqwest::Client,
    url: String,
    secret: Option<String>,
}

impl WebhookSender {
    pub fn new(url: String, secret: Option<String>) -> Result<Self, reqwest::Error> {
        // No redirects: the operator named this URL, not whatever it points on to.
        let client = reqwest::Client::builder()
            .timeout(SEND_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self { client, url, secret })
    }
}

#[async_trait::async_trait]
impl MessageSender for WebhookSender {
    async fn send(&self, message: &Outgoing) -> Result<(), SendError> {
        let body = serde_json::to_vec(message).unwrap_or_default();
        let mut request =
            self.client.post(&self.url).header(reqwest::header::CONTENT_TYPE, "application/json");
        if let Some(secret) = &self.secret {
            let now = crate::execution::now_millis() / 1000;
            request = request.header("Dojo-Signature", dojo_records::webhooks::sign(&body, secret, now));
        }
        let answer = request.body(body).send().await.map_err(|e| SendError::Unreachable(e.without_url()))?;
        if answer.status().is_success() { Ok(()) } else { Err(SendError::Refused(answer.status())) }
    }
}

/// The sender the settings configure, if any.
pub fn from_settings(settings: &AgentSettings) -> Option<Arc<dyn MessageSender>> {
    let url = settings.reengage_webhook.clone().filter(|url| !url.trim().is_empty())?;
    match WebhookSender::new(url, settings.reengage_webhook_secret.clone()) {
        Ok(sender) => Some(Arc::new(sender)),
        Err(error) => {
            tracing::error!(%error, "agents: no HTTP client for DOJO_REENGAGE_WEBHOOK; messages are only recorded");
            None
        }
    }
}
