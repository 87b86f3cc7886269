//! State payloads on the wire: full bytes (zstd-compressed when that pays), or a delta against the
//! previous state of the same channel: one that keeps the common prefix and suffix and carries
//! only the changed middle; an edit script of a few small replaced regions when that middle is
//! long (edits scattered across a large state: the first and the last record of a document); or
//! the middle zstd-compressed against the previous middle when the edits are too many for a
//! script.
//!
//! Most updates change a small region of a large state (one field of a JSON document), so
//! trimming the common ends costs two memory comparisons and leaves a handful of bytes; full
//! states (every channel's first) are compressed with zstd at a fast level. Applying a payload is
//! bounds-checked: a delta that does not fit its base, or a compressed payload larger than it
//! claims or than the limit, is an error, never a panic.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::DecodeError;
use crate::hunks::{self, Hunk};

/// Deltas saving fewer bytes than this are sent as full payloads (simpler for the receiver).
const MIN_SAVING: usize = 16;
/// Full payloads at least this large are offered to the compressor.
const COMPRESS_FROM: usize = 1024;
/// Middles longer than this are searched for separate edits (an edit script).
const PATCH_FROM: usize = 64;
/// zstd level for full payloads: fast, and most of the ratio on JSON.
const COMPRESSION_LEVEL: i32 = 3;

/// A state's data as carried by a `State` frame.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Payload {
    /// The complete data. Every channel's first state is full. Shared, not copied, with the
    /// state it carries (see [`encode_shared_payload`]).
    Full(#[serde(with = "shared_bytes")] Arc<Vec<u8>>),
    /// The complete data, zstd-compressed; `size` is the decompressed length.
    Compressed {
        /// Length of the data once decompressed.
        size: u64,
        /// The zstd frame.
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
    },
    /// The previous state's first `prefix` bytes, then `middle`, then its last `suffix` bytes.
    #[doc(alias = "prefix-suffix delta")]
    Delta {
        /// Bytes kept from the start of the previous state.
        prefix: u64,
        /// Bytes kept from the end of the previous state.
        suffix: u64,
        /// The new bytes in between.
        #[serde(with = "serde_bytes")]
        middle: Vec<u8>,
    },
    /// As `Delta`, with the new middle (`size` bytes) zstd-compressed using the previous state's
    /// middle as a referenced prefix and long-distance matching, so that a large middle which is
    /// mostly the old one costs a few dozen bytes. `data` is a zstd frame without its 4-byte
    /// magic number.
    DeltaCompressed {
        /// Bytes kept from the start of the previous state.
        prefix: u64,
        /// Bytes kept from the end of the previous state.
        suffix: u64,
        /// Length of the new middle once decompressed.
        size: u64,
        /// The zstd frame, magic number removed.
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
    },
    /// The previous state with a few small regions replaced (edits scattered across a large
    /// state), each a [`Hunk`]; what follows the last hunk is kept.
    Patch {
        /// The replaced regions, in order.
        #[serde(deserialize_with = "crate::bounded::hunks")]
        hunks: Vec<Hunk>,
    },
}

/// The 4 bytes every zstd frame starts with (left out on the wire).
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];
/// Largest window a compressed delta may use (its prefix plus its middle): 128 MiB.
const MAX_WINDOW_LOG: u32 = 27;

/// `middle` compressed against `reference` (see [`Payload::DeltaCompressed`]), without the magic.
fn compress_against(reference: &[u8], middle: &[u8]) -> Option<Vec<u8>> {
    use zstd::zstd_safe::{CCtx, CParameter};
    let span = reference.len().saturating_add(middle.len()).max(1024);
    let window_log = (usize::BITS - (span - 1).leading_zeros()).min(MAX_WINDOW_LOG);
    let mut cctx = CCtx::try_create()?;
    cctx.set_parameter(CParameter::CompressionLevel(1)).ok()?;
    cctx.set_parameter(CParameter::WindowLog(window_log)).ok()?;
    cctx.set_parameter(CParameter::EnableLongDistanceMatching(true)).ok()?;
    cctx.set_parameter(CParameter::ContentSizeFlag(false)).ok()?;
    cctx.set_parameter(CParameter::ChecksumFlag(false)).ok()?;
    cctx.ref_prefix(reference).ok()?;
    // Only worth it well under the raw middle: stop once the output would not be.
    let mut out = Vec::with_capacity(middle.len() / 8 + 64);
    cctx.compress2(&mut out, middle).ok()?;
    out.strip_prefix(&ZSTD_MAGIC).map(<[u8]>::to_vec)
}

