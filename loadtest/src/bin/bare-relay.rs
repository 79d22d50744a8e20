//! `bare-relay`: the practical ceiling for a y-websocket room server on this machine.
//!
//! A minimal tokio-tungstenite broadcast: every binary frame a client sends goes, unchanged, to
//! every other connection on the same path (the room). It keeps no document and does no CRDT
//! work. To let y-websocket clients believe they are synced, it answers a sync step 1
//! (`0 • 0 • state vector`) with an empty step 2 (`0 • 1 • [0, 0]`) and forwards nothing else of
//! the handshake. Clients therefore see only what is sent while they are connected: a late
//! joiner gets no history, and offline edits are never asked for (the benchmarks note where that
//! matters). A peer whose queue fills (it reads too slowly) is dropped, as Dojo does.
//!
//! ```sh
//! bare-relay --addr 127.0.0.1:0     # prints "bare-relay listening on 127.0.0.1:PORT"
//! ```

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, mpsc};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// Frames waiting for one peer before it is dropped as too slow.
const QUEUE_FRAMES: usize = 1024;
/// `0 • 1 • varUint8Array([0, 0])`: sync step 2 carrying an empty update.
const EMPTY_STEP2: [u8; 5] = [0, 1, 2, 0, 0];

#[derive(Debug, Parser)]
#[command(
    name = "bare-relay",
    version,
    about = "Per-room WebSocket broadcast with no CRDT work (benchmark ceiling)"
)]
struct Args {
    /// Listen address (port 0: any free port).
    #[arg(long, env = "BARE_RELAY_ADDR", default_value = "127.0.0.1:8790")]
    addr: SocketAddr,

    /// tungstenite's read buffer per connection, in bytes (default: tungstenite's, 128 KiB).
    #[arg(long, env = "BARE_RELAY_READ_BUFFER_BYTES")]
    read_buffer_bytes: Option<usize>,
}

#[derive(Default)]
struct Hub {
    rooms: Mutex<HashMap<String, Arc<Room>>>,
    next_id: AtomicU64,
}

#[derive(Default)]
struct Room {
    peers: Mutex<Vec<Peer>>,
}

struct Peer {
    id: u64,
    tx: mpsc::Sender<Message>,
    dropped: Arc<Notify>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Hub {
    fn join(&self, path: &str, peer: Peer) -> Arc<Room> {
        let room = lock(&self.rooms).entry(path.to_owned()).or_default().clone();
        lock(&room.peers).push(peer);
        room
    }

    fn leave(&self, path: &str, room: &Room, id: u64) {
        let mut rooms = lock(&self.rooms);
        let mut peers = lock(&room.peers);
        peers.retain(|peer| peer.id != id);
        if peers.is_empty() {
            rooms.remove(path);
        }
    }
}

impl Room {
    /// Queues `frame` for every peer but `from`; drops peers whose queue is full.
    fn broadcast(&self, from: u64, frame: &Message) {
        let mut peers = lock(&self.peers);
        peers.retain(|peer| {
            if peer.id == from {
                return true;
            }
            match peer.tx.try_send(frame.clone()) {
                Ok(()) => true,
                Err(_) => {
                    peer.dropped.notify_one();
                    false
                }
            }
        });
    }
}

fn is_sync_step1(frame: &[u8]) -> bool {
    frame.len() >= 2 && frame[0] == 0 && frame[1] == 0
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let listener = TcpListener::bind(args.addr).await?;
    println!("bare-relay listening on {}", listener.local_addr()?);
    let hub = Arc::new(Hub::default());
    let mut config = WebSocketConfig::default();
    if let Some(bytes) = args.read_buffer_bytes {
        config = config.read_buffer_size(bytes);
    }
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors, say: wait a little rather than spin.
                eprintln!("bare-relay: accept: {error}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let hub = hub.clone();
        tokio::spawn(async move {
            let _ = serve(stream, hub, config).await;
        });
    }
}

// The handshake callback's error type is tungstenite's HTTP response, large by design.
#[allow(clippy::result_large_err)]
async fn serve(stream: TcpStream, hub: Arc<Hub>, config: WebSocketConfig) -> anyhow::Result<()> {
    stream.set_nodelay(true)?;
    let mut path = String::new();
    let callback = |request: &Request, response: Response| {
        path = request.uri().path().to_owned();
        Ok(response)
    };
    let socket = tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(config)).await?;
    let (mut sink, mut source) = socket.split();
    let id = hub.next_id.fetch_add(1, Ordering::Relaxed);
    let (tx, mut rx) = mpsc::channel::<Message>(QUEUE_FRAMES);
    let dropped = Arc::new(Notify::new());
    let room = hub.join(&path, Peer { id, tx: tx.clone(), dropped: dropped.clone() });

