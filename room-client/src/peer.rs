//! The two tasks behind a [`crate::SyncClient`]: the writer, which sends what is queued, and the
//! reader, which answers the server the way y-websocket's provider does.

use std::sync::{Arc, Mutex};

use dojo_sync_protocol::codec::{FrameLimits, decode_frame, encode_message};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use yrs::sync::{Awareness, Message, SyncMessage};
use yrs::{Doc, ReadTxn, Transact};

use crate::deferred::{MAX_DEFERRED_BYTES, SharedDeferred, apply_all, apply_one, lock_deferred};
use crate::framing::Framing;
use crate::hocuspocus::{self, HocusMessage, Incoming};
use crate::socket::{Socket, close_parts};

/// Sees the bytes of every document update a client receives after the initial sync, the moment
/// the frame arrives and before the update is applied or deferred. Called on the client's reader
/// task for every update: it must be cheap.
pub trait UpdateTap: std::fmt::Debug + Send + Sync {
    fn received(&self, update: &[u8]);
}

/// What the client has seen so far; waiters are woken on every change.
#[derive(Debug, Clone, Default)]
pub struct ClientStatus {
    /// Received the server's sync step 2: the document holds everything the server had.
    pub synced: bool,
    /// Frames received.
    pub frames: u64,
    /// The server's close frame, if it sent one, and whether the socket has ended.
    pub close: Option<(u16, String)>,
    pub ended: bool,
    /// Frames the client could not decode or apply (the server sent something invalid).
    pub bad_frames: u64,
    /// Hocuspocus only: the server refused the document (permission denied), with its reason.
    pub denied: Option<String>,
}

pub(crate) async fn write_loop(
    mut sink: SplitSink<Socket, WsMessage>,
    mut outgoing: mpsc::Receiver<WsMessage>,
) {
    while let Some(message) = outgoing.recv().await {
        let closing = matches!(message, WsMessage::Close(_));
        if sink.send(message).await.is_err() || closing {
            break;
        }
    }
}

/// What the reader needs to answer the server.
pub(crate) struct Peer {
    pub(crate) doc: Doc,
    pub(crate) awareness: Arc<Mutex<Awareness>>,
    pub(crate) framing: Framing,
    /// Where updates wait to be applied, when the client defers them.
    pub(crate) deferred: Option<SharedDeferred>,
    pub(crate) tap: Option<Arc<dyn UpdateTap>>,
    pub(crate) echo_awareness: bool,
}

impl Peer {
    /// An update received after the initial sync: timed, then applied or kept for later.
    fn receive_update(&self, update: Vec<u8>) -> Result<(), ()> {
        if let Some(tap) = &self.tap {
            tap.received(&update);
        }
        let Some(deferred) = &self.deferred else { return apply_one(&self.doc, &update) };
        let overflow = {
            let mut deferred = lock_deferred(deferred);
            deferred.bytes += update.len();
            deferred.updates.push(update);
            if deferred.bytes > MAX_DEFERRED_BYTES {
                Some(std::mem::take(&mut *deferred).updates)
            } else {
                None
            }
        };
        match overflow.map(|updates| apply_all(&self.doc, updates)) {
            Some(failed) if failed > 0 => Err(()),
            _ => Ok(()),
        }
    }
}

pub(crate) async fn read_loop(
    mut stream: SplitStream<Socket>,
    peer: Peer,
    outgoing: mpsc::Sender<WsMessage>,
    status: watch::Sender<ClientStatus>,
) {
    while let Some(Ok(message)) = stream.next().await {
        match message {
            WsMessage::Binary(frame) => {
                let outcome = match &peer.framing {
                    Framing::YWebsocket => handle_frame(&frame, &peer),
                    Framing::Hocuspocus { .. } => handle_hocuspocus_frame(&frame, &peer),
                };
                for reply in outcome.replies {
                    let _ = outgoing.send(WsMessage::Binary(reply.into())).await;
                }
                status.send_modify(|s| {
                    s.frames += 1;
                    s.synced |= outcome.synced;
                    s.bad_frames += u64::from(outcome.bad);
                    if outcome.denied.is_some() {
                        s.denied = outcome.denied;
                    }
                });
            }
            WsMessage::Close(frame) => {
                let close = frame.map(close_parts);
                status.send_modify(|s| s.close = close);
            }
            _ => {}
        }
    }
    status.send_modify(|s| s.ended = true);
}

