//! Moves one link's messages between a WebSocket and the exchange, and honours its deadline.
//! Decides nothing: what to send, when the link is dead and what is a violation is the core's.
//!
//! Three activities run side by side in the connection's task and never wait for each other
//! (each is polled only when its own waker fires, see [`woken`](crate::woken)):
//! reading (every message goes to the link at once), writing (a message is taken from the link
//! only when the socket has taken the previous one, so a slow peer costs the latest state per
//! object, never a queue), and the link's timer. While the socket takes no bytes the link is told
//! it is blocked, and fails with a write timeout like a silent peer fails with a receive timeout.

use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Poll;
use std::time::Duration;

use async_tungstenite::WebSocketStream;
use async_tungstenite::tungstenite::Message;
use async_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use async_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use futures::{AsyncRead, AsyncWrite, Sink, SinkExt, StreamExt};
use hakuban_core::{CloseReason, Link};
use tokio::sync::Notify;

/// WebSocket settings for a link with these limits.
pub(crate) fn websocket_config(limits: &hakuban_core::Limits) -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(limits.max_message_bytes))
        .max_frame_size(Some(limits.max_message_bytes))
        // tungstenite zero-fills this much before every read, and every connection holds it:
        // 128 KiB (its default) costs more than a small-message round trip; 16 KiB made half of
        // an idle connection's 31 KB (S9 c); 4 KiB brings a connection to 15 KB, with S2 no
        // slower (7,199 and 6,708 round trips/s against 6,200) and large messages read in more,
        // smaller calls.
        .read_buffer_size(4 * 1024)
}

/// The WebSocket close code for a reason: violations are the peer's fault, timeouts are not a
/// normal end, a peer's own close is answered as normal.
pub(crate) fn close_code(reason: &CloseReason) -> CloseCode {
    match reason {
        CloseReason::LimitExceeded(hakuban_core::DecodeError::MessageTooLarge { .. }) => CloseCode::Size,
        CloseReason::LimitExceeded(_) | CloseReason::TooManyDeclarations { .. } | CloseReason::Unauthorized(_) => {
            CloseCode::Policy
        }
        CloseReason::VersionMismatch { .. } | CloseReason::Malformed(_) | CloseReason::ProtocolViolation(_) => {
            CloseCode::Protocol
        }
        // Application codes (4000-4999), documented in docs/protocol.md.
        CloseReason::ReceiveTimeout(_) => CloseCode::Library(4000),
        CloseReason::WriteTimeout(_) => CloseCode::Library(4001),
        CloseReason::HelloTimeout(_) => CloseCode::Library(4002),
        CloseReason::ConnectionLost(_) => CloseCode::Away,
        _ => CloseCode::Normal,
    }
}

/// The link, locked (its lock is never contended: one task; a poisoned one is still usable).
fn lock(link: &Mutex<Link>) -> MutexGuard<'_, Link> {
    link.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Feeds one message to the link (the lock is released before the caller awaits anything).
fn receive(link: &Mutex<Link>, bytes: &[u8]) -> Result<(), hakuban_core::LinkError> {
    lock(link).receive(bytes, now())
}

fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

