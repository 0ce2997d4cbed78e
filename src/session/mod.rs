//! One client's WebSocket conversation, from the upgrade to the close.
//!
//! This is the hand-off point to the data plane: the connection layer delivers an
//! upgraded, size-limited WebSocket and a shutdown signal; the session owns everything
//! said on it. Today a session greets the client with `AUTH_REQUIRED`, authenticates it
//! (PROTOCOL.md §2), answers pings, and leaves on shutdown with `SHUTDOWN_PENDING` and
//! close 1001. The messages of an authenticated client go to the [`dataplane`], and the
//! session forwards the broadcasts of other sessions' writes from its
//! [`Fanout`](crate::fanout::Fanout) queue.

pub mod dataplane;
pub mod locks;
mod queries;
mod replica;
mod topics;
mod writes;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::error::{Error as WsError, ProtocolError};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::auth::{Principal, Verifier};
use crate::fanout::Subscription;
use crate::protocol::{self, server, Incoming};
use dataplane::Dataplane;

/// How long a client is told to wait before reconnecting after a shutdown.
pub const SHUTDOWN_RETRY_AFTER: Duration = Duration::from_secs(5);

/// How long a closing session waits for the client's close frame.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// Most bytes read and discarded after refusing an oversized message.
const LINGER_LIMIT: usize = 64 * 1024 * 1024;

/// What every session shares.
pub struct SessionContext {
    pub verifier: Arc<Verifier>,
    /// An unauthenticated WebSocket is closed (4001) after this long; upstream waits
    /// for ever.
    pub auth_timeout: Duration,
    pub shutdown: CancellationToken,
    pub dataplane: Arc<Dataplane>,
}

/// Why a session ends from the server's side: a close code and reason.
type Close = (u16, &'static str);

/// Runs one client session until either side closes it or the node shuts down.
pub async fn run<S>(mut ws: WebSocketStream<S>, context: Arc<SessionContext>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    if send(&mut ws, server::auth_required()).await.is_err() {
        return;
    }

    let auth_deadline = Instant::now() + context.auth_timeout;
    let mut principal: Option<Arc<Principal>> = None;
    // Broadcasts reach a session only once it is authenticated.
    let mut broadcasts: Option<Subscription> = None;
    // Releases the session's locks when it ends, however it ends.
    let mut _departure: Option<Departure> = None;

    loop {
        let message = tokio::select! {
            _ = context.shutdown.cancelled() => {
                let goodbye = server::shutdown_pending(SHUTDOWN_RETRY_AFTER);
                if send(&mut ws, goodbye).await.is_ok() {
                    close(&mut ws, (protocol::CLOSE_SHUTDOWN, "Server Shutdown")).await;
                }
                return;
            }
            _ = tokio::time::sleep_until(auth_deadline), if principal.is_none() => {
                debug!("no AUTH before the authentication timeout");
                close(&mut ws, (protocol::CLOSE_AUTH, "Auth timeout")).await;
                return;
            }
            broadcast = next_broadcast(&mut broadcasts) => {
                let Some(bytes) = broadcast else {
                    debug!("too slow to take broadcasts");
                    close(&mut ws, (protocol::CLOSE_TOO_SLOW, "Too slow")).await;
                    return;
                };
                if send_broadcasts(&mut ws, bytes, &mut broadcasts).await.is_err() {
                    return;
                }
                continue;
            }
            message = ws.next() => message,
        };

        let bytes = match message {
            None => {
                debug!(close = 1000, "websocket closed");
                return;
            }
            Some(Ok(Message::Binary(bytes))) => bytes,
            Some(Ok(Message::Text(text))) => text.into(),
            // Pings are answered by tungstenite on the next read; a close frame is
            // answered likewise, and the stream then ends.
            Some(Ok(_)) => continue,
            Some(Err(WsError::Capacity(error))) => {
                debug!(%error, "websocket message over the size limit");
                close_draining(&mut ws, (protocol::CLOSE_TOO_BIG, "Message Too Big")).await;
                return;
            }
            Some(Err(error)) => {
                let abnormal = matches!(
                    error,
                    WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) | WsError::Io(_)
                );
                debug!(close = 1006, abnormal, %error, "websocket closed without a close frame");
                return;
            }
        };

        let step = match protocol::decode(&bytes) {
            Err(_) => {
                debug!("undecodable message");
                Step::Close((protocol::CLOSE_PROTOCOL_ERROR, "Protocol Error"))
            }
            Ok(incoming) => on_message(incoming, &mut principal, &context.verifier),
        };
        if let (Some(principal), None) = (&principal, &broadcasts) {
            let subscription = context.dataplane.fanout.subscribe(principal.clone());
            _departure = Some(Departure {
                dataplane: context.dataplane.clone(),
                session: subscription.id,
            });
            broadcasts = Some(subscription);
        }
        let step = match (step, &principal, &broadcasts) {
            (Step::DataPlane(incoming), Some(principal), Some(me)) => {
                Step::Replies(context.dataplane.handle(incoming, principal, me.id).await)
            }
            (step, _, _) => step,
        };
        match step {
            Step::Continue | Step::DataPlane(_) => {}
            Step::Replies(replies) => {
                for bytes in replies {
                    if send(&mut ws, bytes).await.is_err() {
                        return;
                    }
                }
            }
            Step::ReplyAndClose(bytes, reason) => {
                if send(&mut ws, bytes).await.is_ok() {
                    close(&mut ws, reason).await;
                }
                return;
            }
            Step::Close(reason) => {
                close(&mut ws, reason).await;
                return;
            }
        }
    }
}

