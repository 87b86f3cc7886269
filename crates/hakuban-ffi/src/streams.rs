//! State streams (what observers read) and sinks (where exposers write).

use std::ffi::c_int;

use crate::descriptor::HakubanObjectDescriptor;
use crate::handle::{borrow, hold};
use crate::handles::{self, HakubanObjectStateSink, HakubanObjectStateStream, state_handle};
use crate::state::HakubanObjectState;
use crate::status::{Failure, HakubanStatus, boundary, boundary_void};

/// Takes the stream's next state (the object's latest that it has not yielded) and writes it to
/// `*out` (free with `hakuban_object_state_free`). `timeout_ms` as for contracts.
/// `HAKUBAN_PENDING`: nothing new. `HAKUBAN_ENDED`: the stream ended (its contract was freed, the
/// object stopped being live, or the stream was freed by another thread). Thread-safe.
///
/// # Safety
/// `stream` is a live handle; `out` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hakuban_object_state_stream_next(
    stream: *const HakubanObjectStateStream,
    timeout_ms: i64,
    out: *mut *mut HakubanObjectState,
) -> HakubanStatus {
    // SAFETY: the caller promises a live handle and a writable `out`.
    boundary(|| unsafe { handles::next(stream, timeout_ms, out, state_handle) })
}

/// The object the stream reports. Borrowed: valid until the stream is freed. NULL if NULL.
///
/// # Safety
/// `stream` is NULL or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hakuban_object_state_stream_descriptor(
    stream: *const HakubanObjectStateStream,
) -> *const HakubanObjectDescriptor {
    // SAFETY: the caller promises a live handle or NULL.
    unsafe { borrow(stream, "stream") }.map_or(std::ptr::null(), |s| &s.descriptor)
}

/// The stream's notification descriptor (see `hakuban_object_observe_contract_fd`). Thread-safe.
///
/// # Safety
/// `stream` is a live handle; `out` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hakuban_object_state_stream_fd(
    stream: *const HakubanObjectStateStream,
    out: *mut c_int,
) -> HakubanStatus {
    // SAFETY: the caller promises a live handle and a writable `out`.
    boundary(|| unsafe { handles::fd(stream, out) })
}

/// Writes to `*out` another handle to the same stream (it may have the same address), for
/// another thread: each handle is freed on its own, and freeing any ends the stream for all.
/// Thread-safe.
///
/// # Safety
/// `stream` is a live handle; `out` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hakuban_object_state_stream_clone(
    stream: *const HakubanObjectStateStream,
    out: *mut *mut HakubanObjectStateStream,
) -> HakubanStatus {
    // SAFETY: the caller promises a live handle and a writable `out`.
    boundary(|| unsafe { handles::clone(stream, out) })
}

/// Ends the stream and frees this handle (NULL is ignored); threads waiting on it (through any
/// handle) return `HAKUBAN_ENDED`. If its contract still observes the object, the contract
/// yields a fresh stream. Thread-safe.
///
/// # Safety
/// `stream` is NULL or a live handle, not used again after.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hakuban_object_state_stream_free(stream: *mut HakubanObjectStateStream) {
    // SAFETY: ownership of the handle comes back from the caller.
    boundary_void(|| unsafe { handles::free(stream) });
}

/// Waits until the sink may produce: `HAKUBAN_OK` once (produce now), then `HAKUBAN_PENDING`
/// while it stays elected, then `HAKUBAN_ENDED` when it was revoked (stop producing and free
/// it). `timeout_ms` as for contracts. Thread-safe.
///
/// # Safety
/// `sink` is a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hakuban_object_state_sink_next(
    sink: *const HakubanObjectStateSink,
    timeout_ms: i64,
) -> HakubanStatus {
    let mut ignored = ();
    // SAFETY: the caller promises a live handle; `ignored` is writable.
    boundary(|| unsafe { handles::next(sink, timeout_ms, &mut ignored, |_params| Ok(())) })
}

/// Publishes `state` through the sink at once (it is copied; newer versions replace older
/// ones). Never waits. A revoked sink still applies what is sent, as in the Rust API;
/// `HAKUBAN_ENDED` only once the sink was freed. Thread-safe.
///
/// # Safety
/// `sink` and `state` are live handles.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hakuban_object_state_sink_send(
    sink: *const HakubanObjectStateSink,
    state: *const HakubanObjectState,
) -> HakubanStatus {
    boundary(|| {
        // SAFETY: the caller promises live handles; the call holds its own sink reference.
        let (sink, state) = unsafe { (hold(sink, "sink")?, borrow(state, "state")?) };
        let sent = sink.waitable.with(|sink| sink.publish(state.state.clone()));
        sent.map(|()| HakubanStatus::HakubanOk)
            .ok_or_else(|| Failure::new(HakubanStatus::HakubanEnded, "the sink was freed"))
    })
}

/// The object the sink produces. Borrowed: valid until the sink is freed. NULL if NULL.
///
/// # Safety
/// `sink` is NULL or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hakuban_object_state_sink_descriptor(
    sink: *const HakubanObjectStateSink,
) -> *const HakubanObjectDescriptor {
    // SAFETY: the caller promises a live handle or NULL.
    unsafe { borrow(sink, "sink") }.map_or(std::ptr::null(), |s| &s.descriptor)
}

/// The sink's notification descriptor (see `hakuban_object_observe_contract_fd`). Thread-safe.
///
/// # Safety
/// `sink` is a live handle; `out` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hakuban_object_state_sink_fd(
    sink: *const HakubanObjectStateSink,
    out: *mut c_int,
) -> HakubanStatus {
    // SAFETY: the caller promises a live handle and a writable `out`.
    boundary(|| unsafe { handles::fd(sink, out) })
}

/// Writes to `*out` another handle to the same sink (it may have the same address), for another
/// thread: each handle is freed on its own, and freeing any ends the sink for all. Thread-safe.
///
/// # Safety
/// `sink` is a live handle; `out` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hakuban_object_state_sink_clone(
    sink: *const HakubanObjectStateSink,
    out: *mut *mut HakubanObjectStateSink,
) -> HakubanStatus {
    // SAFETY: the caller promises a live handle and a writable `out`.
    boundary(|| unsafe { handles::clone(sink, out) })
}

/// Ends the sink and frees this handle (NULL is ignored): observers see the data as no longer
/// kept current, threads waiting on it (through any handle) return `HAKUBAN_ENDED`, and a
/// still-elected contract yields a fresh sink. Thread-safe.
///
/// # Safety
/// `sink` is NULL or a live handle, not used again after.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hakuban_object_state_sink_free(sink: *mut HakubanObjectStateSink) {
    // SAFETY: ownership of the handle comes back from the caller.
    boundary_void(|| unsafe { handles::free(sink) });
}
