//! The four contracts: created on an exchange, waited on for the streams or sinks they yield,
//! freed to end them (which ends every stream or sink they gave, and wakes every waiter).

use std::ffi::c_int;

use crate::descriptor::{HakubanObjectDescriptor, HakubanTagDescriptor};
use crate::exchange::HakubanExchange;
use crate::handle::{borrow, release};
use crate::handles::{
    self, HakubanObjectExposeContract, HakubanObjectObserveContract, HakubanObjectStateSink, HakubanObjectStateStream,
    HakubanTagExposeContract, HakubanTagObserveContract, sink_handle, stream_handle,
};
use crate::status::{HakubanStatus, boundary, boundary_void, write_out};

/// Creates an object observe contract on `exchange` for `descriptor` and writes it
/// to `*out`. The descriptor is copied. Free with `hakuban_object_observe_contract_free`. Thread-safe.
///
/// # Safety
/// `exchange` and `descriptor` are live handles; `out` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hakuban_object_observe_contract_new(
    exchange: *const HakubanExchange,
    descriptor: *const HakubanObjectDescriptor,
    out: *mut *mut HakubanObjectObserveContract,
) -> HakubanStatus {
    boundary(|| {
        // SAFETY: the caller promises live handles.
        let (exchange, descriptor) = unsafe { (borrow(exchange, "exchange")?, borrow(descriptor, "descriptor")?) };
        crate::status::non_null(out, "out")?;
        let contract = exchange.exchange.object_observe_contract(descriptor.descriptor.clone()).build();
        let handle = HakubanObjectObserveContract::into_handle(contract);
        // SAFETY: `out` is writable (checked not NULL; the caller promises validity).
        unsafe { write_out(out, handle, "out") }.inspect_err(|_| unsafe { release(handle) })
    })
}

/// Takes the contract's next handle, a state stream (at once, even before any state exists, and anew after the stream is freed), and writes it to `*out` (free it with its own
/// free function). `timeout_ms` < 0 waits as long as it takes, 0 does not wait, > 0 waits that
/// long. `HAKUBAN_PENDING`: nothing yet. `HAKUBAN_ENDED`: the contract was freed (by another
/// thread). Thread-safe.
///
/// # Safety
/// `contract` is a live handle; `out` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hakuban_object_observe_contract_next(
    contract: *const HakubanObjectObserveContract,
    timeout_ms: i64,
    out: *mut *mut HakubanObjectStateStream,
) -> HakubanStatus {
    // SAFETY: the caller promises a live handle and a writable `out`.
    boundary(|| unsafe { handles::next(contract, timeout_ms, out, stream_handle) })
}

/// Writes to `*out` a file descriptor that becomes readable whenever
/// `hakuban_object_observe_contract_next` may have something (or the end) to report: poll it, then call `next`
/// with timeout 0 until `HAKUBAN_PENDING`. Owned by the contract (do not read or close it); valid
/// until the contract is freed. Thread-safe.
///
/// # Safety
/// `contract` is a live handle; `out` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hakuban_object_observe_contract_fd(
    contract: *const HakubanObjectObserveContract,
    out: *mut c_int,
) -> HakubanStatus {
    // SAFETY: the caller promises a live handle and a writable `out`.
    boundary(|| unsafe { handles::fd(contract, out) })
}

/// Writes to `*out` another handle to the same contract (it may have the same address), for
/// another thread: each handle is freed on its own, and freeing any of them ends the contract for
/// all (their waiters return `HAKUBAN_ENDED`). A thread that may be waiting when another ends the
/// contract must use its own handle. Thread-safe.
///
/// # Safety
/// `contract` is a live handle; `out` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hakuban_object_observe_contract_clone(
    contract: *const HakubanObjectObserveContract,
    out: *mut *mut HakubanObjectObserveContract,
) -> HakubanStatus {
    // SAFETY: the caller promises a live handle and a writable `out`.
    boundary(|| unsafe { handles::clone(contract, out) })
}

