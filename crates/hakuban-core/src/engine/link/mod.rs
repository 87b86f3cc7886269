//! Links: the engine's side of a connection to a parent (upstream) or a child (downstream).
//!
//! A link turns incoming frames into inputs (declarations, assignments, states) and produces the
//! frames its peer needs: the hello, declarations of what this node observes and exposes
//! (aggregated and coalesced, upstream only), exposer assignments and state streams (downstream),
//! states, keep-alives. Decoding, delta reconstruction and encoding happen outside the engine, in
//! [`crate::Link`]; here frames carry whole states.
//!
//! This file holds the link record, opening and closing, deadlines and the transmit queue;
//! `receive.rs` dispatches incoming frames, `declare.rs` aggregates declarations up the tree and
//! `channels.rs` decides which states flow where.

mod channels;
mod declare;
mod dirty;
mod receive;
mod rights;

use std::cmp::Reverse;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hakuban_proto::{DeclarationState, Frame, LoadLimitPoint};
use hashbrown::{HashMap, HashSet};

pub(crate) use rights::Told;

use super::{Engine, Event, LinkId, ObjectId, SinkId, TagId, next};
use crate::access::{AccessToken, Principal, Refusal};
use crate::close::CloseReason;
use crate::descriptor::{ObjectDescriptor, TagDescriptor};
use crate::state::{DataBytes, ObjectState};

/// Which way a link points in the tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkRole {
    /// To our parent: we declare our contracts to it; it elects exposers and streams states.
    Upstream,
    /// To a child: it declares its contracts to us.
    Downstream,
}

/// Settings of one link.
#[derive(Clone, Debug)]
pub struct LinkConfig {
    /// Our name, sent in the hello.
    pub name: String,
    /// The link fails if nothing arrives for this long, or if the peer takes none of our bytes
    /// for this long. Default 120 s.
    pub timeout: Duration,
    /// A keep-alive is sent after this long without sending anything. Default 60 s; keep it
    /// below the peer's timeout.
    pub keep_alive: Duration,
    /// The peer's hello must arrive within this long of the link opening. Default 10 s.
    pub hello_timeout: Duration,
    /// Load-limit schedule sent to the parent (upstream links only; empty: unlimited).
    pub load_limit: Vec<LoadLimitPoint>,
    /// Bounds on what the peer may send.
    pub limits: hakuban_proto::Limits,
    /// Access token sent to the parent in the hello (upstream links only).
    pub token: Option<AccessToken>,
}

impl Default for LinkConfig {
    fn default() -> Self {
        LinkConfig {
            name: "hakuban".to_string(),
            timeout: Duration::from_secs(120),
            keep_alive: Duration::from_secs(60),
            hello_timeout: Duration::from_secs(10),
            load_limit: Vec::new(),
            limits: hakuban_proto::Limits::default(),
            token: None,
        }
    }
}

/// What the engine knows about one link.
#[derive(Clone, Debug, PartialEq)]
pub struct LinkInfo {
    /// Which way it points.
    pub role: LinkRole,
    /// Our name on it.
    pub local_name: String,
    /// The peer's name, once its hello arrived.
    pub peer_name: Option<String>,
    /// Parent side: Σ 1/capacity of the objects assigned to the child.
    pub load: f64,
    /// Parent side: the child's load limit in force (`None`: unlimited).
    pub load_limit: Option<f64>,
    /// Why it was closed, if it was.
    pub closed: Option<CloseReason>,
}

/// A frame the engine wants sent, before payload encoding.
#[derive(Clone, Debug)]
pub enum LinkOutput {
    /// A frame ready to encode as is.
    Frame(Frame),
    /// A state of `object` (our id on this link); `baseline` is the previous state sent on the
    /// same channel, if any, for the encoder to compute a delta and omit an unchanged format.
    State {
        /// Our id of the object on this link.
        object: u32,
        /// The state to send.
        state: Arc<ObjectState<DataBytes>>,
        /// What the peer holds for this channel.
        baseline: Option<Arc<ObjectState<DataBytes>>>,
        /// Synchronisation age at send time, in microseconds (0: now).
        synchronized_us_ago: u64,
    },
}

