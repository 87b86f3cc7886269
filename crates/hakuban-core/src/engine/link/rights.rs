//! Access rights on links: the parent side admits a child by its token and filters each of its
//! declarations through the token's rights; the child side records the refusals its parent sends
//! and passes them on to its own children.
//!
//! What a child was told is kept per descriptor (not per object record: a refused declaration
//! leaves no record behind), with the refused part of its request, so that a reloaded policy can
//! grant again what it refused before.

use std::sync::Arc;
use std::time::Instant;

use hakuban_proto::{DeclarationState, Frame};

use super::LinkRole;
use crate::access::{AccessPolicy, AccessToken, Refusal};
use crate::close::CloseReason;
use crate::descriptor::{ObjectDescriptor, TagDescriptor};
use crate::engine::{Engine, LinkId, ObjectId, TagId};

/// Refusals logged at `warn` per link; later ones go to `debug` (a client declaring a million
/// refused objects must not flood the log).
const LOUD_REFUSALS: u32 = 10;

/// What a child was last told about one of its declarations.
#[derive(Clone, Debug, Default)]
pub(crate) struct Told {
    /// The part of its request its own rights refused (kept for a later reload).
    pub own: DeclarationState,
    /// The bits in the last refusal frame sent (own refusals and refusals from upstream).
    pub observe: bool,
    pub expose: bool,
}

impl Told {
    fn is_empty(&self) -> bool {
        !self.observe && !self.expose && self.own.is_empty()
    }
}

/// The union of two declarations (the larger capacity of two).
fn union(a: DeclarationState, b: DeclarationState) -> DeclarationState {
    let expose = match (a.expose, b.expose) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, y) => x.or(y),
    };
    DeclarationState { observe: a.observe || b.observe, expose }
}

/// What a refusal is about, for the log line.
fn parts(observe: bool, expose: bool) -> &'static str {
    match (observe, expose) {
        (true, true) => "observe and expose",
        (true, false) => "observe",
        _ => "expose",
    }
}

/// One kind of declaration target (object or tag), so the rules are written once.
enum Target {
    Object(ObjectId, ObjectDescriptor),
    Tag(TagId, TagDescriptor),
}

impl Engine {
    /// Sets (or, with `None`, removes) the policy downstream links are checked against. Links
    /// already open are checked anew: a token no longer known is disconnected, and declarations
    /// outside the new rights are withdrawn as if the child had withdrawn them (it is told so);
    /// declarations refused before and now allowed take effect.
    pub fn set_access_policy(&mut self, policy: Option<Arc<AccessPolicy>>, now: Instant) {
        self.access = policy;
        let links: Vec<LinkId> = self
            .links
            .iter()
            .filter(|(_, rec)| rec.role == LinkRole::Downstream && rec.hello_received && rec.closed.is_none())
            .map(|(id, _)| *id)
            .collect();
        for link in links {
            let token = self.links.get(&link).and_then(|rec| rec.peer_token.clone());
            match self.admit(link, token) {
                Ok(()) => self.reauthorize_link(link, now),
                Err(reason) => {
                    tracing::warn!(link = link.0, %reason, "closing a link after the access policy changed");
                    self.close_link(link, reason, now);
                }
            }
        }
        self.finish_input();
    }

    /// Parent side, at the child's hello: who the token names under the policy.
    pub(super) fn admit(&mut self, link: LinkId, token: Option<AccessToken>) -> Result<(), CloseReason> {
        let principal = match &self.access {
            None => None,
            Some(policy) => match policy.principal(token.as_ref().map(AccessToken::secret)) {
                Some(principal) => Some(principal),
                None => return Err(CloseReason::Unauthorized("unknown access token".to_string())),
            },
        };
        if let Some(rec) = self.links.get_mut(&link) {
            if let Some(principal) = &principal {
                tracing::debug!(link = link.0, principal = %principal.name, "link admitted");
            }
            rec.principal = principal;
            rec.peer_token = token;
        }
        Ok(())
    }

