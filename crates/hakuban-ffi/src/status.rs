//! Status codes, the calling thread's last error message, and the boundary every exported
//! function runs inside: arguments checked, panics caught, errors turned into codes.

use std::cell::RefCell;
use std::ffi::{CStr, CString, c_char};
use std::panic::{AssertUnwindSafe, catch_unwind};

/// What a call did. Every fallible function returns one and writes its result (if any) through
/// an out-pointer, which is left untouched unless the status is `HAKUBAN_OK`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HakubanStatus {
    /// Success; the out-pointer (if any) holds the result.
    HakubanOk = 0,
    /// Nothing is ready: a non-blocking call found nothing, or a wait timed out. Try again later.
    HakubanPending = 1,
    /// The contract, stream or sink has ended (its election was lost, its object stopped being
    /// live, or it was freed by another thread). It will never yield again: free it.
    HakubanEnded = 2,
    /// A required pointer argument was NULL.
    HakubanNullArgument = 3,
    /// A string argument was not valid UTF-8.
    HakubanInvalidUtf8 = 4,
    /// A JSON argument did not parse.
    HakubanInvalidJson = 5,
    /// A URL did not parse, or has an unsupported scheme or parameter.
    HakubanInvalidUrl = 6,
    /// An operating-system error (an address in use, a refused bind).
    HakubanIoError = 7,
    /// The exchange already has an upstream (a connector, or an upstream link).
    HakubanUpstreamTaken = 8,
    /// The logging filter did not parse.
    HakubanInvalidLogFilter = 9,
    /// Another invalid argument (an out-of-range number, a length without data).
    HakubanInvalidArgument = 10,
    /// The library panicked: a bug in Hakuban. The call had no effect it could undo; the message
    /// says where. The process keeps running.
    HakubanPanic = 11,
}

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

/// A failure: its status and its reason in words.
pub(crate) struct Failure(pub HakubanStatus, pub String);

impl Failure {
    pub fn new(status: HakubanStatus, message: impl Into<String>) -> Self {
        Failure(status, message.into())
    }
}

pub(crate) type Outcome = Result<HakubanStatus, Failure>;

fn set_last_error(message: &str) {
    let text = CString::new(message.replace('\0', " ")).unwrap_or_default();
    LAST_ERROR.with(|cell| *cell.borrow_mut() = text);
}

/// Runs an exported function's body: its failure becomes a status and the thread's last error,
/// a panic becomes `HAKUBAN_PANIC`.
pub(crate) fn boundary(body: impl FnOnce() -> Outcome) -> HakubanStatus {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(status)) => status,
        Ok(Err(Failure(status, message))) => {
            set_last_error(&message);
            status
        }
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_string());
            set_last_error(&format!("hakuban panicked (a bug; please report it): {what}"));
            HakubanStatus::HakubanPanic
        }
    }
}

/// As [`boundary`], for functions that return nothing (free functions): a panic is swallowed
/// after recording it, since there is no status to return.
pub(crate) fn boundary_void(body: impl FnOnce()) {
    let _ = boundary(|| {
        body();
        Ok(HakubanStatus::HakubanOk)
    });
}

/// A required pointer.
pub(crate) fn non_null<T>(pointer: *const T, name: &str) -> Result<*const T, Failure> {
    if pointer.is_null() {
        Err(Failure::new(HakubanStatus::HakubanNullArgument, format!("`{name}` is NULL")))
    } else {
        Ok(pointer)
    }
}

/// A required NUL-terminated UTF-8 string argument.
///
/// # Safety
/// `pointer` is NULL or points to a NUL-terminated string that lives for `'a`.
pub(crate) unsafe fn string<'a>(pointer: *const c_char, name: &str) -> Result<&'a str, Failure> {
    non_null(pointer, name)?;
    // SAFETY: not NULL (checked above); the caller promises a NUL-terminated string that lives
    // for the duration of the call, as the header documents for every string argument.
    let text = unsafe { CStr::from_ptr(pointer) };
    text.to_str().map_err(|_| Failure::new(HakubanStatus::HakubanInvalidUtf8, format!("`{name}` is not UTF-8")))
}

/// Writes `value` through a required out-pointer.
///
/// # Safety
/// `out` is NULL or valid for writing a `T`.
pub(crate) unsafe fn write_out<T>(out: *mut T, value: T, name: &str) -> Outcome {
    non_null(out, name)?;
    // SAFETY: not NULL (checked above); the caller promises it is valid for writes of `T`.
    unsafe { out.write(value) };
    Ok(HakubanStatus::HakubanOk)
}

/// The reason for the calling thread's last failed call, in words (UTF-8, NUL-terminated; empty
/// if none failed yet). Borrowed: valid on this thread until its next failing call. Safe from
/// any thread (each thread has its own).
#[unsafe(no_mangle)]
pub extern "C" fn hakuban_last_error_message() -> *const c_char {
    LAST_ERROR.with(|cell| cell.borrow().as_ptr())
}
