//! `GET /rooms/{room}`: the endpoint for y-websocket clients, one room per socket.
//!
//! Admitted before the upgrade (`admission.rs`): an unauthenticated or refused client costs no
//! socket and no room. The socket then runs as a [`Connection`].

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{Path, RawQuery, State, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use tracing::Instrument;

use crate::admission;
use crate::connection::Connection;
use crate::state::AppState;

pub(crate) async fn room_socket(
    State(state): State<AppState>,
    Path(room): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let token = crate::caller::bearer_token(&headers, query.as_deref());
    let authorized = match admission::authorize(&state, &room, token.as_deref()).await {
        Ok(authorized) => authorized,
        Err(refusal) => return refusal.respond(state.metrics()),
    };
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(rejection) => return rejection.into_response(),
    };
    let admitted = admission::accepting(&state)
        .and_then(|()| admission::connection_permit(&state))
        .and_then(|permit| Ok((permit, authorized.admit(&state)?)));
    let (permit, admitted) = match admitted {
        Ok(admitted) => admitted,
        Err(refusal) => return refusal.respond(state.metrics()),
    };
    let id = state.next_conn_id();
    let span = tracing::info_span!(
        "connection",
        room = %admitted.name,
        conn = id,
        user = %admitted.logged_user(),
        permission = %admitted.permission,
    );
    let connection = Box::new(Connection::new(&state, id, admitted, permit));
    let connections = state.connections().clone();
    admission::configure_upgrade(upgrade, state.limits())
        .on_upgrade(move |socket| connections.track_future(connection.run(socket).instrument(span)))
}
