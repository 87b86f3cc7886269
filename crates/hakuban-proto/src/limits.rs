//! Limits a link enforces on what its peer sends.

/// Bounds on untrusted input. A peer exceeding one is disconnected with a reason; nothing else in
/// the process is affected. Every count a peer sends is checked against these *before* anything
/// is allocated for it, so a message can never make the decoder hold much more memory than the
/// message itself. The defaults suit a router serving many clients with states up to a few tens
/// of megabytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest transport message (one batch of frames), in bytes. Default 64 MiB.
    pub max_message_bytes: usize,
    /// Most frames in one message. Default 65,536.
    pub max_frames_per_message: usize,
    /// Most elements of inner collections (version elements, format entries, tags, load-limit
    /// points) in one message, all frames together. Default 262,144.
    pub max_elements_per_message: usize,
    /// Most elements of one state's version. Default 256. States with longer versions are refused
    /// by peers with default limits: keep versions short.
    pub max_version_len: usize,
    /// Most entries of one state's format stack. Default 64.
    pub max_format_len: usize,
    /// Most tags of one object descriptor. Default 256.
    pub max_tags_per_descriptor: usize,
    /// Most points of a hello's load-limit schedule. Default 256.
    pub max_load_limit_points: usize,
    /// Longest JSON text of one descriptor (an object's JSON plus its tags, or a tag), and
    /// longest name or token in a hello. Default 64 KiB.
    pub max_descriptor_bytes: usize,
    /// Largest state payload after applying a delta or decompressing, in bytes. Default 48 MiB.
    pub max_payload_bytes: usize,
    /// Most payload bytes rebuilt (decompressed or patched) from one message, all its states
    /// together: a small message of highly compressible states cannot expand without bound.
    /// Default 64 MiB.
    pub max_decoded_bytes_per_message: usize,
    /// Most object and tag descriptors a peer may have declared at once on one link.
    /// Default 1,048,576.
    pub max_declarations: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_bytes: 64 << 20,
            max_frames_per_message: 65_536,
            max_elements_per_message: 1 << 18,
            max_version_len: 256,
            max_format_len: 64,
            max_tags_per_descriptor: 256,
            max_load_limit_points: 256,
            max_descriptor_bytes: 64 << 10,
            max_payload_bytes: 48 << 20,
            max_decoded_bytes_per_message: 64 << 20,
            max_declarations: 1 << 20,
        }
    }
}
