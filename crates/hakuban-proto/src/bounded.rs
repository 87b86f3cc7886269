//! Decoding collections whose length a peer chooses, checked before anything is allocated.
//!
//! Postcard prefixes every sequence with its length. serde's stock `Vec` visitor pre-allocates a
//! capped amount and then keeps pushing, so one message of a million one-byte elements makes the
//! decoder hold tens of bytes per input byte. Here every peer-controlled sequence is read by a
//! visitor that checks the announced length against [`Limits`] (per collection and per message)
//! before reserving room, and stops at the first excess with a typed [`DecodeError`].
//!
//! The limits of the message being decoded are kept in a thread-local for the duration of
//! [`with_limits`], because serde's `deserialize_with` functions take no context. Decoding is
//! synchronous and not re-entrant, so the scope is exact.

use std::cell::RefCell;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, DeserializeOwned, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};

use crate::{DecodeError, Limits};

/// Which collection a limit applies to (named in [`DecodeError::TooManyElements`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Collection {
    /// Frames of one message.
    Frames,
    /// Elements of one state's version.
    Version,
    /// Entries of one format stack.
    Format,
    /// Tags of one object descriptor.
    Tags,
    /// Points of one load-limit schedule.
    LoadLimit,
    /// Hunks of one edit-script payload.
    Hunks,
    /// Inner elements of one message, all collections together.
    Message,
}

impl fmt::Display for Collection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Collection::Frames => "frames in a message",
            Collection::Version => "version elements",
            Collection::Format => "format entries",
            Collection::Tags => "tags of a descriptor",
            Collection::LoadLimit => "load-limit points",
            Collection::Hunks => "hunks of an edit script",
            Collection::Message => "collection elements in a message",
        })
    }
}

struct Scope {
    limits: Limits,
    elements_left: usize,
    violation: Option<DecodeError>,
}

thread_local! {
    static SCOPE: RefCell<Option<Scope>> = const { RefCell::new(None) };
}

/// Runs `decode` with `limits` in force for every bounded collection it reads; returns what it
/// returned and the first limit violation seen, if any (postcard drops custom error texts).
pub(crate) fn with_limits<R>(limits: &Limits, decode: impl FnOnce() -> R) -> (R, Option<DecodeError>) {
    let scope = Scope { limits: limits.clone(), elements_left: limits.max_elements_per_message, violation: None };
    let previous = SCOPE.with(|cell| cell.replace(Some(scope)));
    let result = decode();
    let scope = SCOPE.with(|cell| cell.replace(previous));
    (result, scope.and_then(|s| s.violation))
}

/// Checks that a collection of `count` elements fits its limit and takes `new` elements from the
/// message's budget; records the violation and fails if either is exceeded.
fn admit<E: de::Error>(what: Collection, count: usize, new: usize) -> Result<(), E> {
    let verdict = SCOPE.with(|cell| {
        let mut scope = cell.borrow_mut();
        let defaults;
        let (limits, left) = match scope.as_mut() {
            Some(scope) => (&scope.limits, Some(&mut scope.elements_left)),
            None => {
                defaults = Limits::default();
                (&defaults, None)
            }
        };
        let limit = match what {
            Collection::Frames => limits.max_frames_per_message,
            Collection::Version => limits.max_version_len,
            Collection::Format => limits.max_format_len,
            Collection::Tags => limits.max_tags_per_descriptor,
            Collection::LoadLimit => limits.max_load_limit_points,
            Collection::Hunks => crate::hunks::MAX_HUNKS_ON_WIRE,
            Collection::Message => usize::MAX,
        };
        let total = limits.max_elements_per_message;
        if count > limit {
            return Err(DecodeError::TooManyElements { what, count, limit });
        }
        if what != Collection::Frames
            && let Some(left) = left
        {
            if new > *left {
                let count = total - *left + new;
                return Err(DecodeError::TooManyElements { what: Collection::Message, count, limit: total });
            }
            *left -= new;
        }
        Ok(())
    });
    verdict.map_err(|violation| {
        let message = violation.to_string();
        SCOPE.with(|cell| {
            if let Some(scope) = cell.borrow_mut().as_mut() {
                scope.violation.get_or_insert(violation);
            }
        });
        E::custom(message)
    })
}

struct BoundedVisitor<T> {
    what: Collection,
    marker: PhantomData<T>,
}

impl<'de, T: Deserialize<'de>> Visitor<'de> for BoundedVisitor<T> {
    type Value = Vec<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a sequence of {}", self.what)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
        // Postcard announces the length, but hides it (`None`) when it exceeds the bytes left:
        // then elements are admitted one at a time, and the excess is found as it is reached.
        let announced = seq.size_hint();
        if let Some(count) = announced {
            admit::<A::Error>(self.what, count, count)?;
        }
        let mut out = Vec::with_capacity(announced.unwrap_or(0).min(1024));
        while let Some(element) = seq.next_element()? {
            out.push(element);
            if announced.is_none() {
                admit::<A::Error>(self.what, out.len(), 1)?;
            }
        }
        Ok(out)
    }
}

/// Reads a sequence of at most the limit for `what`.
pub(crate) fn seq<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
    what: Collection,
) -> Result<Vec<T>, D::Error> {
    deserializer.deserialize_seq(BoundedVisitor { what, marker: PhantomData })
}

pub(crate) fn version<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<i64>, D::Error> {
    seq(d, Collection::Version)
}

pub(crate) fn tags<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    seq(d, Collection::Tags)
}

pub(crate) fn load_limit<'de, D: Deserializer<'de>, T: DeserializeOwned>(d: D) -> Result<Vec<T>, D::Error> {
    seq(d, Collection::LoadLimit)
}

pub(crate) fn hunks<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<crate::Hunk>, D::Error> {
    seq(d, Collection::Hunks)
}

/// An optional format stack, bounded.
pub(crate) fn format<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    struct Format(Vec<String>);
    impl<'de> Deserialize<'de> for Format {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            seq(d, Collection::Format).map(Format)
        }
    }
    Ok(Option::<Format>::deserialize(d)?.map(|f| f.0))
}
