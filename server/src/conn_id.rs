//! Connection ids: one counter for both WebSocket endpoints, so a room never confuses two of
//! its peers. A leaf module, so that the send queues and the outbound budget need not import
//! the room to name a connection.

/// A connection (y-websocket) or one document of a Hocuspocus socket, as a room's peer.
pub type ConnId = u64;
