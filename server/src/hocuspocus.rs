//! `GET /collab`: the endpoint for stock `@hocuspocus/provider` (4.x) clients.
//!
//! One socket carries several documents. Every frame names its document (see
//! `dojo_sync_protocol::hocuspocus`); each document is authenticated on its own with the
//! provider's token message, checked with the same rules as `/rooms` (`Auth::authenticate`,
//! then `room_permission`), and then joins its room as a peer of its own (own connection id,
//! own outbox), next to y-websocket clients of the same room. The room sends y-protocols
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

use std::collections::HashMap;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Extension;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message as WsMessage, WebSocket};
use axum::extract::{ConnectInfo, RawQuery, State, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use dojo_sync_protocol::hocuspocus::{
    self, AuthMessage, Frame, HocuspocusError, HocuspocusLimits, Message as HocusMessage, Scope,
};
use futures_util::stream::{BoxStream, SelectAll, SplitSink, SplitStream};
use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::Instrument;
use yrs::sync::Message as YMessage;

use crate::app::AppState;
use crate::auth::Caller;
use crate::close::{CloseReason, Disconnect};
use crate::metrics::{MessageKind, ReasonLabel};
use crate::outbox::{self, OutboxReceiver, Outgoing};
use crate::preauth::{PoolFull, Reservation, SocketSlot};
use crate::presence_limits::{PresenceLimits, check_states};
use crate::queue_budget::Reserved;
use crate::room::{ConnId, Peer, PeerProtocol, RoomCommand, RoomHandle};
use crate::room_name::RoomName;
use crate::user_connections::UserConnectionSlot;

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
/// How long a close frame may take to go out before the socket is simply dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

type Limiter = governor::DefaultDirectRateLimiter;

pub async fn collab_socket(
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
    if state.shutdown_token().is_cancelled() {
        let message = "server shutting down".to_owned();
        return crate::app::refuse(&state, StatusCode::SERVICE_UNAVAILABLE, "shutting_down", message);
    }
    // Browsers cannot set headers; the provider sends its token per document, in the protocol.
    // A token in the URL or header is the fallback for a document whose token message is empty.
    let fallback_token = crate::auth::bearer_token(&headers, query.as_deref());
    let client = crate::public_rate::client_key(peer.map(|Extension(ConnectInfo(peer))| peer.ip()));
    let slot = match initial_slot(&state, client, fallback_token.as_deref()).await {
        Ok(slot) => slot,
        Err(refused) => return refused,
    };
    let limits = state.limits().clone();
    let socket_id = state.next_conn_id();
    let span = tracing::info_span!("collab", socket = socket_id);
    let collab = Collab { state: state.clone(), slot, fallback_token };
    let connections = state.connections().clone();
    upgrade
        .max_message_size(limits.max_frame_bytes)
        .max_frame_size(limits.max_frame_bytes)
        .read_buffer_size(crate::app::READ_BUFFER_BYTES)
        .write_buffer_size(crate::app::WRITE_BUFFER_BYTES)
        .max_write_buffer_size(limits.max_frame_bytes.saturating_add(1024 * 1024))
        .on_failed_upgrade(|error| tracing::debug!(%error, "websocket upgrade failed"))
        .on_upgrade(move |socket| connections.track_future(collab.run(socket).instrument(span)))
}

/// The pool a new socket counts against. With a valid token in its upgrade request it is
/// signed in from the start and takes one of the `DOJO_MAX_CONNECTIONS` slots (so a full
/// pre-authentication pool cannot lock out providers that send their token this way); with an
/// invalid one it is refused (401) as `/rooms` would; without one it waits in the small
/// pre-authentication pool until a document authenticates.
async fn initial_slot(state: &AppState, client: String, token: Option<&str>) -> Result<SocketSlot, Response> {
    if token.is_some() {
        if let Err(error) = state.auth().authenticate(token).await {
            return Err(crate::app::refuse_with(state, "unauthorized", crate::api::ApiError::from(error)));
        }
        return match state.try_connection_permit() {
            Some(permit) => Ok(SocketSlot::Authenticated(permit)),
            None => {
                let message = "too many connections".to_owned();
                Err(crate::app::refuse(
                    state,
                    StatusCode::SERVICE_UNAVAILABLE,
                    "too_many_connections",
                    message,
                ))
            }
        };
    }
    match state.preauth().try_slot(client) {
        Ok(slot) => Ok(SocketSlot::Unauthenticated(slot)),
        Err(PoolFull::Server) => {
            let message = "too many unauthenticated connections".to_owned();
            Err(crate::app::refuse(
                state,
                StatusCode::SERVICE_UNAVAILABLE,
                "too_many_unauthenticated",
                message,
            ))
        }
        Err(PoolFull::Client) => {
            let message = "too many unauthenticated connections from this address".to_owned();
            let reason = "too_many_unauthenticated_per_ip";
            Err(crate::app::refuse(state, StatusCode::TOO_MANY_REQUESTS, reason, message))
        }
    }
}

struct Collab {
    state: AppState,
    /// Held for the socket's lifetime: one socket counts once against the connection limit,
    /// however many documents it carries (against the pre-authentication pool until one of
    /// them authenticates).
    slot: SocketSlot,
    fallback_token: Option<String>,
}

/// One document of the socket, by routing key (the name as the client sent it).
enum Document {
    /// Frames that came before the token message, in order, with the bytes they hold from
    /// the server-wide pre-authentication budget (their sizes).
    Pending {
        queue: Vec<(HocusMessage, Reservation)>,
    },
    Open(OpenDocument),
}

struct OpenDocument {
    conn: ConnId,
    room: RoomHandle,
    expires_at: Option<Instant>,
    user: Option<String>,
    /// The user's connection limit counts each open document (none when anonymous).
    _user_slot: Option<UserConnectionSlot>,
}

/// The reader's state: everything the socket's documents need.
struct Reader {
    state: AppState,
    slot: SocketSlot,
    /// When the socket closes unless a document has authenticated (pings do not move it).
    auth_deadline: Instant,
    fallback_token: Option<String>,
    documents: HashMap<String, Document>,
    queued_messages: usize,
    queued_bytes: usize,
    control: mpsc::Sender<Bytes>,
    outboxes: mpsc::Sender<BoxStream<'static, Outgoing>>,
    disconnect: Disconnect,
    stateless: Limiter,
    /// Set once a provider announces version 4 or later, which answers the bare Ping.
    app_ping: Arc<AtomicBool>,
}

impl Collab {
    async fn run(self, socket: WebSocket) {
        let metrics = self.state.metrics().clone();
        metrics.connections_open.inc();
        let disconnect = Disconnect::default();
        let (control, control_rx) = mpsc::channel(CONTROL_QUEUE);
        let (outboxes, outboxes_rx) = mpsc::channel(MAX_DOCUMENTS);
        let app_ping = Arc::new(AtomicBool::new(false));
        let rate = NonZeroU32::new(STATELESS_PER_SECOND).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(STATELESS_PER_SECOND * 2).unwrap_or(NonZeroU32::MIN);
        let mut reader = Reader {
            state: self.state.clone(),
            slot: self.slot,
            auth_deadline: Instant::now() + self.state.limits().auth_timeout(),
            fallback_token: self.fallback_token,
            documents: HashMap::new(),
            queued_messages: 0,
            queued_bytes: 0,
            control,
            outboxes,
            disconnect: disconnect.clone(),
            stateless: governor::RateLimiter::direct(governor::Quota::per_second(rate).allow_burst(burst)),
            app_ping: app_ping.clone(),
        };
        let (sink, stream) = socket.split();
        let writer = Writer { state: &self.state, disconnect: &disconnect, app_ping };
        tokio::join!(reader.read(stream), writer.write(sink, control_rx, outboxes_rx));

        // Rooms may already have removed a document (that may be why we close); telling them
        // again is harmless and covers every other way out.
        for document in reader.documents.into_values() {
            if let Document::Open(open) = document {
                let _ = open.room.send(RoomCommand::Leave { conn: open.conn }).await;
            }
        }
        let reason = disconnect.reason().cloned().unwrap_or(CloseReason::PeerGone);
        metrics.disconnects.get_or_create(&ReasonLabel { reason: reason.label() }).inc();
        metrics.connections_open.dec();
        tracing::debug!(code = reason.code(), reason = %reason.text(), "collab connection closed");
        drop(reader.slot);
    }
}

impl Reader {
    async fn read(&mut self, mut stream: SplitStream<WebSocket>) {
        let limits = self.state.limits().clone();
        let frame_limits =
            HocuspocusLimits { max_frame_bytes: limits.max_frame_bytes, ..HocuspocusLimits::default() };
        let idle = limits.idle_timeout();
        let shutdown = self.state.shutdown_token().clone();
        loop {
            let expires_at = self.earliest_expiry();
            let auth_deadline = (!self.slot.is_authenticated()).then_some(self.auth_deadline);
            let next = tokio::select! {
                () = self.disconnect.triggered() => return,
                () = shutdown.cancelled() => {
                    self.disconnect.trigger(CloseReason::ShuttingDown);
                    return;
                }
                () = sleep_until(expires_at) => {
                    self.disconnect.trigger(CloseReason::TokenExpired);
                    return;
                }
                () = sleep_until(auth_deadline) => {
                    tracing::info!("closing a collab connection that authenticated nothing in time");
                    self.disconnect.trigger(CloseReason::AuthTimeout);
                    return;
                }
                next = tokio::time::timeout(idle, stream.next()) => next,
            };
            let frame = match next {
                Err(_) => Err(CloseReason::IdleTimeout),
                Ok(None) | Ok(Some(Ok(WsMessage::Close(_)))) => Err(CloseReason::PeerGone),
                Ok(Some(Err(error))) => Err(crate::connection::read_error_reason(error)),
                Ok(Some(Ok(WsMessage::Text(_)))) => Err(CloseReason::TextFrame),
                Ok(Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_)))) => continue,
                Ok(Some(Ok(WsMessage::Binary(frame)))) => Ok(frame),
            };
            let outcome = match frame {
                Ok(frame) => match hocuspocus::decode_frame(&frame, &frame_limits) {
                    Ok(decoded) => self.on_frame(decoded, frame.len()).await,
                    Err(error) => {
                        tracing::info!(%error, "closing a collab connection that sent an invalid frame");
                        Err(decode_error_reason(&error))
                    }
                },
                Err(reason) => Err(reason),
            };
            if let Err(reason) = outcome {
                self.disconnect.trigger(reason);
                return;
            }
        }
    }

    fn earliest_expiry(&self) -> Option<Instant> {
        self.documents
            .values()
            .filter_map(|document| match document {
                Document::Open(open) => open.expires_at,
                Document::Pending { .. } => None,
            })
            .min()
    }

    async fn on_frame(&mut self, frame: Frame, size: usize) -> Result<(), CloseReason> {
        let (key, message) = match frame {
            Frame::Ping => return self.control(Bytes::from_static(&[hocuspocus::MSG_PONG])),
            Frame::Pong => return Ok(()),
            Frame::Document { name, message } => (name, message),
        };
        match self.documents.get(&key) {
            Some(Document::Open(_)) => self.dispatch(&key, message, size).await,
            _ => match message {
                HocusMessage::Auth(AuthMessage::Token { token, provider_version }) => {
                    self.authenticate(key, token, provider_version).await
                }
                // A provider that gave up before authenticating: forget what it queued.
                HocusMessage::Close { .. } => {
                    self.forget_pending(&key);
                    Ok(())
                }
                message => self.queue(key, message, size),
            },
        }
    }

    fn queue(&mut self, key: String, message: HocusMessage, size: usize) -> Result<(), CloseReason> {
        let pending_documents =
            self.documents.values().filter(|document| matches!(document, Document::Pending { .. })).count();
        if !self.documents.contains_key(&key) && pending_documents >= MAX_PENDING_DOCUMENTS {
            return Err(CloseReason::Reset(format!(
                "more than {MAX_PENDING_DOCUMENTS} documents waiting for authentication"
            )));
        }
        let max_bytes = self.state.limits().preauth_socket_bytes;
        if self.queued_messages + 1 > MAX_QUEUED_MESSAGES || self.queued_bytes + size > max_bytes {
            return Err(CloseReason::Reset(format!(
                "more than {MAX_QUEUED_MESSAGES} messages or {max_bytes} bytes before authentication"
            )));
        }
        let Some(reservation) = self.state.preauth().budget().try_reserve(size) else {
            return Err(CloseReason::ServerBusy("too many bytes queued before authentication".into()));
        };
        self.queued_messages += 1;
        self.queued_bytes += size;
        match self.documents.entry(key).or_insert_with(|| Document::Pending { queue: Vec::new() }) {
            Document::Pending { queue } => queue.push((message, reservation)),
            Document::Open(_) => {} // not reached: open documents are dispatched, not queued
        }
        Ok(())
    }

    /// Removes a pending document, returning its queue.
    fn forget_pending(&mut self, key: &str) -> Vec<(HocusMessage, Reservation)> {
        match self.documents.remove(key) {
            Some(Document::Pending { queue }) => {
                self.queued_messages -= queue.len();
                self.queued_bytes -= queue.iter().map(|(_, reserved)| reserved.bytes()).sum::<usize>();
                queue
            }
            Some(open @ Document::Open(_)) => {
                self.documents.insert(key.to_owned(), open);
                Vec::new()
            }
            None => Vec::new(),
        }
    }

    /// Checks a document's token as `/rooms` checks a connection's, then opens the document:
    /// Authenticated, join the room, and handle what was queued, in order.
    async fn authenticate(
        &mut self,
        key: String,
        token: String,
        provider_version: Option<String>,
    ) -> Result<(), CloseReason> {
        let queue = self.forget_pending(&key);
        if provider_version.as_deref().and_then(major_version).is_some_and(|major| major >= 4) {
            self.app_ping.store(true, Ordering::Relaxed);
        }
        let (caller, name, scope, user_slot) = match self.check(&key, token).await {
            Ok(granted) => granted,
            Err(reason) => {
                tracing::info!(document = %key, %reason, "refused a collab document");
                self.state.metrics().rejected.get_or_create(&ReasonLabel { reason: "collab_denied" }).inc();
                let denied = HocusMessage::Auth(AuthMessage::PermissionDenied { reason });
                return self.control(Bytes::from(hocuspocus::encode(&key, &denied)));
            }
        };
        self.promote()?;
        let authenticated = HocusMessage::Auth(AuthMessage::Authenticated { scope: scope.as_str().into() });
        self.control(Bytes::from(hocuspocus::encode(&key, &authenticated)))?;

        let limits = self.state.limits().clone();
        let conn = self.state.next_conn_id();
        let (outbox, inbox) = outbox::budgeted_channel(
            self.state.outbound(),
            conn,
            &self.disconnect,
            limits.outbound_queue_frames,
            limits.outbound_queue_bytes,
        );
        // The socket's own `Disconnect`: whatever a room closes one document for closes the
        // socket, and the provider resyncs all of them on reconnect.
        let peer = Peer {
            conn,
            outbox,
            disconnect: self.disconnect.clone(),
            can_write: scope == Scope::ReadWrite,
            protocol: PeerProtocol::Hocuspocus,
            rules: crate::executor_maps::write_rules(&caller, self.state.config()),
        };
        let room = self.join(&name, peer).await?;
        let stream = prefixed(inbox, hocuspocus::name_prefix(&key));
        if self.outboxes.try_send(stream).is_err() {
            // Bounded by MAX_DOCUMENTS like the documents themselves; full only if the writer
            // is gone, i.e. the socket is closing.
            return Err(CloseReason::PeerGone);
        }
        let expires_at =
            caller.identity().map(|identity| Instant::now() + Duration::from_secs(identity.seconds_left()));
        let user = caller.user().map(|user| user.id.clone());
        tracing::debug!(document = %key, conn, scope = scope.as_str(), "collab document open");
        let open = OpenDocument { conn, room, expires_at, user, _user_slot: user_slot };
        self.documents.insert(key.clone(), Document::Open(open));
        for (message, reserved) in queue {
            if !matches!(self.documents.get(&key), Some(Document::Open(_))) {
                break; // a queued Close closed it again
            }
            let size = reserved.bytes();
            drop(reserved);
            self.dispatch(&key, message, size).await?;
        }
        Ok(())
    }

    /// On the socket's first authenticated document: from the pre-authentication pool to one
    /// of the `DOJO_MAX_CONNECTIONS` slots, or closed if none is free.
    fn promote(&mut self) -> Result<(), CloseReason> {
        if self.slot.is_authenticated() {
            return Ok(());
        }
        let Some(permit) = self.state.try_connection_permit() else {
            self.state
                .metrics()
                .rejected
                .get_or_create(&ReasonLabel { reason: "too_many_connections" })
                .inc();
            return Err(CloseReason::ServerBusy("too many connections".into()));
        };
        // The pre-authentication slot is given back here, as the old value drops.
        self.slot = SocketSlot::Authenticated(permit);
        Ok(())
    }

    /// The caller, room, scope and connection slot for a token, or the reason the document is
    /// refused.
    async fn check(
        &self,
        key: &str,
        token: String,
    ) -> Result<(Caller, RoomName, Scope, Option<UserConnectionSlot>), String> {
        let open = self.documents.values().filter(|document| matches!(document, Document::Open(_))).count();
        if open >= MAX_DOCUMENTS {
            return Err(format!("too many documents on one connection (at most {MAX_DOCUMENTS})"));
        }
        let name = RoomName::parse(hocuspocus::document_name(key))
            .map_err(|error| format!("invalid document name: {error}"))?;
        let token = if token.is_empty() { self.fallback_token.clone() } else { Some(token) };
        let auth = self.state.auth();
        let caller = auth.authenticate(token.as_deref()).await.map_err(|error| error.to_string())?;
        let permission =
            auth.room_permission(&caller, name.as_str()).await.map_err(|error| error.to_string())?;
        // Opened here, so that a user past their share of rooms is told so for this document
        // rather than losing the whole socket when it joins.
        self.state
            .rooms()
            .get_or_open_for(&name, caller.user().map(|user| user.id.as_str()))
            .map_err(|error| error.to_string())?;
        let scope = if permission.can_write() { Scope::ReadWrite } else { Scope::ReadOnly };
        let slot = self.state.user_connection_slot(&caller).map_err(|error| error.to_string())?;
        Ok((caller, name, scope, slot))
    }

    /// Joins the room. A room that stopped between lookup and join (it failed to store, say)
    /// is looked up again: the registry then starts a fresh one.
    async fn join(&self, name: &RoomName, mut peer: Peer) -> Result<RoomHandle, CloseReason> {
        for _ in 0..3 {
            let room =
                self.state.rooms().get_or_open(name).map_err(|e| CloseReason::Internal(e.to_string()))?;
            match room.send(RoomCommand::Join(peer)).await {
                Ok(()) => return Ok(room),
                Err(RoomCommand::Join(returned)) => peer = returned,
                Err(_) => break, // only a Join was sent
            }
        }
        Err(CloseReason::Internal("room unavailable".into()))
    }

    /// Handles one message of an open document.
    async fn dispatch(&mut self, key: &str, message: HocusMessage, size: usize) -> Result<(), CloseReason> {
        let Some(Document::Open(open)) = self.documents.get(key) else { return Ok(()) };
        let (conn, room, user) = (open.conn, open.room.clone(), open.user.clone());
        let metrics = self.state.metrics().clone();
        let command = match message {
            HocusMessage::Sync(sync) | HocusMessage::SyncReply(sync) => {
                let message = YMessage::Sync(sync);
                metrics.record_in(MessageKind::of(&message), size);
                let Some(reserved) = self.reserve(&room, size).await else { return Ok(()) };
                RoomCommand::Messages { conn, messages: vec![message], reserved }
            }
            HocusMessage::Awareness(update) => {
                metrics.record_in(MessageKind::awareness, size);
                // Refused before it waits in the room's queue; the room checks the total.
                if let Err(error) = check_states(&update, &PresenceLimits::from(&**self.state.limits())) {
                    metrics.presence_refused.inc();
                    tracing::info!(%error, "closing a collab connection that sent oversized presence");
                    return Err(CloseReason::Policy(error.to_string()));
                }
                let Some(reserved) = self.reserve(&room, size).await else { return Ok(()) };
                RoomCommand::Messages { conn, messages: vec![YMessage::Awareness(update)], reserved }
            }
            HocusMessage::QueryAwareness => {
                metrics.record_in(MessageKind::query_awareness, size);
                RoomCommand::Messages {
                    conn,
                    messages: vec![YMessage::AwarenessQuery],
                    reserved: Reserved::default(),
                }
            }
            HocusMessage::Stateless(payload) => {
                if payload.len() > MAX_STATELESS_BYTES {
                    return Err(CloseReason::TooBig);
                }
                metrics.record_in(MessageKind::stateless, size);
                if self.stateless.check().is_err() {
                    metrics.rate_limited.get_or_create(&ReasonLabel { reason: "stateless" }).inc();
                    tokio::select! {
                        () = self.stateless.until_ready() => {}
                        () = self.disconnect.triggered() => return Ok(()),
                    }
                }
                RoomCommand::Stateless { conn, body: Bytes::from(hocuspocus::stateless_body(&payload)) }
            }
            HocusMessage::Close { .. } => {
                self.documents.remove(key);
                tracing::debug!(document = %key, conn, "collab document closed by the provider");
                return self.send(&room, RoomCommand::Leave { conn }).await;
            }
            HocusMessage::BroadcastStateless(_) => {
                return Err(CloseReason::Reset("BroadcastStateless is server-internal".into()));
            }
            // A token sent again for an open document (the Hocuspocus server's onTokenSync);
            // the permission stays what it was, and the connection still ends at the first
            // token's expiry. Nothing else a client may send needs an answer.
            HocusMessage::Auth(_) | HocusMessage::SyncStatus { .. } => return Ok(()),
        };
        self.throttle(user.as_deref()).await;
        self.send(&room, command).await
    }

    /// Waits until a frame of `size` bytes fits in the room's queue budget; `None` when the
    /// socket closed meanwhile.
    async fn reserve(&self, room: &RoomHandle, size: usize) -> Option<Reserved> {
        tokio::select! {
            reserved = room.reserve(size) => Some(reserved),
            () = self.disconnect.triggered() => None,
        }
    }

    /// The signed-in user's frame budget, shared with their `/rooms` connections: over it,
    /// frames are read later rather than dropped.
    async fn throttle(&self, user: Option<&str>) {
        let Some(user) = user else { return };
        let limiter = self.state.ws_limiter();
        if let Err(not_until) = limiter.check_key(&user.to_owned()) {
            self.state.metrics().rate_limited.get_or_create(&ReasonLabel { reason: "websocket" }).inc();
            let wait = not_until.wait_time_from(governor::clock::Clock::now(limiter.clock()));
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = self.disconnect.triggered() => {}
            }
        }
    }

    async fn send(&self, room: &RoomHandle, command: RoomCommand) -> Result<(), CloseReason> {
        tokio::select! {
            sent = room.send(command) => sent.map_err(|_| CloseReason::Internal("room unavailable".into())),
            // Someone else closed us while we waited for the room; the reason is already set.
            () = self.disconnect.triggered() => Ok(()),
        }
    }

    /// Queues a frame the socket itself answers with.
    fn control(&self, frame: Bytes) -> Result<(), CloseReason> {
        self.control.try_send(frame).map_err(|error| match error {
            mpsc::error::TrySendError::Full(_) => CloseReason::SlowConsumer,
            mpsc::error::TrySendError::Closed(_) => CloseReason::PeerGone,
        })
    }
}