/// A frame from the peer, decoded and with its state reconstructed.
#[derive(Clone, Debug)]
pub enum LinkInput {
    /// The peer's hello (its version was already checked).
    Hello {
        /// The peer's name.
        name: String,
        /// The peer's load-limit schedule.
        load_limit: Vec<LoadLimitPoint>,
        /// The peer's access token, if it sent one.
        token: Option<AccessToken>,
    },
    /// The peer binds `id` to an object descriptor.
    DeclareObject(u32, ObjectDescriptor),
    /// The peer binds `id` to a tag descriptor.
    DeclareTag(u32, TagDescriptor),
    /// The peer drops an object id.
    ForgetObject(u32),
    /// The peer drops a tag id.
    ForgetTag(u32),
    /// A child's aggregated declaration on an object.
    ObjectInterest(u32, DeclarationState),
    /// A child's aggregated declaration on a tag.
    TagInterest(u32, DeclarationState),
    /// The parent elects us as the object's exposer.
    AssignExposer(u32),
    /// The parent no longer wants us to expose the object.
    RevokeExposer(u32),
    /// The parent starts streaming the object to us.
    StreamStart(u32),
    /// The parent stops streaming the object to us.
    StreamEnd(u32),
    /// A state of the object.
    State(u32, Arc<ObjectState<DataBytes>>),
    /// Only the synchronisation of the object's last state changed.
    Synchronized(u32, u64),
    /// The parent refused (or, with nothing refused, accepts again) parts of our declaration.
    ObjectRefused(u32, Refusal),
    /// As `ObjectRefused`, for a tag.
    TagRefused(u32, Refusal),
    /// Keeps the link alive.
    KeepAlive,
    /// The peer closes the link.
    Close(String),
}

impl LinkInput {
    /// The input's name, for messages (without its contents).
    pub fn kind(&self) -> &'static str {
        match self {
            LinkInput::Hello { .. } => "Hello",
            LinkInput::DeclareObject(..) => "DeclareObject",
            LinkInput::DeclareTag(..) => "DeclareTag",
            LinkInput::ForgetObject(_) => "ForgetObject",
            LinkInput::ForgetTag(_) => "ForgetTag",
            LinkInput::ObjectInterest(..) => "ObjectInterest",
            LinkInput::TagInterest(..) => "TagInterest",
            LinkInput::AssignExposer(_) => "AssignExposer",
            LinkInput::RevokeExposer(_) => "RevokeExposer",
            LinkInput::StreamStart(_) => "StreamStart",
            LinkInput::StreamEnd(_) => "StreamEnd",
            LinkInput::State(..) => "State",
            LinkInput::Synchronized(..) => "Synchronized",
            LinkInput::ObjectRefused(..) => "ObjectRefused",
            LinkInput::TagRefused(..) => "TagRefused",
            LinkInput::KeepAlive => "KeepAlive",
            LinkInput::Close(_) => "Close",
        }
    }
}

