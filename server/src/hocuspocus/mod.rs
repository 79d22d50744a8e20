//! `GET /collab`: the endpoint for stock `@hocuspocus/provider` (4.x) clients.
//!
//! One socket carries several documents. Every frame names its document (see
//! `dojo_sync_protocol::hocuspocus`); each document is authenticated on its own with the
//! provider's token message, checked with the same rules as `/rooms` (`Auth::authenticate`,
//! then `room_permission`), and then joins its room as a peer of its own (own connection id,
//! own send queue), next to y-websocket clients of the same room. The room sends y-protocols
//! frames; the writer puts the document's name in front of each, which makes them Hocuspocus
//! frames (sync, awareness and the room's SyncStatus / stateless bodies share the layout).
//!
//! Frames for a document that arrive before its token message are queued, bounded per socket
//! (documents, messages, and `DOJO_PREAUTH_SOCKET_BYTES`) and server-wide
//! (`DOJO_PREAUTH_TOTAL_BYTES`), and handled in order once it is authenticated. The token is
//! checked inline: frames behind it wait (TCP back-pressure), so nothing else buffers during a
//! slow check. A socket counts against a pool of its own until its first document
//! authenticates, and is closed (4408) if none has by `DOJO_AUTH_TIMEOUT_SECS` after the
//! upgrade (see `crate::preauth`).
//!
//! Failures close the whole socket, never a room or another client: a malformed frame (4205),
//! a frame over the size limit (1009), an expired token (4401), or whatever the room closes one
//! of its documents for (slow reader 1013, invalid update 1007…). The provider reconnects and
//! resyncs every document of the socket. A refused token is not a failure of the socket: the
//! document gets PermissionDenied and the others carry on, as with the Hocuspocus server.

mod frames;
mod reader;

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use axum::Extension;
use axum::extract::ws::WebSocket;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{ConnectInfo, RawQuery, State, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use futures_util::stream::SelectAll;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::Instrument;

use crate::admission::{self, Refusal};
use crate::close::{CloseReason, Disconnect};
use crate::metrics::ReasonLabel;
use crate::preauth::SocketSlot;
use crate::room::RoomCommand;
use crate::state::AppState;
use frames::CollabFrames;
use reader::{Document, Reader};

/// Documents whose token message has not arrived yet, per socket (Hocuspocus'
/// `maxPendingDocuments`).
pub const MAX_PENDING_DOCUMENTS: usize = 100;
/// Frames queued before their document's token message, per socket (Hocuspocus'
/// `maxUnauthenticatedQueueMessages` is 1000; a provider queues a step 1 and an awareness
/// update per document, and each queued frame costs bookkeeping beyond its bytes). Their bytes
/// are bounded by `Limits::preauth_socket_bytes`.
pub const MAX_QUEUED_MESSAGES: usize = 256;
/// Open documents per socket; one more is refused with PermissionDenied.
pub const MAX_DOCUMENTS: usize = 256;
/// Largest stateless payload; a bigger one closes the socket with 1009.
pub const MAX_STATELESS_BYTES: usize = 64 * 1024;
/// Stateless messages per second one socket may send (a burst of twice that); beyond it they
/// are read later, so TCP back-pressure slows the client down and nothing is dropped.
pub const STATELESS_PER_SECOND: u32 = 50;
/// Frames the socket answers itself (auth replies, pongs) waiting to be written; a client
/// that lets this fill is not reading, and is disconnected like any slow reader.
const CONTROL_QUEUE: usize = 256;
type Limiter = governor::DefaultDirectRateLimiter;

pub(crate) async fn collab_socket(
    State(state): State<AppState>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(rejection) => return rejection.into_response(),
    };
    // Browsers cannot set headers; the provider sends its token per document, in the protocol.
    // A token in the URL or header is the fallback for a document whose token message is empty.
    let fallback_token = crate::caller::bearer_token(&headers, query.as_deref());
    let client = crate::public_rate::client_key(peer.map(|Extension(ConnectInfo(peer))| peer.ip()));
    let slot = match initial_slot(&state, client, fallback_token.as_deref()).await {
        Ok(slot) => slot,
        Err(refusal) => return refusal.respond(state.metrics()),
    };
    let socket_id = state.next_conn_id();
    let span = tracing::info_span!("collab", socket = socket_id);
    let collab = Collab { state: state.clone(), slot, fallback_token };
    let connections = state.connections().clone();
    admission::configure_upgrade(upgrade, state.limits())
        .on_upgrade(move |socket| connections.track_future(collab.run(socket).instrument(span)))
}