/// Ends the contract and frees this handle (NULL is ignored): the streams or sinks it gave end,
/// and every thread waiting on it (through any handle) returns `HAKUBAN_ENDED`. Thread-safe.
///
/// # Safety
/// `contract` is NULL or a live handle, not used again after.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hakuban_object_observe_contract_free(contract: *mut HakubanObjectObserveContract) {
    // SAFETY: ownership of the handle comes back from the caller.
    boundary_void(|| unsafe { handles::free(contract) });
}

/// Creates an object expose contract on `exchange` for `descriptor` with `capacity` (0 counts as 1; higher wins elections) and writes it
/// to `*out`. The descriptor is copied. Free with `hakuban_object_expose_contract_free`. Thread-safe.
///
/// # Safety
/// `exchange` and `descriptor` are live handles; `out` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hakuban_object_expose_contract_new(
    exchange: *const HakubanExchange,
    descriptor: *const HakubanObjectDescriptor,
    capacity: u32,
    out: *mut *mut HakubanObjectExposeContract,
) -> HakubanStatus {
    boundary(|| {
        // SAFETY: the caller promises live handles.
        let (exchange, descriptor) = unsafe { (borrow(exchange, "exchange")?, borrow(descriptor, "descriptor")?) };
        crate::status::non_null(out, "out")?;
        let contract = exchange
            .exchange
            .object_expose_contract(descriptor.descriptor.clone())
            .with_capacity(capacity.max(1))
            .build();
        let handle = HakubanObjectExposeContract::into_handle(contract);
        // SAFETY: `out` is writable (checked not NULL; the caller promises validity).
        unsafe { write_out(out, handle, "out") }.inspect_err(|_| unsafe { release(handle) })
    })
}

/// Takes the contract's next handle, a sink, whenever the contract is elected (someone observes the object), and writes it to `*out` (free it with its own
/// free function). `timeout_ms` < 0 waits as long as it takes, 0 does not wait, > 0 waits that
/// long. `HAKUBAN_PENDING`: nothing yet. `HAKUBAN_ENDED`: the contract was freed (by another
/// thread). Thread-safe.
///
/// # Safety
/// `contract` is a live handle; `out` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hakuban_object_expose_contract_next(
    contract: *const HakubanObjectExposeContract,
    timeout_ms: i64,
    out: *mut *mut HakubanObjectStateSink,
) -> HakubanStatus {
    // SAFETY: the caller promises a live handle and a writable `out`.
    boundary(|| unsafe { handles::next(contract, timeout_ms, out, sink_handle) })
}

/// Writes to `*out` a file descriptor that becomes readable whenever
/// `hakuban_object_expose_contract_next` may have something (or the end) to report: poll it, then call `next`
/// with timeout 0 until `HAKUBAN_PENDING`. Owned by the contract (do not read or close it); valid
/// until the contract is freed. Thread-safe.
///
/// # Safety
/// `contract` is a live handle; `out` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hakuban_object_expose_contract_fd(
    contract: *const HakubanObjectExposeContract,
    out: *mut c_int,
) -> HakubanStatus {
    // SAFETY: the caller promises a live handle and a writable `out`.
    boundary(|| unsafe { handles::fd(contract, out) })
}

/// Writes to `*out` another handle to the same contract (it may have the same address), for
/// another thread: each handle is freed on its own, and freeing any of them ends the contract for
/// all (their waiters return `HAKUBAN_ENDED`). A thread that may be waiting when another ends the
/// contract must use its own handle. Thread-safe.
///
/// # Safety
/// `contract` is a live handle; `out` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hakuban_object_expose_contract_clone(
    contract: *const HakubanObjectExposeContract,
    out: *mut *mut HakubanObjectExposeContract,
) -> HakubanStatus {
    // SAFETY: the caller promises a live handle and a writable `out`.
    boundary(|| unsafe { handles::clone(contract, out) })
}