pub(crate) struct LinkRec {
    pub role: LinkRole,
    pub config: LinkConfig,
    pub peer_name: Option<String>,
    pub hello_received: bool,
    /// Parent side: the child's token (to check it again when the policy changes) and who it
    /// names (`None`: no policy, everything allowed).
    pub peer_token: Option<AccessToken>,
    pub principal: Option<Principal>,
    /// Parent side: what the child was told about its declarations, by descriptor.
    pub refused_objects: HashMap<ObjectDescriptor, Told>,
    pub refused_tags: HashMap<TagDescriptor, Told>,
    /// Parent side: refusals logged on this link so far.
    pub refusals_logged: u32,
    /// Child side: what the parent refused us.
    pub upstream_refusals: HashMap<ObjectDescriptor, Refusal>,
    pub upstream_tag_refusals: HashMap<TagDescriptor, Refusal>,
    /// Parent side: the child's load-limit timeline (instant, limit), sorted.
    pub load_limit: Vec<(Instant, f64)>,
    /// Parent side: Σ 1/capacity over the objects assigned to this child.
    pub load: f64,
    pub opened_at: Instant,
    pub last_rx: Instant,
    pub last_tx: Instant,
    /// Since when the transport has been unable to hand our bytes to the peer.
    pub write_blocked_since: Option<Instant>,
    /// The deadline this link has in the engine's deadline heap (its earliest entry).
    pub check_at: Option<Instant>,
    pub closed: Option<CloseReason>,
    pub peer_objects: HashMap<u32, ObjectDescriptor>,
    pub peer_tags: HashMap<u32, TagDescriptor>,
    pub my_objects: HashMap<ObjectId, u32>,
    pub my_tags: HashMap<TagId, u32>,
    pub next_id: u32,
    /// Upstream: what we last declared per object and tag, and what may have changed since.
    pub sent_objects: HashMap<ObjectId, DeclarationState>,
    pub sent_tags: HashMap<TagId, DeclarationState>,
    pub dirty_objects: HashSet<ObjectId>,
    pub dirty_tags: HashSet<TagId>,
    /// Downstream: objects and tags this child declared (declarations live on the records).
    pub declared_objects: HashSet<ObjectId>,
    pub declared_tags: HashSet<TagId>,
    /// Downstream: when (in declaration order) the child started exposing each object or tag;
    /// among equally loaded children the earliest exposer wins, so incumbents keep objects.
    pub exposing_since_objects: HashMap<ObjectId, u64>,
    pub exposing_since_tags: HashMap<TagId, u64>,
    /// Channels we send states on: the state last sent on each.
    pub sending: HashMap<ObjectId, Option<Arc<ObjectState<DataBytes>>>>,
    pub dirty_sending: dirty::DirtySet,
    /// Channels we accept states on, each with the sink id its producer counts as.
    pub receiving: HashMap<ObjectId, ReceivingChannel>,
    pub control: VecDeque<Control>,
    /// An [`Event::Transmit`] was emitted and the transport has not asked for frames since.
    pub signalled: bool,
}

/// A control frame waiting to be sent. Kept small: connecting a router to a child that exposes
/// a million objects queues two frames per object at once (declare, assign), so a declaration
/// is held as its descriptor (its strings written when sent) and other frames are boxed.
pub(crate) enum Control {
    /// [`Frame::DeclareObject`] of our `id` for the object.
    DeclareObject(u32, ObjectDescriptor),
    /// Any other frame.
    Frame(Box<Frame>),
}

impl Control {
    pub fn frame(frame: Frame) -> Self {
        Control::Frame(Box::new(frame))
    }

    pub fn into_output(self) -> LinkOutput {
        LinkOutput::Frame(match self {
            Control::DeclareObject(id, descriptor) => {
                Frame::DeclareObject { id, tags: descriptor.tags_to_strings(), json: descriptor.json_to_string() }
            }
            Control::Frame(frame) => *frame,
        })
    }
}

/// Control frames handed out per [`Engine::link_transmit`] call: a long queue is encoded a part
/// at a time, as the socket drains, not copied out all at once.
const CONTROL_PER_TRANSMIT: usize = 4096;

/// Tells the link's transport, once until it next asks, that there is something to send.
pub(super) fn signal(rec: &mut LinkRec, events: &mut VecDeque<Event>, link: LinkId) {
    if !rec.signalled && rec.closed.is_none() {
        rec.signalled = true;
        events.push_back(Event::Transmit(link));
    }
}

impl LinkRec {
    /// A fresh id for one of our descriptors on this link (never 0).
    fn allocate_id(&mut self) -> u32 {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1).max(1);
        id
    }
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct ReceivingChannel {
    pub sink: SinkId,
    /// Parent side: the load this assignment added to the child.
    pub load: f64,
}