    let writer = tokio::spawn(async move {
        while let Some(frame) = rx.recv().await {
            if sink.feed(frame).await.is_err() {
                return;
            }
            // Everything already queued goes out with one flush.
            while let Ok(frame) = rx.try_recv() {
                if sink.feed(frame).await.is_err() {
                    return;
                }
            }
            if sink.flush().await.is_err() {
                return;
            }
        }
    });

    loop {
        tokio::select! {
            () = dropped.notified() => break,
            message = source.next() => match message {
                Some(Ok(message @ Message::Binary(_))) => {
                    let Message::Binary(frame) = &message else { continue };
                    if is_sync_step1(frame) {
                        if tx.try_send(Message::Binary(EMPTY_STEP2.to_vec().into())).is_err() {
                            break;
                        }
                    } else {
                        room.broadcast(id, &message);
                    }
                }
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                Some(Ok(_)) => {}
            },
        }
    }
    hub.leave(&path, &room, id);
    drop(tx);
    writer.abort();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_sync_step_1_is_answered() {
        assert!(is_sync_step1(&[0, 0, 1, 0]));
        assert!(!is_sync_step1(&[0, 2, 2, 0, 0]));
        assert!(!is_sync_step1(&[1, 0]));
        assert!(!is_sync_step1(&[0]));
        assert!(!is_sync_step1(&[]));
    }

    #[test]
    fn the_empty_step_2_decodes_as_an_empty_update() {
        use dojo_sync_protocol::codec::{FrameLimits, decode_frame};
        use yrs::sync::{Message as YMessage, SyncMessage};
        use yrs::updates::decoder::Decode;
        let messages = decode_frame(&EMPTY_STEP2, &FrameLimits::default()).unwrap();
        let [YMessage::Sync(SyncMessage::SyncStep2(update))] = messages.as_slice() else {
            panic!("{messages:?}");
        };
        let update = yrs::Update::decode_v1(update).unwrap();
        assert!(update.state_vector().is_empty());
    }

    #[test]
    fn a_full_peer_is_dropped_and_the_others_still_get_the_frame() {
        let room = Room::default();
        let (fast_tx, mut fast_rx) = mpsc::channel(4);
        let (slow_tx, _slow_rx) = mpsc::channel(1);
        let slow_dropped = Arc::new(Notify::new());
        lock(&room.peers).push(Peer { id: 1, tx: fast_tx, dropped: Arc::new(Notify::new()) });
        lock(&room.peers).push(Peer { id: 2, tx: slow_tx, dropped: slow_dropped });
        let frame = Message::Binary(vec![0, 2, 2, 0, 0].into());
        room.broadcast(0, &frame);
        room.broadcast(0, &frame);
        assert_eq!(lock(&room.peers).iter().map(|p| p.id).collect::<Vec<_>>(), vec![1]);
        assert_eq!(fast_rx.try_recv().unwrap(), frame);
        // The sender itself never gets its own frame back.
        room.broadcast(1, &frame);
        assert_eq!(fast_rx.try_recv().unwrap(), frame);
        assert!(fast_rx.try_recv().is_err());
    }
}