/// What one received frame did.
#[derive(Default)]
struct Outcome {
    /// Frames to send back, ready for the wire.
    replies: Vec<Vec<u8>>,
    synced: bool,
    bad: bool,
    denied: Option<String>,
}

/// A y-websocket frame (possibly several messages); replies come back framed for `peer`.
fn handle_frame(frame: &[u8], peer: &Peer) -> Outcome {
    let limits = FrameLimits { max_frame_bytes: usize::MAX, max_messages_per_frame: usize::MAX };
    let mut outcome = Outcome::default();
    match decode_frame(frame, &limits) {
        Ok(messages) => {
            for message in messages {
                match handle(message, peer) {
                    Ok(Handled::Reply(reply)) => outcome.replies.push(peer.framing.wrap(reply)),
                    Ok(Handled::Synced) => outcome.synced = true,
                    Ok(Handled::Nothing) => {}
                    Err(()) => outcome.bad = true,
                }
            }
        }
        Err(_) => outcome.bad = true,
    }
    outcome
}

fn handle_hocuspocus_frame(frame: &[u8], peer: &Peer) -> Outcome {
    let message = match hocuspocus::decode_frame(frame) {
        Ok(Incoming::Ping) => {
            return Outcome { replies: vec![hocuspocus::encode_pong()], ..Outcome::default() };
        }
        Ok(Incoming::Message { message, .. }) => message,
        Err(_) => return Outcome { bad: true, ..Outcome::default() },
    };
    match message {
        HocusMessage::Sync(inner) | HocusMessage::Awareness(inner) => handle_frame(&inner, peer),
        HocusMessage::PermissionDenied { reason } => Outcome { denied: Some(reason), ..Outcome::default() },
        HocusMessage::TokenRequest => {
            let Framing::Hocuspocus { document } = &peer.framing else { return Outcome::default() };
            Outcome { replies: vec![hocuspocus::encode_auth(document, "")], ..Outcome::default() }
        }
        HocusMessage::QueryAwareness => {
            let awareness = peer.awareness.lock().unwrap_or_else(|p| p.into_inner());
            match awareness.update() {
                Ok(update) => Outcome {
                    replies: vec![peer.framing.wrap(encode_message(&Message::Awareness(update)))],
                    ..Outcome::default()
                },
                Err(_) => Outcome::default(),
            }
        }
        HocusMessage::Authenticated { .. }
        | HocusMessage::Stateless(_)
        | HocusMessage::Close { .. }
        | HocusMessage::SyncStatus { .. }
        | HocusMessage::Other(_) => Outcome::default(),
    }
}

enum Handled {
    Reply(Vec<u8>),
    Synced,
    Nothing,
}

fn handle(message: Message, peer: &Peer) -> Result<Handled, ()> {
    match message {
        Message::Sync(SyncMessage::SyncStep1(sv)) => {
            // Everything deferred came from the server, so it has it; the answer needs only
            // what this document holds.
            let update = peer.doc.transact().encode_state_as_update_v1(&sv);
            Ok(Handled::Reply(dojo_sync_protocol::codec::encode_sync_step2(&update)))
        }
        Message::Sync(SyncMessage::SyncStep2(update)) => {
            apply_one(&peer.doc, &update).map(|()| Handled::Synced)
        }
        Message::Sync(SyncMessage::Update(update)) => peer.receive_update(update).map(|()| Handled::Nothing),
        Message::Awareness(update) => {
            let mut awareness = peer.awareness.lock().unwrap_or_else(|p| p.into_inner());
            let summary = awareness.apply_update_summary(update).map_err(|_| ())?;
            let echo = summary.filter(|_| peer.echo_awareness).map(|s| s.all_changes());
            match echo.and_then(|changed| awareness.update_with_clients(changed).ok()) {
                Some(update) => Ok(Handled::Reply(encode_message(&Message::Awareness(update)))),
                None => Ok(Handled::Nothing),
            }
        }
        Message::AwarenessQuery | Message::Auth(_) | Message::Custom(..) => Ok(Handled::Nothing),
    }
}
