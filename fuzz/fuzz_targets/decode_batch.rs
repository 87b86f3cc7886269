//! Any bytes into the batch decoder: never a panic, never more than the limits allow, and what
//! decodes re-encodes to bytes that decode to the same encoding.
#![no_main]

use hakuban_proto::{Limits, decode_batch, encode_batch};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Small limits, so the fuzzer reaches every bound quickly.
    let limits = Limits {
        max_frames_per_message: 64,
        max_elements_per_message: 256,
        max_version_len: 8,
        max_format_len: 4,
        max_tags_per_descriptor: 4,
        max_load_limit_points: 4,
        max_descriptor_bytes: 256,
        ..Limits::default()
    };
    let _ = decode_batch(data, &Limits::default());
    if let Ok(frames) = decode_batch(data, &limits) {
        assert!(frames.len() <= limits.max_frames_per_message);
        let bytes = encode_batch(&frames);
        let again = decode_batch(&bytes, &limits).expect("what decoded re-encodes to something that decodes");
        assert_eq!(encode_batch(&again), bytes);
    }
});
