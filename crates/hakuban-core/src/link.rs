//! [`Link`]: the public, runtime-agnostic API a transport drives to connect two exchanges.
//!
//! A transport (hakuban-tokio's WebSocket one, or yours) opens a link on an exchange as upstream
//! (towards its parent) or downstream (towards a child), then loops:
//!
//! ```no_run
//! # use std::task::Poll;
//! # use hakuban_core::{Exchange, Link, LinkConfig, LinkRole};
//! # fn send(_: Vec<u8>) {} fn recv() -> Option<Vec<u8>> { None } fn sleep_until(_: std::time::Instant) {}
//! let exchange = Exchange::new();
//! let mut link = exchange.open_link(LinkRole::Upstream, LinkConfig::default()).unwrap();
//! let waker = futures::task::noop_waker();
//! let mut cx = std::task::Context::from_waker(&waker);
//! loop {
//!     // 1. Whatever the link has to say goes out, one transport message at a time.
//!     while let Poll::Ready(Some(message)) = link.poll_transmit(&mut cx) {
//!         send(message);
//!     }
//!     if link.closed_reason().is_some() {
//!         break; // close the connection, reporting the reason
//!     }
//!     // 2. Every received message goes in; an error closes the link (report it to the peer).
//!     if let Some(message) = recv() {
//!         if link.receive(&message).is_err() { break; }
//!     }
//!     // 3. The link's deadline (keep-alive, receive timeout) is honoured.
//!     if let Some(deadline) = link.next_deadline() {
//!         sleep_until(deadline);
//!         link.handle_timeout();
//!     }
//! }
//! // Dropping the link tells the exchange the connection is gone.
//! ```
//!
//! A real transport waits on all three at once (the waker passed to `poll_transmit` is woken
//! when there is something to send). Decoding, delta reconstruction and encoding run in
//! `receive` and `poll_transmit`, outside the exchange's lock.

use std::collections::VecDeque;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use crate::codec::LinkCodec;
use crate::engine::{LinkConfig, LinkId, LinkRole};
use crate::exchange::Shared;

/// Why a link could not be opened, or was closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// The exchange already has an upstream link (or a connector reserved it): the network
    /// must stay a tree, so an exchange has at most one parent.
    #[error("this exchange already has an upstream")]
    UpstreamTaken,
    /// The link is closed; the text says why (protocol violation, timeout, peer closed...).
    #[error("link closed: {0}")]
    Closed(String),
}

/// One connection between this exchange and a peer, driven by a transport.
pub struct Link {
    shared: Arc<Shared>,
    id: LinkId,
    codec: LinkCodec,
    outgoing: VecDeque<Vec<u8>>,
}

impl Link {
    pub(crate) fn open(shared: Arc<Shared>, role: LinkRole, config: LinkConfig) -> Result<Link, LinkError> {
        let limits = config.limits.clone();
        let now = Instant::now();
        let id = shared.run(|engine| engine.open_link(role, config, now)).map_err(|_| LinkError::UpstreamTaken)?;
        Ok(Link { shared, id, codec: LinkCodec::new(limits), outgoing: VecDeque::new() })
    }

    /// This link's id in its exchange (as shown in snapshots).
    pub fn id(&self) -> u64 {
        self.id.0
    }

    /// Feeds one transport message from the peer. On error the link is closed: send the reason
    /// to the peer (in the transport's close frame) and drop the connection.
    pub fn receive(&mut self, message: &[u8]) -> Result<(), LinkError> {
        let now = Instant::now();
        let id = self.id;
        let decoded = self.codec.decode(message, now);
        let result = self.shared.run(|engine| match decoded {
            Ok(inputs) => {
                for input in inputs {
                    engine.link_receive(id, input, now)?;
                }
                Ok(())
            }
            Err(reason) => {
                engine.close_link(id, &reason, now);
                Err(reason)
            }
        });
        result.map_err(LinkError::Closed)
    }

    /// Notes transport-level activity from the peer that carries no message (a ping).
    pub fn activity(&mut self) {
        let (id, now) = (self.id, Instant::now());
        self.shared.run(|engine| engine.link_activity(id, now));
    }

    /// The next transport message to send: `Ready(Some)` with a message, `Ready(None)` once the
    /// link is closed (see [`closed_reason`](Self::closed_reason)), `Pending` when there is
    /// nothing to send (the waker is woken when there is).
    pub fn poll_transmit(&mut self, cx: &mut Context<'_>) -> Poll<Option<Vec<u8>>> {
        if let Some(message) = self.outgoing.pop_front() {
            return Poll::Ready(Some(message));
        }
        let (id, now) = (self.id, Instant::now());
        let (outputs, closed) = self.shared.run(|engine| {
            let outputs = engine.link_transmit(id, now, cx.waker());
            (outputs, engine.link_closed(id).is_some())
        });
        if closed {
            return Poll::Ready(None);
        }
        if outputs.is_empty() {
            return Poll::Pending;
        }
        // Deltas and encoding happen here, outside the exchange's lock.
        self.codec.encode(outputs, &mut self.outgoing);
        match self.outgoing.pop_front() {
            Some(message) => Poll::Ready(Some(message)),
            None => Poll::Pending,
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) must be called next.
    pub fn next_deadline(&self) -> Option<Instant> {
        let id = self.id;
        self.shared.run(|engine| engine.link_timeout(id))
    }

    /// Handles the link's deadlines: queues a keep-alive when idle, closes the link when the
    /// peer has been silent past the timeout. Calling early is harmless.
    pub fn handle_timeout(&mut self) {
        let (id, now) = (self.id, Instant::now());
        self.shared.run(|engine| engine.link_handle_timeout(id, now));
    }

    /// Closes the link from our side, for `reason`.
    pub fn close(&mut self, reason: &str) {
        let (id, now) = (self.id, Instant::now());
        self.shared.run(|engine| engine.close_link(id, reason, now));
    }

    /// Why the link is closed, or `None` while it is open.
    pub fn closed_reason(&self) -> Option<String> {
        let id = self.id;
        self.shared.run(|engine| engine.link_closed(id).map(str::to_string))
    }

    /// Downstream links: the load of objects assigned to the child and the limit in force.
    pub fn load(&self) -> (f64, Option<f64>) {
        let (id, now) = (self.id, Instant::now());
        self.shared.run(|engine| engine.link_load(id, now))
    }

    /// The peer's name from its hello, once received.
    pub fn peer_name(&self) -> Option<String> {
        let id = self.id;
        self.shared.run(|engine| engine.link_peer_name(id).map(str::to_string))
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        let (id, now) = (self.id, Instant::now());
        self.shared.run(|engine| engine.remove_link(id, now));
    }
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link").field("id", &self.id.0).finish()
    }
}
