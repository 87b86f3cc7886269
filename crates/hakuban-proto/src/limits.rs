//! Limits a link enforces on what its peer sends.

/// Bounds on untrusted input. A peer exceeding one is disconnected with a reason; nothing else in
/// the process is affected. The defaults suit a router serving many clients with states up to a
/// few tens of megabytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest transport message (one batch of frames), in bytes. Default 64 MiB.
    pub max_message_bytes: usize,
    /// Most frames in one message. Default 65,536.
    pub max_frames_per_message: usize,
    /// Longest JSON text of one descriptor (an object's JSON plus its tags, or a tag). Default 64 KiB.
    pub max_descriptor_bytes: usize,
    /// Largest state payload after applying a delta, in bytes. Default 48 MiB.
    pub max_payload_bytes: usize,
    /// Most object and tag descriptors a peer may have declared at once on one link.
    /// Default 1,048,576.
    pub max_declarations: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_bytes: 64 << 20,
            max_frames_per_message: 65_536,
            max_descriptor_bytes: 64 << 10,
            max_payload_bytes: 48 << 20,
            max_declarations: 1 << 20,
        }
    }
}
