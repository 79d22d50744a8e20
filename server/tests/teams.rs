//! Teams over real sockets (issue 22): roles in a team's room over the WebSocket (a viewer's
//! edits go nowhere, a member's arrive, a removed member's connection is closed and refused),
//! invitations by id and by email, the last-owner rule and the team limits, and the audit log
//! (written by team, sharing, deletion and credit changes; filtered, paged, exported as JSON
//! lines; refused UPDATE and DELETE by the database). On SQLite and PostgreSQL.

mod common;

use common::database::Backend;
use common::teams::{TeamWorld, person};
use common::{WAIT, node};
use dojo_room_client::SyncClient;
use dojo_sync_protocol::canvas;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use yrs::{Doc, Transact};

dojo_test_support::each_backend_story!(
    a_viewers_edits_go_nowhere_and_a_removed_member_is_disconnected,
    invitations_the_last_owner_and_the_limits,
    an_email_the_token_says_is_unverified_takes_no_invitation,
    the_audit_log_records_filters_exports_and_cannot_be_changed,
);

fn node_ids(doc: &Doc) -> Vec<String> {
    canvas::read_graph(&doc.transact())
        .map(|g| g.nodes.into_iter().map(|n| n.id).collect())
        .unwrap_or_default()
}

async fn joined(world: &TeamWorld, room: &str, token: &str) -> SyncClient {
    let client = SyncClient::connect(&world.story.api.room_url(room, token)).await.expect("connect");
    client.wait_synced(WAIT).await.expect("synced");
    client
}

async fn add_node(client: &SyncClient, id: &str, x: f64) {
    client.edit(|txn| canvas::write_node(txn, &node(id, x))).await.expect("edit").expect("node");
}

async fn a_viewers_edits_go_nowhere_and_a_removed_member_is_disconnected(backend: Backend) {
    let world = TeamWorld::start(backend, |_| {}).await;
    let (ada, cy, dee) = (person("ada"), person("cy"), person("dee"));
    let team = world.team(&ada, "Studio").await;
    world.join(&team, &ada, &cy, "member").await;
    world.join(&team, &ada, &dee, "viewer").await;
    let room = "studio-live";
    world.team_workflow(&team, &ada, room).await;

    let owner = joined(&world, room, &ada).await;
    add_node(&owner, "from-owner", 1.0).await;
    let viewer = joined(&world, room, &dee).await;
    viewer
        .wait_doc("the owner's node", WAIT, |doc| node_ids(doc).contains(&"from-owner".to_owned()))
        .await
        .expect("a viewer reads the canvas");
    add_node(&viewer, "from-viewer", 2.0).await;
    // The member's edit, sent after the viewer's, arrives: when it is there, the viewer's
    // would be too.
    let member = joined(&world, room, &cy).await;
    add_node(&member, "from-member", 3.0).await;
    owner
        .wait_doc("the member's node", WAIT, |doc| node_ids(doc).contains(&"from-member".to_owned()))
        .await
        .expect("a member's edit arrives");
    assert!(!node_ids(owner.doc()).contains(&"from-viewer".to_owned()), "a viewer's edit was relayed");
    // Nor stored.
    let (status, graph) = world.call(Method::GET, &format!("/api/rooms/{room}/graph"), &ada, None).await;
    assert_eq!(status, StatusCode::OK, "{graph}");
    assert!(
        graph["nodes"].get("from-viewer").is_none() && graph["nodes"].get("from-member").is_some(),
        "{graph}"
    );

    // Removing the member closes their open connection, and a new one is refused.
    let cy_id = world.user_id(&cy).await;
    let (status, body) =
        world.call(Method::DELETE, &format!("/api/teams/{team}/members/{cy_id}"), &ada, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let closed = member.wait_closed(WAIT).await.expect("the removed member's connection ends");
    assert!(closed.is_some(), "closed by the server");
    match tokio_tungstenite::connect_async(world.story.api.room_url(room, &cy)).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status().as_u16(), 403)
        }
        other => panic!("a removed member reconnected: {:?}", other.map(|_| ())),
    }
    // Everyone else reconnects (the whole room rechecks) and keeps their access.
    owner.close().await;
    viewer.close().await;
    let owner = joined(&world, room, &ada).await;
    add_node(&owner, "after", 4.0).await;
    let viewer = joined(&world, room, &dee).await;
    viewer
        .wait_doc("the owner's later node", WAIT, |doc| node_ids(doc).contains(&"after".to_owned()))
        .await
        .expect("the viewer still reads");
    owner.close().await;
    viewer.close().await;
    world.story.server.stop().await;
}

