//! Nothing crosses between teams (issue 22): every team-scoped route, and every route of a
//! team's workflow, walked as the owner of *another* team and as a signed-in stranger, answers
//! as if the team, its invitation and its workflow did not exist (404; the WebSocket handshake
//! 403, which it answers for every room one may not open), and changes nothing. Members whose
//! role does not allow an operation see the team, so they get 403. On SQLite and PostgreSQL.

mod common;

use common::database::Backend;
use common::teams::{TEST_KEKS, TeamWorld, person, with_keks};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

dojo_test_support::each_backend_story!(
    another_teams_members_and_strangers_see_nothing_and_change_nothing,
    members_see_their_team_but_their_role_bounds_what_they_do,
);

/// One request of the walk.
struct Probe {
    method: Method,
    path: String,
    body: Option<Value>,
}

fn probe(method: Method, path: String, body: Option<Value>) -> Probe {
    Probe { method, path, body }
}

/// A team with an owner (ada), an admin (bob), a member (cy) and a viewer (dee), a workflow of
/// the team, and a pending invitation; plus eve, owner of another team, and mallory, nobody's.
struct Scene {
    world: TeamWorld,
    team: String,
    workflow: String,
    room: String,
    invitation: String,
    ada: String,
    bob: String,
    cy: String,
    dee: String,
    eve: String,
    mallory: String,
}

impl Scene {
    async fn start(backend: Backend) -> Self {
        let world = TeamWorld::start(backend, |config| with_keks(config, TEST_KEKS)).await;
        let (ada, bob, cy, dee, eve, mallory) =
            (person("ada"), person("bob"), person("cy"), person("dee"), person("eve"), person("mallory"));
        let team = world.team(&ada, "Studio").await;
        world.join(&team, &ada, &bob, "admin").await;
        world.join(&team, &ada, &cy, "member").await;
        world.join(&team, &bob, &dee, "viewer").await;
        world.team(&eve, "Rivals").await;
        let room = "studio-board".to_owned();
        let workflow = world.team_workflow(&team, &cy, &room).await;
        let invitation =
            world.invite(&team, &ada, json!({ "email": "zed@example.com", "role": "member" })).await;
        let key = Some(json!({ "key": "sk-studio-secret-4321" }));
        let path = format!("/api/teams/{team}/provider-keys/openai");
        world.expect("the owner", Method::PUT, &path, &ada, key, (StatusCode::OK, None)).await;
        Self { world, team, workflow, room, invitation, ada, bob, cy, dee, eve, mallory }
    }