/// The pool a new socket counts against. With a valid token in its upgrade request it is
/// signed in from the start and takes one of the `DOJO_MAX_CONNECTIONS` slots (so a full
/// pre-authentication pool cannot lock out providers that send their token this way); with an
/// invalid one it is refused (401) as `/rooms` would; without one it waits in the small
/// pre-authentication pool until a document authenticates.
async fn initial_slot(state: &AppState, client: String, token: Option<&str>) -> Result<SocketSlot, Refusal> {
    admission::accepting(state)?;
    if token.is_some() {
        admission::authenticate(state, token).await?;
        return admission::connection_permit(state).map(SocketSlot::Authenticated);
    }
    admission::preauth_slot(state, client).map(SocketSlot::Unauthenticated)
}

struct Collab {
    state: AppState,
    /// Held for the socket's lifetime: one socket counts once against the connection limit,
    /// however many documents it carries (against the pre-authentication pool until one of
    /// them authenticates).
    slot: SocketSlot,
    fallback_token: Option<String>,
}

impl Collab {
    async fn run(self, socket: WebSocket) {
        let metrics = self.state.metrics().clone();
        metrics.connections_open.inc();
        let disconnect = Disconnect::default();
        let (control, control_rx) = mpsc::channel(CONTROL_QUEUE);
        let (document_queues, document_queues_rx) = mpsc::channel(MAX_DOCUMENTS);
        let app_ping = Arc::new(AtomicBool::new(false));
        let rate = NonZeroU32::new(STATELESS_PER_SECOND).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(STATELESS_PER_SECOND * 2).unwrap_or(NonZeroU32::MIN);
        let mut reader = Reader {
            state: self.state.clone(),
            slot: self.slot,
            auth_deadline: Instant::now() + self.state.limits().auth_timeout(),
            fallback_token: self.fallback_token,
            documents: Default::default(),
            queued_messages: 0,
            queued_bytes: 0,
            control,
            document_queues,
            disconnect: disconnect.clone(),
            stateless: governor::RateLimiter::direct(governor::Quota::per_second(rate).allow_burst(burst)),
            app_ping: app_ping.clone(),
        };
        let (sink, stream) = socket.split();
        let frames = CollabFrames {
            control: control_rx,
            document_queues: document_queues_rx,
            documents: SelectAll::new(),
            app_ping,
        };
        let shutdown = self.state.shutdown_token();
        let writer = crate::socket_writer::write(
            sink,
            frames,
            &disconnect,
            shutdown,
            self.state.limits().ping_interval(),
        );
        tokio::join!(reader.read(stream), writer);

        // Rooms may already have removed a document (that may be why we close); telling them
        // again is harmless and covers every other way out.
        for document in reader.documents.into_values() {
            if let Document::Open(open) = document {
                let _ = open.admitted.room.send(RoomCommand::Leave { conn: open.conn }).await;
            }
        }
        let reason = disconnect.reason().cloned().unwrap_or(CloseReason::PeerGone);
        metrics.disconnects.get_or_create(&ReasonLabel { reason: reason.label() }).inc();
        metrics.connections_open.dec();
        tracing::debug!(code = reason.code(), reason = %reason.text(), "collab connection closed");
        drop(reader.slot);
    }
}
