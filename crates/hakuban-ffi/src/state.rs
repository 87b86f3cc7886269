//! Object states: version, format stack, data and synchronisation age. Constructors copy their
//! inputs; accessors lend views valid while the state handle lives.

use std::ffi::{CString, c_char};
use std::sync::Arc;
use std::time::Instant;

use hakuban_tokio::{DataBytes, DataSynchronized, ObjectState};

use crate::handle::{borrow, boxed, free_boxed};
use crate::status::{HakubanStatus, boundary, boundary_void, non_null, string, write_out};

/// One state of an object. Opaque.
pub struct HakubanObjectState {
    pub(crate) state: ObjectState<DataBytes>,
    format: Vec<CString>,
}

impl HakubanObjectState {
    pub(crate) fn wrap(state: ObjectState<DataBytes>) -> Self {
        let format = state.format.iter().map(|f| CString::new(f.replace('\0', " ")).unwrap_or_default()).collect();
        HakubanObjectState { state, format }
    }
}

/// Makes a state and writes it to `*out`: `version_len` version elements, `format_len` format
/// labels (innermost first), `data_len` bytes of data, and how many microseconds ago the data was
/// last known current (0: synchronised now). Everything is copied. Free with
/// `hakuban_object_state_free`. Thread-safe.
///
/// # Safety
/// `version` points to `version_len` integers, `format` to `format_len` NUL-terminated strings,
/// `data` to `data_len` bytes (each may be NULL when its length is 0); `out` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hakuban_object_state_new(
    version: *const i64,
    version_len: usize,
    format: *const *const c_char,
    format_len: usize,
    data: *const u8,
    data_len: usize,
    synchronized_us_ago: u64,
    out: *mut *mut HakubanObjectState,
) -> HakubanStatus {
    boundary(|| {
        let version = if version_len == 0 {
            Vec::new()
        } else {
            non_null(version, "version")?;
            // SAFETY: `version_len` integers at `version` (caller's promise), copied at once.
            unsafe { std::slice::from_raw_parts(version, version_len) }.to_vec()
        };
        let mut labels = Vec::with_capacity(format_len.min(1024));
        if format_len > 0 {
            non_null(format, "format")?;
            for index in 0..format_len {
                // SAFETY: `format_len` string pointers at `format` (caller's promise).
                let label = unsafe { *format.add(index) };
                // SAFETY: each is a NUL-terminated string (caller's promise).
                labels.push(unsafe { string(label, "format[i]") }?.to_string());
            }
        }
        let bytes = if data_len == 0 {
            Vec::new()
        } else {
            non_null(data, "data")?;
            // SAFETY: `data_len` bytes at `data` (caller's promise), copied at once.
            unsafe { std::slice::from_raw_parts(data, data_len) }.to_vec()
        };
        let state = ObjectState {
            data: Arc::new(bytes),
            format: labels,
            version,
            synchronized: DataSynchronized::from_micros_ago(synchronized_us_ago, Instant::now()),
        };
        let handle = boxed(HakubanObjectState::wrap(state));
        // SAFETY: `out` is writable (caller's promise); on failure the handle is taken back.
        unsafe { write_out(out, handle, "out") }.inspect_err(|_| unsafe { free_boxed(handle) })
    })
}

/// The state's version: writes its length to `*len` and returns its elements. Borrowed: valid
/// until the state is freed (NULL when empty or `state` is NULL).
///
/// # Safety
/// `state` is NULL or a live handle; `len` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hakuban_object_state_version(state: *const HakubanObjectState, len: *mut usize) -> *const i64 {
    // SAFETY: the caller promises a live handle or NULL.
    let version = unsafe { borrow(state, "state") }.map(|s| s.state.version.as_slice()).unwrap_or_default();
    // SAFETY: the caller promises `len` is writable (a NULL one is skipped).
    let _ = unsafe { write_out(len, version.len(), "len") };
    if version.is_empty() { std::ptr::null() } else { version.as_ptr() }
}

/// The state's data: writes its length to `*len` and returns its bytes. Borrowed: valid until
/// the state is freed (NULL when empty or `state` is NULL).
///
/// # Safety
/// `state` is NULL or a live handle; `len` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hakuban_object_state_data(state: *const HakubanObjectState, len: *mut usize) -> *const u8 {
    // SAFETY: the caller promises a live handle or NULL.
    let data = unsafe { borrow(state, "state") }.map(|s| s.state.data.as_slice()).unwrap_or_default();
    // SAFETY: the caller promises `len` is writable (a NULL one is skipped).
    let _ = unsafe { write_out(len, data.len(), "len") };
    if data.is_empty() { std::ptr::null() } else { data.as_ptr() }
}

/// How many labels the state's format stack has (0 if `state` is NULL).
///
/// # Safety
/// `state` is NULL or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hakuban_object_state_format_len(state: *const HakubanObjectState) -> usize {
    // SAFETY: the caller promises a live handle or NULL.
    unsafe { borrow(state, "state") }.map_or(0, |s| s.format.len())
}

/// Format label `index` (innermost first). Borrowed: valid until the state is freed. NULL if
/// out of range or `state` is NULL.
///
/// # Safety
/// `state` is NULL or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hakuban_object_state_format(state: *const HakubanObjectState, index: usize) -> *const c_char {
    // SAFETY: the caller promises a live handle or NULL.
    let format = unsafe { borrow(state, "state") }.map(|s| &s.format);
    format.ok().and_then(|f| f.get(index)).map_or(std::ptr::null(), |label| label.as_ptr())
}

/// Microseconds since the state's data was last known current: 0 while a producer keeps it
/// synchronised (0 also if `state` is NULL).
///
/// # Safety
/// `state` is NULL or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hakuban_object_state_synchronized_us_ago(state: *const HakubanObjectState) -> u64 {
    // SAFETY: the caller promises a live handle or NULL.
    unsafe { borrow(state, "state") }.map_or(0, |s| s.state.synchronized.to_micros_ago(Instant::now()))
}

/// Frees a state (NULL is ignored).
///
/// # Safety
/// `state` is NULL or a live handle, not used again after.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hakuban_object_state_free(state: *mut HakubanObjectState) {
    // SAFETY: ownership comes back from the caller.
    boundary_void(|| unsafe { free_boxed(state) });
}
