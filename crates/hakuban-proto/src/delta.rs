//! State payloads on the wire: full bytes (zstd-compressed when that pays), or a delta against the
//! previous state of the same channel that keeps the common prefix and suffix and carries only
//! the changed middle.
//!
//! Most updates change a small region of a large state (one field of a JSON document), so
//! trimming the common ends costs two memory comparisons and leaves a handful of bytes; full
//! states (every channel's first) are compressed with zstd at a fast level. Applying a payload is
//! bounds-checked: a delta that does not fit its base, or a compressed payload larger than it
//! claims or than the limit, is an error, never a panic.

use serde::{Deserialize, Serialize};

use crate::DecodeError;

/// Deltas saving fewer bytes than this are sent as full payloads (simpler for the receiver).
const MIN_SAVING: usize = 16;
/// Full payloads at least this large are offered to the compressor.
const COMPRESS_FROM: usize = 1024;
/// zstd level for full payloads: fast, and most of the ratio on JSON.
const COMPRESSION_LEVEL: i32 = 3;

/// A state's data as carried by a `State` frame.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Payload {
    /// The complete data. Every channel's first state is full.
    Full(#[serde(with = "serde_bytes")] Vec<u8>),
    /// The complete data, zstd-compressed; `size` is the decompressed length.
    Compressed {
        /// Length of the data once decompressed.
        size: u64,
        /// The zstd frame.
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
    },
    /// The previous state's first `prefix` bytes, then `middle`, then its last `suffix` bytes.
    Delta {
        /// Bytes kept from the start of the previous state.
        prefix: u64,
        /// Bytes kept from the end of the previous state.
        suffix: u64,
        /// The new bytes in between.
        #[serde(with = "serde_bytes")]
        middle: Vec<u8>,
    },
}

/// The payload carrying `new` to a receiver that holds `base` (or nothing).
pub fn encode_payload(base: Option<&[u8]>, new: &[u8]) -> Payload {
    let Some(base) = base else { return full(new) };
    let limit = base.len().min(new.len());
    let prefix = base.iter().zip(new).take_while(|(a, b)| a == b).count();
    let suffix = base.iter().rev().zip(new.iter().rev()).take(limit - prefix).take_while(|(a, b)| a == b).count();
    if prefix + suffix < MIN_SAVING {
        return full(new);
    }
    Payload::Delta { prefix: prefix as u64, suffix: suffix as u64, middle: new[prefix..new.len() - suffix].to_vec() }
}

/// The whole of `data`, compressed when large enough and worth it.
fn full(data: &[u8]) -> Payload {
    if data.len() >= COMPRESS_FROM
        && let Ok(compressed) = zstd::bulk::compress(data, COMPRESSION_LEVEL)
        && compressed.len() + compressed.len() / 8 < data.len()
    {
        return Payload::Compressed { size: data.len() as u64, data: compressed };
    }
    Payload::Full(data.to_vec())
}

/// Rebuilds the data from `payload` and the receiver's `base`, refusing results over `max_bytes`.
pub fn apply_payload(base: Option<&[u8]>, payload: Payload, max_bytes: usize) -> Result<Vec<u8>, DecodeError> {
    match payload {
        Payload::Full(bytes) => {
            if bytes.len() > max_bytes {
                return Err(DecodeError::BadDelta(format!("payload of {} bytes over the limit", bytes.len())));
            }
            Ok(bytes)
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
            let base = base.ok_or_else(|| DecodeError::BadDelta("delta without a previous state".into()))?;
            let (prefix, suffix) = (usize::try_from(prefix), usize::try_from(suffix));
            let (Ok(prefix), Ok(suffix)) = (prefix, suffix) else {
                return Err(DecodeError::BadDelta("delta bounds overflow".into()));
            };
            let kept = prefix.checked_add(suffix).filter(|kept| *kept <= base.len());
            let Some(kept) = kept else {
                return Err(DecodeError::BadDelta(format!(
                    "delta keeps {prefix}+{suffix} bytes of a {}-byte state",
                    base.len()
                )));
            };
            let size = kept.saturating_add(middle.len());
            if size > max_bytes {
                return Err(DecodeError::BadDelta(format!("patched payload of {size} bytes over the limit")));
            }
            let mut out = Vec::with_capacity(size);
            out.extend_from_slice(&base[..prefix]);
            out.extend_from_slice(&middle);
            out.extend_from_slice(&base[base.len() - suffix..]);
            Ok(out)
        }
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
        assert!(apply_payload(None, Payload::Full(vec![0; 10]), 5).is_err());
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
