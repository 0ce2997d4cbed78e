//! One client's WebSocket conversation, from the upgrade to the close.
//!
//! This is the hand-off point to the data plane: the connection layer delivers an
//! upgraded, size-limited WebSocket and a shutdown signal; the session owns everything
//! said on it. Until the data plane (issue #3) lands, a session greets the client with
//! `AUTH_REQUIRED`, enforces the pre-authentication rules of PROTOCOL.md §2.2, answers
//! pings, and leaves on shutdown with `SHUTDOWN_PENDING` and close 1001.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::tungstenite::error::{Error as WsError, ProtocolError};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::protocol;

/// How long a client is told to wait before reconnecting after a shutdown.
pub const SHUTDOWN_RETRY_AFTER: Duration = Duration::from_secs(5);

/// How long a closing session waits for the client's close frame.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// Runs one client session until either side closes it or the node shuts down.
pub async fn run<S>(mut ws: WebSocketStream<S>, shutdown: CancellationToken)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    if ws
        .send(Message::Binary(protocol::auth_required().into()))
        .await
        .is_err()
    {
        return;
    }

    loop {
        let message = tokio::select! {
            _ = shutdown.cancelled() => {
                let goodbye = protocol::shutdown_pending(SHUTDOWN_RETRY_AFTER);
                if ws.send(Message::Binary(goodbye.into())).await.is_ok() {
                    close(&mut ws, protocol::CLOSE_SHUTDOWN, "Server Shutdown").await;
                }
                return;
            }
            message = ws.next() => message,
        };

        match message {
            None => {
                debug!(close = 1000, "websocket closed");
                return;
            }
            Some(Ok(Message::Binary(bytes))) => {
                if let Err((code, reason)) = on_message(&bytes) {
                    close(&mut ws, code, reason).await;
                    return;
                }
            }
            Some(Ok(Message::Text(text))) => {
                if let Err((code, reason)) = on_message(text.as_bytes()) {
                    close(&mut ws, code, reason).await;
                    return;
                }
            }
            // Pings are answered by tungstenite on the next read; a close frame is
            // answered likewise, and the stream then ends.
            Some(Ok(_)) => {}
            Some(Err(WsError::Capacity(error))) => {
                debug!(%error, "websocket message over the size limit");
                close(&mut ws, protocol::CLOSE_TOO_BIG, "Message Too Big").await;
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
        }
    }
}

/// Applies the pre-authentication rules to one message.
fn on_message(bytes: &[u8]) -> Result<(), (u16, &'static str)> {
    let kind = protocol::message_type(bytes).map_err(|_| {
        debug!("undecodable message");
        (protocol::CLOSE_PROTOCOL_ERROR, "Protocol Error")
    })?;
    if kind != protocol::AUTH {
        debug!(message.type = %kind, "message before authentication");
        return Err((protocol::CLOSE_AUTH, "Auth required"));
    }
    // TODO(#3): verify the token and hand the session to the data plane. Until then an
    // AUTH is neither accepted nor refused, and the connection stays open.
    debug!("AUTH received; authentication is not implemented yet");
    Ok(())
}

async fn close<S>(ws: &mut WebSocketStream<S>, code: u16, reason: &'static str)
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
