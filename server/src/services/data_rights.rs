//! A person's rights over their data (issue 22, `docs/data-rights.md`): an export of everything
//! about them as one tar.gz archive, the two-step deletion of their account, and the analytics
//! opt-out.
//!
//! The export is read through the same services the API uses (a room's document as JSON and as
//! a Yjs update, runs, ledger, teams), so it shows what the API shows. It is built in memory and
//! refused past `DOJO_EXPORT_MAX_BYTES` (counted before compression, assets by their recorded
//! size before their bytes are read), and allowed once per `DOJO_EXPORT_INTERVAL_SECS` per user.

use std::io::Write;

use dojo_auth::Permission;
use dojo_executor::AssetStore;
use dojo_ids::{AssetId, RoomName, UserId};
use dojo_records::data_rights::PSEUDONYM_PREFIX;
use dojo_records::{AccountError, DeletedAccount, DeletionPlan, User};
use serde::Serialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::caller::Caller;
use crate::services::audit::{self, Actor, Record};
use crate::services::{access, documents};
use crate::state::AppState;

/// How long a deletion confirmation token is good for.
pub const CONFIRMATION_TTL_MS: i64 = 10 * 60 * 1000;
/// Most runs, ledger entries and assets an export lists (each far above what one person makes
/// within the server's quotas; the archive's size limit applies on top).
const MAX_RUNS: u32 = 10_000;
const MAX_LEDGER: u32 = 100_000;
const MAX_ASSETS: u32 = 10_000;
const MAX_INVITATIONS: u32 = 1_000;
const MAX_TEAMS: u32 = 1_000;
/// Apps one export lists (one per workflow at most).
const MAX_APPS: u32 = 500;

#[derive(Debug, thiserror::Error)]
pub enum DataRightsError {
    #[error("sign in first: this needs a user token")]
    SignInRequired,
    #[error("the export would be larger than {max} bytes; ask the operator for a copy")]
    TooLarge { max: u64 },
    #[error(transparent)]
    Accounts(#[from] AccountError),
    #[error("the export archive could not be written: {0}")]
    Archive(String),
}

/// One file of the archive.
struct Entry {
    path: String,
    bytes: Vec<u8>,
}

/// The archive's files, counted against the size limit as they are added.
struct Files {
    entries: Vec<Entry>,
    total: u64,
    max: u64,
}

impl Files {
    fn add(&mut self, path: String, bytes: Vec<u8>) -> Result<(), DataRightsError> {
        self.reserve(bytes.len() as u64)?;
        self.entries.push(Entry { path, bytes });
        Ok(())
    }

    fn json(&mut self, path: &str, value: &impl Serialize) -> Result<(), DataRightsError> {
        let bytes = serde_json::to_vec_pretty(value).map_err(|e| DataRightsError::Archive(e.to_string()))?;
        self.add(path.to_owned(), bytes)
    }

