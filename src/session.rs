//! One client's WebSocket conversation, from the upgrade to the close.
//!
//! This is the hand-off point to the data plane: the connection layer delivers an
//! upgraded, size-limited WebSocket and a shutdown signal; the session owns everything
//! said on it. Today a session greets the client with `AUTH_REQUIRED`, authenticates it
//! (PROTOCOL.md §2), answers pings, and leaves on shutdown with `SHUTDOWN_PENDING` and
//! close 1001. The messages of an authenticated client go to the data plane (issue #3).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::error::{Error as WsError, ProtocolError};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::auth::{Principal, Verifier};
use crate::protocol::{self, Incoming};

/// How long a client is told to wait before reconnecting after a shutdown.
pub const SHUTDOWN_RETRY_AFTER: Duration = Duration::from_secs(5);

/// How long a closing session waits for the client's close frame.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// What every session shares.
pub struct SessionContext {
    pub verifier: Arc<Verifier>,
    /// An unauthenticated WebSocket is closed (4001) after this long; upstream waits
    /// for ever.
    pub auth_timeout: Duration,
    pub shutdown: CancellationToken,
}

/// Why a session ends from the server's side: a close code and reason.
type Close = (u16, &'static str);

/// Runs one client session until either side closes it or the node shuts down.
pub async fn run<S>(mut ws: WebSocketStream<S>, context: Arc<SessionContext>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    if send(&mut ws, protocol::auth_required()).await.is_err() {
        return;
    }

    let auth_deadline = Instant::now() + context.auth_timeout;
    let mut principal: Option<Principal> = None;

    loop {
        let message = tokio::select! {
            _ = context.shutdown.cancelled() => {
                let goodbye = protocol::shutdown_pending(SHUTDOWN_RETRY_AFTER);
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
                close(&mut ws, (protocol::CLOSE_TOO_BIG, "Message Too Big")).await;
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
        match step {
            Step::Continue => {}
            Step::Reply(bytes) => {
                if send(&mut ws, bytes).await.is_err() {
                    return;
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

/// What a session does after one message.
enum Step {
    Continue,
    Reply(Vec<u8>),
    ReplyAndClose(Vec<u8>, Close),
    Close(Close),
}

/// Applies PROTOCOL.md §2.1–§2.2 to one decoded message.
fn on_message(incoming: Incoming, principal: &mut Option<Principal>, verifier: &Verifier) -> Step {
    if !incoming.is_valid() {
        debug!(message.type = %incoming.kind, "message fails the schema check");
        return Step::Reply(protocol::invalid_message());
    }

    match (&*principal, incoming.token) {
        // The stock client sends AUTH twice; the second one is ignored.
        (Some(_), Some(_)) => Step::Continue,
        (None, Some(token)) => match verifier.verify(&token, SystemTime::now()) {
            Ok(verified) => {
                debug!(user.id = verified.user_id.as_deref(), "authenticated");
                *principal = Some(verified);
                Step::Reply(protocol::auth_ack())
            }
            Err(error) => {
                debug!(%error, "token refused");
                Step::ReplyAndClose(
                    protocol::auth_fail(),
                    (protocol::CLOSE_AUTH, "Unauthorized"),
                )
            }
        },
        (None, None) => {
            debug!(message.type = %incoming.kind, "message before authentication");
            Step::Close((protocol::CLOSE_AUTH, "Auth required"))
        }
        // TODO(#3): hand the message to the data plane.
        (Some(_), None) => {
            debug!(message.type = %incoming.kind, "data-plane message not handled yet");
            Step::Continue
        }
    }
}

async fn send<S>(ws: &mut WebSocketStream<S>, bytes: Vec<u8>) -> Result<(), WsError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    ws.send(Message::Binary(bytes.into())).await
}

async fn close<S>(ws: &mut WebSocketStream<S>, (code, reason): Close)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let frame = CloseFrame {
        code: CloseCode::from(code),
        reason: reason.into(),
    };
    if ws.close(Some(frame)).await.is_err() {
        return;
    }
    // Wait briefly for the client's close frame so that it sees a clean close rather
    // than a reset; whatever it still sends is discarded.
    let _ = tokio::time::timeout(CLOSE_GRACE, async {
        while let Some(Ok(_)) = ws.next().await {}
    })
    .await;
}
