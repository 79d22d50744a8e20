//! A `/collab` socket's reader: its documents (waiting for their token message, or open) and
//! the messages it hands to their rooms.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::ws::WebSocket;
use bytes::Bytes;
use dojo_sync_protocol::hocuspocus::{
    self, AuthMessage, Frame, HocuspocusError, HocuspocusLimits, Message as HocusMessage, Scope,
};
use futures_util::stream::{BoxStream, SplitStream};
use tokio::sync::mpsc;
use tokio::time::Instant;
use yrs::sync::Message as YMessage;

use super::{Limiter, MAX_DOCUMENTS, MAX_PENDING_DOCUMENTS, MAX_QUEUED_MESSAGES, MAX_STATELESS_BYTES};
use crate::admission::{self, Admitted, Refusal};
use crate::close::{CloseReason, Disconnect};
use crate::metrics::{MessageKind, ReasonLabel};
use crate::preauth::{Reservation, SocketSlot};
use crate::presence_limits::{PresenceLimits, check_states};
use crate::queue_budget::Reserved;
use crate::room::{ConnId, Peer, PeerProtocol, RoomCommand, RoomHandle};
use crate::send_queue::{self, Outgoing};
use crate::socket_reader::{Deadlines, next_frame};
use crate::state::AppState;

/// One document of the socket, by routing key (the name as the client sent it).
pub(super) enum Document {
    /// Frames that came before the token message, in order, with the bytes they hold from
    /// the server-wide pre-authentication budget (their sizes).
    Pending {
        queue: Vec<(HocusMessage, Reservation)>,
    },
    Open(OpenDocument),
}

pub(super) struct OpenDocument {
    pub conn: ConnId,
    /// Its room (the one it joined), and its terms: token expiry, the user's frame budget, and
    /// the user's connection slot (the user's connection limit counts each open document).
    pub admitted: Admitted,
}

/// The reader's state: everything the socket's documents need.
pub(super) struct Reader {
    pub state: AppState,
    pub slot: SocketSlot,
    /// When the socket closes unless a document has authenticated (pings do not move it).
    pub auth_deadline: Instant,
    pub fallback_token: Option<String>,
    pub documents: HashMap<String, Document>,
    pub queued_messages: usize,
    pub queued_bytes: usize,
    pub control: mpsc::Sender<Bytes>,
    pub document_queues: mpsc::Sender<BoxStream<'static, Outgoing>>,
    pub disconnect: Disconnect,
    pub stateless: Limiter,
    /// Set once a provider announces version 4 or later, which answers the bare Ping.
    pub app_ping: Arc<AtomicBool>,
}

impl Reader {
    pub(super) async fn read(&mut self, mut stream: SplitStream<WebSocket>) {
        let limits = self.state.limits().clone();
        let frame_limits =
            HocuspocusLimits { max_frame_bytes: limits.max_frame_bytes, ..HocuspocusLimits::default() };
        let shutdown = self.state.shutdown_token().clone();
        loop {
            let deadlines = Deadlines {
                idle: limits.idle_timeout(),
                token_expires: self.earliest_expiry(),
                authenticate_by: (!self.slot.is_authenticated()).then_some(self.auth_deadline),
            };
            let Some(frame) = next_frame(&mut stream, &self.disconnect, &shutdown, &deadlines).await else {
                return;
            };
            let outcome = match hocuspocus::decode_frame(&frame, &frame_limits) {
                Ok(decoded) => self.on_frame(decoded, frame.len()).await,
                Err(error) => {
                    tracing::info!(%error, "closing a collab connection that sent an invalid frame");
                    Err(decode_error_reason(&error))
                }
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
                Document::Open(open) => open.admitted.expires_at,
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
        let admitted = match self.check(&key, token).await {
            Ok(admitted) => admitted,
            Err(reason) => {
                tracing::info!(document = %key, %reason, "refused a collab document");
                admission::count(self.state.metrics(), "collab_denied");
                let denied = HocusMessage::Auth(AuthMessage::PermissionDenied { reason });
                return self.control(Bytes::from(hocuspocus::encode(&key, &denied)));
            }
        };
        let scope = if admitted.can_write() { Scope::ReadWrite } else { Scope::ReadOnly };
        self.promote()?;
        let authenticated = HocusMessage::Auth(AuthMessage::Authenticated { scope: scope.as_str().into() });
        self.control(Bytes::from(hocuspocus::encode(&key, &authenticated)))?;

        let limits = self.state.limits().clone();
        let conn = self.state.next_conn_id();
        let (sender, inbox) = send_queue::budgeted_channel(
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
            queue: sender,
            disconnect: self.disconnect.clone(),
            can_write: scope == Scope::ReadWrite,
            protocol: PeerProtocol::Hocuspocus,
            rules: admitted.rules,
        };
        let mut admitted = admitted;
        admitted.room =
            admission::join(self.state.rooms(), &admitted.name, admitted.room.clone(), peer).await?;
        let stream = super::frames::prefixed(inbox, hocuspocus::name_prefix(&key));
        if self.document_queues.try_send(stream).is_err() {
            // Bounded by MAX_DOCUMENTS like the documents themselves; full only if the writer
            // is gone, i.e. the socket is closing.
            return Err(CloseReason::PeerGone);
        }
        tracing::debug!(document = %key, conn, scope = scope.as_str(), "collab document open");
        let open = OpenDocument { conn, admitted };
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
        let permit = admission::connection_permit(&self.state).map_err(|refusal| {
            admission::count(self.state.metrics(), refusal.reason());
            CloseReason::ServerBusy(refusal.to_string())
        })?;
        // The pre-authentication slot is given back here, as the old value drops.
        self.slot = SocketSlot::Authenticated(permit);
        Ok(())
    }

    /// Admits a document as `/rooms` admits a connection (`crate::admission`), or says why
    /// not. A user past their share of rooms is told so for this document rather than losing
    /// the whole socket when it joins.
    async fn check(&self, key: &str, token: String) -> Result<Admitted, String> {
        let open = self.documents.values().filter(|document| matches!(document, Document::Open(_))).count();
        if open >= MAX_DOCUMENTS {
            return Err(format!("too many documents on one connection (at most {MAX_DOCUMENTS})"));
        }
        let token = if token.is_empty() { self.fallback_token.clone() } else { Some(token) };
        let admitted = admission::authorize(&self.state, hocuspocus::document_name(key), token.as_deref())
            .await
            .and_then(|authorized| authorized.admit(&self.state));
        admitted.map_err(|refusal| match refusal {
            Refusal::BadRoomName(error) => format!("invalid document name: {error}"),
            refusal => refusal.to_string(),
        })
    }

    /// Handles one message of an open document.
    async fn dispatch(&mut self, key: &str, message: HocusMessage, size: usize) -> Result<(), CloseReason> {
        let Some(Document::Open(open)) = self.documents.get(key) else { return Ok(()) };
        let (conn, room) = (open.conn, open.admitted.room.clone());
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
        if let Some(Document::Open(open)) = self.documents.get(key)
            && let Some(rate) = &open.admitted.rate
        {
            rate.throttle(self.state.metrics(), &self.disconnect).await;
        }
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

fn decode_error_reason(error: &HocuspocusError) -> CloseReason {
    if error.is_too_large() { CloseReason::TooBig } else { CloseReason::Reset(error.to_string()) }
}

/// `"4.8.0"` → 4.
fn major_version(version: &str) -> Option<u64> {
    version.split('.').next()?.trim_start_matches('v').parse().ok()
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