/// A document's outbox as a stream of Hocuspocus frames: its name, then the room's frame. The
/// prefixed copy counts against the outbound budget in place of the room's frame.
fn prefixed(inbox: OutboxReceiver, prefix: Vec<u8>) -> BoxStream<'static, Outgoing> {
    futures_util::stream::unfold((inbox, prefix), |(mut inbox, prefix)| async move {
        let mut outgoing = inbox.recv().await?;
        let frame = outgoing.frame();
        let mut out = Vec::with_capacity(prefix.len() + frame.len());
        out.extend_from_slice(&prefix);
        out.extend_from_slice(frame);
        outgoing.replace_frame(inbox.budget().count(Bytes::from(out)));
        Some((outgoing, (inbox, prefix)))
    })
    .boxed()
}

struct Writer<'a> {
    state: &'a AppState,
    disconnect: &'a Disconnect,
    app_ping: Arc<AtomicBool>,
}

impl Writer<'_> {
    async fn write(
        &self,
        mut sink: SplitSink<WebSocket, WsMessage>,
        mut control: mpsc::Receiver<Bytes>,
        mut outboxes: mpsc::Receiver<BoxStream<'static, Outgoing>>,
    ) {
        let limits = self.state.limits();
        let shutdown = self.state.shutdown_token();
        let mut documents: SelectAll<BoxStream<'static, Outgoing>> = SelectAll::new();
        // Frames handed to the socket but not flushed yet: they still count against the
        // outbound budgets (tungstenite holds a copy) until the flush returns.
        let mut writing = Vec::new();
        let mut ping = tokio::time::interval(limits.ping_interval());
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ping.tick().await; // the first tick is immediate
        let mut app_ping_due = false;
        loop {
            writing.clear();
            let message = tokio::select! {
                biased;
                () = self.disconnect.triggered() => break,
                () = shutdown.cancelled() => {
                    self.disconnect.trigger(CloseReason::ShuttingDown);
                    break;
                }
                // Control frames first: a document's Authenticated goes out before anything its
                // room sends (the room hears of the document only after it is queued).
                Some(frame) = control.recv() => WsMessage::Binary(frame),
                Some(stream) = outboxes.recv() => {
                    documents.push(stream);
                    continue;
                }
                Some(frame) = documents.next(), if !documents.is_empty() => {
                    let message = WsMessage::Binary(frame.frame().clone());
                    writing.push(frame);
                    message
                }
                () = async {}, if app_ping_due => {
                    app_ping_due = false;
                    WsMessage::Binary(Bytes::from_static(&[hocuspocus::MSG_PING]))
                }
                _ = ping.tick() => {
                    // The provider counts only messages as signs of life (30 s), not WebSocket
                    // pings; a 4.x provider answers the bare Ping, which keeps a document
                    // without presence connected. Older providers would misread it.
                    app_ping_due = self.app_ping.load(Ordering::Relaxed);
                    WsMessage::Ping(Bytes::new())
                }
            };
            // A client that stops reading blocks this send; a room notices its full queue and
            // fires `disconnect`, which must win over the stuck send.
            tokio::select! {
                sent = send_burst(&mut sink, message, &mut control, &mut documents, &mut writing) => if sent.is_err() {
                    self.disconnect.trigger(CloseReason::PeerGone);
                    break;
                },
                () = self.disconnect.triggered() => break,
            }
        }
        // What was queued for this socket is freed now, not after the close handshake.
        drop(writing);
        drop(documents);
        drop(outboxes);
        let reason = self.disconnect.reason().cloned().unwrap_or(CloseReason::PeerGone);
        if reason != CloseReason::PeerGone {
            let frame = CloseFrame { code: reason.code(), reason: reason.text().into() };
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, sink.send(WsMessage::Close(Some(frame)))).await;
        }
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, sink.close()).await;
    }
}