impl Engine {
    /// Opens a link; its first output is our hello. An upstream link is refused if one is
    /// already open: the network must stay a tree.
    pub fn open_link(&mut self, role: LinkRole, config: LinkConfig, now: Instant) -> Result<LinkId, CloseReason> {
        if role == LinkRole::Upstream && self.upstream.is_some() {
            return Err(CloseReason::ClosedLocally("this exchange already has an upstream link".to_string()));
        }
        let id = LinkId(next(&mut self.ids.link));
        let hello = Frame::Hello {
            version: hakuban_proto::PROTOCOL_VERSION,
            name: config.name.clone(),
            load_limit: if role == LinkRole::Upstream { config.load_limit.clone() } else { Vec::new() },
            token: if role == LinkRole::Upstream {
                config.token.as_ref().map(|t| t.secret().to_string())
            } else {
                None
            },
        };
        let mut control = VecDeque::new();
        control.push_back(Control::frame(hello));
        self.links.insert(
            id,
            Box::new(LinkRec {
                role,
                config,
                peer_name: None,
                hello_received: false,
                peer_token: None,
                principal: None,
                refused_objects: HashMap::new(),
                refused_tags: HashMap::new(),
                refusals_logged: 0,
                upstream_refusals: HashMap::new(),
                upstream_tag_refusals: HashMap::new(),
                load_limit: Vec::new(),
                load: 0.0,
                opened_at: now,
                last_rx: now,
                last_tx: now,
                write_blocked_since: None,
                check_at: None,
                closed: None,
                peer_objects: HashMap::new(),
                peer_tags: HashMap::new(),
                my_objects: HashMap::new(),
                my_tags: HashMap::new(),
                next_id: 1,
                sent_objects: HashMap::new(),
                sent_tags: HashMap::new(),
                dirty_objects: HashSet::new(),
                dirty_tags: HashSet::new(),
                declared_objects: HashSet::new(),
                declared_tags: HashSet::new(),
                exposing_since_objects: HashMap::new(),
                exposing_since_tags: HashMap::new(),
                sending: HashMap::new(),
                dirty_sending: dirty::DirtySet::default(),
                receiving: HashMap::new(),
                control,
                signalled: false,
            }),
        );
        if let Some(rec) = self.links.get_mut(&id) {
            signal(rec, &mut self.events, id);
        }
        self.schedule_link_deadline(id);
        if role == LinkRole::Upstream {
            self.upstream = Some(id);
            self.redeclare_everything(id);
        }
        self.finish_input();
        Ok(id)
    }

    /// Closes a link (the connection died, or we close it): every declaration, assignment and
    /// channel it carried is withdrawn and exposers are re-elected. Its record stays, closed,
    /// until [`Engine::remove_link`], so the transport can read the reason.
    pub fn close_link(&mut self, link: LinkId, reason: CloseReason, now: Instant) {
        let Some(rec) = self.links.get_mut(&link) else { return };
        if rec.closed.is_some() {
            return;
        }
        rec.closed = Some(reason.clone());
        self.events.push_back(Event::LinkClosed(link, reason));
        let role = rec.role;
        let declared_objects: Vec<ObjectId> = rec.declared_objects.drain().collect();
        let declared_tags: Vec<TagId> = rec.declared_tags.drain().collect();
        rec.exposing_since_objects.clear();
        rec.exposing_since_tags.clear();
        let sending: Vec<ObjectId> = rec.sending.drain().map(|(o, _)| o).collect();
        let receiving: Vec<(ObjectId, ReceivingChannel)> = rec.receiving.drain().collect();
        rec.dirty_sending.clear();
        rec.control.clear();
        rec.refused_objects.clear();
        rec.refused_tags.clear();
        let lost_refusals = !rec.upstream_refusals.is_empty() || !rec.upstream_tag_refusals.is_empty();
        rec.upstream_refusals.clear();
        rec.upstream_tag_refusals.clear();
        if self.upstream == Some(link) {
            self.upstream = None;
        }
        if lost_refusals {
            self.upstream_refusals_lost(now);
        }
        let mut affected: HashSet<ObjectId> = HashSet::new();
        for object in declared_objects {
            if let Some(o) = self.objects.get_mut(&object) {
                o.down.retain(|(l, _)| *l != link);
            }
            affected.insert(object);
        }
        for tag in declared_tags {
            if let Some(t) = self.tags.get_mut(&tag) {
                t.down.retain(|(l, _)| *l != link);
                affected.extend(t.objects.iter().copied());
            }
            self.remove_tag_if_unreferenced(tag);
        }
        for object in sending {
            if let Some(o) = self.objects.get_mut(&object) {
                o.down_streaming.retain(|l| *l != link);
                if role == LinkRole::Upstream {
                    o.up_sending = false;
                }
            }
            affected.insert(object);
        }
        for (object, channel) in receiving {
            if let Some(o) = self.objects.get_mut(&object) {
                if role == LinkRole::Upstream {
                    o.up_receiving = false;
                }
                if matches!(o.exposer, Some(super::records::Exposer::Downstream(l) | super::records::Exposer::Upstream(l)) if l == link)
                {
                    o.exposer = None;
                }
            }
            self.desynchronize(object, channel.sink, now);
            affected.insert(object);
        }
        let mut affected: Vec<ObjectId> = affected.into_iter().collect();
        affected.sort_unstable();
        for object in affected {
            self.refresh(object, now);
            self.gc_objects.push(object);
        }
        self.finish_input();
    }

