//! The team store's and audit log's suite, run against every backend like `conformance.rs`:
//! teams and their limits, roles and the last-owner rule, invitations (by id and by email,
//! answered, expired, revoked, bounded), team workflows and the access their roles give, and
//! an audit log the database keeps append-only.

use dojo_test_support::Stores;

dojo_test_support::each_backend!(cases:
    a_team_starts_with_its_creator_as_owner_within_the_user_limit,
    roles_change_but_the_last_owner_stays,
    invitations_by_id_and_by_email_are_answered_once,
    invitations_expire_and_are_bounded_by_the_team_size,
    team_workflows_give_the_access_roles_imply,
    lists_page_by_cursor_and_stay_within_their_team,
    the_audit_log_filters_pages_and_refuses_changes,
);

mod cases {
    use std::sync::Arc;

    use dojo_ids::{InvitationId, RoomName, TeamId, UserId};
    use dojo_records::{
        AccountError, ActorKind, AuditLog, AuditQuery, Invitee, NewAuditEntry, NewInvitation, Permission,
        RoomAccess, TeamLimits, TeamRole, TeamStore, User,
    };

    use super::*;

    const LIMITS: TeamLimits = TeamLimits { max_teams_per_user: 3, max_members_per_team: 4 };

    fn now() -> i64 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
    }

    fn teams(b: &Stores) -> Arc<dyn TeamStore> {
        dojo_records::teams(&b.db)
    }

    async fn user(b: &Stores, subject: &str) -> User {
        let email = format!("{subject}@example.com");
        b.accounts.upsert_user(subject, Some(subject), Some(&email)).await.expect("user")
    }

    fn invitation(team: &TeamId, invitee: Invitee, role: TeamRole, by: &UserId) -> NewInvitation {
        NewInvitation {
            team_id: team.clone(),
            invitee,
            role,
            invited_by: by.clone(),
            expires_at: now() + 3_600_000,
        }
    }

    /// `who` joins `team` with `role`, through an invitation by `by`.
    async fn join(store: &Arc<dyn TeamStore>, team: &TeamId, who: &UserId, role: TeamRole, by: &UserId) {
        let invited = store
            .invite(invitation(team, Invitee::User(who.clone()), role, by), LIMITS)
            .await
            .expect("invite");
        store.respond(&invited.id, who, true, LIMITS).await.expect("accept");
    }

    pub async fn a_team_starts_with_its_creator_as_owner_within_the_user_limit(b: Stores) {
        let store = teams(&b);
        let ada = user(&b, "ada").await;
        let created = store.create_team(&ada.id, "  Studio  ", LIMITS).await.expect("create");
        assert_eq!(created.team.name, "Studio");
        assert_eq!(created.role, TeamRole::Owner);
        assert_eq!(store.role(&created.team.id, &ada.id).await.unwrap(), Some(TeamRole::Owner));
        assert_eq!(store.team(&created.team.id).await.unwrap().map(|t| t.created_by), Some(ada.id.clone()));
        for bad in ["", "   ", &"x".repeat(101), "a\u{0}b"] {
            assert!(matches!(
                store.create_team(&ada.id, bad, LIMITS).await,
                Err(AccountError::InvalidInput { field: "name", .. })
            ));
        }
        store.create_team(&ada.id, "two", LIMITS).await.expect("second");
        store.create_team(&ada.id, "three", LIMITS).await.expect("third");
        assert!(matches!(
            store.create_team(&ada.id, "four", LIMITS).await,
            Err(AccountError::QuotaExceeded { what: "teams", limit: 3 })
        ));
        assert!(matches!(
            store.create_team(&UserId::from("u_nobody"), "ghost", LIMITS).await,
            Err(AccountError::UserNotFound(_))
        ));
    }

    pub async fn roles_change_but_the_last_owner_stays(b: Stores) {
        let store = teams(&b);
        let (ada, bob) = (user(&b, "ada").await, user(&b, "bob").await);
        let team = store.create_team(&ada.id, "Studio", LIMITS).await.unwrap().team.id;
        // Alone: the owner can neither be demoted nor leave.
        assert!(matches!(
            store.set_role(&team, &ada.id, TeamRole::Admin).await,
            Err(AccountError::LastOwner)
        ));
        assert!(matches!(store.remove_member(&team, &ada.id).await, Err(AccountError::LastOwner)));
        join(&store, &team, &bob.id, TeamRole::Member, &ada.id).await;
        assert_eq!(store.set_role(&team, &bob.id, TeamRole::Owner).await.unwrap(), TeamRole::Member);
        // Two owners: one may step down, then the other is the last again.
        assert_eq!(store.set_role(&team, &ada.id, TeamRole::Viewer).await.unwrap(), TeamRole::Owner);
        assert!(matches!(store.remove_member(&team, &bob.id).await, Err(AccountError::LastOwner)));
        assert_eq!(store.role(&team, &bob.id).await.unwrap(), Some(TeamRole::Owner));
        assert_eq!(store.remove_member(&team, &ada.id).await.unwrap(), TeamRole::Viewer);
        assert_eq!(store.role(&team, &ada.id).await.unwrap(), None);
        assert!(matches!(
            store.set_role(&team, &ada.id, TeamRole::Member).await,
            Err(AccountError::NotMember)
        ));
        let ghost = TeamId::from("team_ghost");
        assert!(matches!(store.remove_member(&ghost, &bob.id).await, Err(AccountError::TeamNotFound(_))));
    }

    pub async fn invitations_by_id_and_by_email_are_answered_once(b: Stores) {
        let store = teams(&b);
        let (ada, bob, cy, dee) =
            (user(&b, "ada").await, user(&b, "bob").await, user(&b, "cy").await, user(&b, "dee").await);
        let team = store.create_team(&ada.id, "Studio", LIMITS).await.unwrap().team.id;
        let to_bob = store
            .invite(invitation(&team, Invitee::User(bob.id.clone()), TeamRole::Admin, &ada.id), LIMITS)
            .await
            .unwrap();
        assert_eq!(to_bob.team_name, "Studio");
        assert!(matches!(
            store
                .invite(invitation(&team, Invitee::User(bob.id.clone()), TeamRole::Viewer, &ada.id), LIMITS)
                .await,
            Err(AccountError::AlreadyInvited)
        ));
        let to_cy = store
            .invite(
                invitation(&team, Invitee::Email(" CY@Example.com ".into()), TeamRole::Viewer, &ada.id),
                LIMITS,
            )
            .await
            .unwrap();
        assert_eq!(to_cy.invitee_email.as_deref(), Some("cy@example.com"));
        assert!(matches!(
            store
                .invite(
                    invitation(&team, Invitee::Email("not an email".into()), TeamRole::Viewer, &ada.id),
                    LIMITS
                )
                .await,
            Err(AccountError::InvalidInput { field: "email", .. })
        ));
        assert!(matches!(
            store
                .invite(invitation(&team, Invitee::User(dee.id.clone()), TeamRole::Owner, &ada.id), LIMITS)
                .await,
            Err(AccountError::InvalidInput { field: "role", .. })
        ));
        assert!(matches!(
            store
                .invite(invitation(&team, Invitee::User(ada.id.clone()), TeamRole::Member, &ada.id), LIMITS)
                .await,
            Err(AccountError::AlreadyMember)
        ));
        // Each invitee sees their own, and nobody else's.
        let mine = |u: UserId| {
            let store = store.clone();
            async move {
                store
                    .invitations_for(&u, None, 50)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|i| i.id)
                    .collect::<Vec<_>>()
            }
        };
        assert_eq!(mine(bob.id.clone()).await, vec![to_bob.id.clone()]);
        assert_eq!(mine(cy.id.clone()).await, vec![to_cy.id.clone()]);
        assert!(mine(dee.id.clone()).await.is_empty());
        // Someone else's invitation reads as none; then the invitee answers, once.
        assert!(matches!(
            store.respond(&to_bob.id, &dee.id, true, LIMITS).await,
            Err(AccountError::InvitationNotFound(_))
        ));
        let accepted = store.respond(&to_bob.id, &bob.id, true, LIMITS).await.unwrap();
        assert_eq!(accepted.status, dojo_records::InvitationStatus::Accepted);
        assert_eq!(store.role(&team, &bob.id).await.unwrap(), Some(TeamRole::Admin));
        assert!(matches!(
            store.respond(&to_bob.id, &bob.id, false, LIMITS).await,
            Err(AccountError::InvitationClosed("accepted"))
        ));
        let declined = store.respond(&to_cy.id, &cy.id, false, LIMITS).await.unwrap();
        assert_eq!(declined.status, dojo_records::InvitationStatus::Declined);
        assert_eq!(store.role(&team, &cy.id).await.unwrap(), None);
        assert!(mine(cy.id.clone()).await.is_empty(), "answered invitations are no longer listed");
        // Revoking: only the team's own, only while pending.
        let to_dee = store
            .invite(invitation(&team, Invitee::User(dee.id.clone()), TeamRole::Member, &ada.id), LIMITS)
            .await
            .unwrap();
        let other = store.create_team(&cy.id, "Other", LIMITS).await.unwrap().team.id;
        assert!(matches!(
            store.revoke_invitation(&other, &to_dee.id).await,
            Err(AccountError::InvitationNotFound(_))
        ));
        store.revoke_invitation(&team, &to_dee.id).await.unwrap();
        assert!(matches!(
            store.respond(&to_dee.id, &dee.id, true, LIMITS).await,
            Err(AccountError::InvitationClosed("revoked"))
        ));
        assert!(matches!(
            store.respond(&InvitationId::from("inv_nothing"), &dee.id, true, LIMITS).await,
            Err(AccountError::InvitationNotFound(_))
        ));
    }

    pub async fn invitations_expire_and_are_bounded_by_the_team_size(b: Stores) {
        let store = teams(&b);
        let ada = user(&b, "ada").await;
        let team = store.create_team(&ada.id, "Studio", LIMITS).await.unwrap().team.id;
        let late = user(&b, "late").await;
        let mut expired = invitation(&team, Invitee::User(late.id.clone()), TeamRole::Member, &ada.id);
        expired.expires_at = now() - 1;
        let expired = store.invite(expired, LIMITS).await.unwrap();
        assert!(matches!(
            store.respond(&expired.id, &late.id, true, LIMITS).await,
            Err(AccountError::InvitationExpired)
        ));
        assert!(store.invitations_for(&late.id, None, 10).await.unwrap().is_empty());
        // An expired invitation neither blocks a new one nor takes a place.
        store
            .invite(invitation(&team, Invitee::User(late.id.clone()), TeamRole::Member, &ada.id), LIMITS)
            .await
            .unwrap();
        // One owner + three pending = four: the team is full, for invitations and acceptances.
        for name in ["m1", "m2"] {
            let u = user(&b, name).await;
            store
                .invite(invitation(&team, Invitee::User(u.id.clone()), TeamRole::Member, &ada.id), LIMITS)
                .await
                .unwrap();
        }
        let extra = user(&b, "extra").await;
        assert!(matches!(
            store
                .invite(invitation(&team, Invitee::User(extra.id.clone()), TeamRole::Member, &ada.id), LIMITS)
                .await,
            Err(AccountError::TeamFull { limit: 4 })
        ));
        assert_eq!(store.team_invitations(&team, None, 50).await.unwrap().len(), 3);
        // Accepting with a limit that shrank meanwhile: refused, nothing written.
        let pending = store.invitations_for(&late.id, None, 10).await.unwrap().remove(0);
        let tight = TeamLimits { max_teams_per_user: 3, max_members_per_team: 1 };
        assert!(matches!(
            store.respond(&pending.id, &late.id, true, tight).await,
            Err(AccountError::TeamFull { limit: 1 })
        ));
        assert_eq!(store.role(&team, &late.id).await.unwrap(), None);
        let crowded = TeamLimits { max_teams_per_user: 0, max_members_per_team: 0 };
        store.respond(&pending.id, &late.id, true, crowded).await.expect("no limits");
    }

    pub async fn team_workflows_give_the_access_roles_imply(b: Stores) {
        let store = teams(&b);
        let (ada, bob, cy, dee, eve) = (
            user(&b, "ada").await,
            user(&b, "bob").await,
            user(&b, "cy").await,
            user(&b, "dee").await,
            user(&b, "eve").await,
        );
        let team = store.create_team(&ada.id, "Studio", LIMITS).await.unwrap().team.id;
        join(&store, &team, &bob.id, TeamRole::Admin, &ada.id).await;
        join(&store, &team, &cy.id, TeamRole::Member, &ada.id).await;
        join(&store, &team, &dee.id, TeamRole::Viewer, &ada.id).await;
        // Created by a member, it is the team's.
        let workflow =
            b.accounts.create_team_workflow(&cy.id, &team, "Board", None, 2).await.expect("create");
        assert_eq!(workflow.team_id.as_ref(), Some(&team));
        assert!(matches!(
            b.accounts.create_team_workflow(&dee.id, &team, "viewer's", None, 2).await,
            Err(AccountError::TeamNotFound(_))
        ));
        assert!(matches!(
            b.accounts.create_team_workflow(&eve.id, &team, "outsider's", None, 2).await,
            Err(AccountError::TeamNotFound(_))
        ));
        b.accounts.create_team_workflow(&ada.id, &team, "second", None, 2).await.expect("second");
        assert!(matches!(
            b.accounts.create_team_workflow(&ada.id, &team, "third", None, 2).await,
            Err(AccountError::QuotaExceeded { .. })
        ));
        let room: RoomName = workflow.room.clone();
        let access = |u: UserId| {
            let (accounts, room) = (b.accounts.clone(), room.clone());
            async move { accounts.room_access(Some(&u), &room).await.unwrap() }
        };
        assert_eq!(access(ada.id.clone()).await, RoomAccess::Admin);
        assert_eq!(access(bob.id.clone()).await, RoomAccess::Admin);
        assert_eq!(access(cy.id.clone()).await, RoomAccess::Write);
        assert_eq!(access(dee.id.clone()).await, RoomAccess::Read);
        assert_eq!(access(eve.id.clone()).await, RoomAccess::Denied);
        // Sharing adds to a role; leaving takes the role away, the creator's too.
        b.accounts
            .set_collaborator(&workflow.id, &dee.id, dojo_records::CollaboratorPermission::Write)
            .await
            .unwrap();
        assert_eq!(access(dee.id.clone()).await, RoomAccess::Write);
        store.remove_member(&team, &cy.id).await.unwrap();
        assert_eq!(access(cy.id.clone()).await, RoomAccess::Denied, "the creator left the team");
        // Listings: the team's workflows for its members, with their permission; not for others.
        let listed = b.accounts.list_workflows(&dee.id).await.unwrap();
        assert_eq!(listed.len(), 2);
        assert!(listed.iter().all(|w| w.workflow.team_id.as_ref() == Some(&team)));
        assert!(listed.iter().any(|w| w.workflow.id == workflow.id && w.permission == Permission::Write));
        assert!(b.accounts.list_workflows(&eve.id).await.unwrap().is_empty());
        assert!(b.accounts.list_workflows(&cy.id).await.unwrap().is_empty());
        let rooms = store.team_rooms(&team, None, 1).await.unwrap();
        assert_eq!(rooms.len(), 1);
        let rest = store.team_rooms(&team, Some(&rooms[0].0), 10).await.unwrap();
        assert_eq!(rest.len(), 1);
        assert_ne!(rest[0].0, rooms[0].0);
    }

    pub async fn lists_page_by_cursor_and_stay_within_their_team(b: Stores) {
        let store = teams(&b);
        let limits = TeamLimits { max_teams_per_user: 10, max_members_per_team: 10 };
        let ada = user(&b, "ada").await;
        let mut created = Vec::new();
        for i in 0..5 {
            created.push(store.create_team(&ada.id, &format!("t{i}"), limits).await.unwrap().team.id);
        }
        created.sort();
        let first = store.teams_of(&ada.id, None, 2).await.unwrap();
        let second = store.teams_of(&ada.id, Some(&first[1].team.id), 2).await.unwrap();
        let third = store.teams_of(&ada.id, Some(&second[1].team.id), 2).await.unwrap();
        let seen: Vec<TeamId> =
            first.iter().chain(&second).chain(&third).map(|m| m.team.id.clone()).collect();
        assert_eq!(seen, created);
        // Members of one team only, by user id.
        let bob = user(&b, "bob").await;
        join(&store, &created[0], &bob.id, TeamRole::Viewer, &ada.id).await;
        let members = store.members(&created[0], None, 10).await.unwrap();
        assert_eq!(members.len(), 2);
        assert!(members.iter().all(|m| m.team_id == created[0]));
        assert_eq!(store.members(&created[1], None, 10).await.unwrap().len(), 1);
        let page = store.members(&created[0], Some(&members[0].user_id), 10).await.unwrap();
        assert_eq!(page.len(), 1);
        assert_eq!(page[0].user_id, members[1].user_id);
        assert!(
            store.teams_of(&ada.id, None, 100_000).await.unwrap().len()
                <= dojo_records::teams::MAX_PAGE as usize
        );
    }

    pub async fn the_audit_log_filters_pages_and_refuses_changes(b: Stores) {
        let log: Arc<dyn AuditLog> = dojo_records::audit_log(&b.db);
        let (team, other) = (TeamId::from("team_a"), TeamId::from("team_b"));
        let entry = |actor: &str, action: &'static str, team: &TeamId| NewAuditEntry {
            actor_kind: ActorKind::User,
            actor_id: actor.into(),
            action,
            target_type: "team",
            target_id: team.to_string(),
            team_id: Some(team.clone()),
            client_addr: Some("203.0.113.7".into()),
            detail: serde_json::json!({"n": 1}),
        };
        for i in 0..5 {
            let actor = if i % 2 == 0 { "u_ada" } else { "u_bob" };
            log.append(entry(actor, "member.role_changed", &team)).await.unwrap();
        }
        log.append(entry("u_ada", "team.created", &team)).await.unwrap();
        log.append(entry("u_eve", "team.created", &other)).await.unwrap();
        let mut big = entry("u_ada", "big", &team);
        big.detail = serde_json::json!({"x": "y".repeat(10_000)});
        big.actor_id = "a".repeat(1000);
        log.append(big).await.unwrap();
        let query = |f: &dyn Fn(&mut AuditQuery)| {
            let mut q = AuditQuery {
                team_id: team.clone(),
                actor_id: None,
                action: None,
                since: None,
                until: None,
                before: None,
                limit: 100,
            };
            f(&mut q);
            q
        };
        let all = log.entries(&query(&|_| {})).await.unwrap();
        assert_eq!(all.len(), 7, "only the team's own");
        assert!(all.windows(2).all(|w| w[0].seq > w[1].seq), "newest first");
        assert_eq!(all[0].detail["truncated"], true, "a large detail is replaced by a note");
        assert_eq!(all[0].actor_id.len(), 255);
        assert_eq!(log.entries(&query(&|q| q.actor_id = Some("u_bob".into()))).await.unwrap().len(), 2);
        assert_eq!(log.entries(&query(&|q| q.action = Some("team.created".into()))).await.unwrap().len(), 1);
        let page = log.entries(&query(&|q| q.limit = 3)).await.unwrap();
        let next = log
            .entries(&query(&|q| {
                q.limit = 3;
                q.before = page.last().map(|e| e.seq);
            }))
            .await
            .unwrap();
        assert_eq!(next.len(), 3);
        assert!(next[0].seq < page[2].seq);
        let future = now() + 60_000;
        assert!(log.entries(&query(&|q| q.since = Some(future))).await.unwrap().is_empty());
        assert_eq!(log.entries(&query(&|q| q.until = Some(future))).await.unwrap().len(), 7);
        // Whatever code runs against the database, not just ours.
        assert!(b.execute("UPDATE audit_log SET action = 'nothing'", &[]).await.is_err());
        assert!(b.execute("DELETE FROM audit_log", &[]).await.is_err());
        assert_eq!(log.entries(&query(&|_| {})).await.unwrap().len(), 7);
    }
}