/// An identity provider that lets people type any address marks it `email_verified: false`:
/// such a token must not pick up (or accept) an invitation addressed to that address.
async fn an_email_the_token_says_is_unverified_takes_no_invitation(backend: Backend) {
    let world = TeamWorld::start(backend, |_| {}).await;
    let ada = person("ada");
    let team = world.team(&ada, "Studio").await;
    let invitation = world.invite(&team, &ada, json!({ "email": "eve@example.com", "role": "admin" })).await;

    let mut claims = dojo_auth::Claims::new("mallory", 600);
    claims.email = Some("eve@example.com".into());
    claims.email_verified = Some(false);
    let mallory = dojo_auth::Minter::hs256(common::runs::SECRET.as_bytes()).mint(&claims).expect("mint");
    let (_, mine) = world.call(Method::GET, "/api/me/invitations", &mallory, None).await;
    assert_eq!(mine["invitations"], json!([]), "an unverified email sees no invitation: {mine}");
    let accept = format!("/api/invitations/{invitation}/accept");
    world
        .expect(
            "an unverified email",
            Method::POST,
            &accept,
            &mallory,
            None,
            (StatusCode::NOT_FOUND, Some("not_found")),
        )
        .await;

    // The address's owner, whose provider vouches for it, still can.
    let mut claims = dojo_auth::Claims::new("eve", 600);
    claims.email = Some("eve@example.com".into());
    claims.email_verified = Some(true);
    let eve = dojo_auth::Minter::hs256(common::runs::SECRET.as_bytes()).mint(&claims).expect("mint");
    world.expect("the verified owner", Method::POST, &accept, &eve, None, (StatusCode::OK, None)).await;
    world.story.server.stop().await;
}

