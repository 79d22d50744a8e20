//! Everything y-websocket and Hocuspocus clients expect differently from a room, in one place.
//!
//! The room's frames are y-protocols frames either way (the Hocuspocus socket puts the document
//! name in front of each); what differs is when the server sends its sync step 1, whether
//! stored updates are acknowledged, how a refused edit is answered, and who receives stateless
//! messages. The core asks these methods instead of testing the protocol itself.

use bytes::Bytes;
use dojo_sync_protocol::codec::{encode_permission_denied, encode_sync_step1};
use dojo_sync_protocol::hocuspocus;
use yrs::StateVector;

use crate::metrics::MessageKind;

/// What a peer's client speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PeerProtocol {
    /// y-websocket: step 1 on join; an update counts as saved when its echo arrives; a refused
    /// edit is answered with y-protocols' permission-denied.
    #[default]
    YWebsocket,
    /// `@hocuspocus/provider`: the server's step 1 goes out in answer to the client's; every
    /// update and step 2 is acknowledged with SyncStatus(1) once it is stored (its unsynced-
    /// changes counter relies on it), or SyncStatus(0) when refused as read-only.
    Hocuspocus,
}

/// A frame for one peer, with its kind for the metrics.
pub(crate) type Frame = (Bytes, MessageKind);

impl PeerProtocol {
    /// What a joining peer gets before everyone's presence. As the reference server does:
    /// y-websocket gets our step 1 first (a separate frame, since clients before y-websocket v4
    /// read only a frame's first message). The Hocuspocus server sends only presence; its
    /// step 1 answers the client's.
    pub(crate) fn greeting(self, state: &StateVector) -> Option<Frame> {
        match self {
            Self::YWebsocket => Some((Bytes::from(encode_sync_step1(state)), MessageKind::sync_step1)),
            Self::Hocuspocus => None,
        }
    }

    /// What goes before the step 2 that answers a client's step 1: Hocuspocus answers with its
    /// own step 1, then the step 2 (both held behind unstored changes, so they keep their order).
    pub(crate) fn step1_answer_prefix(self, state: &StateVector) -> Option<Frame> {
        match self {
            Self::YWebsocket => None,
            Self::Hocuspocus => Some((Bytes::from(encode_sync_step1(state)), MessageKind::sync_step1)),
        }
    }

    /// The acknowledgement of a stored update: Hocuspocus peers learn that it is saved
    /// (SyncStatus(1)); y-websocket peers count an update as saved when its echo arrives.
    pub(crate) fn stored_ack(self) -> Option<Frame> {
        match self {
            Self::YWebsocket => None,
            Self::Hocuspocus => Some(sync_status(true)),
        }
    }

    /// The answer to a read-only peer's update, which is not applied, stored nor relayed. The
    /// client keeps its local edit (a CRDT cannot be told to undo it), so it is told why.
    /// `would_change`: the update holds something the document lacks; `told`: whether this
    /// connection was told before.
    pub(crate) fn read_only_answer(self, would_change: bool, told: &mut bool) -> Option<Frame> {
        match self {
            // As the Hocuspocus server does: SyncStatus(0) for a change that is refused, (1)
            // for one that holds nothing new (a read-only client's routine step 2), so its
            // unsynced counter stays up exactly while it holds edits the server did not take.
            Self::Hocuspocus => Some(sync_status(!would_change)),
            // In y-protocols' auth channel, once per connection; an empty update (a read-only
            // client's routine sync step 2) needs no answer.
            Self::YWebsocket if *told || !would_change => None,
            Self::YWebsocket => {
                *told = true;
                let frame = encode_permission_denied("read-only: your changes are not saved");
                Some((Bytes::from(frame), MessageKind::auth))
            }
        }
    }

    /// Whether the peer receives other peers' stateless messages (y-protocols has none).
    pub(crate) fn receives_stateless(self) -> bool {
        self == Self::Hocuspocus
    }
}

fn sync_status(applied: bool) -> Frame {
    (Bytes::copy_from_slice(&hocuspocus::sync_status_body(applied)), MessageKind::sync_status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn y_websocket_is_told_once_that_it_is_read_only() {
        let mut told = false;
        let protocol = PeerProtocol::YWebsocket;
        assert!(protocol.read_only_answer(false, &mut told).is_none(), "nothing new: no answer");
        assert!(
            protocol.read_only_answer(true, &mut told).is_some_and(|(_, kind)| kind == MessageKind::auth)
        );
        assert!(protocol.read_only_answer(true, &mut told).is_none(), "once per connection");
    }

    #[test]
    fn hocuspocus_gets_a_sync_status_for_every_refused_update() {
        let mut told = false;
        let protocol = PeerProtocol::Hocuspocus;
        let refused = protocol.read_only_answer(true, &mut told).expect("answered");
        let routine = protocol.read_only_answer(false, &mut told).expect("answered");
        assert_eq!(refused.1, MessageKind::sync_status);
        assert_ne!(refused.0, routine.0, "SyncStatus(0) for a refused change, (1) for nothing new");
        assert!(protocol.read_only_answer(true, &mut told).is_some(), "every time");
    }

    #[test]
    fn only_y_websocket_is_greeted_with_step1_and_only_hocuspocus_is_acknowledged() {
        let state = StateVector::default();
        assert!(PeerProtocol::YWebsocket.greeting(&state).is_some());
        assert!(PeerProtocol::Hocuspocus.greeting(&state).is_none());
        assert!(PeerProtocol::Hocuspocus.step1_answer_prefix(&state).is_some());
        assert!(PeerProtocol::YWebsocket.step1_answer_prefix(&state).is_none());
        assert!(PeerProtocol::Hocuspocus.stored_ack().is_some());
        assert!(PeerProtocol::YWebsocket.stored_ack().is_none());
        assert!(PeerProtocol::Hocuspocus.receives_stateless());
        assert!(!PeerProtocol::YWebsocket.receives_stateless());
    }
}