/// Runs [`Dataplane::leave`] for a session when dropped.
struct Departure {
    dataplane: Arc<Dataplane>,
    session: u64,
}

impl Drop for Departure {
    fn drop(&mut self) {
        self.dataplane.leave(self.session);
    }
}

/// What a session does after one message.
enum Step {
    Continue,
    Replies(Vec<Bytes>),
    ReplyAndClose(Bytes, Close),
    Close(Close),
    /// An authenticated client's message, for the data plane.
    DataPlane(Incoming),
}

/// Applies PROTOCOL.md §2.1–§2.2 to one decoded message.
fn on_message(
    incoming: Incoming,
    principal: &mut Option<Arc<Principal>>,
    verifier: &Verifier,
) -> Step {
    if !incoming.is_valid() {
        debug!(message.type = %incoming.kind, "message fails the schema check");
        return Step::Replies(vec![server::invalid_message()]);
    }

    match (&*principal, incoming.token.as_deref()) {
        // The stock client sends AUTH twice; the second one is ignored.
        (Some(_), Some(_)) if incoming.kind == protocol::AUTH => Step::Continue,
        (None, Some(token)) if incoming.kind == protocol::AUTH => {
            match verifier.verify(token, SystemTime::now()) {
                Ok(verified) => {
                    debug!(user.id = verified.user_id.as_deref(), "authenticated");
                    *principal = Some(Arc::new(verified));
                    Step::Replies(vec![server::auth_ack()])
                }
                Err(error) => {
                    debug!(%error, "token refused");
                    Step::ReplyAndClose(server::auth_fail(), (protocol::CLOSE_AUTH, "Unauthorized"))
                }
            }
        }
        (None, _) => {
            debug!(message.type = %incoming.kind, "message before authentication");
            Step::Close((protocol::CLOSE_AUTH, "Auth required"))
        }
        (Some(_), _) => Step::DataPlane(incoming),
    }
}

async fn send<S>(ws: &mut WebSocketStream<S>, bytes: Bytes) -> Result<(), WsError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    ws.send(Message::Binary(bytes)).await
}

/// Most queued broadcasts written before one flush.
const BROADCAST_BURST: usize = 64;

/// Writes `first` and whatever else is already queued (up to [`BROADCAST_BURST`]), then
/// flushes once: a burst of events leaves in a few TLS records and system calls rather
/// than one of each per event, which was most of the fan-out's CPU per delivery.
async fn send_broadcasts<S>(
    ws: &mut WebSocketStream<S>,
    first: Bytes,
    broadcasts: &mut Option<Subscription>,
) -> Result<(), WsError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    ws.feed(Message::Binary(first)).await?;
    if let Some(subscription) = broadcasts {
        for _ in 1..BROADCAST_BURST {
            match subscription.queue.try_recv() {
                Ok(bytes) => ws.feed(Message::Binary(bytes)).await?,
                // Empty, or cut off: the next `recv` tells which.
                Err(_) => break,
            }
        }
    }
    ws.flush().await
}

/// The next broadcast for an authenticated session; pending for ever before that.
/// `None` means the session was cut off for being too slow.
async fn next_broadcast(broadcasts: &mut Option<Subscription>) -> Option<Bytes> {
    match broadcasts {
        Some(subscription) => subscription.queue.recv().await,
        None => std::future::pending().await,
    }
}

/// Sends a close frame; false when the connection is already gone.
async fn send_close<S>(ws: &mut WebSocketStream<S>, (code, reason): Close) -> bool
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let frame = CloseFrame {
        code: CloseCode::from(code),
        reason: reason.into(),
    };
    ws.close(Some(frame)).await.is_ok()
}

async fn close<S>(ws: &mut WebSocketStream<S>, close: Close)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    if !send_close(ws, close).await {
        return;
    }
    // Wait briefly for the client's close frame so that it sees a clean close rather
    // than a reset; whatever it still sends is discarded.
    let _ = tokio::time::timeout(CLOSE_GRACE, async {
        while let Some(Ok(_)) = ws.next().await {}
    })
    .await;
}

/// Closes after a refused message that the client is most likely still sending.
/// Closing a socket with unread data makes the kernel answer with a reset, which can
/// reach the client before the close frame does and lose it; so, like nginx's
/// lingering close, what still arrives is read and thrown away — below the WebSocket
/// layer, whose framing is lost mid-message — until the client closes, or
/// [`CLOSE_GRACE`] or [`LINGER_LIMIT`] bytes have passed.
async fn close_draining<S>(ws: &mut WebSocketStream<S>, close: Close)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    if !send_close(ws, close).await {
        return;
    }
    // On the heap: a buffer here would enlarge every session's future.
    let mut discard = vec![0; 16 * 1024];
    let stream = ws.get_mut();
    let _ = tokio::time::timeout(CLOSE_GRACE, async {
        let mut left = LINGER_LIMIT;
        while left > 0 {
            match stream.read(&mut discard).await {
                Ok(0) | Err(_) => break,
                Ok(read) => left = left.saturating_sub(read),
            }
        }
    })
    .await;
}
