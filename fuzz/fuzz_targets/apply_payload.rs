//! Deltas: what the encoder makes always rebuilds the new state exactly; any payload a peer
//! makes up is applied without panicking and never rebuilds more than the limit.
#![no_main]

use arbitrary::Arbitrary;
use hakuban_proto::{Hunk, Payload, apply_payload, encode_payload};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    base: Vec<u8>,
    new: Vec<u8>,
    /// Keep this many bytes of `base` in front of `new`, so deltas happen often.
    shared: u16,
    /// Small edits of `base` (offset, bytes removed, bytes inserted), so edit scripts happen.
    edits: Vec<(u16, u8, Vec<u8>)>,
    hostile: Hostile,
}

#[derive(Arbitrary, Debug)]
enum Hostile {
    Full(Vec<u8>),
    Compressed { size: u64, data: Vec<u8> },
    Delta { prefix: u64, suffix: u64, middle: Vec<u8> },
    DeltaCompressed { prefix: u64, suffix: u64, size: u32, data: Vec<u8> },
    Patch(Vec<(u64, u64, Vec<u8>)>),
}

const LIMIT: usize = 1 << 16;

fuzz_target!(|input: Input| {
    let shared = usize::from(input.shared).min(input.base.len());
    let new = [&input.base[..shared], &input.new[..]].concat();
    let payload = encode_payload(Some(&input.base), &new);
    assert_eq!(apply_payload(Some(&input.base), payload, usize::MAX).as_deref(), Ok(new.as_slice()));
    let mut edited = input.base.clone();
    for (at, remove, insert) in input.edits {
        let at = usize::from(at).min(edited.len());
        let end = at.saturating_add(usize::from(remove)).min(edited.len());
        edited.splice(at..end, insert);
    }
    let payload = encode_payload(Some(&input.base), &edited);
    assert_eq!(apply_payload(Some(&input.base), payload, usize::MAX).as_deref(), Ok(edited.as_slice()));
    let full = encode_payload(None, &new);
    assert_eq!(apply_payload(None, full, usize::MAX).as_deref(), Ok(new.as_slice()));

    let hostile = match input.hostile {
        Hostile::Full(bytes) => Payload::Full(bytes),
        Hostile::Compressed { size, data } => Payload::Compressed { size, data },
        Hostile::Delta { prefix, suffix, middle } => Payload::Delta { prefix, suffix, middle },
        Hostile::DeltaCompressed { prefix, suffix, size, data } => {
            Payload::DeltaCompressed { prefix, suffix, size: u64::from(size), data }
        }
        Hostile::Patch(hunks) => Payload::Patch {
            hunks: hunks.into_iter().map(|(keep, remove, insert)| Hunk { keep, remove, insert }).collect(),
        },
    };
    for base in [None, Some(input.base.as_slice())] {
        if let Ok(rebuilt) = apply_payload(base, hostile.clone(), LIMIT) {
            assert!(rebuilt.len() <= LIMIT);
        }
    }
});