    /// Parent side: the part of the child's declaration on `object` its rights allow; tells the
    /// child what was refused (by its rights, or above us) when that changed.
    pub(super) fn authorize_object(
        &mut self,
        link: LinkId,
        object: ObjectId,
        requested: DeclarationState,
    ) -> DeclarationState {
        if self.unrestricted(link) {
            return requested;
        }
        let Some(descriptor) = self.objects.get(&object).map(|rec| rec.descriptor.clone()) else { return requested };
        self.authorize(link, Target::Object(object, descriptor), requested)
    }

    /// Parent side: as [`Engine::authorize_object`], for a tag declaration.
    pub(super) fn authorize_tag(&mut self, link: LinkId, tag: TagId, requested: DeclarationState) -> DeclarationState {
        if self.unrestricted(link) {
            return requested;
        }
        let Some(descriptor) = self.tags.get(&tag).map(|rec| rec.descriptor.clone()) else { return requested };
        self.authorize(link, Target::Tag(tag, descriptor), requested)
    }

    /// Nothing to check or tell on this link (no policy, no refusal told, none from upstream):
    /// the common case, kept off the declaration path's cost.
    fn unrestricted(&self, link: LinkId) -> bool {
        let refused_above = self
            .upstream
            .and_then(|up| self.links.get(&up))
            .is_some_and(|up| !up.upstream_refusals.is_empty() || !up.upstream_tag_refusals.is_empty());
        !refused_above
            && self.links.get(&link).is_none_or(|rec| {
                rec.principal.is_none() && rec.refused_objects.is_empty() && rec.refused_tags.is_empty()
            })
    }

    fn authorize(&mut self, link: LinkId, target: Target, requested: DeclarationState) -> DeclarationState {
        let above = self.upstream.and_then(|up| self.links.get(&up)).and_then(|up| match &target {
            Target::Object(_, descriptor) => up.upstream_refusals.get(descriptor).cloned(),
            Target::Tag(_, descriptor) => up.upstream_tag_refusals.get(descriptor).cloned(),
        });
        let Some(rec) = self.links.get_mut(&link) else { return requested };
        let (allowed, own) = match (&rec.principal, &target) {
            (None, _) => (requested, DeclarationState::default()),
            (Some(p), Target::Object(_, descriptor)) => p.rights.filter_object(descriptor, requested),
            (Some(p), Target::Tag(_, descriptor)) => p.rights.filter_tag(descriptor, requested),
        };
        let from_above = |bit: bool, refused: fn(&Refusal) -> bool| bit && above.as_ref().is_some_and(refused);
        let told = Told {
            own,
            observe: own.observe || from_above(allowed.observe, |r| r.observe),
            expose: own.expose.is_some() || from_above(allowed.expose.is_some(), |r| r.expose),
        };
        let previous = match &target {
            Target::Object(_, descriptor) => rec.refused_objects.get(descriptor),
            Target::Tag(_, descriptor) => rec.refused_tags.get(descriptor),
        };
        let changed = previous.map_or((false, false), |p| (p.observe, p.expose)) != (told.observe, told.expose);
        let principal = rec.principal.as_ref().map_or_else(|| "anyone".to_string(), |p| p.name.clone());
        let reason = if !own.is_empty() {
            format!("access token `{principal}` may not {} it", parts(own.observe, own.expose.is_some()))
        } else {
            above.map(|r| format!("refused upstream: {}", r.reason)).unwrap_or_default()
        };
        let (observe, expose) = (told.observe, told.expose);
        match &target {
            Target::Object(_, descriptor) if told.is_empty() => drop(rec.refused_objects.remove(descriptor)),
            Target::Object(_, descriptor) => drop(rec.refused_objects.insert(descriptor.clone(), told)),
            Target::Tag(_, descriptor) if told.is_empty() => drop(rec.refused_tags.remove(descriptor)),
            Target::Tag(_, descriptor) => drop(rec.refused_tags.insert(descriptor.clone(), told)),
        }
        let loud = changed && (observe || expose) && rec.refusals_logged < LOUD_REFUSALS;
        if changed && (observe || expose) {
            rec.refusals_logged = rec.refusals_logged.saturating_add(1);
            if rec.refusals_logged == LOUD_REFUSALS + 1 {
                tracing::warn!(link = link.0, %principal, "more refusals on this link: logged at debug level from now on");
            }
        }
        if changed {
            let frame = match &target {
                Target::Object(object, descriptor) => {
                    if loud {
                        tracing::warn!(link = link.0, %principal, object = %descriptor.json_to_string(), %reason,
                            "refused {}", parts(observe, expose));
                    } else if observe || expose {
                        tracing::debug!(link = link.0, %principal, object = %descriptor.json_to_string(), %reason,
                            "refused {}", parts(observe, expose));
                    }
                    self.my_object_id(link, *object).map(|object| Frame::ObjectRefused {
                        object,
                        observe,
                        expose,
                        reason,
                    })
                }
                Target::Tag(tag, descriptor) => {
                    if loud {
                        tracing::warn!(link = link.0, %principal, tag = %descriptor.json_to_string(), %reason,
                            "refused tag {}", parts(observe, expose));
                    } else if observe || expose {
                        tracing::debug!(link = link.0, %principal, tag = %descriptor.json_to_string(), %reason,
                            "refused tag {}", parts(observe, expose));
                    }
                    self.my_tag_id(link, *tag).map(|tag| Frame::TagRefused { tag, observe, expose, reason })
                }
            };
            if let Some(frame) = frame {
                self.queue_frame(link, frame);
            }
        }
        allowed
    }