async fn invitations_the_last_owner_and_the_limits(backend: Backend) {
    let world = TeamWorld::start(backend, |config| {
        config.teams.max_members_per_team = 3;
        config.teams.max_teams_per_user = 2;
    })
    .await;
    let (ada, bob, cy, dee) = (person("ada"), person("bob"), person("cy"), person("dee"));
    let team = world.team(&ada, "Studio").await;
    let (ada_id, bob_id) = (world.user_id(&ada).await, world.user_id(&bob).await);
    world.user_id(&cy).await;
    world.user_id(&dee).await;

    // By email, case aside: the invitee finds it in their list and accepts.
    let by_email = world.invite(&team, &ada, json!({ "email": "BOB@example.com", "role": "admin" })).await;
    let (_, mine) = world.call(Method::GET, "/api/me/invitations", &bob, None).await;
    assert_eq!(mine["invitations"][0]["id"], by_email.as_str(), "{mine}");
    assert_eq!(mine["invitations"][0]["teamName"], "Studio", "{mine}");
    let accept = format!("/api/invitations/{by_email}/accept");
    world
        .expect("someone else", Method::POST, &accept, &cy, None, (StatusCode::NOT_FOUND, Some("not_found")))
        .await;
    world.expect("the invitee", Method::POST, &accept, &bob, None, (StatusCode::OK, None)).await;
    world
        .expect("again", Method::POST, &accept, &bob, None, (StatusCode::CONFLICT, Some("invitation_closed")))
        .await;
    world
        .expect(
            "a member, invited again",
            Method::POST,
            &format!("/api/teams/{team}/invitations"),
            &ada,
            Some(json!({ "userId": bob_id, "role": "viewer" })),
            (StatusCode::CONFLICT, Some("already_member")),
        )
        .await;
    // Declined by id; then invited twice: the second is refused while the first is pending.
    let cy_id = world.user_id(&cy).await;
    let to_cy = world.invite(&team, &bob, json!({ "userId": cy_id, "role": "viewer" })).await;
    world
        .expect(
            "declined",
            Method::POST,
            &format!("/api/invitations/{to_cy}/decline"),
            &cy,
            None,
            (StatusCode::OK, None),
        )
        .await;
    let again = world.invite(&team, &bob, json!({ "userId": cy_id, "role": "member" })).await;
    let twice = Some(json!({ "userId": cy_id, "role": "member" }));
    world
        .expect(
            "twice",
            Method::POST,
            &format!("/api/teams/{team}/invitations"),
            &bob,
            twice,
            (StatusCode::CONFLICT, Some("already_invited")),
        )
        .await;
    // Two members and one pending fill a team of three.
    let full = Some(json!({ "email": "dee@example.com", "role": "member" }));
    world
        .expect(
            "full",
            Method::POST,
            &format!("/api/teams/{team}/invitations"),
            &ada,
            full,
            (StatusCode::CONFLICT, Some("team_full")),
        )
        .await;
    let revoke = format!("/api/teams/{team}/invitations/{again}");
    world.expect("revoked", Method::DELETE, &revoke, &bob, None, (StatusCode::OK, None)).await;
    world
        .expect(
            "revoked twice",
            Method::DELETE,
            &revoke,
            &bob,
            None,
            (StatusCode::CONFLICT, Some("invitation_closed")),
        )
        .await;
    world
        .expect(
            "revoked",
            Method::POST,
            &format!("/api/invitations/{again}/accept"),
            &cy,
            None,
            (StatusCode::CONFLICT, Some("invitation_closed")),
        )
        .await;
    // Bad invitations are refused with their reason.
    for body in [
        json!({ "role": "member" }),
        json!({ "userId": cy_id, "email": "cy@example.com", "role": "member" }),
        json!({ "email": "not-an-email", "role": "member" }),
        json!({ "email": "cy@example.com", "role": "owner" }),
        json!({ "email": "x".repeat(300) + "@example.com", "role": "member" }),
    ] {
        world
            .expect(
                "a bad invitation",
                Method::POST,
                &format!("/api/teams/{team}/invitations"),
                &ada,
                Some(body),
                (StatusCode::BAD_REQUEST, Some("bad_request")),
            )
            .await;
    }
    world
        .expect(
            "a long name",
            Method::POST,
            "/api/teams",
            &ada,
            Some(json!({ "name": "n".repeat(101) })),
            (StatusCode::BAD_REQUEST, Some("bad_request")),
        )
        .await;
    world
        .expect(
            "an unknown user",
            Method::POST,
            &format!("/api/teams/{team}/invitations"),
            &ada,
            Some(json!({ "userId": "u_nobody", "role": "member" })),
            (StatusCode::NOT_FOUND, Some("not_found")),
        )
        .await;

    // The last owner can neither leave, nor be demoted or removed, by anyone.
    let leave = format!("/api/teams/{team}/leave");
    world
        .expect(
            "the last owner",
            Method::POST,
            &leave,
            &ada,
            None,
            (StatusCode::CONFLICT, Some("last_owner")),
        )
        .await;
    let ada_member = format!("/api/teams/{team}/members/{ada_id}");
    world
        .expect(
            "self-demotion",
            Method::PUT,
            &ada_member,
            &ada,
            Some(json!({ "role": "admin" })),
            (StatusCode::CONFLICT, Some("last_owner")),
        )
        .await;
    world
        .expect(
            "self-removal",
            Method::DELETE,
            &ada_member,
            &ada,
            None,
            (StatusCode::CONFLICT, Some("last_owner")),
        )
        .await;
    world
        .expect(
            "an admin",
            Method::DELETE,
            &ada_member,
            &bob,
            None,
            (StatusCode::FORBIDDEN, Some("forbidden")),
        )
        .await;
    // With a second owner, the first may go.
    let bob_member = format!("/api/teams/{team}/members/{bob_id}");
    let promoted = world
        .expect(
            "promotion",
            Method::PUT,
            &bob_member,
            &ada,
            Some(json!({ "role": "owner" })),
            (StatusCode::OK, None),
        )
        .await;
    assert_eq!(promoted["previousRole"], "admin", "{promoted}");
    world
        .expect("the first owner leaves", Method::POST, &leave, &ada, None, (StatusCode::NO_CONTENT, None))
        .await;
    world
        .expect(
            "gone",
            Method::GET,
            &format!("/api/teams/{team}"),
            &ada,
            None,
            (StatusCode::NOT_FOUND, Some("not_found")),
        )
        .await;
    world
        .expect(
            "the last owner again",
            Method::POST,
            &leave,
            &bob,
            None,
            (StatusCode::CONFLICT, Some("last_owner")),
        )
        .await;

    // Teams per user: two.
    world.team(&dee, "one").await;
    world.team(&dee, "two").await;
    world
        .expect(
            "a third team",
            Method::POST,
            "/api/teams",
            &dee,
            Some(json!({ "name": "three" })),
            (StatusCode::TOO_MANY_REQUESTS, Some("quota_exceeded")),
        )
        .await;
    // Pages: by cursor, bounded.
    let (_, first) = world.call(Method::GET, "/api/teams?limit=1", &dee, None).await;
    let cursor = first["nextCursor"].as_str().expect("a next cursor").to_owned();
    let (_, second) =
        world.call(Method::GET, &format!("/api/teams?limit=1&cursor={cursor}"), &dee, None).await;
    assert_eq!(second["teams"].as_array().map(Vec::len), Some(1), "{second}");
    assert_ne!(second["teams"][0]["id"], first["teams"][0]["id"], "{second}");
    let long = format!("/api/teams?cursor={}", "c".repeat(200));
    world
        .expect(
            "a long cursor",
            Method::GET,
            &long,
            &dee,
            None,
            (StatusCode::BAD_REQUEST, Some("bad_request")),
        )
        .await;
    world.story.server.stop().await;
}