/// Frames written with one flush at most (see `connection::send_batch`).
const MAX_FRAMES_PER_FLUSH: usize = 64;

/// Sends `first` and the frames already waiting (control frames first, as in the writer's
/// loop), then flushes once.
async fn send_burst(
    sink: &mut SplitSink<WebSocket, WsMessage>,
    first: WsMessage,
    control: &mut mpsc::Receiver<Bytes>,
    documents: &mut SelectAll<BoxStream<'static, Outgoing>>,
    writing: &mut Vec<Outgoing>,
) -> Result<(), axum::Error> {
    let more = matches!(first, WsMessage::Binary(_));
    sink.feed(first).await?;
    if more {
        for _ in 1..MAX_FRAMES_PER_FLUSH {
            let next = match control.try_recv() {
                Ok(frame) => Some(frame),
                Err(_) => documents.next().now_or_never().flatten().map(|outgoing| {
                    let frame = outgoing.frame().clone();
                    writing.push(outgoing);
                    frame
                }),
            };
            let Some(frame) = next else { break };
            sink.feed(WsMessage::Binary(frame)).await?;
        }
    }
    sink.flush().await
}

fn decode_error_reason(error: &HocuspocusError) -> CloseReason {
    if error.is_too_large() { CloseReason::TooBig } else { CloseReason::Reset(error.to_string()) }
}

/// `"4.8.0"` → 4.
fn major_version(version: &str) -> Option<u64> {
    version.split('.').next()?.trim_start_matches('v').parse().ok()
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_versions_parse_to_their_major() {
        assert_eq!(major_version("4.8.0"), Some(4));
        assert_eq!(major_version("v3.1"), Some(3));
        assert_eq!(major_version("unknown"), None);
        assert_eq!(major_version(""), None);
    }

    #[test]
    fn invalid_frames_close_with_codes_hocuspocus_clients_know() {
        assert_eq!(decode_error_reason(&HocuspocusError::TooLarge { size: 2, limit: 1 }).code(), 1009);
        assert_eq!(decode_error_reason(&HocuspocusError::Truncated).code(), 4205);
    }
}
