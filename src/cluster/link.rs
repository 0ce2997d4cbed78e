//! One WebSocket link to a peer, from `Hello` to close.
//!
//! Both sides send [`Hello`] first. The link is then registered with [`Peers`]; a
//! writer half sends queued messages and pings, a reader half hands answers to their
//! requests and everything else to [`Cluster::handle`]. A peer that sends nothing for
//! the peer timeout (pongs count) is dropped: liveness does not wait for TCP to notice.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;
use tracing::{debug, info, warn};

use super::peers::{Change, LinkHandle, Refused, PEER_QUEUE_CAPACITY};
use super::wire::{Hello, PeerMessage, PROTOCOL_VERSION};
use super::Cluster;

/// Most queued messages written to a peer before one flush.
const SEND_BURST: usize = 64;

/// How a link ended, for the dialler's reconnect decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkEnd {
    /// The link was a member's link until it closed.
    Closed { peer: String },
    /// The peer turned out to be this node.
    ToSelf,
    /// A better link to this peer exists.
    Duplicate { peer: String },
    /// No valid `Hello` in time, or a protocol violation before registration.
    NoHello,
}

/// Runs a link on an established WebSocket; `dialled` is true on the side that dialled.
pub async fn run<S>(cluster: Arc<Cluster>, ws: WebSocketStream<S>, dialled: bool) -> LinkEnd
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let peers = &cluster.peers;
    let timeout = cluster.settings.peer_timeout;
    let (mut sink, mut stream) = ws.split();

    let hello = PeerMessage::Hello(Hello {
        protocol: PROTOCOL_VERSION,
        node_id: peers.me().to_owned(),
        address: peers.address().to_owned(),
        members: peers.members(),
    });
    let sent = tokio::time::timeout(timeout, sink.send(Message::Binary(hello.encode()))).await;
    if !matches!(sent, Ok(Ok(()))) {
        return LinkEnd::NoHello;
    }
    let their_hello = match tokio::time::timeout(timeout, next_binary(&mut stream)).await {
        Ok(Some(bytes)) => match PeerMessage::decode(&bytes) {
            Ok(PeerMessage::Hello(hello)) if hello.protocol == PROTOCOL_VERSION => hello,
            Ok(PeerMessage::Hello(hello)) => {
                warn!(
                    peer.protocol = hello.protocol,
                    "peer speaks another cluster protocol version"
                );
                return LinkEnd::NoHello;
            }
            _ => {
                warn!("peer did not start with a valid Hello");
                return LinkEnd::NoHello;
            }
        },
        _ => {
            debug!("no Hello from the peer in time");
            return LinkEnd::NoHello;
        }
    };
    let peer = their_hello.node_id.clone();

    let (outbound, mut queue) = mpsc::channel::<Bytes>(PEER_QUEUE_CAPACITY);
    let close = cluster.shutdown.child_token();
    let id = peers.next_id();
    let dialler = if dialled { peers.me() } else { peer.as_str() }.to_owned();
    let handle = LinkHandle {
        id,
        dialler,
        address: their_hello.address.clone(),
        outbound,
        close: close.clone(),
    };
    match peers.register(&peer, handle) {
        Ok(Change::Joined) => {
            info!(peer.id = %peer, peer.address = %their_hello.address, "peer joined");
            cluster.peer_joined(&peer);
        }
        Ok(Change::Replaced) => {
            debug!(peer.id = %peer, "link to peer replaced by the preferred one")
        }
        Err(Refused::IsSelf) => {
            let _ = sink.close().await;
            return LinkEnd::ToSelf;
        }
        Err(Refused::Duplicate) => {
            debug!(peer.id = %peer, "duplicate link closed");
            let _ = sink.close().await;
            return LinkEnd::Duplicate { peer };
        }
    }
    for member in &their_hello.members {
        cluster.dial_if_unknown(&member.node_id, &member.address);
    }

    // Messages whose order matters (writes, changes, locks, topics) are handled one by
    // one in arrival order, off the reader so that it keeps answering pings.
    let (ordered_tx, mut ordered_rx) = mpsc::channel::<PeerMessage>(PEER_QUEUE_CAPACITY);
    let handler = async {
        loop {
            let message = tokio::select! {
                _ = close.cancelled() => break,
                message = ordered_rx.recv() => match message {
                    Some(message) => message,
                    None => break,
                },
            };
            cluster.handle(&peer, message).await;
        }
    };

    let ping_every = cluster.settings.ping_interval;
    let writer = async {
        let mut ping = tokio::time::interval(ping_every);
        loop {
            let message = tokio::select! {
                _ = close.cancelled() => break,
                queued = queue.recv() => match queued {
                    Some(bytes) => {
                        cluster.dataplane.metrics.replication_queue_depth(&peer, queue.len());
                        Message::Binary(bytes)
                    }
                    None => break,
                },
                _ = ping.tick() => Message::Ping(Bytes::new()),
            };
            // What is already queued goes with it before one flush: a few TLS records
            // and system calls per burst rather than one of each per message.
            let burst = async {
                sink.feed(message).await?;
                for _ in 1..SEND_BURST {
                    match queue.try_recv() {
                        Ok(bytes) => sink.feed(Message::Binary(bytes)).await?,
                        Err(_) => break,
                    }
                }
                sink.flush().await
            };
            let sent = tokio::time::timeout(timeout, burst).await;
            if !matches!(sent, Ok(Ok(()))) {
                warn!(peer.id = %peer, "peer stopped taking messages; closing the link");
                break;
            }
        }
        close.cancel();
        let _ = tokio::time::timeout(timeout, sink.close()).await;
    };
    let reader = async {
        loop {
            let next = tokio::select! {
                _ = close.cancelled() => break,
                next = tokio::time::timeout(timeout, stream.next()) => next,
            };
            let bytes = match next {
                Err(_) => {
                    warn!(peer.id = %peer, timeout_ms = timeout.as_millis() as u64, "peer silent for too long; dropping it");
                    break;
                }
                Ok(None) => break,
                Ok(Some(Err(error))) => {
                    warn!(peer.id = %peer, %error, "peer link failed");
                    break;
                }
                Ok(Some(Ok(Message::Binary(bytes)))) => bytes,
                // Pings are answered by tungstenite; pongs only show the peer is alive.
                Ok(Some(Ok(Message::Close(_)))) => break,
                Ok(Some(Ok(_))) => continue,
            };
            match PeerMessage::decode(&bytes) {
                Ok(message) => {
                    if !cluster.receive(&peer, message, &ordered_tx) {
                        warn!(peer.id = %peer, "peer sends faster than this node applies; closing the link");
                        break;
                    }
                }
                Err(error) => {
                    warn!(peer.id = %peer, %error, "undecodable message from peer; closing the link");
                    break;
                }
            }
        }
        close.cancel();
    };
    tokio::join!(writer, reader, handler);

    if peers.deregister(&peer, id) {
        cluster.peer_left(&peer);
    }
    LinkEnd::Closed { peer }
}

/// The next binary message, skipping control frames; `None` when the stream ends.
async fn next_binary<S>(stream: &mut S) -> Option<Bytes>
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        match stream.next().await? {
            Ok(Message::Binary(bytes)) => return Some(bytes),
            Ok(Message::Ping(_) | Message::Pong(_)) => continue,
            _ => return None,
        }
    }
}