    /// The child's declaration on `object` in force.
    fn effective_object(&self, link: LinkId, object: ObjectId) -> DeclarationState {
        let down = self.objects.get(&object).map(|rec| rec.down.as_slice()).unwrap_or_default();
        down.iter().find(|(l, _)| *l == link).map(|(_, d)| *d).unwrap_or_default()
    }

    fn effective_tag(&self, link: LinkId, tag: TagId) -> DeclarationState {
        let down = self.tags.get(&tag).map(|rec| rec.down.as_slice()).unwrap_or_default();
        down.iter().find(|(l, _)| *l == link).map(|(_, d)| *d).unwrap_or_default()
    }

    /// What the child asked for on `object`: what is in force plus what was refused.
    fn requested_object(&self, link: LinkId, object: ObjectId) -> DeclarationState {
        let Some(rec) = self.objects.get(&object) else { return DeclarationState::default() };
        let refused = self.links.get(&link).and_then(|l| l.refused_objects.get(&rec.descriptor)).map(|t| t.own);
        union(self.effective_object(link, object), refused.unwrap_or_default())
    }

    fn requested_tag(&self, link: LinkId, tag: TagId) -> DeclarationState {
        let Some(rec) = self.tags.get(&tag) else { return DeclarationState::default() };
        let refused = self.links.get(&link).and_then(|l| l.refused_tags.get(&rec.descriptor)).map(|t| t.own);
        union(self.effective_tag(link, tag), refused.unwrap_or_default())
    }

    /// Re-filters everything a child declared (after a policy change, or when refusals from
    /// upstream changed).
    fn reauthorize_link(&mut self, link: LinkId, now: Instant) {
        let Some(rec) = self.links.get(&link) else { return };
        let mut objects: Vec<ObjectDescriptor> = rec.refused_objects.keys().cloned().collect();
        objects.extend(rec.declared_objects.iter().filter_map(|o| self.objects.get(o)).map(|o| o.descriptor.clone()));
        let mut tags: Vec<TagDescriptor> = rec.refused_tags.keys().cloned().collect();
        tags.extend(rec.declared_tags.iter().filter_map(|t| self.tags.get(t)).map(|t| t.descriptor.clone()));
        for descriptor in objects {
            self.reauthorize_object(link, &descriptor, now);
        }
        for descriptor in tags {
            self.reauthorize_tag(link, &descriptor, now);
        }
    }

    fn reauthorize_object(&mut self, link: LinkId, descriptor: &ObjectDescriptor, now: Instant) {
        let object = self.object_for(descriptor);
        let requested = self.requested_object(link, object);
        let allowed = self.authorize_object(link, object, requested);
        if allowed != self.effective_object(link, object) {
            self.set_downstream_object_declaration(link, object, allowed, now);
        }
        self.gc_objects.push(object);
    }

