//! Object and tag descriptors: made from JSON text, read back as JSON text.

use std::ffi::{CString, c_char};

use hakuban_tokio::{ObjectDescriptor, TagDescriptor};

use crate::handle::{borrow, boxed, free_boxed};
use crate::status::{Failure, HakubanStatus, boundary, boundary_void, non_null, string, write_out};

/// An object's identity: its JSON and its tags. Opaque; its strings are cached in it.
pub struct HakubanObjectDescriptor {
    pub(crate) descriptor: ObjectDescriptor,
    json: CString,
    tags: Vec<CString>,
}

/// A tag's identity: its JSON. Opaque.
pub struct HakubanTagDescriptor {
    pub(crate) descriptor: TagDescriptor,
    json: CString,
}

fn c_string(text: String) -> Result<CString, Failure> {
    CString::new(text).map_err(|e| Failure::new(HakubanStatus::HakubanInvalidJson, e.to_string()))
}

impl HakubanObjectDescriptor {
    pub(crate) fn wrap(descriptor: ObjectDescriptor) -> Result<Self, Failure> {
        let json = c_string(descriptor.json_to_string())?;
        let tags = descriptor.tags_to_strings().into_iter().map(c_string).collect::<Result<_, _>>()?;
        Ok(HakubanObjectDescriptor { descriptor, json, tags })
    }
}

/// Makes an object descriptor from its JSON text and `tags_len` tag JSON texts, and writes it to
/// `*out`. `HAKUBAN_INVALID_JSON` if any text does not parse. The texts are copied. Free with
/// `hakuban_object_descriptor_free`. Thread-safe.
///
/// # Safety
/// `json` is a NUL-terminated string; `tags` points to `tags_len` NUL-terminated strings (may be
/// NULL when `tags_len` is 0); `out` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hakuban_object_descriptor_new(
    json: *const c_char,
    tags: *const *const c_char,
    tags_len: usize,
    out: *mut *mut HakubanObjectDescriptor,
) -> HakubanStatus {
    boundary(|| {
        // SAFETY: the caller promises a NUL-terminated string.
        let json = unsafe { string(json, "json") }?;
        let mut tag_texts = Vec::with_capacity(tags_len.min(1024));
        if tags_len > 0 {
            non_null(tags, "tags")?;
            for index in 0..tags_len {
                // SAFETY: `tags` points to `tags_len` string pointers (caller's promise).
                let tag = unsafe { *tags.add(index) };
                // SAFETY: each is a NUL-terminated string (caller's promise).
                tag_texts.push(unsafe { string(tag, "tags[i]") }?);
            }
        }
        let descriptor = ObjectDescriptor::from_json_strings(&tag_texts, json)
            .map_err(|e| Failure::new(HakubanStatus::HakubanInvalidJson, e.to_string()))?;
        let handle = boxed(HakubanObjectDescriptor::wrap(descriptor)?);
        // SAFETY: `out` is writable (caller's promise); on failure the handle is taken back.
        unsafe { write_out(out, handle, "out") }.inspect_err(|_| unsafe { free_boxed(handle) })
    })
}

/// The descriptor's JSON, compact. Borrowed: valid until the descriptor is freed. NULL if
/// `descriptor` is NULL.
///
/// # Safety
/// `descriptor` is NULL or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hakuban_object_descriptor_json(descriptor: *const HakubanObjectDescriptor) -> *const c_char {
    // SAFETY: the caller promises a live handle or NULL.
    unsafe { borrow(descriptor, "descriptor") }.map_or(std::ptr::null(), |d| d.json.as_ptr())
}

/// How many tags the descriptor has (0 if `descriptor` is NULL).
///
/// # Safety
/// `descriptor` is NULL or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hakuban_object_descriptor_tags_len(descriptor: *const HakubanObjectDescriptor) -> usize {
    // SAFETY: the caller promises a live handle or NULL.
    unsafe { borrow(descriptor, "descriptor") }.map_or(0, |d| d.tags.len())
}

/// The JSON of tag `index` (in the descriptor's sorted order). Borrowed: valid until the
/// descriptor is freed. NULL if out of range or `descriptor` is NULL.
///
/// # Safety
/// `descriptor` is NULL or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hakuban_object_descriptor_tag(
    descriptor: *const HakubanObjectDescriptor,
    index: usize,
) -> *const c_char {
    // SAFETY: the caller promises a live handle or NULL.
    let tags = unsafe { borrow(descriptor, "descriptor") }.map(|d| &d.tags);
    tags.ok().and_then(|tags| tags.get(index)).map_or(std::ptr::null(), |tag| tag.as_ptr())
}

/// Frees an object descriptor (NULL is ignored).
///
/// # Safety
/// `descriptor` is NULL or a live handle, not used again after.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hakuban_object_descriptor_free(descriptor: *mut HakubanObjectDescriptor) {
    // SAFETY: ownership comes back from the caller.
    boundary_void(|| unsafe { free_boxed(descriptor) });
}

/// Makes a tag descriptor from its JSON text and writes it to `*out`. `HAKUBAN_INVALID_JSON` if
/// it does not parse. Free with `hakuban_tag_descriptor_free`. Thread-safe.
///
/// # Safety
/// `json` is a NUL-terminated string; `out` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hakuban_tag_descriptor_new(
    json: *const c_char,
    out: *mut *mut HakubanTagDescriptor,
) -> HakubanStatus {
    boundary(|| {
        // SAFETY: the caller promises a NUL-terminated string.
        let json = unsafe { string(json, "json") }?;
        let descriptor = TagDescriptor::from_json_string(json)
            .map_err(|e| Failure::new(HakubanStatus::HakubanInvalidJson, e.to_string()))?;
        let text = c_string(descriptor.json_to_string())?;
        let handle = boxed(HakubanTagDescriptor { descriptor, json: text });
        // SAFETY: `out` is writable (caller's promise); on failure the handle is taken back.
        unsafe { write_out(out, handle, "out") }.inspect_err(|_| unsafe { free_boxed(handle) })
    })
}

/// The tag's JSON, compact. Borrowed: valid until the descriptor is freed. NULL if NULL.
///
/// # Safety
/// `descriptor` is NULL or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hakuban_tag_descriptor_json(descriptor: *const HakubanTagDescriptor) -> *const c_char {
    // SAFETY: the caller promises a live handle or NULL.
    unsafe { borrow(descriptor, "descriptor") }.map_or(std::ptr::null(), |d| d.json.as_ptr())
}

/// Frees a tag descriptor (NULL is ignored).
///
/// # Safety
/// `descriptor` is NULL or a live handle, not used again after.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hakuban_tag_descriptor_free(descriptor: *mut HakubanTagDescriptor) {
    // SAFETY: ownership comes back from the caller.
    boundary_void(|| unsafe { free_boxed(descriptor) });
}
