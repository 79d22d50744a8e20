//! Renaming and deleting a team (issue 22), over real sockets on SQLite and PostgreSQL: owners
//! and admins rename, members may not; only an owner deletes; deleting closes the team's
//! workflows (a member's open connection ends, and the room refuses them and the owner alike),
//! removes memberships and invitations, and keeps the room name taken.

mod common;

use common::WAIT;
use common::database::Backend;
use common::teams::{TeamWorld, person};
use dojo_room_client::SyncClient;
use reqwest::{Method, StatusCode};
use serde_json::json;

dojo_test_support::each_backend_story!(owners_and_admins_rename_and_only_an_owner_deletes_with_the_workflows);

async fn owners_and_admins_rename_and_only_an_owner_deletes_with_the_workflows(backend: Backend) {
    let world = TeamWorld::start(backend, |_| {}).await;
    let (ada, bo, cy) = (person("ada"), person("bo"), person("cy"));
    let team = world.team(&ada, "Studio").await;
    world.join(&team, &ada, &bo, "admin").await;
    world.join(&team, &ada, &cy, "member").await;
    let room = "studio-closing";
    let workflow = world.team_workflow(&team, &cy, room).await;
    world.invite(&team, &ada, json!({ "email": "later@example.com", "role": "viewer" })).await;
    let path = format!("/api/teams/{team}");

    // An admin renames; a member may not; a bad name is refused.
    let renamed = world
        .expect(
            "admin renames",
            Method::PATCH,
            &path,
            &bo,
            Some(json!({"name": " Studio B "})),
            (StatusCode::OK, None),
        )
        .await;
    assert_eq!(renamed["name"], "Studio B", "{renamed}");
    assert_eq!(renamed["role"], "admin", "{renamed}");
    let forbidden = (StatusCode::FORBIDDEN, Some("forbidden"));
    world.expect("member renames", Method::PATCH, &path, &cy, Some(json!({"name": "Mine"})), forbidden).await;
    let bad = (StatusCode::BAD_REQUEST, Some("bad_request"));
    world.expect("blank name", Method::PATCH, &path, &ada, Some(json!({"name": "  "})), bad).await;
    world.expect("long name", Method::PATCH, &path, &ada, Some(json!({"name": "x".repeat(101)})), bad).await;
    let audit = world.audit(&team, &ada, "action=team.renamed").await;
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert_eq!(audit[0]["detail"], json!({"from": "Studio", "to": "Studio B"}));

    // Neither an admin nor a member deletes it.
    world.expect("admin deletes", Method::DELETE, &path, &bo, None, forbidden).await;
    world.expect("member deletes", Method::DELETE, &path, &cy, None, forbidden).await;

    // The owner deletes it while the member is in its room: the connection ends.
    let member = SyncClient::connect(&world.story.api.room_url(room, &cy)).await.expect("connect");
    member.wait_synced(WAIT).await.expect("synced");
    let deleted =
        world.expect("owner deletes", Method::DELETE, &path, &ada, None, (StatusCode::OK, None)).await;
    assert_eq!(deleted["workflowsDeleted"], 1, "{deleted}");
    member.wait_closed(WAIT).await.expect("the member's connection ends");

    // Nothing of it answers anyone now; the room stays taken and closed, to its creator too.
    let gone = (StatusCode::NOT_FOUND, Some("not_found"));
    for token in [&ada, &bo, &cy] {
        world.expect("the team", Method::GET, &path, token, None, gone).await;
        world
            .expect("its workflow", Method::GET, &format!("/api/workflows/{workflow}"), token, None, gone)
            .await;
        let (status, teams) = world.call(Method::GET, "/api/teams", token, None).await;
        assert_eq!(status, StatusCode::OK, "{teams}");
        assert_eq!(teams["teams"], json!([]), "{teams}");
    }
    let (status, graph) = world.call(Method::GET, &format!("/api/rooms/{room}/graph"), &cy, None).await;
    assert!(status == StatusCode::NOT_FOUND || status == StatusCode::FORBIDDEN, "{status}: {graph}");
    let retaken = json!({"title": "again", "room": room});
    let (status, answer) = world.call(Method::POST, "/api/workflows", &cy, Some(retaken)).await;
    assert_eq!(status, StatusCode::CONFLICT, "the room stays taken: {answer}");
    let later = person("later");
    let (_, mine) = world.call(Method::GET, "/api/me/invitations", &later, None).await;
    assert_eq!(mine["invitations"], json!([]), "its invitations went with it: {mine}");
    world.expect("deleting again", Method::DELETE, &path, &ada, None, gone).await;
}