    /// Closes the upstream link, if one is open.
    pub fn close_upstream(&mut self, reason: CloseReason, now: Instant) {
        if let Some(link) = self.upstream {
            self.close_link(link, reason, now);
        }
    }

    /// Forgets a closed link's record (its handle is gone). Closes it first if needed.
    pub fn remove_link(&mut self, link: LinkId, now: Instant) {
        self.close_link(link, CloseReason::ClosedLocally("link dropped".to_string()), now);
        self.links.remove(&link);
        crate::shrink::map(&mut self.links);
        // Entries of links gone stay in the deadline heap until popped: keep it proportional.
        if self.link_deadlines.len() > 2 * self.links.len() + 64 {
            let links = &self.links;
            self.link_deadlines =
                links.iter().filter_map(|(id, rec)| rec.check_at.map(|at| Reverse((at, *id)))).collect();
        }
    }

    /// What the engine knows about a link, if it exists.
    pub fn link_info(&self, link: LinkId, now: Instant) -> Option<LinkInfo> {
        let rec = self.links.get(&link)?;
        Some(LinkInfo {
            role: rec.role,
            local_name: rec.config.name.clone(),
            peer_name: rec.peer_name.clone(),
            load: rec.load,
            load_limit: current_load_limit(&rec.load_limit, now),
            closed: rec.closed.clone(),
        })
    }

    /// Parent side: the child's current load and the load limit in force (`None`: unlimited).
    pub fn link_load(&self, link: LinkId, now: Instant) -> (f64, Option<f64>) {
        match self.links.get(&link) {
            Some(rec) => (rec.load, current_load_limit(&rec.load_limit, now)),
            None => (0.0, None),
        }
    }

    /// Whether an upstream link is open.
    pub fn has_upstream(&self) -> bool {
        self.upstream.is_some()
    }

    /// Why the link was closed, if it was (`ClosedLocally` for a link removed).
    pub fn link_closed(&self, link: LinkId) -> Option<CloseReason> {
        match self.links.get(&link) {
            Some(rec) => rec.closed.clone(),
            None => Some(CloseReason::ClosedLocally("link removed".to_string())),
        }
    }

    /// The peer's name, once its hello arrived.
    pub fn link_peer_name(&self, link: LinkId) -> Option<&str> {
        self.links.get(&link).and_then(|rec| rec.peer_name.as_deref())
    }

    /// Feeds one decoded frame from the peer. A protocol violation closes the link and is
    /// returned; the frame's effects on other links are those of the closing.
    pub fn link_receive(&mut self, link: LinkId, input: LinkInput, now: Instant) -> Result<(), CloseReason> {
        self.link_receive_kept(link, input, now).map(|_| ())
    }

    /// As [`link_receive`](Self::link_receive); `Ok(false)` when the input is a state that no
    /// open channel took, so the transport keeps no delta baseline for it.
    pub(crate) fn link_receive_kept(
        &mut self,
        link: LinkId,
        input: LinkInput,
        now: Instant,
    ) -> Result<bool, CloseReason> {
        let Some(rec) = self.links.get_mut(&link) else {
            return Err(CloseReason::ClosedLocally("link removed".to_string()));
        };
        if let Some(reason) = &rec.closed {
            return Err(reason.clone());
        }
        rec.last_rx = now;
        let result = self.dispatch(link, input, now);
        if let Err(reason) = &result {
            // The transport reports the reason once, with the peer's address.
            self.close_link(link, reason.clone(), now);
        }
        self.finish_input();
        result
    }

