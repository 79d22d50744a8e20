//! Recording what people, services and operators do, in the append-only audit log
//! (`dojo_records::AuditLog`), and reading one team's entries back.
//!
//! An entry is written after the change it records has committed. Failing to write it is
//! logged at error level and does not undo or refuse the change, which already happened: the
//! log says what was done, it does not gate it.

use std::net::IpAddr;
use std::sync::Arc;

use dojo_ids::TeamId;
use dojo_records::{ActorKind, AuditLog, NewAuditEntry};
use serde_json::Value;

use crate::caller::Caller;

/// Who is acting, and from where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub kind: ActorKind,
    pub id: String,
    pub addr: Option<IpAddr>,
}

impl Actor {
    /// The caller of a request from `addr`: a service when its token carries room grants (a
    /// service mints narrow tokens; the executor's have grants too), else the user.
    pub fn of(caller: &Caller, addr: Option<IpAddr>) -> Self {
        match (caller.identity(), caller.user()) {
            (Some(identity), _) if identity.grants.is_some() => {
                Actor { kind: ActorKind::Service, id: identity.subject.clone(), addr }
            }
            (_, Some(user)) => Actor { kind: ActorKind::User, id: user.id.to_string(), addr },
            // Dev mode without a token: nobody in particular.
            _ => Actor { kind: ActorKind::User, id: "anonymous".into(), addr },
        }
    }

    /// An operator at the admin command line, named by the OS account that ran it.
    pub fn operator() -> Self {
        let name =
            std::env::var("USER").ok().filter(|name| !name.is_empty()).unwrap_or_else(|| "operator".into());
        Actor { kind: ActorKind::Operator, id: name, addr: None }
    }

    /// The server itself, acting on what `source` told it (`stripe`).
    pub fn system(source: &str) -> Self {
        Actor { kind: ActorKind::System, id: source.to_owned(), addr: None }
    }
}

/// What is recorded besides the actor.
#[derive(Debug, Clone)]
pub struct Record<'a> {
    pub action: &'static str,
    pub target_type: &'static str,
    pub target_id: &'a str,
    pub team: Option<&'a TeamId>,
    /// Ids, roles, amounts: never a secret.
    pub detail: Value,
}

/// Appends `record` by `actor`; a failure is logged, not returned (see the module comment).
pub async fn record(log: &Arc<dyn AuditLog>, actor: &Actor, record: Record<'_>) {
    let entry = NewAuditEntry {
        actor_kind: actor.kind,
        actor_id: actor.id.clone(),
        action: record.action,
        target_type: record.target_type,
        target_id: record.target_id.to_owned(),
        team_id: record.team.cloned(),
        client_addr: actor.addr.map(|addr| addr.to_string()),
        detail: record.detail,
    };
    if let Err(error) = log.append(entry).await {
        tracing::error!(%error, action = record.action, target = record.target_id, "could not write the audit log");
    }
}
