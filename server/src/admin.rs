//! `dojo-server admin …`: operator commands on accounts, printed for people.

use anyhow::{Context, bail};
use dojo_auth::{Claims, Grants, Minter, Permission};
use dojo_ids::TeamId;
use dojo_records::{CreditOutcome, QueueOwner, StaffRole};
use dojo_server::Config;
use dojo_server::Storage;
use dojo_server::config::AdminCommand;
use dojo_server::services::audit::{Actor, Record, record};
use dojo_server::services::credits::{CreditError, CreditService};
use dojo_server::services::provider_keys::rewrap_all;
use serde_json::json;

/// Runs an operator's command. Each one is recorded in the audit log as done by the OS user
/// running it (`Actor::operator`): grants as `credits.granted` (by the credit service, once
/// applied), the others as `admin.*`. Backups and restores work on the file without opening
/// it as a store (`main.rs`), so they are not recorded here.
pub async fn run(config: &Config, storage: &Storage, command: &AdminCommand) -> anyhow::Result<()> {
    let accounts = &storage.accounts;
    let operator = Actor::operator();
    match command {
        AdminCommand::GrantCredits { user: team, amount, idempotency_key, team: true } => {
            let credits = CreditService::new(accounts).audited(&storage.audit, operator.clone());
            let team = dojo_ids::TeamId::from(team.as_str());
            let outcome = match credits
                .grant_team(storage.teams.as_ref(), &team, *amount, idempotency_key.as_deref())
                .await
            {
                Ok(outcome) => outcome,
                Err(error @ CreditError::NoSuchTeam(_)) => bail!("{error}"),
                Err(error) => return Err(anyhow::Error::new(error).context("applying the team grant")),
            };
            let entry = outcome.entry();
            let what = if matches!(outcome, CreditOutcome::AlreadyApplied(_)) {
                "already applied"
            } else {
                "applied"
            };
            println!("{what}: team {team} {:+} → balance {}", entry.amount, entry.balance_after);
        }
        AdminCommand::GrantCredits { user, amount, idempotency_key, team: false } => {
            // Without a key each run is a new grant; with one, re-running is harmless.
            let credits = CreditService::new(accounts).audited(&storage.audit, operator.clone());
            let granted = match credits.grant(user, *amount, idempotency_key.as_deref()).await {
                Ok(granted) => granted,
                Err(error @ CreditError::NoSuchUser(_)) => bail!("{error}"),
                Err(error) => return Err(anyhow::Error::new(error).context("applying the grant")),
            };
            let entry = granted.outcome.entry();
            let what = if matches!(granted.outcome, CreditOutcome::AlreadyApplied(_)) {
                "already applied"
            } else {
                "applied"
            };
            println!("{what}: {} {:+} → balance {}", granted.user.id, entry.amount, entry.balance_after);
        }
        AdminCommand::ListUsers { limit } => {
            let users = accounts.list_users(*limit).await.context("listing users")?;
            let detail = json!({"limit": limit, "listed": users.len()});
            let entry = Record {
                action: "admin.users_listed",
                target_type: "users",
                target_id: "*",
                team: None,
                detail,
            };
            record(&storage.audit, &operator, entry).await;
            println!("{:<20} {:>10}  {:<30} {:<30} SUBJECT", "ID", "CREDITS", "NAME", "EMAIL");
            for user in users {
                println!(
                    "{:<20} {:>10}  {:<30} {:<30} {}",
                    user.id,
                    user.credits,
                    user.name.unwrap_or_default(),
                    user.email.unwrap_or_default(),
                    user.subject
                );
            }
        }
        AdminCommand::Backup { .. } | AdminCommand::Restore { .. } => {
            return crate::backup::run(&config.database_url, command).await;
        }
        AdminCommand::MintToken { subject, ttl_secs, grants, manage_workflows } => {
            let Some(secret) = &config.auth.jwt_secret else {
                bail!("minting needs DOJO_JWT_SECRET (the server must know the key to verify the token)");
            };
            let mut claims = Claims::new(subject.clone(), *ttl_secs);
            if !grants.is_empty() {
                let mut parsed = Grants::default();
                for grant in grants {
                    let Some((room, permission)) = grant.split_once('=') else {
                        bail!("a grant is ROOM=PERMISSION, got {grant:?}");
                    };
                    let permission: Permission = permission.parse()?;
                    parsed.0.insert(room.to_owned(), permission);
                }
                claims.grants = Some(parsed);
            }
            claims.manage_workflows = *manage_workflows;
            let token = Minter::hs256(secret.as_bytes()).mint(&claims)?;
            // What the token allows, never the token.
            let detail = json!({"ttlSecs": ttl_secs, "grants": grants, "manageWorkflows": manage_workflows});
            let entry = Record {
                action: "admin.token_minted",
                target_type: "subject",
                target_id: subject,
                team: None,
                detail,
            };
            record(&storage.audit, &operator, entry).await;
            println!("{token}");
        }
        AdminCommand::GrantStaff { user, role } => {
            let role = match role.as_str() {
                "none" => None,
                other => Some(
                    StaffRole::parse(other)
                        .with_context(|| format!("--role is staff, admin or none, not {other:?}"))?,
                ),
            };
            let Some(found) = accounts.find_user(user).await.context("finding the user")? else {
                bail!("no user {user:?}");
            };
            let previous = storage
                .jobs
                .set_staff_role(&found.id, role, &operator.id)
                .await
                .context("setting the role")?;
            let name = |role: Option<StaffRole>| role.map_or("none", StaffRole::as_str);
            let detail = json!({"role": name(role), "previous": name(previous)});
            let entry = Record {
                action: "staff.role_set",
                target_type: "user",
                target_id: found.id.as_str(),
                team: None,
                detail,
            };
            record(&storage.audit, &operator, entry).await;
            println!("{}: {} → {}", found.id, name(previous), name(role));
        }
        AdminCommand::SetPlan { user, team, plan } => {
            let table = config.plan_table();
            // "default" puts them back on whatever the default plan is at the time.
            let stored = (plan != "default").then_some(plan.as_str());
            if let Some(name) = stored
                && !table.contains(name)
            {
                let names: Vec<&String> = table.0.keys().collect();
                bail!("no plan {name:?}: the plans are {names:?} (or \"default\")");
            }
            let owner = match (user, team) {
                (Some(user), _) => match accounts.find_user(user).await.context("finding the user")? {
                    Some(found) => QueueOwner::User(found.id),
                    None => bail!("no user {user:?}"),
                },
                (None, Some(team)) => QueueOwner::Team(TeamId::from(team.as_str())),
                (None, None) => bail!("name a --user or a --team"),
            };
            let (target_type, target_id) = match &owner {
                QueueOwner::User(id) => ("user", id.to_string()),
                QueueOwner::Team(id) => ("team", id.to_string()),
            };
            if !storage.queue.set_plan(&owner, stored).await.context("setting the plan")? {
                bail!("no {target_type} {target_id:?}");
            }
            let team = match &owner {
                QueueOwner::Team(id) => Some(id),
                QueueOwner::User(_) => None,
            };
            let entry = Record {
                action: "admin.plan_set",
                target_type,
                target_id: &target_id,
                team,
                detail: json!({"plan": plan}),
            };
            record(&storage.audit, &operator, entry).await;
            println!("{target_type} {target_id} is on plan {plan}");
        }
        AdminCommand::RotateProviderKeys => {
            let keyring = config.keys.keyring();
            let done = rewrap_all(&storage.provider_keys, &keyring, &storage.audit, &operator)
                .await
                .context("re-wrapping team provider keys")?;
            println!(
                "re-wrapped {} key(s) under {:?}; {} changed meanwhile (left as set); {} could not be opened",
                done.rewrapped,
                keyring.current_id().unwrap_or_default(),
                done.raced,
                done.failed
            );
            if done.failed > 0 {
                bail!(
                    "{} key(s) could not be opened: see the log; keep their old key-encryption key listed",
                    done.failed
                );
            }
        }
    }
    Ok(())
}
