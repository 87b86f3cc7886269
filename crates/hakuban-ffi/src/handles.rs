//! Contracts, state streams and sinks: the handles C waits on. Each wraps a [`Waitable`]; the
//! exported functions are thin, typed wrappers over the generic helpers here.

use std::ffi::c_int;

use futures::Stream;
use hakuban_tokio::{
    ObjectExposeContract, ObjectObserveContract, ObjectStateSink, ObjectStateStream, TagExposeContract,
    TagObserveContract,
};

use crate::descriptor::HakubanObjectDescriptor;
use crate::handle::{hold, release, shared};
use crate::state::HakubanObjectState;
use crate::status::{Failure, HakubanStatus, Outcome, write_out};
use crate::waitable::{Waitable, Waited};

/// A handle that owns a waitable stream.
pub(crate) trait Waiting {
    type Inner: Stream + Unpin;
    fn waitable(&self) -> &Waitable<Self::Inner>;
}

/// Waits for the next item of handle `pointer` and converts it for `*out`.
///
/// # Safety
/// `pointer` is NULL or a live shared handle of type `H`; `out` is NULL or writable.
pub(crate) unsafe fn next<H: Waiting, T>(
    pointer: *const H,
    timeout_ms: i64,
    out: *mut T,
    convert: impl FnOnce(<H::Inner as Stream>::Item) -> Result<T, Failure>,
) -> Outcome {
    // SAFETY: a live shared handle (caller's promise); the call holds its own reference.
    let handle = unsafe { hold(pointer, "handle") }?;
    crate::status::non_null(out, "out")?;
    match handle.waitable().next(timeout_ms) {
        Waited::Item(item) => {
            let value = convert(item)?;
            // SAFETY: `out` is writable (checked not NULL; caller's promise).
            unsafe { write_out(out, value, "out") }
        }
        Waited::Pending => Ok(HakubanStatus::HakubanPending),
        Waited::Ended => Ok(HakubanStatus::HakubanEnded),
    }
}

/// Writes handle `pointer`'s notification descriptor to `*out`.
///
/// # Safety
/// `pointer` is NULL or a live shared handle of type `H`; `out` is NULL or writable.
pub(crate) unsafe fn fd<H: Waiting>(pointer: *const H, out: *mut c_int) -> Outcome {
    // SAFETY: a live shared handle (caller's promise).
    let handle = unsafe { hold(pointer, "handle") }?;
    #[cfg(unix)]
    {
        let fd = handle.waitable().fd().map_err(|e| Failure::new(HakubanStatus::HakubanIoError, e.to_string()))?;
        // SAFETY: `out` is writable (caller's promise).
        unsafe { write_out(out, fd, "out") }
    }
    #[cfg(not(unix))]
    {
        let _ = (handle, out);
        Err(Failure::new(HakubanStatus::HakubanInvalidArgument, "notification descriptors need a Unix system"))
    }
}

/// Another reference to handle `pointer`, written to `*out`.
///
/// # Safety
/// `pointer` is NULL or a live shared handle of type `H`; `out` is NULL or writable.
pub(crate) unsafe fn clone<H>(pointer: *const H, out: *mut *mut H) -> Outcome {
    // SAFETY: a live shared handle (caller's promise).
    let handle = unsafe { hold(pointer, "handle") }?;
    let raw = std::sync::Arc::into_raw(handle).cast_mut();
    // SAFETY: `out` is writable (caller's promise); on failure the reference is given back.
    unsafe { write_out(out, raw, "out") }.inspect_err(|_| unsafe { release(raw) })
}

/// Ends and frees handle `pointer`: every thread waiting on it returns `HAKUBAN_ENDED`.
///
/// # Safety
/// `pointer` is NULL or a live shared handle of type `H`, not used again after.
pub(crate) unsafe fn free<H: Waiting>(pointer: *mut H) {
    if pointer.is_null() {
        return;
    }
    // SAFETY: a live shared handle (caller's promise).
    if let Ok(handle) = unsafe { hold(pointer.cast_const(), "handle") } {
        handle.waitable().end();
    }
    // SAFETY: gives back the C side's reference; calls in progress keep their own.
    unsafe { release(pointer) };
}

/// Interest in one object's states; yields one state stream. Opaque.
pub struct HakubanObjectObserveContract {
    pub(crate) waitable: Waitable<ObjectObserveContract>,
}

/// An offer to expose one object; yields a sink while elected. Opaque.
pub struct HakubanObjectExposeContract {
    pub(crate) waitable: Waitable<ObjectExposeContract>,
}

/// Interest in every live object with a tag; yields one state stream per object. Opaque.
pub struct HakubanTagObserveContract {
    pub(crate) waitable: Waitable<TagObserveContract>,
}

/// An offer to expose every object with a tag; yields one sink per object elected. Opaque.
pub struct HakubanTagExposeContract {
    pub(crate) waitable: Waitable<TagExposeContract>,
}

// The structs are written out above for cbindgen, which does not expand macros.
macro_rules! contract_handle {
    ($name:ident, $inner:ty) => {
        impl Waiting for $name {
            type Inner = $inner;
            fn waitable(&self) -> &Waitable<$inner> {
                &self.waitable
            }
        }

        impl $name {
            pub(crate) fn into_handle(inner: $inner) -> *mut $name {
                shared($name { waitable: Waitable::new(inner) })
            }
        }
    };
}

contract_handle!(HakubanObjectObserveContract, ObjectObserveContract);
contract_handle!(HakubanObjectExposeContract, ObjectExposeContract);
contract_handle!(HakubanTagObserveContract, TagObserveContract);
contract_handle!(HakubanTagExposeContract, TagExposeContract);

/// One object's states, latest first: a slow reader skips versions. Opaque.
pub struct HakubanObjectStateStream {
    pub(crate) waitable: Waitable<ObjectStateStream>,
    pub(crate) descriptor: HakubanObjectDescriptor,
}

impl Waiting for HakubanObjectStateStream {
    type Inner = ObjectStateStream;
    fn waitable(&self) -> &Waitable<ObjectStateStream> {
        &self.waitable
    }
}

/// Where an elected exposer sends an object's states. Opaque.
pub struct HakubanObjectStateSink {
    pub(crate) waitable: Waitable<ObjectStateSink>,
    pub(crate) descriptor: HakubanObjectDescriptor,
}

impl Waiting for HakubanObjectStateSink {
    type Inner = ObjectStateSink;
    fn waitable(&self) -> &Waitable<ObjectStateSink> {
        &self.waitable
    }
}

pub(crate) fn stream_handle(stream: ObjectStateStream) -> Result<*mut HakubanObjectStateStream, Failure> {
    let descriptor = HakubanObjectDescriptor::wrap(stream.descriptor().clone())?;
    Ok(shared(HakubanObjectStateStream { waitable: Waitable::new(stream), descriptor }))
}

pub(crate) fn sink_handle(sink: ObjectStateSink) -> Result<*mut HakubanObjectStateSink, Failure> {
    let descriptor = HakubanObjectDescriptor::wrap(sink.descriptor().clone())?;
    Ok(shared(HakubanObjectStateSink { waitable: Waitable::new(sink), descriptor }))
}

pub(crate) fn state_handle(
    state: hakuban_tokio::ObjectState<hakuban_tokio::DataBytes>,
) -> Result<*mut HakubanObjectState, Failure> {
    Ok(crate::handle::boxed(HakubanObjectState::wrap(state)))
}
