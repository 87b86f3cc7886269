//! State channels over links: which states flow where, and the sending and receiving ends.
//!
//! * Child side: the parent assigns us an object (`AssignExposer`): we send its states up. The
//!   parent streams an object to us (`StreamStart`): the upstream becomes its exposer here.
//! * Parent side: a child observing an object (object- or tag-level) gets a stream whenever an
//!   exposer is elected that is not that child; a child elected as exposer is sent
//!   `AssignExposer` and its states are received as those of a sink.
//!
//! Every channel starts with a full state (the sender's baseline starts empty), which is also how
//! resynchronisation after a reconnection works.

use std::sync::Arc;
use std::time::Instant;

use hakuban_proto::{DeclarationState, Frame};

use super::{LinkOutput, LinkRole, ReceivingChannel};
use crate::engine::records::{Exposer, ObjectRec};
use crate::engine::{Engine, LinkId, ObjectId, SinkId, next};
use crate::state::{DataBytes, DataSynchronized, ObjectState};

/// What one child wants of an object, combining its object- and tag-level declarations.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct DownstreamInterest {
    pub link: LinkId,
    pub observes: bool,
    pub exposes: bool,
    /// Object-level capacity plus the capacities of its tag declarations on the object's tags.
    pub capacity: u32,
    /// When it started exposing the object (earliest of its object- and tag-level declarations).
    pub exposing_since: u64,
}

/// The children interested in one object.
pub(crate) type Interests = smallvec::SmallVec<[DownstreamInterest; 4]>;

