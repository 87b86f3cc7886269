//! Incoming frames: checks that each is legal for the link's role and state, then applies it.

use std::time::Instant;

use hakuban_proto::DeclarationState;

use super::{LinkInput, LinkRole, current_load_limit, load_limit_timeline};
use crate::close::CloseReason;
use crate::engine::{Engine, LinkId, ObjectId, TagId};

impl Engine {
    /// Applies one input; `false` when it is a state that no open channel took (a transport
    /// keeps no delta baseline for it).
    pub(super) fn dispatch(&mut self, link: LinkId, input: LinkInput, now: Instant) -> Result<bool, CloseReason> {
        let Some(rec) = self.links.get_mut(&link) else { return Ok(true) };
        let role = rec.role;
        match input {
            LinkInput::Hello { name, load_limit, token } => {
                if rec.hello_received {
                    return Err(violation("second hello".to_string()));
                }
                rec.hello_received = true;
                tracing::debug!(link = link.0, peer = %name, "link established");
                rec.peer_name = Some(name);
                if role == LinkRole::Downstream {
                    rec.load_limit = load_limit_timeline(&load_limit, now);
                    self.admit(link, token)?;
                }
                return Ok(true);
            }
            _ if !rec.hello_received => return Err(violation("a frame arrived before the hello".to_string())),
            LinkInput::KeepAlive => return Ok(true),
            LinkInput::Close(reason) => return Err(CloseReason::PeerClosed(reason)),
            LinkInput::DeclareObject(id, descriptor) => {
                if rec.peer_objects.len() + rec.peer_tags.len() >= rec.config.limits.max_declarations
                    && !rec.peer_objects.contains_key(&id)
                {
                    return Err(CloseReason::TooManyDeclarations { limit: rec.config.limits.max_declarations });
                }
                // One copy per exchange: a descriptor we already hold is shared, not kept twice
                // (each hop of a state declares its object again, in the sender's ids).
                let descriptor = self.object_index.get_key_value(&descriptor).map_or(descriptor, |(d, _)| d.clone());
                rec.peer_objects.insert(id, descriptor);
                return Ok(true);
            }
            LinkInput::DeclareTag(id, descriptor) => {
                if rec.peer_objects.len() + rec.peer_tags.len() >= rec.config.limits.max_declarations
                    && !rec.peer_tags.contains_key(&id)
                {
                    return Err(CloseReason::TooManyDeclarations { limit: rec.config.limits.max_declarations });
                }
                let descriptor = self.tag_index.get_key_value(&descriptor).map_or(descriptor, |(d, _)| d.clone());
                rec.peer_tags.insert(id, descriptor);
                return Ok(true);
            }
            LinkInput::ForgetObject(id) => {
                let forgotten = rec.peer_objects.remove(&id);
                if let Some(descriptor) = &forgotten {
                    rec.refused_objects.remove(descriptor);
                }
                if role == LinkRole::Downstream
                    && let Some(descriptor) = forgotten
                    && let Some(object) = self.object_index.get(&descriptor).copied()
                {
                    self.set_downstream_object_declaration(link, object, DeclarationState::default(), now);
                }
                return Ok(true);
            }
            LinkInput::ForgetTag(id) => {
                let forgotten = rec.peer_tags.remove(&id);
                if let Some(descriptor) = &forgotten {
                    rec.refused_tags.remove(descriptor);
                }
                if role == LinkRole::Downstream
                    && let Some(descriptor) = forgotten
                    && let Some(tag) = self.tag_index.get(&descriptor).copied()
                {
                    self.set_downstream_tag_declaration(link, tag, DeclarationState::default(), now);
                }
                return Ok(true);
            }
            _ => {}
        }
        match (role, input) {
            (LinkRole::Downstream, LinkInput::ObjectInterest(id, state)) => {
                let object = self.peer_object(link, id)?;
                let state = self.authorize_object(link, object, state);
                self.set_downstream_object_declaration(link, object, state, now);
            }
            (LinkRole::Downstream, LinkInput::TagInterest(id, state)) => {
                let tag = self.peer_tag(link, id)?;
                let state = self.authorize_tag(link, tag, state);
                self.set_downstream_tag_declaration(link, tag, state, now);
            }
            (LinkRole::Upstream, LinkInput::ObjectRefused(id, refusal)) => {
                let object = self.peer_object(link, id)?;
                self.receive_object_refusal(link, object, refusal, now);
            }
            (LinkRole::Upstream, LinkInput::TagRefused(id, refusal)) => {
                let tag = self.peer_tag(link, id)?;
                self.receive_tag_refusal(link, tag, refusal, now);
            }
            (LinkRole::Upstream, LinkInput::AssignExposer(id)) => {
                let object = self.peer_object(link, id)?;
                self.start_sending_up(link, object, now);
            }
            (LinkRole::Upstream, LinkInput::RevokeExposer(id)) => {
                let object = self.peer_object(link, id)?;
                self.stop_sending_up(link, object, now);
            }
            (LinkRole::Upstream, LinkInput::StreamStart(id)) => {
                let object = self.peer_object(link, id)?;
                self.start_receiving_from_upstream(link, object, now);
            }
            (LinkRole::Upstream, LinkInput::StreamEnd(id)) => {
                let object = self.peer_object(link, id)?;
                self.stop_receiving_from_upstream(link, object, now);
            }
            (_, LinkInput::State(id, state)) => {
                let object = self.peer_object(link, id)?;
                return Ok(self.receive_state(link, object, state, now));
            }
            (_, LinkInput::Synchronized(id, us_ago)) => {
                let object = self.peer_object(link, id)?;
                self.receive_synchronized(link, object, us_ago, now);
            }
            (role, input) => {
                let kind = input.kind();
                return Err(violation(format!("{kind} is not allowed from a {role:?} peer's side")));
            }
        }
        Ok(true)
    }

    /// The local object named by the peer's `id`, created if missing.
    fn peer_object(&mut self, link: LinkId, id: u32) -> Result<ObjectId, CloseReason> {
        let descriptor = self.links.get(&link).and_then(|rec| rec.peer_objects.get(&id));
        let descriptor = descriptor.ok_or_else(|| violation(format!("undeclared object id {id}")))?;
        // Once per state received: the usual case, a known object, costs no descriptor copy.
        if let Some(object) = self.object_index.get(descriptor) {
            return Ok(*object);
        }
        let descriptor = descriptor.clone();
        Ok(self.object_for(&descriptor))
    }

    /// The local tag named by the peer's `id`, created if missing.
    fn peer_tag(&mut self, link: LinkId, id: u32) -> Result<TagId, CloseReason> {
        let descriptor = self.links.get(&link).and_then(|rec| rec.peer_tags.get(&id).cloned());
        let descriptor = descriptor.ok_or_else(|| violation(format!("undeclared tag id {id}")))?;
        Ok(self.tag_for(&descriptor))
    }

    /// Whether a child may take one more object of capacity `capacity` (parent side).
    pub(crate) fn downstream_has_room(&self, link: LinkId, capacity: u32, now: Instant) -> bool {
        let Some(rec) = self.links.get(&link) else { return false };
        match current_load_limit(&rec.load_limit, now) {
            None => true,
            Some(limit) => rec.load + 1.0 / f64::from(capacity.max(1)) <= limit + 1e-9,
        }
    }
}

fn violation(what: String) -> CloseReason {
    CloseReason::ProtocolViolation(what)
}
