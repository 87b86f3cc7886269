//! Moves one link's messages between a WebSocket and the exchange, and honours its deadline.
//! Decides nothing: what to send, when the link is dead and what is a violation is the core's.

use std::future::poll_fn;

use async_tungstenite::WebSocketStream;
use async_tungstenite::tungstenite::Message;
use async_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use async_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use futures::{AsyncRead, AsyncWrite, SinkExt, StreamExt};
use hakuban_core::Link;

/// WebSocket settings for a link with these limits.
pub(crate) fn websocket_config(limits: &hakuban_core::Limits) -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(limits.max_message_bytes))
        .max_frame_size(Some(limits.max_message_bytes))
        // tungstenite zero-fills this much before every read: 128 KiB (its default) costs more
        // than the whole small-message round trip, 16 KiB keeps large messages cheap enough.
        .read_buffer_size(16 * 1024)
}

/// Runs the link until the connection ends; returns why it ended.
pub(crate) async fn drive<S>(ws: WebSocketStream<S>, mut link: Link) -> String
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (mut tx, mut rx) = ws.split();
    // A link's deadline only ever moves later (it follows the last activity), so the timer is
    // re-armed when it fires rather than on every message.
    let far = || tokio::time::Instant::now() + std::time::Duration::from_secs(3600);
    let sleep = tokio::time::sleep_until(link.next_deadline().map_or_else(far, Into::into));
    tokio::pin!(sleep);
    loop {
        tokio::select! {
            incoming = rx.next() => match incoming {
                Some(Ok(Message::Binary(bytes))) => {
                    if let Err(error) = link.receive(&bytes) {
                        let reason = error.to_string();
                        close(&mut tx, CloseCode::Policy, &reason).await;
                        return reason;
                    }
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => link.activity(),
                Some(Ok(Message::Text(_))) => {
                    let reason = "text frames are not part of the protocol".to_string();
                    link.close(&reason);
                    close(&mut tx, CloseCode::Unsupported, &reason).await;
                    return reason;
                }
                Some(Ok(Message::Close(frame))) => {
                    let reason = frame.map_or_else(|| "peer closed the connection".to_string(), |f| {
                        format!("peer closed the connection: {}", f.reason)
                    });
                    link.close(&reason);
                    return reason;
                }
                Some(Err(error)) => {
                    let reason = format!("connection failed: {error}");
                    link.close(&reason);
                    return reason;
                }
                None => {
                    let reason = "connection closed".to_string();
                    link.close(&reason);
                    return reason;
                }
            },
            outgoing = poll_fn(|cx| link.poll_transmit(cx)) => match outgoing {
                Some(message) => {
                    if let Err(error) = tx.send(Message::Binary(message.into())).await {
                        let reason = format!("sending failed: {error}");
                        link.close(&reason);
                        return reason;
                    }
                }
                None => {
                    let reason = link.closed_reason().unwrap_or_else(|| "closed".to_string());
                    close(&mut tx, CloseCode::Normal, &reason).await;
                    return reason;
                }
            },
            () = &mut sleep => {
                link.handle_timeout();
                sleep.as_mut().reset(link.next_deadline().map_or_else(far, Into::into));
            }
        }
    }
}

/// Sends a close frame carrying `reason` (cut to fit the frame), ignoring failures: the
/// connection is going away either way.
async fn close<T>(tx: &mut T, code: CloseCode, reason: &str)
where
    T: futures::Sink<Message> + Unpin,
{
    let mut cut = reason.len().min(120);
    while !reason.is_char_boundary(cut) {
        cut -= 1;
    }
    let frame = CloseFrame { code, reason: reason[..cut].to_string().into() };
    let _ = tx.send(Message::Close(Some(frame))).await;
    let _ = tx.close().await;
}
