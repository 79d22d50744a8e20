//! Cancelling a remote job that is abandoned before it finishes.

use std::sync::Arc;

use reqwest::header::{self, HeaderValue};
use reqwest::{Method, Url};

use super::{CallError, Failure, Http, MAX_ERROR_BODY};

/// A request that cancels a remote job, sent if the job is abandoned before it finishes: when
/// the run is cancelled, when the node times out, or when the node's future is dropped for any
/// other reason (the engine drops it at once on cancellation, so `Drop` is where that happens).
pub(crate) struct RemoteCancel {
    http: Http,
    call: Option<Arc<CancelCall>>,
}

struct CancelCall {
    method: Method,
    url: Url,
    auth: HeaderValue,
    job: String,
}

impl RemoteCancel {
    pub(crate) fn arm(http: &Http, method: Method, url: Url, auth: HeaderValue, job: &str) -> Self {
        Self {
            http: http.clone(),
            call: Some(Arc::new(CancelCall { method, url, auth, job: job.to_owned() })),
        }
    }

    /// The job ended on its own: nothing to cancel.
    pub(crate) fn disarm(&mut self) {
        self.call = None;
    }

    /// Cancels now and waits for the answer (bounded by the request timeout and retry budget).
    /// Disarmed only once sent: if this future is dropped halfway, `Drop` sends it again (a
    /// second cancel of the same job is harmless; a lost one keeps it running).
    pub(crate) async fn cancel_now(&mut self) {
        if let Some(call) = self.call.clone() {
            send_cancel(self.http.clone(), call).await;
            self.call = None;
        }
    }
}

impl Drop for RemoteCancel {
    fn drop(&mut self) {
        let Some(call) = self.call.take() else { return };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(send_cancel(self.http.clone(), call));
            }
            Err(_) => tracing::warn!(
                provider = %self.http.provider,
                job = %call.job,
                "no runtime to cancel an abandoned remote job; it will run to its end"
            ),
        }
    }
}

async fn send_cancel(http: Http, call: Arc<CancelCall>) {
    let result = http
        .call("cancelling the job", http.request_timeout, MAX_ERROR_BODY, || {
            Ok(http
                .request(call.method.clone(), call.url.as_str())
                .header(header::AUTHORIZATION, call.auth.clone()))
        })
        .await;
    match result {
        Ok(_) => tracing::info!(provider = %http.provider, job = %call.job, "cancelled the remote job"),
        // Already finished (Replicate answers 200 with the final state; fal 400 ALREADY_COMPLETED).
        Err(Failure { error: CallError::Status { status: 400 | 404 | 409, .. }, .. }) => {
            tracing::info!(provider = %http.provider, job = %call.job, "the remote job had already ended")
        }
        Err(failure) => {
            let provider = http.provider;
            tracing::warn!(%provider, job = %call.job, %failure, "could not cancel the remote job")
        }
    }
}
