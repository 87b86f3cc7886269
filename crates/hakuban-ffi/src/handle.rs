//! How handles cross the boundary. Plain handles are `Box`es; handles other threads may wait on
//! are `Arc`s, so a call in progress keeps what it uses alive even if another thread frees the
//! handle meanwhile.

use std::sync::Arc;

use crate::status::{Failure, non_null};

/// Hands a value to C as an owned plain handle.
pub(crate) fn boxed<T>(value: T) -> *mut T {
    Box::into_raw(Box::new(value))
}

/// Borrows a plain handle for the duration of a call.
///
/// # Safety
/// `pointer` is NULL or came from [`boxed`] and was not freed.
pub(crate) unsafe fn borrow<'a, T>(pointer: *const T, name: &str) -> Result<&'a T, Failure> {
    non_null(pointer, name)?;
    // SAFETY: not NULL; the caller promises a live handle of this type (documented in the
    // header: a handle is valid from its constructor until its free function).
    Ok(unsafe { &*pointer })
}

/// Frees a plain handle; NULL is ignored.
///
/// # Safety
/// `pointer` is NULL or came from [`boxed`] and was not freed.
pub(crate) unsafe fn free_boxed<T>(pointer: *mut T) {
    if !pointer.is_null() {
        // SAFETY: the caller gives back ownership of a live handle made by `boxed`.
        drop(unsafe { Box::from_raw(pointer) });
    }
}

/// Hands a value to C as an owned shared handle.
pub(crate) fn shared<T>(value: T) -> *mut T {
    Arc::into_raw(Arc::new(value)).cast_mut()
}

/// A reference of the call's own to a shared handle, so another thread freeing the handle
/// cannot free what this call uses.
///
/// # Safety
/// `pointer` is NULL or came from [`shared`] and was not freed.
pub(crate) unsafe fn hold<T>(pointer: *const T, name: &str) -> Result<Arc<T>, Failure> {
    non_null(pointer, name)?;
    // SAFETY: a live handle from `Arc::into_raw` (caller's promise): taking one more strong
    // reference and wrapping it is the documented way to borrow it as an `Arc`.
    unsafe {
        Arc::increment_strong_count(pointer);
        Ok(Arc::from_raw(pointer))
    }
}

/// Releases the C side's reference to a shared handle; NULL is ignored.
///
/// # Safety
/// `pointer` is NULL or came from [`shared`] and was not freed.
pub(crate) unsafe fn release<T>(pointer: *mut T) {
    if !pointer.is_null() {
        // SAFETY: gives back the one reference `shared` handed out.
        drop(unsafe { Arc::from_raw(pointer.cast_const()) });
    }
}