/// Ends the contract and frees this handle (NULL is ignored): the streams or sinks it gave end,
/// and every thread waiting on it (through any handle) returns `HAKUBAN_ENDED`. Thread-safe.
///
/// # Safety
/// `contract` is NULL or a live handle, not used again after.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hakuban_object_expose_contract_free(contract: *mut HakubanObjectExposeContract) {
    // SAFETY: ownership of the handle comes back from the caller.
    boundary_void(|| unsafe { handles::free(contract) });
}

/// Creates a tag observe contract on `exchange` for `descriptor` and writes it
/// to `*out`. The descriptor is copied. Free with `hakuban_tag_observe_contract_free`. Thread-safe.
///
/// # Safety
/// `exchange` and `descriptor` are live handles; `out` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hakuban_tag_observe_contract_new(
    exchange: *const HakubanExchange,
    descriptor: *const HakubanTagDescriptor,
    out: *mut *mut HakubanTagObserveContract,
) -> HakubanStatus {
    boundary(|| {
        // SAFETY: the caller promises live handles.
        let (exchange, descriptor) = unsafe { (borrow(exchange, "exchange")?, borrow(descriptor, "descriptor")?) };
        crate::status::non_null(out, "out")?;
        let contract = exchange.exchange.tag_observe_contract(descriptor.descriptor.clone()).build();
        let handle = HakubanTagObserveContract::into_handle(contract);
        // SAFETY: `out` is writable (checked not NULL; the caller promises validity).
        unsafe { write_out(out, handle, "out") }.inspect_err(|_| unsafe { release(handle) })
    })
}

/// Takes the contract's next handle, a state stream for every live object with the tag, and writes it to `*out` (free it with its own
/// free function). `timeout_ms` < 0 waits as long as it takes, 0 does not wait, > 0 waits that
/// long. `HAKUBAN_PENDING`: nothing yet. `HAKUBAN_ENDED`: the contract was freed (by another
/// thread). Thread-safe.
///
/// # Safety
/// `contract` is a live handle; `out` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hakuban_tag_observe_contract_next(
    contract: *const HakubanTagObserveContract,
    timeout_ms: i64,
    out: *mut *mut HakubanObjectStateStream,
) -> HakubanStatus {
    // SAFETY: the caller promises a live handle and a writable `out`.
    boundary(|| unsafe { handles::next(contract, timeout_ms, out, stream_handle) })
}

/// Writes to `*out` a file descriptor that becomes readable whenever
/// `hakuban_tag_observe_contract_next` may have something (or the end) to report: poll it, then call `next`
/// with timeout 0 until `HAKUBAN_PENDING`. Owned by the contract (do not read or close it); valid
/// until the contract is freed. Thread-safe.
///
/// # Safety
/// `contract` is a live handle; `out` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hakuban_tag_observe_contract_fd(
    contract: *const HakubanTagObserveContract,
    out: *mut c_int,
) -> HakubanStatus {
    // SAFETY: the caller promises a live handle and a writable `out`.
    boundary(|| unsafe { handles::fd(contract, out) })
}

/// Writes to `*out` another handle to the same contract (it may have the same address), for
/// another thread: each handle is freed on its own, and freeing any of them ends the contract for
/// all (their waiters return `HAKUBAN_ENDED`). A thread that may be waiting when another ends the
/// contract must use its own handle. Thread-safe.
///
/// # Safety
/// `contract` is a live handle; `out` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hakuban_tag_observe_contract_clone(
    contract: *const HakubanTagObserveContract,
    out: *mut *mut HakubanTagObserveContract,
) -> HakubanStatus {
    // SAFETY: the caller promises a live handle and a writable `out`.
    boundary(|| unsafe { handles::clone(contract, out) })
}

/// Ends the contract and frees this handle (NULL is ignored): the streams or sinks it gave end,
/// and every thread waiting on it (through any handle) returns `HAKUBAN_ENDED`. Thread-safe.
///
/// # Safety
/// `contract` is NULL or a live handle, not used again after.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hakuban_tag_observe_contract_free(contract: *mut HakubanTagObserveContract) {
    // SAFETY: ownership of the handle comes back from the caller.
    boundary_void(|| unsafe { handles::free(contract) });
}