/// The inverse of [`compress_against`], refusing more than `size` bytes.
fn decompress_against(reference: &[u8], data: &[u8], size: usize) -> Result<Vec<u8>, DecodeError> {
    use zstd::zstd_safe::{DCtx, DParameter};
    let bad = |what: &str| DecodeError::BadDelta(format!("compressed delta: {what}"));
    let mut dctx = DCtx::try_create().ok_or_else(|| bad("no decompression context"))?;
    dctx.set_parameter(DParameter::WindowLogMax(MAX_WINDOW_LOG)).map_err(|_| bad("window"))?;
    dctx.ref_prefix(reference).map_err(|_| bad("reference"))?;
    let frame = [&ZSTD_MAGIC[..], data].concat();
    // Decoded straight into a buffer of the announced size: zstd refuses to write past it.
    let mut out = Vec::with_capacity(size);
    dctx.decompress(&mut out, &frame).map_err(|code| bad(zstd::zstd_safe::get_error_name(code)))?;
    if out.len() != size {
        return Err(bad(&format!("{} bytes, not the {size} announced", out.len())));
    }
    Ok(out)
}

/// The payload carrying `new` to a receiver that holds `base` (or nothing).
pub fn encode_payload(base: Option<&[u8]>, new: &[u8]) -> Payload {
    encode(base, new, || Arc::new(new.to_vec()))
}

/// As [`encode_payload`], for data already shared: a full payload holds `new` itself instead of
/// a copy (a small state sent whole, the usual case, is copied once, into the message).
pub fn encode_shared_payload(base: Option<&[u8]>, new: &Arc<Vec<u8>>) -> Payload {
    encode(base, new, || new.clone())
}

fn encode(base: Option<&[u8]>, new: &[u8], whole: impl FnOnce() -> Arc<Vec<u8>>) -> Payload {
    let Some(base) = base else { return full(new, whole) };
    let prefix = hunks::common_prefix(base, new);
    let suffix = hunks::common_suffix(base, new, base.len().min(new.len()) - prefix);
    let middle = &new[prefix..new.len() - suffix];
    let reference = &base[prefix..base.len() - suffix];
    // Edits near both ends of a larger middle: a few small hunks keep what lies between them.
    if middle.len() > PATCH_FROM
        && let Some(mut found) = hunks::find(reference, middle)
        && found.len() > 1
        && hunks::wire_size(&found) < middle.len() / 2
    {
        found[0].keep += prefix as u64;
        return Payload::Patch { hunks: found };
    }
    // A large middle (a scattered edit) is compressed against the old one; kept when it is a
    // clear win over the raw middle (an unrelated new state is left to the full payload).
    if middle.len() >= COMPRESS_FROM
        && !reference.is_empty()
        && let Some(data) = compress_against(reference, middle)
        && data.len() < middle.len() / 8
    {
        return Payload::DeltaCompressed {
            prefix: prefix as u64,
            suffix: suffix as u64,
            size: middle.len() as u64,
            data,
        };
    }
    if prefix + suffix < MIN_SAVING {
        return full(new, whole);
    }
    Payload::Delta { prefix: prefix as u64, suffix: suffix as u64, middle: middle.to_vec() }
}

/// The whole of `data` (`whole` gives it shared), compressed when large enough and worth it.
fn full(data: &[u8], whole: impl FnOnce() -> Arc<Vec<u8>>) -> Payload {
    if data.len() >= COMPRESS_FROM
        && let Ok(compressed) = zstd::bulk::compress(data, COMPRESSION_LEVEL)
        && compressed.len() + compressed.len() / 8 < data.len()
    {
        return Payload::Compressed { size: data.len() as u64, data: compressed };
    }
    Payload::Full(whole())
}