async fn the_audit_log_records_filters_exports_and_cannot_be_changed(backend: Backend) {
    let world = TeamWorld::start(backend, |_| {}).await;
    let (ada, bob, eve) = (person("ada"), person("bob"), person("eve"));
    let team = world.team(&ada, "Studio").await;
    world.join(&team, &ada, &bob, "member").await;
    let (ada_id, bob_id, eve_id) =
        (world.user_id(&ada).await, world.user_id(&bob).await, world.user_id(&eve).await);
    world
        .expect(
            "role",
            Method::PUT,
            &format!("/api/teams/{team}/members/{bob_id}"),
            &ada,
            Some(json!({ "role": "admin" })),
            (StatusCode::OK, None),
        )
        .await;
    let workflow = world.team_workflow(&team, &bob, "audited").await;
    let share = format!("/api/workflows/{workflow}/collaborators/{eve_id}");
    world
        .expect(
            "share",
            Method::PUT,
            &share,
            &bob,
            Some(json!({ "permission": "read" })),
            (StatusCode::OK, None),
        )
        .await;
    world.expect("unshare", Method::DELETE, &share, &ada, None, (StatusCode::NO_CONTENT, None)).await;
    world
        .expect(
            "publish",
            Method::PATCH,
            &format!("/api/workflows/{workflow}"),
            &ada,
            Some(json!({ "public": true })),
            (StatusCode::OK, None),
        )
        .await;
    world
        .expect(
            "delete",
            Method::DELETE,
            &format!("/api/workflows/{workflow}"),
            &bob,
            None,
            (StatusCode::NO_CONTENT, None),
        )
        .await;
    // Another team's entries stay in it.
    world.team(&eve, "Elsewhere").await;

    let entries = world.audit(&team, &ada, "").await;
    let actions: Vec<&str> = entries.iter().filter_map(|e| e["action"].as_str()).collect();
    assert_eq!(
        actions,
        [
            "workflow.deleted",
            "workflow.visibility_changed",
            "workflow.unshared",
            "workflow.shared",
            "member.role_changed",
            "invitation.accepted",
            "invitation.created",
            "team.created",
        ],
        "newest first: {entries:?}"
    );
    let by = |action: &str| entries.iter().find(|e| e["action"] == action).cloned().unwrap_or(Value::Null);
    assert_eq!(by("member.role_changed")["detail"], json!({ "from": "member", "to": "admin" }));
    assert_eq!(by("member.role_changed")["actorId"], ada_id.as_str());
    assert_eq!(by("member.role_changed")["targetId"], bob_id.as_str());
    assert_eq!(by("workflow.shared")["actorId"], bob_id.as_str());
    assert_eq!(by("workflow.shared")["detail"]["permission"], "read");
    assert_eq!(by("workflow.deleted")["targetId"], workflow.as_str());
    assert_eq!(by("invitation.accepted")["actorId"], bob_id.as_str());
    for entry in &entries {
        assert_eq!(entry["actorType"], "user", "{entry}");
        assert_eq!(entry["teamId"], team.as_str(), "{entry}");
        assert_eq!(entry["clientAddr"], "127.0.0.1", "{entry}");
    }
    // Filters and pages.
    assert_eq!(world.audit(&team, &ada, "action=workflow.shared").await.len(), 1);
    assert_eq!(
        world.audit(&team, &ada, &format!("actor={bob_id}")).await.len(),
        3,
        "accepted, shared, deleted"
    );
    assert!(world.audit(&team, &ada, "since=99999999999999").await.is_empty());
    let (_, page) = world.call(Method::GET, &format!("/api/teams/{team}/audit?limit=3"), &ada, None).await;
    let cursor = page["nextCursor"].as_i64().expect("a cursor");
    let rest = world.audit(&team, &ada, &format!("cursor={cursor}")).await;
    assert_eq!(rest.len(), 5);
    assert_eq!(rest[0]["action"], "workflow.shared");
    world
        .expect(
            "a bad format",
            Method::GET,
            &format!("/api/teams/{team}/audit?format=xml"),
            &ada,
            None,
            (StatusCode::BAD_REQUEST, Some("bad_request")),
        )
        .await;
    world
        .expect(
            "a long filter",
            Method::GET,
            &format!("/api/teams/{team}/audit?action={}", "a".repeat(300)),
            &ada,
            None,
            (StatusCode::BAD_REQUEST, Some("bad_request")),
        )
        .await;
    // JSON lines: every entry, one per line.
    let response = world
        .story
        .api
        .http
        .get(world.story.api.http_url(&format!("/api/teams/{team}/audit?format=jsonl")))
        .bearer_auth(&bob)
        .send()
        .await
        .expect("export");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/x-ndjson");
    assert!(response.headers().get("dojo-next-cursor").is_none(), "everything fit");
    let text = response.text().await.expect("text");
    let lines: Vec<Value> =
        text.lines().map(|line| serde_json::from_str(line).expect("a JSON line")).collect();
    assert_eq!(lines.len(), 8);
    assert_eq!(lines[0]["action"], "workflow.deleted");

    // The database itself refuses to change or remove an entry.
    let stores = dojo_test_support::Stores::open(backend, &world.story.api.database_url).await;
    assert!(stores.execute("UPDATE audit_log SET actor_id = 'nobody'", &[]).await.is_err());
    assert!(stores.execute("DELETE FROM audit_log", &[]).await.is_err());
    assert_eq!(world.audit(&team, &ada, "").await.len(), 8);
    world.story.server.stop().await;
}
