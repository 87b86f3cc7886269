//! [`Link`]: the public, runtime-agnostic API a transport drives (documented on the type).

use std::collections::VecDeque;
use std::sync::Arc;
use std::task::Waker;
use std::time::Instant;

use crate::close::CloseReason;
use crate::codec::LinkCodec;
use crate::engine::{LinkConfig, LinkId, LinkInput, LinkRole};
use crate::facade::Shared;

/// Payload bytes the engine hands out per message: a backlog is encoded as the socket drains,
/// a message at a time, not all at once.
const TRANSMIT_BYTES: usize = 256 << 10;

/// Why a link could not be opened, or was closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// The exchange already has an upstream link (or a connector reserved it): the network
    /// must stay a tree, so an exchange has at most one parent.
    #[error("this exchange already has an upstream")]
    UpstreamTaken,
    /// The link is closed, for this reason.
    #[error("link closed: {0}")]
    Closed(CloseReason),
}

/// One connection between this exchange and a peer: the public, runtime-agnostic API a
/// transport drives to connect two exchanges.
///
/// A link is sans-IO: it never reads a clock, never blocks and owns no socket. The transport
/// (hakuban-tokio's WebSocket one, a test's in-memory pipe, a C event loop) feeds it what the peer
/// sent, asks it for messages to send, and honours its deadline, always passing the time:
///
/// * [`Link::receive`]`(message, now)` for every transport message from the peer;
/// * [`Link::poll_transmit`]`(now)` until it returns `None` whenever the link was signalled (see
///   [`Link::register_waker`]) and the transport can take a message;
/// * [`Link::poll_timeout`] for the next deadline, [`Link::handle_timeout`]`(now)` once it passed;
/// * [`Link::write_blocked`] / [`Link::write_progress`] when the socket stops or resumes taking
///   bytes, so a peer that stops reading fails like one that stops talking;
/// * [`Link::close`] to end it from our side, or just drop it.
///
/// A synchronous run loop over any message transport (here: in-memory queues between two
/// exchanges, on a clock the loop advances itself):
///
/// ```
/// use std::time::{Duration, Instant};
/// use futures::StreamExt;
/// use hakuban_core::{Exchange, JsonSerializeState, Link, LinkConfig, LinkRole, ObjectState};
///
/// let (parent, child) = (Exchange::new(), Exchange::new());
/// let mut up = child.open_link(LinkRole::Upstream, LinkConfig::default()).unwrap();
/// let mut down = parent.open_link(LinkRole::Downstream, LinkConfig::default()).unwrap();
/// let mut observe = parent.object_observe_contract((["t"], "x")).build();
/// let mut expose = child.object_expose_contract((["t"], "x")).build();
///
/// let mut now = Instant::now();
/// // One step: everything each side has to say goes across, then due deadlines are honoured.
/// let mut step = |up: &mut Link, down: &mut Link, now: Instant| {
///     let mut moved = false;
///     while let Some(message) = up.poll_transmit(now) {
///         down.receive(&message, now).expect("a valid peer");
///         moved = true;
///     }
///     while let Some(message) = down.poll_transmit(now) {
///         up.receive(&message, now).expect("a valid peer");
///         moved = true;
///     }
///     for link in [up, down] {
///         if link.poll_timeout().is_some_and(|deadline| deadline <= now) {
///             link.handle_timeout(now);
///         }
///     }
///     moved
/// };
/// futures::executor::block_on(async {
///     let mut stream = observe.next().await.unwrap();
///     while step(&mut up, &mut down, now) {}
///     let mut sink = expose.next().await.unwrap();
///     sink.publish(ObjectState::new("hello").json_serialize());
///     while step(&mut up, &mut down, now) {}
///     assert_eq!(stream.next().await.unwrap().data.as_slice(), b"\"hello\"");
/// });
/// // An idle link sends keep-alives at its deadline, so the peer's timeout never fires.
/// now += Duration::from_secs(60);
/// step(&mut up, &mut down, now);
/// assert!(up.closed_reason().is_none() && down.closed_reason().is_none());
/// ```
///
/// A transport that waits (rather than spins) registers a waker with [`Link::register_waker`]
/// before sleeping; it is woken when the link has something to send or closes. Decoding, delta
/// reconstruction and encoding run in `receive` and `poll_transmit`, outside the exchange's lock.
pub struct Link {
    shared: Arc<Shared>,
    id: LinkId,
    codec: LinkCodec,
    outgoing: VecDeque<Vec<u8>>,
    /// The latest instant the transport gave us (used where a call takes none: close, drop).
    now: Instant,
}

impl Link {
    pub(crate) fn open(shared: Arc<Shared>, role: LinkRole, config: LinkConfig) -> Result<Link, LinkError> {
        let limits = config.limits.clone();
        let now = shared.now();
        let id = shared.engine(|engine| engine.open_link(role, config, now)).map_err(|_| LinkError::UpstreamTaken)?;
        Ok(Link { shared, id, codec: LinkCodec::new(limits), outgoing: VecDeque::new(), now })
    }

    fn advance(&mut self, now: Instant) -> Instant {
        self.now = self.now.max(now);
        self.now
    }

    /// This link's id in its exchange (as shown in snapshots).
    pub fn id(&self) -> u64 {
        self.id.0
    }