/// Rebuilds the data from `payload` and the receiver's `base`, refusing results over `max_bytes`.
pub fn apply_payload(base: Option<&[u8]>, payload: Payload, max_bytes: usize) -> Result<Vec<u8>, DecodeError> {
    match payload {
        Payload::Full(bytes) => {
            let bytes = within_limit(bytes, max_bytes)?;
            Ok(Arc::try_unwrap(bytes).unwrap_or_else(|bytes| (*bytes).clone()))
        }
        Payload::Compressed { size, data } => {
            let size = usize::try_from(size).unwrap_or(usize::MAX);
            if size > max_bytes {
                return Err(DecodeError::BadDelta(format!("compressed payload of {size} bytes over the limit")));
            }
            let bytes = zstd::bulk::decompress(&data, size)
                .map_err(|e| DecodeError::BadDelta(format!("compressed payload does not decompress: {e}")))?;
            if bytes.len() != size {
                return Err(DecodeError::BadDelta(format!("compressed payload is {} bytes, not {size}", bytes.len())));
            }
            Ok(bytes)
        }
        Payload::Delta { prefix, suffix, middle } => {
            let (base, prefix, suffix) = delta_bounds(base, prefix, suffix, middle.len() as u64, max_bytes)?;
            Ok(patch(base, prefix, suffix, &middle))
        }
        Payload::DeltaCompressed { prefix, suffix, size, data } => {
            let (base, prefix, suffix) = delta_bounds(base, prefix, suffix, size, max_bytes)?;
            // Bounded by the check above: `size` fits the limit with what is kept.
            let size = usize::try_from(size).map_err(|_| DecodeError::BadDelta("delta size overflow".into()))?;
            let middle = decompress_against(&base[prefix..base.len() - suffix], &data, size)?;
            Ok(patch(base, prefix, suffix, &middle))
        }
        Payload::Patch { hunks } => {
            let base = base.ok_or_else(|| DecodeError::BadDelta("edit script without a previous state".into()))?;
            hunks::apply(base, &hunks, max_bytes)
        }
    }
}

/// As [`apply_payload`], shared: a full payload's data is returned as it was decoded, without
/// a new allocation.
pub fn apply_shared_payload(
    base: Option<&[u8]>,
    payload: Payload,
    max_bytes: usize,
) -> Result<Arc<Vec<u8>>, DecodeError> {
    match payload {
        Payload::Full(bytes) => within_limit(bytes, max_bytes),
        other => apply_payload(base, other, max_bytes).map(Arc::new),
    }
}

/// A full payload's data, refused over `max_bytes`.
fn within_limit(bytes: Arc<Vec<u8>>, max_bytes: usize) -> Result<Arc<Vec<u8>>, DecodeError> {
    if bytes.len() > max_bytes {
        return Err(DecodeError::BadDelta(format!("payload of {} bytes over the limit", bytes.len())));
    }
    Ok(bytes)
}

/// Checks a delta's bounds against its base and the limit: the base, prefix and suffix to keep.
fn delta_bounds(
    base: Option<&[u8]>,
    prefix: u64,
    suffix: u64,
    middle: u64,
    max_bytes: usize,
) -> Result<(&[u8], usize, usize), DecodeError> {
    let base = base.ok_or_else(|| DecodeError::BadDelta("delta without a previous state".into()))?;
    let (Ok(prefix), Ok(suffix)) = (usize::try_from(prefix), usize::try_from(suffix)) else {
        return Err(DecodeError::BadDelta("delta bounds overflow".into()));
    };
    let Some(kept) = prefix.checked_add(suffix).filter(|kept| *kept <= base.len()) else {
        return Err(DecodeError::BadDelta(format!(
            "delta keeps {prefix}+{suffix} bytes of a {}-byte state",
            base.len()
        )));
    };
    let size = u64::try_from(kept).unwrap_or(u64::MAX).saturating_add(middle);
    if size > u64::try_from(max_bytes).unwrap_or(u64::MAX) {
        return Err(DecodeError::BadDelta(format!("patched payload of {size} bytes over the limit")));
    }
    Ok((base, prefix, suffix))
}

/// `base`'s first `prefix` bytes, `middle`, `base`'s last `suffix` bytes.
fn patch(base: &[u8], prefix: usize, suffix: usize, middle: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(prefix + middle.len() + suffix);
    out.extend_from_slice(&base[..prefix]);
    out.extend_from_slice(middle);
    out.extend_from_slice(&base[base.len() - suffix..]);
    out
}