/// Runs the link until the connection ends; returns why it ended. `wrote` is set by the socket
/// whenever the peer takes bytes (see [`Progress`](crate::progress::Progress)).
pub(crate) async fn drive<S>(ws: WebSocketStream<S>, link: Link, wrote: Arc<AtomicBool>) -> CloseReason
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (mut tx, mut rx) = ws.split();
    // Shared by the three activities of this one task; never held across an await.
    let link = Mutex::new(link);
    // Wakes the timer when the link's deadline may have moved earlier (a write got blocked).
    let rearm = Notify::new();
    // Set while a message waits for the socket.
    let blocked = AtomicBool::new(false);

    let reader = async {
        // A message read ahead, not yet given to the link.
        let mut next = None;
        // Set when the read ahead found nothing: the socket holds our waker already, so the next
        // read waits for it instead of trying again at once (each attempt zero-fills
        // tungstenite's read buffer).
        let mut registered = false;
        loop {
            let item = match next.take() {
                Some(item) => item,
                None => {
                    if std::mem::take(&mut registered) {
                        woken_again().await;
                    }
                    rx.next().await
                }
            };
            let reason = match item {
                Some(Ok(Message::Binary(bytes))) => match receive(&link, &bytes) {
                    Ok(()) => {
                        // When the next message is already here, the tasks this one woke (other
                        // links' writers, observers) take its states before the next overwrites
                        // them. Otherwise the task sleeps on the socket as usual: a lone message
                        // costs no extra turn.
                        match poll_fn(|cx| Poll::Ready(rx.poll_next_unpin(cx))).await {
                            Poll::Ready(item) => {
                                next = Some(item);
                                let_others_run().await;
                            }
                            Poll::Pending => registered = true,
                        }
                        continue;
                    }
                    Err(hakuban_core::LinkError::Closed(reason)) => reason,
                    Err(error) => CloseReason::ProtocolViolation(error.to_string()),
                },
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {
                    lock(&link).activity(now());
                    continue;
                }
                Some(Ok(Message::Text(_))) => {
                    CloseReason::ProtocolViolation("text frames are not part of the protocol".to_string())
                }
                Some(Ok(Message::Close(frame))) => {
                    CloseReason::PeerClosed(frame.map(|f| f.reason.to_string()).unwrap_or_default())
                }
                Some(Err(error)) => CloseReason::ConnectionLost(error.to_string()),
                None => CloseReason::ConnectionLost("end of stream".to_string()),
            };
            lock(&link).close(reason.clone());
            return reason;
        }
    };

    let writer = async {
        loop {
            let message = poll_fn(|cx| {
                let mut link = lock(&link);
                if let Some(message) = link.poll_transmit(now()) {
                    return Poll::Ready(Some(message));
                }
                if link.closed_reason().is_some() {
                    return Poll::Ready(None);
                }
                // Wakes at once if something to send (or the close) came since.
                link.register_waker(cx.waker());
                Poll::Pending
            })
            .await;
            let Some(message) = message else {
                return lock(&link).closed_reason().unwrap_or_else(|| CloseReason::ClosedLocally(String::new()));
            };
            let progress = Progress { link: &link, wrote: &wrote, blocked: &blocked, rearm: &rearm };
            if let Err(error) = send(&mut tx, Message::Binary(message.into()), progress).await {
                let reason = CloseReason::ConnectionLost(format!("sending failed: {error}"));
                lock(&link).close(reason.clone());
                return reason;
            }
        }
    };

    let timer = async {
        loop {
            // A link the engine closed (a timeout, our own close) ends the connection here even
            // if the writer is stuck on a socket the peer does not read.
            let (deadline, closed) = {
                let link = lock(&link);
                (link.poll_timeout(), link.closed_reason())
            };
            if let Some(reason) = closed {
                return reason;
            }
            let far = now() + Duration::from_secs(3600);
            tokio::select! {
                () = tokio::time::sleep_until(deadline.unwrap_or(far).into()) => {
                    let mut link = lock(&link);
                    if blocked.load(Ordering::Relaxed) && wrote.swap(false, Ordering::Relaxed) {
                        // Bytes moved since the write got blocked: it is slow, not stuck.
                        link.write_progress();
                        link.write_blocked(now());
                    }
                    link.handle_timeout(now());
                }
                () = rearm.notified() => {}
            }
        }
    };

    let reason = {
        // Pinned in this block, so they are gone (and `tx` free) before the close below.
        let (reader, writer, timer) = (std::pin::pin!(reader), std::pin::pin!(writer), std::pin::pin!(timer));
        crate::woken::first(reader, writer, timer).await
    };
    // The peer's close is answered as normal; our reasons go in the close frame.
    let code = close_code(&reason);
    let text = match &reason {
        CloseReason::PeerClosed(_) => String::new(),
        other => other.to_string(),
    };
    if !matches!(reason, CloseReason::ConnectionLost(_) | CloseReason::WriteTimeout(_)) {
        // Bounded: a peer that does not read is not waited for.
        let _ = tokio::time::timeout(Duration::from_secs(1), close(&mut tx, code, &text)).await;
    }
    reason
}

/// Returns after the tasks ready on this worker have had a turn: the task wakes itself and is
/// put at the back of the run queue, without the driver poll that `yield_now` waits for.
async fn let_others_run() {
    poll_fn(|cx| {
        cx.waker().wake_by_ref();
        Poll::Ready(())
    })
    .await;
    woken_again().await;
}

/// Returns on its second poll: the first is left pending for a waker registered before it
/// (activities are polled again only when their waker fires, see [`woken`](crate::woken)).
async fn woken_again() {
    let mut polled = false;
    poll_fn(|_| if std::mem::replace(&mut polled, true) { Poll::Ready(()) } else { Poll::Pending }).await;
}

/// What the writer shares with the timer about a write in progress.
struct Progress<'a> {
    link: &'a Mutex<Link>,
    /// Set by the socket whenever the peer takes bytes.
    wrote: &'a AtomicBool,
    /// Set while the socket has not taken the message being sent.
    blocked: &'a AtomicBool,
    rearm: &'a Notify,
}

/// Sends one message, telling the link while the socket takes none of it.
async fn send<T>(tx: &mut T, message: Message, progress: Progress<'_>) -> Result<(), T::Error>
where
    T: Sink<Message> + Unpin,
{
    let mut message = Some(message);
    let mut blocked = false;
    let result = poll_fn(|cx| {
        if let Some(pending) = message.take() {
            match tx.poll_ready_unpin(cx) {
                Poll::Ready(Ok(())) => {
                    if let Err(error) = tx.start_send_unpin(pending) {
                        return Poll::Ready(Err(error));
                    }
                }
                Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
                Poll::Pending => message = Some(pending),
            }
        }
        if message.is_none() {
            match tx.poll_flush_unpin(cx) {
                Poll::Ready(result) => return Poll::Ready(result),
                Poll::Pending => {}
            }
        }
        if !blocked {
            blocked = true;
            progress.blocked.store(true, Ordering::Relaxed);
            progress.wrote.store(false, Ordering::Relaxed);
            lock(progress.link).write_blocked(now());
            progress.rearm.notify_one();
        }
        Poll::Pending
    })
    .await;
    if blocked {
        progress.blocked.store(false, Ordering::Relaxed);
        lock(progress.link).write_progress();
    }
    result
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