    /// Notes that the peer sent something not worth a frame (a transport keep-alive).
    pub fn link_activity(&mut self, link: LinkId, now: Instant) {
        if let Some(rec) = self.links.get_mut(&link) {
            rec.last_rx = now;
        }
    }

    /// The link's next frames, oldest first, about `max_bytes` of payload at most (at least one
    /// frame when there is any): call it when the transport can take a message, and again while
    /// it returns frames. Empty when there is nothing; then [`Event::Transmit`] announces more.
    /// What is not taken stays coalesced here (the latest state per object), so a peer that
    /// reads slowly costs no queue of versions.
    pub fn link_transmit(&mut self, link: LinkId, now: Instant, max_bytes: usize) -> Vec<LinkOutput> {
        self.flush_declarations(link);
        let Some(rec) = self.links.get_mut(&link) else { return Vec::new() };
        rec.signalled = false;
        if rec.closed.is_some() {
            return Vec::new();
        }
        let control = rec.control.len().min(CONTROL_PER_TRANSMIT);
        // Sized for what is waiting (up to a point), not grown one doubling at a time.
        let mut out = Vec::with_capacity(control + rec.dirty_sending.len().min(1024));
        out.extend(rec.control.drain(..control).map(Control::into_output));
        if !rec.control.is_empty() {
            // States wait until every declaration before them went out.
            rec.last_tx = now;
            signal(rec, &mut self.events, link);
            return out;
        }
        // In the order marked, until the budget is spent; the rest keeps its place.
        let mut bytes = 0usize;
        while bytes < max_bytes {
            let Some(object) = self.links.get_mut(&link).and_then(|rec| rec.dirty_sending.pop()) else { break };
            let before = out.len();
            self.transmit_state(link, object, now, &mut out);
            bytes += out[before..].iter().map(output_size).sum::<usize>();
        }
        if let Some(rec) = self.links.get_mut(&link) {
            if !out.is_empty() {
                rec.last_tx = now;
            }
            if !rec.dirty_sending.is_empty() || !rec.control.is_empty() {
                signal(rec, &mut self.events, link);
            }
        }
        out
    }

    /// `true` when the link has an open channel receiving the states of the peer's object `id`
    /// (a transport keeps delta baselines only for those).
    pub fn link_receiving(&self, link: LinkId, id: u32) -> bool {
        let Some(rec) = self.links.get(&link) else { return false };
        let object = rec.peer_objects.get(&id).and_then(|descriptor| self.object_index.get(descriptor));
        object.is_some_and(|object| rec.receiving.contains_key(object))
    }

    /// `true` when [`Engine::link_transmit`] may return frames now, or the link is closed (or
    /// gone): a transport about to wait checks this after registering to be told.
    pub fn link_wants_transmit(&self, link: LinkId) -> bool {
        self.links.get(&link).is_none_or(|rec| {
            rec.closed.is_some()
                || !rec.control.is_empty()
                || !rec.dirty_sending.is_empty()
                || !rec.dirty_objects.is_empty()
                || !rec.dirty_tags.is_empty()
        })
    }

    /// The transport could not hand our bytes to the peer at `now` (its socket is full). If that
    /// lasts longer than the link's timeout, the link fails with
    /// [`CloseReason::WriteTimeout`]. Repeated calls keep the first instant.
    pub fn link_write_blocked(&mut self, link: LinkId, now: Instant) {
        if let Some(rec) = self.links.get_mut(&link)
            && rec.write_blocked_since.is_none()
        {
            rec.write_blocked_since = Some(now);
            self.schedule_link_deadline(link);
        }
    }

    /// The transport handed bytes to the peer again: the write deadline is lifted.
    pub fn link_write_progress(&mut self, link: LinkId) {
        if let Some(rec) = self.links.get_mut(&link) {
            rec.write_blocked_since = None;
        }
    }