    /// Feeds one transport message the peer sent, received at `now`. On error the link is
    /// closed: send the reason to the peer (in the transport's close frame) and drop the
    /// connection. Then (as after any input) call [`poll_transmit`](Self::poll_transmit).
    pub fn receive(&mut self, message: &[u8], now: Instant) -> Result<(), LinkError> {
        let now = self.advance(now);
        let id = self.id;
        // Decoding and delta reconstruction happen here, outside the exchange's lock.
        let decoded = self.codec.decode_with(message, now, Some(self.shared.payloads()));
        let mut declined: smallvec::SmallVec<[u32; 4]> = smallvec::SmallVec::new();
        let result = self.shared.engine(|engine| match decoded {
            Ok(inputs) => {
                for input in inputs {
                    let state = if let LinkInput::State(object, _) = &input { Some(*object) } else { None };
                    // States for channels that are not open are not kept as baselines.
                    if !engine.link_receive_kept(id, input, now)?
                        && let Some(object) = state
                    {
                        declined.push(object);
                    }
                }
                Ok(())
            }
            Err(reason) => {
                engine.close_link(id, reason.clone(), now);
                Err(reason)
            }
        });
        for object in declined {
            self.codec.release(object);
        }
        result.map_err(LinkError::Closed)
    }

    /// Notes activity from the peer at `now` that carries no message (a transport ping).
    pub fn activity(&mut self, now: Instant) {
        let (id, now) = (self.id, self.advance(now));
        self.shared.engine(|engine| engine.link_activity(id, now));
    }

    /// The next transport message to send, or `None` when there is nothing to send now (check
    /// [`closed_reason`](Self::closed_reason): a closed link sends nothing more). Call it until
    /// `None` whenever the transport can take a message: after any input, after being woken,
    /// after a timeout. What the transport does not take stays coalesced in the engine (latest
    /// state per object), and is encoded only when asked for.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Vec<u8>> {
        if let Some(message) = self.outgoing.pop_front() {
            return Some(message);
        }
        let (id, now) = (self.id, self.advance(now));
        let outputs = self.shared.engine(|engine| engine.link_transmit(id, now, TRANSMIT_BYTES));
        if outputs.is_empty() {
            return None;
        }
        // Deltas and encoding happen here, outside the exchange's lock.
        self.codec.encode_with(outputs, &mut self.outgoing, Some(self.shared.payloads()));
        self.outgoing.pop_front()
    }

    /// Registers `waker` to be woken once the link has something to send or closes. If it
    /// already has, `waker` is woken at once, so "register, then sleep" never misses a signal.
    /// Only the latest waker registered is kept.
    pub fn register_waker(&self, waker: &Waker) {
        if !self.outgoing.is_empty() {
            waker.wake_by_ref();
            return;
        }
        let id = self.id;
        self.shared.run_woken(|inner, woken| inner.register_link(id, waker, woken));
    }

    /// When [`handle_timeout`](Self::handle_timeout) must be called next (keep-alive, receive
    /// timeout, write timeout), or `None` once closed. It only moves later by itself; after
    /// [`write_blocked`](Self::write_blocked) it may be earlier.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let id = self.id;
        self.shared.engine(|engine| engine.link_timeout(id))
    }

    /// Handles the link's deadlines at `now`: queues a keep-alive when idle, closes the link when
    /// the peer has been silent, or has taken none of our bytes, for longer than the timeout.
    /// Calling early is harmless. Then call [`poll_transmit`](Self::poll_transmit).
    pub fn handle_timeout(&mut self, now: Instant) {
        let (id, now) = (self.id, self.advance(now));
        self.shared.engine(|engine| engine.link_handle_timeout(id, now));
    }

    /// The transport could not hand bytes to the peer at `now` (its socket buffer is full). If
    /// no [`write_progress`](Self::write_progress) follows within the link's timeout, the link
    /// closes with [`CloseReason::WriteTimeout`] at [`handle_timeout`](Self::handle_timeout).
    pub fn write_blocked(&mut self, now: Instant) {
        let (id, now) = (self.id, self.advance(now));
        self.shared.engine(|engine| engine.link_write_blocked(id, now));
    }

    /// The transport handed bytes to the peer again after [`write_blocked`](Self::write_blocked).
    pub fn write_progress(&mut self) {
        let id = self.id;
        self.shared.engine(|engine| engine.link_write_progress(id));
    }

    /// Closes the link from our side, for `reason` (usually [`CloseReason::ClosedLocally`]). Its
    /// declarations and assignments are withdrawn at once, and exposers re-elected.
    pub fn close(&mut self, reason: CloseReason) {
        let (id, now) = (self.id, self.now);
        self.shared.engine(|engine| engine.close_link(id, reason, now));
    }

    /// Why the link is closed, or `None` while it is open.
    pub fn closed_reason(&self) -> Option<CloseReason> {
        let id = self.id;
        self.shared.engine(|engine| engine.link_closed(id))
    }

    /// Downstream links: the load of objects assigned to the child and the limit in force at
    /// `now`.
    pub fn load(&self, now: Instant) -> (f64, Option<f64>) {
        let id = self.id;
        self.shared.engine(|engine| engine.link_load(id, now))
    }

    /// The peer's name from its hello, once received.
    pub fn peer_name(&self) -> Option<String> {
        let id = self.id;
        self.shared.engine(|engine| engine.link_peer_name(id).map(str::to_string))
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        let (id, now) = (self.id, self.now);
        self.shared.run(|inner| inner.remove_link(id, now));
    }
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link").field("id", &self.id.0).finish()
    }
}