    /// Every route scoped by the team, its invitation or its workflow: what an outsider tries.
    async fn every_route(&self) -> Vec<Probe> {
        let (team, wf, room, inv) = (&self.team, &self.workflow, &self.room, &self.invitation);
        let bob = self.world.user_id(&self.bob).await;
        let role = Some(json!({ "role": "owner" }));
        vec![
            probe(Method::GET, format!("/api/teams/{team}"), None),
            probe(Method::PATCH, format!("/api/teams/{team}"), Some(json!({ "name": "Taken" }))),
            probe(Method::DELETE, format!("/api/teams/{team}"), None),
            probe(Method::GET, format!("/api/teams/{team}/members"), None),
            probe(Method::PUT, format!("/api/teams/{team}/members/{bob}"), role),
            probe(Method::DELETE, format!("/api/teams/{team}/members/{bob}"), None),
            probe(Method::POST, format!("/api/teams/{team}/leave"), None),
            probe(Method::GET, format!("/api/teams/{team}/invitations"), None),
            probe(
                Method::POST,
                format!("/api/teams/{team}/invitations"),
                Some(json!({ "email": "spy@example.com", "role": "admin" })),
            ),
            probe(Method::DELETE, format!("/api/teams/{team}/invitations/{inv}"), None),
            probe(Method::GET, format!("/api/teams/{team}/audit"), None),
            probe(Method::GET, format!("/api/teams/{team}/audit?format=jsonl"), None),
            probe(Method::GET, format!("/api/teams/{team}/provider-keys"), None),
            probe(Method::GET, format!("/api/teams/{team}/catalog"), None),
            probe(Method::GET, format!("/api/teams/{team}/credits"), None),
            probe(Method::GET, format!("/api/teams/{team}/ledger"), None),
            probe(
                Method::PUT,
                format!("/api/teams/{team}/members/{bob}/spending-limit"),
                Some(json!({ "limit": 1 })),
            ),
            probe(
                Method::PUT,
                format!("/api/teams/{team}/provider-keys/openai"),
                Some(json!({ "key": "sk-spy-key-0000" })),
            ),
            probe(Method::DELETE, format!("/api/teams/{team}/provider-keys/openai"), None),
            probe(Method::DELETE, format!("/api/teams/{team}/provider-keys/replicate"), None),
            probe(Method::GET, format!("/api/queue?team={team}"), None),
            probe(Method::POST, format!("/api/teams/{team}/queue/pause"), None),
            probe(Method::POST, format!("/api/teams/{team}/queue/resume"), None),
            probe(Method::POST, format!("/api/invitations/{inv}/accept"), None),
            probe(Method::POST, format!("/api/invitations/{inv}/decline"), None),
            probe(Method::POST, "/api/workflows".into(), Some(json!({ "title": "in", "teamId": team }))),
            // The team's workflow, by id…
            probe(Method::GET, format!("/api/workflows/{wf}"), None),
            probe(Method::PATCH, format!("/api/workflows/{wf}"), Some(json!({ "public": true }))),
            probe(Method::DELETE, format!("/api/workflows/{wf}"), None),
            probe(
                Method::PUT,
                format!("/api/workflows/{wf}/collaborators/{bob}"),
                Some(json!({ "permission": "write" })),
            ),
            probe(Method::DELETE, format!("/api/workflows/{wf}/collaborators/{bob}"), None),
            probe(Method::GET, format!("/api/workflows/{wf}/invitations"), None),
            probe(
                Method::POST,
                format!("/api/workflows/{wf}/invitations"),
                Some(json!({ "email": "spy@example.com", "permission": "write" })),
            ),
            probe(Method::DELETE, format!("/api/workflows/{wf}/invitations/zed@example.com"), None),
            probe(Method::GET, format!("/api/workflows/{wf}/webhooks"), None),
            probe(
                Method::POST,
                format!("/api/workflows/{wf}/webhooks"),
                Some(json!({ "url": "https://example.com/hook", "events": ["run.finished"] })),
            ),
            probe(Method::GET, format!("/api/workflows/{wf}/events"), None),
            // Its app (App mode): publishing, reading and unpublishing it.
            probe(Method::GET, format!("/api/workflows/{wf}/app"), None),
            probe(
                Method::PUT,
                format!("/api/workflows/{wf}/app"),
                Some(
                    json!({ "title": "Mine", "outputs": [{ "node": "n", "output": "image", "label": "L" }] }),
                ),
            ),
            probe(Method::DELETE, format!("/api/workflows/{wf}/app"), None),
            // …and its room.
            probe(Method::GET, format!("/api/rooms/{room}/graph"), None),
            probe(Method::GET, format!("/api/rooms/{room}/state"), None),
            probe(Method::GET, format!("/api/rooms/{room}/versions"), None),
            probe(Method::GET, format!("/api/rooms/{room}/runs"), None),
            probe(Method::POST, format!("/api/rooms/{room}/runs"), Some(json!({}))),
            probe(Method::GET, format!("/api/rooms/{room}/batches"), None),
            probe(Method::POST, format!("/api/rooms/{room}/batches"), Some(json!({ "sets": [{}] }))),
            probe(
                Method::POST,
                format!("/api/rooms/{room}/edits"),
                Some(json!({ "ops": [{ "op": "addNode", "type": "blur", "position": { "x": 0, "y": 0 } }] })),
            ),
            probe(Method::POST, format!("/api/rooms/{room}/compose"), Some(json!({ "text": "a blur" }))),
        ]
    }
}