    fn reauthorize_tag(&mut self, link: LinkId, descriptor: &TagDescriptor, now: Instant) {
        let tag = self.tag_for(descriptor);
        let requested = self.requested_tag(link, tag);
        let allowed = self.authorize_tag(link, tag, requested);
        if allowed != self.effective_tag(link, tag) {
            self.set_downstream_tag_declaration(link, tag, allowed, now);
        }
        self.remove_tag_if_unreferenced(tag);
    }

    /// Child side: the parent refused (or stopped refusing) parts of our declaration on `object`.
    /// Recorded for the snapshot and passed on to our children that declared the same.
    pub(super) fn receive_object_refusal(&mut self, link: LinkId, object: ObjectId, refusal: Refusal, now: Instant) {
        let Some(descriptor) = self.objects.get(&object).map(|rec| rec.descriptor.clone()) else { return };
        if let Some(rec) = self.links.get_mut(&link) {
            if refusal.is_empty() {
                rec.upstream_refusals.remove(&descriptor);
            } else {
                tracing::warn!(object = %descriptor.json_to_string(), reason = %refusal.reason,
                    "the parent refused to let us {}", parts(refusal.observe, refusal.expose));
                rec.upstream_refusals.insert(descriptor.clone(), refusal);
            }
        }
        let children: Vec<LinkId> =
            self.objects.get(&object).map(|o| o.down.iter().map(|(l, _)| *l).collect()).unwrap_or_default();
        for child in children {
            self.reauthorize_object(child, &descriptor, now);
        }
        self.gc_objects.push(object);
    }

    /// Child side: as [`Engine::receive_object_refusal`], for a tag.
    pub(super) fn receive_tag_refusal(&mut self, link: LinkId, tag: TagId, refusal: Refusal, now: Instant) {
        let Some(descriptor) = self.tags.get(&tag).map(|rec| rec.descriptor.clone()) else { return };
        if let Some(rec) = self.links.get_mut(&link) {
            if refusal.is_empty() {
                rec.upstream_tag_refusals.remove(&descriptor);
            } else {
                tracing::warn!(tag = %descriptor.json_to_string(), reason = %refusal.reason,
                    "the parent refused to let us {} the tag", parts(refusal.observe, refusal.expose));
                rec.upstream_tag_refusals.insert(descriptor.clone(), refusal);
            }
        }
        let children: Vec<LinkId> =
            self.tags.get(&tag).map(|t| t.down.iter().map(|(l, _)| *l).collect()).unwrap_or_default();
        for child in children {
            self.reauthorize_tag(child, &descriptor, now);
        }
        self.remove_tag_if_unreferenced(tag);
    }

    /// The upstream link is gone, and the refusals it brought with it: children told about them
    /// are told again (after a reconnection the parent refuses anew what it still refuses).
    pub(super) fn upstream_refusals_lost(&mut self, now: Instant) {
        let children: Vec<LinkId> = self
            .links
            .iter()
            .filter(|(_, rec)| {
                rec.closed.is_none()
                    && (rec.refused_objects.values().chain(rec.refused_tags.values()))
                        .any(|t| (t.observe && !t.own.observe) || (t.expose && t.own.expose.is_none()))
            })
            .map(|(id, _)| *id)
            .collect();
        for child in children {
            self.reauthorize_link(child, now);
        }
    }

    /// Snapshot: our parent's refusal of our declaration on this object, if any.
    pub(crate) fn upstream_refusal(&self, descriptor: &ObjectDescriptor) -> Option<Refusal> {
        self.upstream.and_then(|up| self.links.get(&up)).and_then(|up| up.upstream_refusals.get(descriptor).cloned())
    }

    /// Snapshot: our parent's refusal of our declaration on this tag, if any.
    pub(crate) fn upstream_tag_refusal(&self, descriptor: &TagDescriptor) -> Option<Refusal> {
        self.upstream
            .and_then(|up| self.links.get(&up))
            .and_then(|up| up.upstream_tag_refusals.get(descriptor).cloned())
    }
}