/// A shared byte vector on the wire exactly as `serde_bytes` writes a `Vec<u8>`.
mod shared_bytes {
    use std::sync::Arc;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &Arc<Vec<u8>>, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(bytes)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Arc<Vec<u8>>, D::Error> {
        Ok(Arc::new(serde_bytes::ByteBuf::deserialize(deserializer)?.into_vec()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn one_field_change_of_a_large_document_is_a_few_bytes() {
        let old: Vec<u8> = (0..100_000u32).flat_map(|i| format!("{{\"id\":{i},\"value\":0}},").into_bytes()).collect();
        let mut new = old.clone();
        let at = new.len() / 2;
        new[at] = b'7';
        let payload = encode_payload(Some(&old), &new);
        assert!(matches!(&payload, Payload::Delta { middle, .. } if middle.len() == 1));
        assert_eq!(apply_payload(Some(&old), payload, usize::MAX), Ok(new));
    }

    /// BENCHMARKS.md S5's document: 10,000 records, about 1 MiB; `value(i)` is record i's value.
    fn records(value: impl Fn(u32) -> u32) -> Vec<u8> {
        let mut out = b"[".to_vec();
        for i in 0..10_000u32 {
            if i > 0 {
                out.push(b',');
            }
            let record = format!(
                "{{\"id\":{i},\"name\":\"record number {i}\",\"group\":\"group {}\",\"tags\":[\"a\",\"b\"],\"value\":{}}}",
                i % 100,
                value(i)
            );
            out.extend_from_slice(record.as_bytes());
        }
        out.push(b']');
        out
    }

    /// The first and the last record's value set to `ends`, the others i % 7.
    fn ends(ends: u32) -> impl Fn(u32) -> u32 {
        move |i| if i == 0 || i == 9_999 { ends } else { i % 7 }
    }

    /// The bytes of one State frame carrying `payload`, in a batch of its own.
    fn wire_bytes(payload: &Payload) -> usize {
        let frame = crate::Frame::State {
            object: 1,
            version: vec![2],
            format: None,
            payload: payload.clone(),
            synchronized_us_ago: 0,
        };
        crate::encode_batch(&[frame]).len()
    }

    #[test]
    fn an_edit_of_the_first_and_the_last_record_is_an_edit_script_of_a_few_bytes() {
        let old = records(ends(9));
        assert!(old.len() > 800_000, "{} bytes", old.len());
        let new = records(ends(10));
        let payload = encode_payload(Some(&old), &new);
        let Payload::Patch { hunks } = &payload else { panic!("not an edit script: {payload:?}") };
        assert_eq!(hunks.len(), 2, "{hunks:?}");
        // The whole frame, state header included, where the raw middle was 840 KiB.
        let wire = wire_bytes(&payload);
        assert!(wire <= 32, "{wire} bytes on the wire");
        assert_eq!(apply_payload(Some(&old), payload, usize::MAX), Ok(new));
    }

    #[test]
    fn many_scattered_edits_are_compressed_against_the_old_middle() {
        // A hundred edited records: more than an edit script holds.
        let old = records(ends(0));
        let new = records(|i| if i % 100 == 0 { 8 } else { i % 7 });
        let payload = encode_payload(Some(&old), &new);
        let Payload::DeltaCompressed { data, .. } = &payload else { panic!("not a compressed delta: {payload:?}") };
        let wire = wire_bytes(&payload);
        assert!(wire <= 2_048, "{wire} bytes on the wire ({} of zstd)", data.len());
        assert_eq!(apply_payload(Some(&old), payload, usize::MAX), Ok(new));
    }

    #[test]
    fn compressed_deltas_are_bounded_and_checked() {
        let old = records(ends(0));
        let new = records(|i| if i % 100 == 0 { 8 } else { i % 7 });
        let Payload::DeltaCompressed { prefix, suffix, size, data } = encode_payload(Some(&old), &new) else {
            panic!("not a compressed delta")
        };
        // Announcing a smaller or larger middle than the frame holds is refused.
        for wrong in [size - 1, size + 1] {
            let payload = Payload::DeltaCompressed { prefix, suffix, size: wrong, data: data.clone() };
            assert!(apply_payload(Some(&old), payload, usize::MAX).is_err(), "size {wrong}");
        }
        // Over the limit, refused before decompressing.
        let payload = Payload::DeltaCompressed { prefix, suffix, size, data: data.clone() };
        assert!(apply_payload(Some(&old), payload, old.len() / 2).is_err());
        // Against another base, or with garbage, an error and never a panic.
        let payload = Payload::DeltaCompressed { prefix, suffix, size, data: data.clone() };
        assert!(apply_payload(Some(&new[..new.len() / 2]), payload, usize::MAX).is_err());
        let garbage = Payload::DeltaCompressed { prefix: 0, suffix: 0, size: 10, data: vec![1, 2, 3] };
        assert!(apply_payload(Some(b"0123456789"), garbage, usize::MAX).is_err());
    }

    #[test]
    fn large_full_states_are_compressed_and_restored() {
        let json: Vec<u8> = (0..10_000u32)
            .flat_map(|i| format!("{{\"id\":{i},\"name\":\"record {i}\",\"value\":0}},").into_bytes())
            .collect();
        let payload = encode_payload(None, &json);
        let Payload::Compressed { data, .. } = &payload else { panic!("not compressed") };
        assert!(data.len() * 4 < json.len(), "{} of {}", data.len(), json.len());
        assert_eq!(apply_payload(None, payload, usize::MAX), Ok(json));
    }

    #[test]
    fn lying_compressed_payloads_are_errors() {
        let data = zstd::bulk::compress(&[7u8; 4096], 3).unwrap_or_default();
        for size in [4095, 4097, 1 << 40] {
            let payload = Payload::Compressed { size, data: data.clone() };
            assert!(apply_payload(None, payload, 1 << 20).is_err(), "size {size}");
        }
        let garbage = Payload::Compressed { size: 10, data: vec![1, 2, 3] };
        assert!(apply_payload(None, garbage, 1 << 20).is_err());
    }

    #[test]
    fn malformed_deltas_are_errors() {
        let base = b"0123456789".as_slice();
        for (prefix, suffix) in [(11, 0), (0, 11), (6, 6), (u64::MAX, 1), (1, u64::MAX)] {
            let delta = Payload::Delta { prefix, suffix, middle: vec![] };
            assert!(apply_payload(Some(base), delta, usize::MAX).is_err());
        }
        let delta = Payload::Delta { prefix: 1, suffix: 1, middle: vec![0; 10] };
        assert!(apply_payload(None, delta.clone(), usize::MAX).is_err());
        assert!(apply_payload(Some(base), delta, 5).is_err());
        assert!(apply_payload(None, Payload::Full(vec![0; 10].into()), 5).is_err());
        let script = Payload::Patch { hunks: vec![Hunk { keep: 1, remove: 1, insert: b"7".to_vec() }] };
        assert!(apply_payload(None, script.clone(), usize::MAX).is_err());
        assert_eq!(apply_payload(Some(base), script, usize::MAX), Ok(b"0723456789".to_vec()));
    }

    proptest! {
        #[test]
        fn deltas_round_trip(
            old in prop::collection::vec(any::<u8>(), 0..300),
            new in prop::collection::vec(any::<u8>(), 0..300),
            keep in 0usize..300,
        ) {
            // Half the cases share a long prefix, so both payload kinds are exercised.
            let new = if keep % 2 == 0 { [&old[..keep.min(old.len())], &new[..]].concat() } else { new };
            let payload = encode_payload(Some(&old), &new);
            prop_assert_eq!(apply_payload(Some(&old), payload, usize::MAX), Ok(new));
        }

        #[test]
        fn arbitrary_deltas_never_panic(
            base in prop::collection::vec(any::<u8>(), 0..64),
            prefix in any::<u64>(),
            suffix in any::<u64>(),
            middle in prop::collection::vec(any::<u8>(), 0..64),
        ) {
            let _ = apply_payload(Some(&base), Payload::Delta { prefix: prefix % 80, suffix: suffix % 80, middle: middle.clone() }, 1024);
            let _ = apply_payload(Some(&base), Payload::Delta { prefix, suffix, middle }, 1024);
        }
    }
}
