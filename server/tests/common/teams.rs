//! Shared by the team stories: people with tokens (an email claim each), teams with members in
//! given roles, and calls that check the refusal envelope.

use dojo_auth::{Claims, Minter};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::database::Backend;
use super::runs::{RunStory, SECRET};

/// A token for `sub`, named `sub`, with the email `{sub}@example.com`.
pub fn person(sub: &str) -> String {
    let mut claims = Claims::new(sub, 600);
    claims.name = Some(sub.into());
    claims.email = Some(format!("{sub}@example.com"));
    Minter::hs256(SECRET.as_bytes()).mint(&claims).expect("mint")
}

/// The key-encryption keys test servers seal teams' provider keys with (`k1`, 32 bytes of 7).
pub const TEST_KEKS: &str = "k1:BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";

/// Configures `config` with `keks` (`id:base64,…`) as its key-encryption keys.
pub fn with_keks(config: &mut dojo_server::Config, keks: &str) {
    let keyring = dojo_records::key_crypto::Keyring::parse(keks).expect("test KEKs");
    config.keys.key_encryption_keys =
        Some(dojo_server::key_settings::KeyringSetting(std::sync::Arc::new(keyring)));
}

/// A server on a database of `backend`, and calls on its API.
pub struct TeamWorld {
    pub story: RunStory,
}

impl TeamWorld {
    pub async fn start(backend: Backend, configure: impl FnOnce(&mut dojo_server::Config)) -> Self {
        let story = RunStory::start_with(backend, |config| {
            // Every story makes many requests from one user and one address.
            config.http.http_rate_per_sec = 100_000;
            config.http.http_burst = 100_000;
            configure(config);
        })
        .await;
        Self { story }
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        self.story.api.call(method, path, token, body, None).await
    }

    /// `call`, which must answer `status` with `code` (when refused) in the envelope.
    pub async fn expect(
        &self,
        what: &str,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Value>,
        (status, code): (StatusCode, Option<&str>),
    ) -> Value {
        let (got, answer) = self.call(method.clone(), path, token, body).await;
        assert_eq!(got, status, "{what}: {method} {path}: {answer}");
        if let Some(code) = code {
            assert_eq!(answer["code"], code, "{what}: {method} {path}: {answer}");
            assert!(answer["error"].as_str().is_some_and(|e| !e.is_empty()), "{what}: a message: {answer}");
        }
        answer
    }

    pub async fn user_id(&self, token: &str) -> String {
        let (status, me) = self.call(Method::GET, "/api/me", token, None).await;
        assert_eq!(status, StatusCode::OK, "{me}");
        me["id"].as_str().expect("id").to_owned()
    }

    /// A team created by `owner`; its id.
    pub async fn team(&self, owner: &str, name: &str) -> String {
        let (status, team) =
            self.call(Method::POST, "/api/teams", owner, Some(json!({ "name": name }))).await;
        assert_eq!(status, StatusCode::CREATED, "{team}");
        assert_eq!(team["role"], "owner", "{team}");
        team["id"].as_str().expect("team id").to_owned()
    }

    /// `who` joins `team` with `role`: invited by user id by `by`, then accepting.
    pub async fn join(&self, team: &str, by: &str, who: &str, role: &str) {
        let user = self.user_id(who).await;
        let invitation = self.invite(team, by, json!({ "userId": user, "role": role })).await;
        let path = format!("/api/invitations/{invitation}/accept");
        let (status, accepted) = self.call(Method::POST, &path, who, None).await;
        assert_eq!(status, StatusCode::OK, "{accepted}");
        assert_eq!(accepted["status"], "accepted", "{accepted}");
    }

    /// An invitation to `team` made by `by`; its id.
    pub async fn invite(&self, team: &str, by: &str, body: Value) -> String {
        let path = format!("/api/teams/{team}/invitations");
        let (status, invitation) = self.call(Method::POST, &path, by, Some(body)).await;
        assert_eq!(status, StatusCode::CREATED, "{invitation}");
        invitation["id"].as_str().expect("invitation id").to_owned()
    }

    /// A workflow of `team` created by `by` in `room`; its id.
    pub async fn team_workflow(&self, team: &str, by: &str, room: &str) -> String {
        let body = json!({ "title": room, "room": room, "teamId": team });
        let (status, created) = self.call(Method::POST, "/api/workflows", by, Some(body)).await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        assert_eq!(created["teamId"], team, "{created}");
        created["id"].as_str().expect("workflow id").to_owned()
    }

    /// Grants `credits` to the team's balance (once per `key`), straight through the store as
    /// an operator's grant would.
    pub async fn grant_team(&self, team: &str, credits: i64, key: &str) {
        let database =
            dojo_store::open_database(&self.story.api.database_url).await.expect("open the database");
        dojo_records::teams(&database)
            .apply_team_credits(&dojo_ids::TeamId::from(team), None, credits, "test grant", key)
            .await
            .expect("team grant");
    }

    /// `token`'s user made staff, as `dojo-server admin grant-staff` does; their id.
    pub async fn grant_staff(&self, token: &str) -> String {
        let id = self.user_id(token).await;
        let database = dojo_store::open_database(&self.story.api.database_url).await.expect("open");
        dojo_records::jobs(&database)
            .set_staff_role(
                &dojo_ids::UserId::from(id.as_str()),
                Some(dojo_records::StaffRole::Staff),
                "test",
            )
            .await
            .expect("grant");
        id
    }

    /// Staff (`staff`) enqueue an agent job; its result once an agent completed it.
    pub async fn run_agent_job(&self, staff: &str, job_type: &str, payload: Value) -> Value {
        let body = json!({"type": job_type, "payload": payload});
        let (status, job) = self.call(Method::POST, "/api/agent-jobs", staff, Some(body)).await;
        assert_eq!(status, StatusCode::CREATED, "{job}");
        let path = format!("/api/agent-jobs/{}", job["id"].as_str().expect("id"));
        let deadline = tokio::time::Instant::now() + super::WAIT;
        loop {
            let (_, job) = self.call(Method::GET, &path, staff, None).await;
            if job["status"] == "succeeded" {
                return job["result"].clone();
            }
            assert!(job["status"] != "failed", "the job failed: {job}");
            assert!(tokio::time::Instant::now() < deadline, "the job never ran: {job}");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// The team's audit entries as `token` reads them (`query` after `?`).
    pub async fn audit(&self, team: &str, token: &str, query: &str) -> Vec<Value> {
        let (status, page) =
            self.call(Method::GET, &format!("/api/teams/{team}/audit?{query}"), token, None).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        page["entries"].as_array().cloned().unwrap_or_default()
    }
}