    /// Puts the link's current deadline in the heap if it is earlier than what is there.
    pub(super) fn schedule_link_deadline(&mut self, link: LinkId) {
        let Some(deadline) = self.link_timeout(link) else { return };
        let Some(rec) = self.links.get_mut(&link) else { return };
        if rec.check_at.is_none_or(|at| deadline < at) {
            rec.check_at = Some(deadline);
            self.link_deadlines.push(Reverse((deadline, link)));
        }
    }

    /// Handles the deadlines of every link that are due at `now` (see
    /// [`Engine::handle_timeout`]).
    pub(super) fn handle_link_deadlines(&mut self, now: Instant) {
        while let Some(Reverse((at, link))) = self.link_deadlines.peek().copied() {
            if at > now {
                break;
            }
            self.link_deadlines.pop();
            let Some(rec) = self.links.get_mut(&link) else { continue };
            if rec.check_at != Some(at) {
                continue; // a stale entry: the link has an earlier one, handled already
            }
            rec.check_at = None;
            self.link_handle_timeout(link, now);
            self.schedule_link_deadline(link);
        }
    }

    /// The earliest instant in the deadline heap (possibly early: the link re-checks).
    pub(super) fn next_link_deadline(&self) -> Option<Instant> {
        self.link_deadlines.peek().map(|Reverse((at, _))| *at)
    }

    /// The next instant [`Engine::link_handle_timeout`] must be called for this link.
    pub fn link_timeout(&self, link: LinkId) -> Option<Instant> {
        let rec = self.links.get(&link)?;
        if rec.closed.is_some() {
            return None;
        }
        // Durations too large to add to an instant mean "never".
        let timeout = rec.last_rx.checked_add(rec.config.timeout);
        let keep_alive = rec.last_tx.checked_add(rec.config.keep_alive);
        let write = rec.write_blocked_since.and_then(|at| at.checked_add(rec.config.timeout));
        let hello = if rec.hello_received { None } else { rec.opened_at.checked_add(rec.config.hello_timeout) };
        [timeout, keep_alive, write, hello].into_iter().flatten().min()
    }

    /// Handles the link's deadlines: a silent peer closes the link; an idle link gets a
    /// keep-alive queued. Calling early is harmless.
    pub fn link_handle_timeout(&mut self, link: LinkId, now: Instant) {
        let Some(rec) = self.links.get_mut(&link) else { return };
        if rec.closed.is_some() {
            return;
        }
        let due =
            |since: Option<Instant>| since.and_then(|at| at.checked_add(rec.config.timeout)).is_some_and(|d| now >= d);
        if !rec.hello_received && rec.opened_at.checked_add(rec.config.hello_timeout).is_some_and(|d| now >= d) {
            let reason = CloseReason::HelloTimeout(rec.config.hello_timeout);
            self.close_link(link, reason, now);
            return;
        }
        if due(rec.write_blocked_since) {
            let reason = CloseReason::WriteTimeout(rec.config.timeout);
            self.close_link(link, reason, now);
            return;
        }
        if due(Some(rec.last_rx)) {
            let reason = CloseReason::ReceiveTimeout(rec.config.timeout);
            self.close_link(link, reason, now);
            return;
        }
        if rec.last_tx.checked_add(rec.config.keep_alive).is_some_and(|deadline| now >= deadline)
            && rec.control.is_empty()
        {
            rec.control.push_back(Control::frame(Frame::KeepAlive));
            rec.last_tx = now;
            signal(rec, &mut self.events, link);
        }
    }

    /// Our id for `object` on `link`, declaring it to the peer first if new.
    pub(super) fn my_object_id(&mut self, link: LinkId, object: ObjectId) -> Option<u32> {
        let rec = self.links.get_mut(&link)?;
        if let Some(id) = rec.my_objects.get(&object) {
            return Some(*id);
        }
        let descriptor = &self.objects.get(&object)?.descriptor;
        let id = rec.allocate_id();
        rec.my_objects.insert(object, id);
        rec.control.push_back(Control::DeclareObject(id, descriptor.clone()));
        Some(id)
    }

