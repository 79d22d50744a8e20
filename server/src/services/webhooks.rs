//! Webhook endpoints of a workflow, their delivery log and replays, and the workflow's change
//! feed. Only those who administer the workflow (its owner, or a token allowed to manage it)
//! may see or change any of it: endpoints carry signing secrets, and the feed what happens in
//! the room. Per-team endpoints wait for teams.

use dojo_ids::{WebhookId, WorkflowId};
use dojo_records::AccountError;
use dojo_records::webhooks::{Delivery, Endpoint, Event, NewEndpoint};

use super::signed_in;
use super::workflows::{OwnedWorkflow, WorkflowError, WorkflowService};
use crate::caller::Caller;
use crate::state::AppState;
use crate::webhooks::target::{self, TargetError};

#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error(transparent)]
    Workflow(#[from] WorkflowError),
    #[error("webhook URL refused: {0}")]
    Target(#[from] TargetError),
    /// No such endpoint on this workflow.
    #[error("no webhook {:?}", .0.as_str())]
    NotFound(WebhookId),
    #[error("no delivery {0} of this webhook")]
    DeliveryNotFound(i64),
    #[error(transparent)]
    Records(#[from] AccountError),
}

/// What a caller asks for.
#[derive(Debug, Clone)]
pub struct EndpointRequest {
    pub url: String,
    pub events: Vec<String>,
    pub description: Option<String>,
}

pub struct WebhookService<'a> {
    state: &'a AppState,
}

impl<'a> WebhookService<'a> {
    pub fn new(state: &'a AppState) -> Self {
        Self { state }
    }

    async fn administered(&self, caller: &Caller, id: &WorkflowId) -> Result<OwnedWorkflow, WebhookError> {
        Ok(WorkflowService::new(self.state).owned(caller, id).await?)
    }

    /// Registers an endpoint; the answer is the one time its secret is shown.
    pub async fn create(
        &self,
        caller: &Caller,
        workflow: &WorkflowId,
        request: EndpointRequest,
    ) -> Result<Endpoint, WebhookError> {
        let user = signed_in(caller).map_err(WorkflowError::from)?.id.clone();
        let owned = self.administered(caller, workflow).await?;
        let settings = self.state.webhooks().settings();
        let allow_private = settings.webhook_allow_private;
        let url = target::check(&request.url, allow_private)?;
        target::check_resolves(&url, allow_private).await?;
        let endpoint = NewEndpoint {
            workflow_id: owned.workflow().id.clone(),
            url: url.to_string(),
            events: request.events,
            description: request.description.map(|d| d.trim().to_owned()).filter(|d| !d.is_empty()),
            secret: new_secret(),
            created_by: user,
        };
        let store = self.state.webhooks().store();
        Ok(store.create_endpoint(endpoint, settings.webhook_max_endpoints).await?)
    }

    pub async fn list(&self, caller: &Caller, workflow: &WorkflowId) -> Result<Vec<Endpoint>, WebhookError> {
        let owned = self.administered(caller, workflow).await?;
        Ok(self.state.webhooks().store().endpoints(&owned.workflow().id).await?)
    }

    pub async fn delete(
        &self,
        caller: &Caller,
        workflow: &WorkflowId,
        hook: &WebhookId,
    ) -> Result<(), WebhookError> {
        let owned = self.administered(caller, workflow).await?;
        if !self.state.webhooks().store().delete_endpoint(&owned.workflow().id, hook).await? {
            return Err(WebhookError::NotFound(hook.clone()));
        }
        Ok(())
    }

    async fn endpoint(
        &self,
        caller: &Caller,
        workflow: &WorkflowId,
        hook: &WebhookId,
    ) -> Result<Endpoint, WebhookError> {
        let owned = self.administered(caller, workflow).await?;
        self.state
            .webhooks()
            .store()
            .endpoint(&owned.workflow().id, hook)
            .await?
            .ok_or_else(|| WebhookError::NotFound(hook.clone()))
    }

    /// The endpoint's deliveries, newest first, below `before`.
    pub async fn deliveries(
        &self,
        caller: &Caller,
        workflow: &WorkflowId,
        hook: &WebhookId,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<Delivery>, WebhookError> {
        let endpoint = self.endpoint(caller, workflow, hook).await?;
        Ok(self.state.webhooks().store().deliveries(&endpoint.id, before, limit).await?)
    }

    /// Sends the delivery's event again, as a new delivery (the log keeps both).
    pub async fn replay(
        &self,
        caller: &Caller,
        workflow: &WorkflowId,
        hook: &WebhookId,
        delivery: i64,
    ) -> Result<Delivery, WebhookError> {
        let endpoint = self.endpoint(caller, workflow, hook).await?;
        self.state
            .webhooks()
            .store()
            .replay(&endpoint.id, delivery)
            .await?
            .ok_or(WebhookError::DeliveryNotFound(delivery))
    }

    /// The workflow's events after `after`, oldest first.
    pub async fn events(
        &self,
        caller: &Caller,
        workflow: &WorkflowId,
        after: i64,
        limit: u32,
    ) -> Result<Vec<Event>, WebhookError> {
        let owned = self.administered(caller, workflow).await?;
        Ok(self.state.webhooks().store().events(&owned.workflow().id, after, limit).await?)
    }
}

/// `whsec_` and 256 random bits in hex.
fn new_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    let mut secret = String::from("whsec_");
    for byte in bytes {
        secret.push_str(&format!("{byte:02x}"));
    }
    secret
}

#[cfg(test)]
mod tests {
    #[test]
    fn secrets_are_long_random_and_prefixed() {
        let (a, b) = (super::new_secret(), super::new_secret());
        assert!(a.starts_with("whsec_") && a.len() == 6 + 64, "{a}");
        assert_ne!(a, b);
    }
}