    fn reserve(&mut self, bytes: u64) -> Result<(), DataRightsError> {
        // Each file also costs a 512-byte tar header.
        self.total = self.total.saturating_add(bytes).saturating_add(512);
        if self.total > self.max {
            return Err(DataRightsError::TooLarge { max: self.max });
        }
        Ok(())
    }
}

const README: &str = "Dojo data export\n\n\
profile.json        your account: id, sign-in subject, name, email, credits, analytics opt-out\n\
workflows.json      the workflows you own\n\
workflows/<id>/document.json   the canvas as JSON (docs/document-schema.md)\n\
workflows/<id>/document.yjs    the same document as one Yjs v1 update (Y.applyUpdate)\n\
workflows/<id>/webhooks.json   its webhook endpoints (signing secrets are not exported)\n\
runs.json           the runs you started, with each node's parameters, outputs and cost (runs of\n\
                    others' apps: states and outputs only, their graph is the publisher's)\n\
apps.json           the apps you published: form, visibility and the published graph\n\
ledger.json         every credit ledger entry of yours\n\
assets.json, assets/<id>   the assets you uploaded or your runs produced\n\
teams.json          your team memberships and roles\n\
invitations.json    team invitations addressed to you\n";

/// The caller's data as a tar.gz archive.
pub async fn export(state: &AppState, caller: &Caller) -> Result<Vec<u8>, DataRightsError> {
    let user = caller.user().ok_or(DataRightsError::SignInRequired)?;
    let rights = state.data_rights();
    let mut files = Files { entries: Vec::new(), total: 0, max: state.config().http.export_max_bytes };
    files.add("README.txt".into(), README.as_bytes().to_vec())?;
    let credits = state.auth().accounts().balance(&user.id).await?;
    let opt_out = rights.analytics_opt_out(&user.id).await?;
    files.json(
        "profile.json",
        &json!({
            "id": user.id.as_str(), "subject": user.subject, "name": user.name, "email": user.email,
            "credits": credits, "analyticsOptOut": opt_out, "createdAt": user.created_at,
        }),
    )?;

    let owned: Vec<_> = state
        .auth()
        .accounts()
        .list_workflows(&user.id)
        .await?
        .into_iter()
        .map(|summary| summary.workflow)
        .filter(|workflow| workflow.owner_id == user.id)
        .collect();
    files.json("workflows.json", &owned)?;
    for workflow in &owned {
        let dir = format!("workflows/{}", workflow.id.as_str());
        match room_document(state, caller, workflow.room.as_str()).await {
            Ok((canvas, update)) => {
                files.json(&format!("{dir}/document.json"), &canvas)?;
                files.add(format!("{dir}/document.yjs"), update)?;
            }
            // One unreadable document (quarantined, say) should not cost the rest of the export.
            Err(why) => files.add(format!("{dir}/document.error.txt"), why.into_bytes())?,
        }
        let hooks: Vec<_> = state
            .webhooks()
            .store()
            .endpoints(&workflow.id)
            .await?
            .into_iter()
            .map(|e| {
                json!({"id": e.id.as_str(), "url": e.url, "events": e.events, "description": e.description,
                       "createdAt": e.created_at})
            })
            .collect();
        files.json(&format!("{dir}/webhooks.json"), &hooks)?;
    }

    let runs_store = state.executor().runs();
    let mut runs = Vec::new();
    for run in rights.runs_of(&user.id, MAX_RUNS).await? {
        let nodes = runs_store.run_nodes(&run.id).await?;
        if dojo_executor::worker::document::writes_no_document(&run.room) {
            // A run of an app: its graph and hidden parameters are the app's publisher's, which
            // the runner never saw. What was theirs (states, costs, outputs) is kept.
            let mut run = serde_json::to_value(&run).unwrap_or_default();
            if let Some(fields) = run.as_object_mut() {
                fields.remove("graph");
                fields.remove("targets");
            }
            let nodes: Vec<_> = nodes
                .iter()
                .map(|n| {
                    json!({"state": n.state, "cost": n.cost, "charged": n.charged, "outputs": n.outputs,
                           "startedAt": n.started_at, "finishedAt": n.finished_at})
                })
                .collect();
            runs.push(json!({"run": run, "nodes": nodes}));
            continue;
        }
        runs.push(json!({"run": run, "nodes": nodes}));
    }
    files.json("runs.json", &runs)?;
    files.json("apps.json", &state.apps().apps_published_by(&user.id, MAX_APPS).await?)?;
    files.json("ledger.json", &state.auth().accounts().ledger(&user.id, MAX_LEDGER).await?)?;

    let assets = rights.assets_of(&user.id, MAX_ASSETS).await?;
    files.json("assets.json", &assets)?;
    let mut seen = std::collections::HashSet::new();
    for asset in &assets {
        if !seen.insert(asset.id.clone()) {
            continue;
        }
        // Counted before the bytes are read, so a large asset is refused without loading it.
        files.reserve(u64::try_from(asset.size).unwrap_or(u64::MAX))?;
        match state.executor().assets().get(&AssetId::from(asset.id.as_str())).await {
            Ok(stored) => {
                files.entries.push(Entry { path: format!("assets/{}", asset.id), bytes: stored.bytes })
            }
            Err(error) => {
                tracing::warn!(%error, asset = %asset.id, "an exported asset's bytes are missing");
                files.add(format!("assets/{}.error.txt", asset.id), error.to_string().into_bytes())?;
            }
        }
    }

    files.json("teams.json", &state.teams().teams_of(&user.id, None, MAX_TEAMS).await?)?;
    files.json("invitations.json", &state.teams().invitations_for(&user.id, None, MAX_INVITATIONS).await?)?;
    let entries = files.entries;
    // Compressing is CPU work: off the async threads.
    tokio::task::spawn_blocking(move || archive(entries))
        .await
        .map_err(|e| DataRightsError::Archive(e.to_string()))?
}

/// The room's canvas as JSON and as a Yjs update, or why it could not be read.
async fn room_document(
    state: &AppState,
    caller: &Caller,
    room: &str,
) -> Result<(serde_json::Value, Vec<u8>), String> {
    let access = access::room_for(state, caller, room, Permission::Read).await.map_err(|e| e.to_string())?;
    let canvas = documents::canvas_json(state, caller, &access).await.map_err(|e| e.to_string())?;
    let update = documents::state(state, caller, &access).await.map_err(|e| e.to_string())?;
    Ok((canvas, update))
}

fn archive(entries: Vec<Entry>) -> Result<Vec<u8>, DataRightsError> {
    let fail = |e: std::io::Error| DataRightsError::Archive(e.to_string());
    let gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut tar = tar::Builder::new(gzip);
    let now = dojo_auth::unix_now();
    for entry in entries {
        let mut header = tar::Header::new_gnu();
        header.set_size(entry.bytes.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(now);
        header.set_cksum();
        tar.append_data(&mut header, &entry.path, entry.bytes.as_slice()).map_err(fail)?;
    }
    let mut gzip = tar.into_inner().map_err(fail)?;
    gzip.flush().map_err(fail)?;
    gzip.finish().map_err(fail)
}

/// The hex SHA-256 of a confirmation token: what is stored and compared.
fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// What a first deletion step hands back.
pub struct Confirmation {
    pub token: String,
    pub expires_at: i64,
    pub plan: DeletionPlan,
}

/// Step one: what deleting `user` would do, and a token that confirms it for ten minutes.
/// Refused at once when the deletion could not go ahead (last owner of a team, active runs).
pub async fn request_deletion(state: &AppState, user: &User) -> Result<Confirmation, DataRightsError> {
    let rights = state.data_rights();
    let plan = rights.deletion_plan(&user.id).await?;
    if let Some(blocker) = plan.blocker() {
        return Err(blocker.into());
    }
    let token = format!("del_{}", hex::encode(rand::random::<[u8; 32]>()));
    let expires_at = now_millis().saturating_add(CONFIRMATION_TTL_MS);
    rights.request_deletion(&user.id, &token_hash(&token), expires_at).await?;
    Ok(Confirmation { token, expires_at, plan })
}

/// Step two: deletes the account `token` confirms, then what lives outside the database: asset
/// bytes nobody links to any more, the cached profile, live connections. Audited under the
/// pseudonym.
pub async fn confirm_deletion(
    state: &AppState,
    user: &User,
    token: &str,
) -> Result<DeletedAccount, DataRightsError> {
    // Random, not derived from the id: nobody can recompute it from the id to re-link the
    // anonymised rows to the person.
    let pseudonym = format!("{PSEUDONYM_PREFIX}{}", hex::encode(rand::random::<[u8; 8]>()));
    let deleted = state.data_rights().delete_account(&user.id, &token_hash(token), &pseudonym).await?;
    state.auth().forget_user(&user.subject);
    for asset in &deleted.orphaned_assets {
        if let Err(error) = state.executor().assets().delete(&AssetId::from(asset.as_str())).await {
            // The record is gone, so nothing serves the bytes any more; an operator can sweep them.
            tracing::error!(%error, asset = %asset, "could not delete a deleted account's asset bytes");
        }
    }
    for room in &deleted.rooms {
        if let Ok(room) = RoomName::parse(room) {
            state.rooms().permissions_changed(&room).await;
        }
    }
    let actor = Actor { kind: dojo_records::ActorKind::User, id: pseudonym.clone(), addr: None };
    let detail = serde_json::to_value(&deleted.plan).unwrap_or_default();
    let record =
        Record { action: "account.deleted", target_type: "user", target_id: &pseudonym, team: None, detail };
    audit::record(state.audit(), &actor, record).await;
    tracing::info!(pseudonym = %deleted.pseudonym, "account deleted");
    Ok(deleted)
}

/// Stores the opt-out, and forgets the cached profile so that this instance sees it at once.
pub async fn set_analytics_opt_out(
    state: &AppState,
    user: &User,
    opt_out: bool,
) -> Result<(), DataRightsError> {
    state.data_rights().set_analytics_opt_out(&user.id, opt_out).await?;
    state.auth().forget_user(&user.subject);
    Ok(())
}

/// The id a usage log may name the user by: theirs, or nothing when they opted out.
pub fn usage_id(user: Option<&User>) -> Option<&UserId> {
    user.filter(|user| !user.analytics_opt_out).map(|user| &user.id)
}

fn now_millis() -> i64 {
    i64::try_from(dojo_auth::unix_now().saturating_mul(1000)).unwrap_or(i64::MAX)
}