    /// Our id for `tag` on `link`, declaring it to the peer first if new.
    pub(super) fn my_tag_id(&mut self, link: LinkId, tag: TagId) -> Option<u32> {
        let rec = self.links.get_mut(&link)?;
        if let Some(id) = rec.my_tags.get(&tag) {
            return Some(*id);
        }
        let json = self.tags.get(&tag)?.descriptor.json_to_string();
        let id = rec.allocate_id();
        rec.my_tags.insert(tag, id);
        rec.control.push_back(Control::frame(Frame::DeclareTag { id, json }));
        Some(id)
    }

    /// Queues a control frame and wakes the link's transmitter.
    pub(super) fn queue_frame(&mut self, link: LinkId, frame: Frame) {
        if let Some(rec) = self.links.get_mut(&link)
            && rec.closed.is_none()
        {
            rec.control.push_back(Control::frame(frame));
            signal(rec, &mut self.events, link);
        }
    }

    /// The object record is going away: links that named it forget its id.
    pub(super) fn forget_object_on_links(&mut self, object: ObjectId) {
        for rec in self.links.values_mut() {
            rec.sent_objects.remove(&object);
            rec.dirty_objects.remove(&object);
            if let Some(id) = rec.my_objects.remove(&object)
                && rec.closed.is_none()
            {
                rec.control.push_back(Control::frame(Frame::ForgetObject { id }));
            }
            crate::shrink::map(&mut rec.my_objects);
            crate::shrink::map(&mut rec.sent_objects);
            crate::shrink::map(&mut rec.sending);
            crate::shrink::map(&mut rec.receiving);
            crate::shrink::set(&mut rec.declared_objects);
            crate::shrink::set(&mut rec.dirty_objects);
            rec.dirty_sending.shrink();
            crate::shrink::map(&mut rec.exposing_since_objects);
        }
    }

    pub(super) fn forget_tag_on_links(&mut self, tag: TagId) {
        for rec in self.links.values_mut() {
            rec.sent_tags.remove(&tag);
            rec.dirty_tags.remove(&tag);
            if let Some(id) = rec.my_tags.remove(&tag)
                && rec.closed.is_none()
            {
                rec.control.push_back(Control::frame(Frame::ForgetTag { id }));
            }
        }
    }
}

/// Roughly how many payload bytes an output carries (to cut [`Engine::link_transmit`]'s answers).
fn output_size(output: &LinkOutput) -> usize {
    match output {
        LinkOutput::State { state, .. } => state.data.len() + 32,
        LinkOutput::Frame(_) => 16,
    }
}

/// The limit in force at `now` for a timeline built from a load-limit schedule: `None` is
/// unlimited. Linear between points; the last point's value after it.
pub(crate) fn current_load_limit(timeline: &[(Instant, f64)], now: Instant) -> Option<f64> {
    let first = timeline.first()?;
    let mut previous = *first;
    if now <= first.0 {
        return Some(first.1);
    }
    for point in &timeline[1..] {
        if now < point.0 {
            let span = point.0.saturating_duration_since(previous.0).as_secs_f64();
            if span <= 0.0 {
                return Some(point.1);
            }
            let t = now.saturating_duration_since(previous.0).as_secs_f64() / span;
            return Some(previous.1 + (point.1 - previous.1) * t);
        }
        previous = *point;
    }
    Some(previous.1)
}

/// Builds the timeline of a child's schedule received at `now`: starts at 0, then the points.
/// Negative or non-finite offsets are clamped to 0.
pub(crate) fn load_limit_timeline(schedule: &[LoadLimitPoint], now: Instant) -> Vec<(Instant, f64)> {
    if schedule.is_empty() {
        return Vec::new();
    }
    let mut timeline = vec![(now, 0.0)];
    for point in schedule {
        let seconds = if point.after_seconds.is_finite() { point.after_seconds.clamp(0.0, 1e9) } else { 0.0 };
        timeline.push((now + Duration::from_secs_f64(f64::from(seconds)), f64::from(point.limit)));
    }
    // Stable: points at the same offset keep their order, the last one wins from then on.
    timeline.sort_by_key(|point| point.0);
    // Points at the very start replace the implicit zero (`load-limit=3` means 3 at once): keep
    // only the last of those at or before `now`, in one pass.
    let at_start = timeline.partition_point(|point| point.0 <= now);
    timeline.drain(..at_start - 1);
    timeline
}