async fn another_teams_members_and_strangers_see_nothing_and_change_nothing(backend: Backend) {
    let scene = Scene::start(backend).await;
    let world = &scene.world;
    let probes = scene.every_route().await;
    assert!(probes.len() >= 25);
    for (who, token) in [("another team's owner", &scene.eve), ("a stranger", &scene.mallory)] {
        for probe in &probes {
            let (status, answer) =
                world.call(probe.method.clone(), &probe.path, token, probe.body.clone()).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{who}: {} {}: {answer}", probe.method, probe.path);
            let code = answer["code"].as_str().unwrap_or_default();
            assert!(
                code == "not_found" || code == "room_not_found",
                "{who}: {} {}: {answer}",
                probe.method,
                probe.path
            );
            // The answer names nothing of the team's beyond what the caller sent.
            let text = answer.to_string();
            assert!(!text.contains("Studio") && !text.contains("studio-board\" is"), "{who}: {text}");
            assert!(!text.contains("sk-studio") && !text.contains("4321"), "{who}: {text}");
        }
        // Nor do the lists show any of it.
        let (_, teams) = world.call(Method::GET, "/api/teams", token, None).await;
        assert!(!teams.to_string().contains(&scene.team), "{who}: {teams}");
        let (_, workflows) = world.call(Method::GET, "/api/workflows", token, None).await;
        assert!(!workflows.to_string().contains(&scene.workflow), "{who}: {workflows}");
        let (_, invitations) = world.call(Method::GET, "/api/me/invitations", token, None).await;
        assert!(!invitations.to_string().contains(&scene.invitation), "{who}: {invitations}");
        // The room's socket is closed to them.
        let url = world.story.api.room_url(&scene.room, token);
        match tokio_tungstenite::connect_async(url.as_str()).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                assert_eq!(response.status().as_u16(), 403, "{who}: the room's socket");
            }
            other => panic!("{who}: the room's socket was not refused: {:?}", other.map(|_| ())),
        }
    }
    // Nothing changed: the members, their roles, the invitation, the workflow.
    let members = world
        .expect(
            "owner",
            Method::GET,
            &format!("/api/teams/{}/members", scene.team),
            &scene.ada,
            None,
            (StatusCode::OK, None),
        )
        .await;
    let roles: Vec<&str> =
        members["members"].as_array().expect("members").iter().filter_map(|m| m["role"].as_str()).collect();
    assert_eq!(roles.len(), 4, "{members}");
    assert_eq!(roles.iter().filter(|r| **r == "owner").count(), 1, "{members}");
    let pending = world
        .expect(
            "owner",
            Method::GET,
            &format!("/api/teams/{}/invitations", scene.team),
            &scene.ada,
            None,
            (StatusCode::OK, None),
        )
        .await;
    assert_eq!(pending["invitations"][0]["id"], scene.invitation.as_str(), "{pending}");
    assert_eq!(pending["invitations"].as_array().map(Vec::len), Some(1), "{pending}");
    let workflow = world
        .expect(
            "owner",
            Method::GET,
            &format!("/api/workflows/{}", scene.workflow),
            &scene.ada,
            None,
            (StatusCode::OK, None),
        )
        .await;
    assert_eq!(workflow["public"], false, "{workflow}");
    assert_eq!(workflow["collaborators"].as_array().map(Vec::len), Some(0), "{workflow}");
    let keys = world
        .expect(
            "owner",
            Method::GET,
            &format!("/api/teams/{}/provider-keys", scene.team),
            &scene.ada,
            None,
            (StatusCode::OK, None),
        )
        .await;
    assert_eq!(keys["keys"].as_array().map(Vec::len), Some(1), "{keys}");
    assert_eq!(keys["keys"][0]["lastFour"], "4321", "the owner's key is still theirs: {keys}");
    scene.world.story.server.stop().await;
}