/// Creates a tag expose contract on `exchange` for `descriptor` with `capacity` (0 counts as 1; higher wins elections) and writes it
/// to `*out`. The descriptor is copied. Free with `hakuban_tag_expose_contract_free`. Thread-safe.
///
/// # Safety
/// `exchange` and `descriptor` are live handles; `out` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hakuban_tag_expose_contract_new(
    exchange: *const HakubanExchange,
    descriptor: *const HakubanTagDescriptor,
    capacity: u32,
    out: *mut *mut HakubanTagExposeContract,
) -> HakubanStatus {
    boundary(|| {
        // SAFETY: the caller promises live handles.
        let (exchange, descriptor) = unsafe { (borrow(exchange, "exchange")?, borrow(descriptor, "descriptor")?) };
        crate::status::non_null(out, "out")?;
        let contract =
            exchange.exchange.tag_expose_contract(descriptor.descriptor.clone()).with_capacity(capacity.max(1)).build();
        let handle = HakubanTagExposeContract::into_handle(contract);
        // SAFETY: `out` is writable (checked not NULL; the caller promises validity).
        unsafe { write_out(out, handle, "out") }.inspect_err(|_| unsafe { release(handle) })
    })
}

/// Takes the contract's next handle, a sink for every object with the tag the contract is elected for, and writes it to `*out` (free it with its own
/// free function). `timeout_ms` < 0 waits as long as it takes, 0 does not wait, > 0 waits that
/// long. `HAKUBAN_PENDING`: nothing yet. `HAKUBAN_ENDED`: the contract was freed (by another
/// thread). Thread-safe.
///
/// # Safety
/// `contract` is a live handle; `out` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hakuban_tag_expose_contract_next(
    contract: *const HakubanTagExposeContract,
    timeout_ms: i64,
    out: *mut *mut HakubanObjectStateSink,
) -> HakubanStatus {
    // SAFETY: the caller promises a live handle and a writable `out`.
    boundary(|| unsafe { handles::next(contract, timeout_ms, out, sink_handle) })
}

/// Writes to `*out` a file descriptor that becomes readable whenever
/// `hakuban_tag_expose_contract_next` may have something (or the end) to report: poll it, then call `next`
/// with timeout 0 until `HAKUBAN_PENDING`. Owned by the contract (do not read or close it); valid
/// until the contract is freed. Thread-safe.
///
/// # Safety
/// `contract` is a live handle; `out` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hakuban_tag_expose_contract_fd(
    contract: *const HakubanTagExposeContract,
    out: *mut c_int,
) -> HakubanStatus {
    // SAFETY: the caller promises a live handle and a writable `out`.
    boundary(|| unsafe { handles::fd(contract, out) })
}

/// Writes to `*out` another handle to the same contract (it may have the same address), for
/// another thread: each handle is freed on its own, and freeing any of them ends the contract for
/// all (their waiters return `HAKUBAN_ENDED`). A thread that may be waiting when another ends the
/// contract must use its own handle. Thread-safe.
///
/// # Safety
/// `contract` is a live handle; `out` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hakuban_tag_expose_contract_clone(
    contract: *const HakubanTagExposeContract,
    out: *mut *mut HakubanTagExposeContract,
) -> HakubanStatus {
    // SAFETY: the caller promises a live handle and a writable `out`.
    boundary(|| unsafe { handles::clone(contract, out) })
}

/// Ends the contract and frees this handle (NULL is ignored): the streams or sinks it gave end,
/// and every thread waiting on it (through any handle) returns `HAKUBAN_ENDED`. Thread-safe.
///
/// # Safety
/// `contract` is NULL or a live handle, not used again after.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hakuban_tag_expose_contract_free(contract: *mut HakubanTagExposeContract) {
    // SAFETY: ownership of the handle comes back from the caller.
    boundary_void(|| unsafe { handles::free(contract) });
}
