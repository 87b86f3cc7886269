//! # hakuban-ffi
//!
//! Hakuban's C ABI: opaque handles for exchanges, descriptors, states, contracts, streams and
//! sinks, status codes instead of panics, futures a C thread can await, and a generated header.
//! It is the one crate of the workspace allowed `unsafe`, each block with the reason it is sound.
//!
//! The C API arrives with its own issue; today the crate only builds the library.

#![warn(missing_docs)]

/// The library's version, as a C caller can check it against the header it compiled with.
pub const HAKUBAN_FFI_VERSION: &str = env!("CARGO_PKG_VERSION");