async fn members_see_their_team_but_their_role_bounds_what_they_do(backend: Backend) {
    let scene = Scene::start(backend).await;
    let world = &scene.world;
    let (team, wf, room) = (&scene.team, &scene.workflow, &scene.room);
    let ada = world.user_id(&scene.ada).await;
    let bob = world.user_id(&scene.bob).await;
    let cy = world.user_id(&scene.cy).await;
    let forbidden = (StatusCode::FORBIDDEN, Some("forbidden"));
    let edit = json!({ "ops": [{ "op": "addNode", "type": "blur", "position": { "x": 0, "y": 0 } }] });
    // Every member reads the team, its members and the team's workflow.
    for token in [&scene.ada, &scene.bob, &scene.cy, &scene.dee] {
        world
            .expect(
                "a member",
                Method::GET,
                &format!("/api/teams/{team}"),
                token,
                None,
                (StatusCode::OK, None),
            )
            .await;
        world
            .expect(
                "a member",
                Method::GET,
                &format!("/api/teams/{team}/members"),
                token,
                None,
                (StatusCode::OK, None),
            )
            .await;
        world
            .expect(
                "a member",
                Method::GET,
                &format!("/api/rooms/{room}/graph"),
                token,
                None,
                (StatusCode::OK, None),
            )
            .await;
    }
    let path = format!("/api/workflows/{wf}");
    for (token, expected, why) in [
        (&scene.ada, "admin", "a team owner"),
        (&scene.bob, "admin", "a team admin"),
        (&scene.cy, "write", "the creator is a member: their role decides"),
        (&scene.dee, "read", "a team viewer"),
    ] {
        let workflow = world.expect(why, Method::GET, &path, token, None, (StatusCode::OK, None)).await;
        assert_eq!(workflow["permission"], expected, "{why}: {workflow}");
    }
    // Listed for members, with that permission.
    let (_, listed) = world.call(Method::GET, "/api/workflows", &scene.dee, None).await;
    assert!(
        listed.as_array().expect("list").iter().any(|w| w["id"] == wf.as_str() && w["permission"] == "read"),
        "{listed}"
    );

    // The viewer: reads only.
    let dee = &scene.dee;
    for (method, path, body) in [
        (Method::POST, format!("/api/rooms/{room}/edits"), Some(edit.clone())),
        (Method::POST, format!("/api/rooms/{room}/runs"), Some(json!({}))),
        (Method::POST, format!("/api/rooms/{room}/batches"), Some(json!({ "sets": [{}] }))),
        (Method::PATCH, format!("/api/workflows/{wf}"), Some(json!({ "title": "mine" }))),
        (Method::DELETE, format!("/api/workflows/{wf}"), None),
        (Method::POST, "/api/workflows".into(), Some(json!({ "title": "x", "teamId": team }))),
        (
            Method::POST,
            format!("/api/teams/{team}/invitations"),
            Some(json!({ "userId": ada, "role": "viewer" })),
        ),
        (Method::GET, format!("/api/teams/{team}/invitations"), None),
        (Method::PUT, format!("/api/teams/{team}/members/{cy}"), Some(json!({ "role": "viewer" }))),
        (Method::DELETE, format!("/api/teams/{team}/members/{cy}"), None),
        (Method::GET, format!("/api/teams/{team}/audit"), None),
        (Method::GET, format!("/api/teams/{team}/provider-keys"), None),
        (
            Method::PUT,
            format!("/api/teams/{team}/provider-keys/fal"),
            Some(json!({ "key": "fal-viewer-1234" })),
        ),
        (Method::DELETE, format!("/api/teams/{team}/provider-keys/openai"), None),
        (Method::POST, format!("/api/teams/{team}/queue/pause"), None),
        (Method::POST, format!("/api/teams/{team}/queue/resume"), None),
    ] {
        world.expect("a viewer", method, &path, dee, body, forbidden).await;
    }
    // Provider keys are for owners and admins: a member sees the team, not its keys.
    for (method, path, body) in [
        (Method::GET, format!("/api/teams/{team}/provider-keys"), None),
        (
            Method::PUT,
            format!("/api/teams/{team}/provider-keys/fal"),
            Some(json!({ "key": "fal-member-1234" })),
        ),
        (Method::DELETE, format!("/api/teams/{team}/provider-keys/openai"), None),
        // Pausing the team's queue is for owners and admins too.
        (Method::POST, format!("/api/teams/{team}/queue/pause"), None),
    ] {
        world.expect("a member", method, &path, &scene.cy, body, forbidden).await;
    }
    // The member: edits and creates, does not manage.
    let cy_token = &scene.cy;
    world
        .expect(
            "a member",
            Method::POST,
            &format!("/api/rooms/{room}/edits"),
            cy_token,
            Some(edit.clone()),
            (StatusCode::OK, None),
        )
        .await;
    world
        .expect(
            "a member",
            Method::PATCH,
            &format!("/api/workflows/{wf}"),
            cy_token,
            Some(json!({ "public": true })),
            forbidden,
        )
        .await;
    world
        .expect("a member", Method::GET, &format!("/api/teams/{team}/audit"), cy_token, None, forbidden)
        .await;
    world
        .expect(
            "a member",
            Method::DELETE,
            &format!("/api/teams/{team}/members/{bob}"),
            cy_token,
            None,
            forbidden,
        )
        .await;
    // The admin: manages, but not owners.
    let bob_token = &scene.bob;
    world
        .expect(
            "an admin",
            Method::PUT,
            &format!("/api/teams/{team}/members/{ada}"),
            bob_token,
            Some(json!({ "role": "member" })),
            forbidden,
        )
        .await;
    world
        .expect(
            "an admin",
            Method::PUT,
            &format!("/api/teams/{team}/members/{cy}"),
            bob_token,
            Some(json!({ "role": "owner" })),
            forbidden,
        )
        .await;
    world
        .expect(
            "an admin",
            Method::DELETE,
            &format!("/api/teams/{team}/members/{ada}"),
            bob_token,
            None,
            forbidden,
        )
        .await;
    world
        .expect(
            "an admin",
            Method::PATCH,
            &format!("/api/workflows/{wf}"),
            bob_token,
            Some(json!({ "title": "Renamed" })),
            (StatusCode::OK, None),
        )
        .await;
    world
        .expect(
            "an admin",
            Method::GET,
            &format!("/api/teams/{team}/audit"),
            bob_token,
            None,
            (StatusCode::OK, None),
        )
        .await;
    // An unknown role is refused with its reason.
    world
        .expect(
            "an admin",
            Method::PUT,
            &format!("/api/teams/{team}/members/{cy}"),
            bob_token,
            Some(json!({ "role": "boss" })),
            (StatusCode::BAD_REQUEST, Some("bad_request")),
        )
        .await;
    scene.world.story.server.stop().await;
}