impl Engine {
    /// Every downstream declaration touching the object: its object-level ones, then those on
    /// each of its tags (a child can appear more than once).
    pub(crate) fn downstream_declarations<'a>(
        &'a self,
        rec: &'a ObjectRec,
    ) -> impl Iterator<Item = &'a (LinkId, DeclarationState)> + 'a {
        let tag_declarations = rec.tags.iter().filter_map(|tag| self.tags.get(tag)).flat_map(|tag| tag.down.iter());
        rec.down.iter().chain(tag_declarations)
    }

    /// Every child with a declaration touching `object`, or a stream of it, in link order.
    /// Inline for up to four children: called for every object a balancing pass checks.
    pub(crate) fn downstream_interests(&self, object: ObjectId) -> Interests {
        let Some(rec) = self.objects.get(&object) else { return Interests::new() };
        let interest = |link: LinkId, observes: bool, expose: Option<_>| DownstreamInterest {
            link,
            observes,
            exposes: expose.is_some(),
            capacity: expose.unwrap_or(0),
            exposing_since: u64::MAX,
        };
        // Every declaration and stream as an entry of its own, then sorted and merged per link:
        // an object a thousand children observe costs a sort, not a thousand linear searches.
        let mut entries: Interests = self
            .downstream_declarations(rec)
            .map(|&(link, declaration)| interest(link, declaration.observe, declaration.expose))
            .chain(rec.down_streaming.iter().map(|&link| interest(link, false, None)))
            .collect();
        entries.sort_by_key(|i| i.link);
        let mut interests = Interests::new();
        for entry in entries {
            match interests.last_mut() {
                Some(last) if last.link == entry.link => {
                    last.observes |= entry.observes;
                    last.exposes |= entry.exposes;
                    last.capacity = last.capacity.saturating_add(entry.capacity);
                }
                _ => interests.push(entry),
            }
        }
        for interest in &mut interests {
            let Some(link) = self.links.get(&interest.link) else { continue };
            let object_since = link.exposing_since_objects.get(&object).copied();
            let tag_since = rec.tags.iter().filter_map(|t| link.exposing_since_tags.get(t).copied()).min();
            interest.exposing_since = object_since.into_iter().chain(tag_since).min().unwrap_or(u64::MAX);
        }
        interests
    }

    /// Child side: the parent elected us as the object's exposer.
    pub(super) fn start_sending_up(&mut self, link: LinkId, object: ObjectId, now: Instant) {
        let Some(rec) = self.objects.get_mut(&object) else { return };
        rec.up_sending = true;
        self.open_sending(link, object);
        self.refresh(object, now);
    }

    pub(super) fn stop_sending_up(&mut self, link: LinkId, object: ObjectId, now: Instant) {
        if let Some(rec) = self.objects.get_mut(&object) {
            rec.up_sending = false;
        }
        self.close_sending(link, object);
        self.refresh(object, now);
        self.gc_objects.push(object);
    }

    /// Child side: the parent streams the object to us; the upstream becomes its exposer.
    pub(super) fn start_receiving_from_upstream(&mut self, link: LinkId, object: ObjectId, now: Instant) {
        let sink = SinkId(next(&mut self.ids.sink));
        let Some(rec) = self.objects.get_mut(&object) else { return };
        rec.up_receiving = true;
        let previous =
            self.links.get_mut(&link).and_then(|l| l.receiving.insert(object, ReceivingChannel { sink, load: 0.0 }));
        if let Some(previous) = previous {
            self.desynchronize(object, previous.sink, now);
        }
        self.refresh(object, now);
    }

    pub(super) fn stop_receiving_from_upstream(&mut self, link: LinkId, object: ObjectId, now: Instant) {
        if let Some(rec) = self.objects.get_mut(&object) {
            rec.up_receiving = false;
        }
        if let Some(channel) = self.links.get_mut(&link).and_then(|l| l.receiving.remove(&object)) {
            self.desynchronize(object, channel.sink, now);
        }
        self.refresh(object, now);
        self.gc_objects.push(object);
    }

    /// A state arrived on a channel. States for a channel we did not open (or closed in the
    /// meantime: frames cross on the wire) are dropped: `false`.
    pub(super) fn receive_state(
        &mut self,
        link: LinkId,
        object: ObjectId,
        state: Arc<ObjectState<DataBytes>>,
        now: Instant,
    ) -> bool {
        let channel = self.links.get(&link).and_then(|l| l.receiving.get(&object).copied());
        let Some(channel) = channel else {
            // No channel: the object may have been made for this state alone.
            self.gc_objects.push(object);
            return false;
        };
        self.apply_state(object, channel.sink, state, now);
        true
    }

    pub(super) fn receive_synchronized(&mut self, link: LinkId, object: ObjectId, us_ago: u64, now: Instant) {
        let channel = self.links.get(&link).and_then(|l| l.receiving.get(&object).copied());
        if let Some(channel) = channel {
            self.apply_synchronized(object, channel.sink, DataSynchronized::from_micros_ago(us_ago, now), now);
        }
        self.gc_objects.push(object);
    }

    /// Parent side: elects child `link` as the object's exposer.
    pub(crate) fn assign_downstream(&mut self, link: LinkId, object: ObjectId, capacity: u32) {
        let Some(id) = self.my_object_id(link, object) else { return };
        let sink = SinkId(next(&mut self.ids.sink));
        let load = 1.0 / f64::from(capacity.max(1));
        if let Some(rec) = self.links.get_mut(&link) {
            rec.load += load;
            rec.receiving.insert(object, ReceivingChannel { sink, load });
        }
        self.queue_frame(link, Frame::AssignExposer { object: id });
    }

    /// Parent side: child `link` is no longer the object's exposer.
    pub(crate) fn revoke_downstream(&mut self, link: LinkId, object: ObjectId, now: Instant) {
        let Some(channel) = self.links.get_mut(&link).and_then(|l| l.receiving.remove(&object)) else { return };
        if let Some(rec) = self.links.get_mut(&link) {
            rec.load = (rec.load - channel.load).max(0.0);
        }
        self.desynchronize(object, channel.sink, now);
        if let Some(id) = self.links.get(&link).and_then(|l| l.my_objects.get(&object).copied()) {
            self.queue_frame(link, Frame::RevokeExposer { object: id });
        }
    }

    /// Parent side: starts or stops streams to children so that exactly those observing the
    /// object, other than its exposer, get one while an exposer is elected.
    pub(crate) fn update_downstream_streams(&mut self, object: ObjectId) {
        let Some(rec) = self.objects.get(&object) else { return };
        let exposer = rec.exposer;
        let streaming = rec.down_streaming.clone();
        for interest in self.downstream_interests(object) {
            let link = interest.link;
            let open = self.links.get(&link).is_some_and(|l| l.closed.is_none() && l.role == LinkRole::Downstream);
            let wanted = open && interest.observes && exposer.is_some() && exposer != Some(Exposer::Downstream(link));
            let active = streaming.contains(&link);
            if wanted && !active {
                let Some(id) = self.my_object_id(link, object) else { continue };
                self.queue_frame(link, Frame::StreamStart { object: id });
                self.open_sending(link, object);
                if let Some(rec) = self.objects.get_mut(&object) {
                    rec.down_streaming.push(link);
                }
            } else if !wanted && active {
                if let Some(id) = self.links.get(&link).and_then(|l| l.my_objects.get(&object).copied()) {
                    self.queue_frame(link, Frame::StreamEnd { object: id });
                }
                self.close_sending(link, object);
                if let Some(rec) = self.objects.get_mut(&object) {
                    rec.down_streaming.retain(|l| *l != link);
                }
            }
        }
    }

    fn open_sending(&mut self, link: LinkId, object: ObjectId) {
        let _ = self.my_object_id(link, object);
        if let Some(rec) = self.links.get_mut(&link) {
            rec.sending.insert(object, None);
            rec.dirty_sending.insert(object);
            super::signal(rec, &mut self.events, link);
        }
    }

    fn close_sending(&mut self, link: LinkId, object: ObjectId) {
        if let Some(rec) = self.links.get_mut(&link) {
            rec.sending.remove(&object);
            rec.dirty_sending.remove(object);
        }
    }

    /// The object's state changed: every link sending it will look at it before its next batch.
    pub(crate) fn notify_links(&mut self, object: ObjectId) {
        let Some(rec) = self.objects.get(&object) else { return };
        // Once per state on every exchange it crosses: no copy of the link list.
        let upstream = self.upstream.filter(|_| rec.up_sending);
        for &link in rec.down_streaming.iter().chain(upstream.iter()) {
            if let Some(rec) = self.links.get_mut(&link)
                && rec.sending.contains_key(&object)
            {
                rec.dirty_sending.insert(object);
                super::signal(rec, &mut self.events, link);
            }
        }
    }

    /// Appends what the channel for `object` on `link` must send now, if anything.
    pub(super) fn transmit_state(&mut self, link: LinkId, object: ObjectId, now: Instant, out: &mut Vec<LinkOutput>) {
        // Once per state per link: the channel's last state is replaced in place.
        let Some(current) = self.objects.get(&object).and_then(|o| o.state()) else { return };
        if !self.links.get(&link).is_some_and(|l| l.sending.contains_key(&object)) {
            return;
        }
        let Some(id) = self.my_object_id(link, object) else { return };
        let Some(rec) = self.links.get_mut(&link) else { return };
        // A declaration made just now must precede the state that uses it.
        out.extend(rec.control.drain(..).map(super::Control::into_output));
        let Some(last) = rec.sending.get_mut(&object) else { return };
        let us_ago = current.synchronized.to_micros_ago(now);
        match last {
            Some(last) if last.version == current.version => {
                if last.synchronized != current.synchronized {
                    out.push(LinkOutput::Frame(Frame::Synchronized { object: id, us_ago }));
                }
                *last = current;
            }
            _ => {
                let baseline = last.replace(current.clone());
                out.push(LinkOutput::State { object: id, state: current, baseline, synchronized_us_ago: us_ago });
            }
        }
    }
}
