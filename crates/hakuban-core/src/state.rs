//! Object states: the data, its format stack, its version and its synchronisation flag, plus the
//! JSON helpers. How states propagate between handles lives in the engine, not here.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Serialize, de::DeserializeOwned};

/// Payload bytes as the core and the network carry them: shared, never copied on fan-out.
pub type DataBytes = Arc<Vec<u8>>;

/// A state's version: compared lexicographically, element by element; a strict prefix is smaller
/// (`[1] < [1, 0] < [2]`). An object keeps the highest version it has seen.
pub type DataVersion = Vec<i64>;

/// A stack of format labels saying how `data` is encoded, innermost first (`["JSON"]`,
/// `["JSON", "gzip"]`). Informational for the core; propagated verbatim.
pub type DataFormat = Vec<String>;

/// Whether a state is being kept current by an attached producer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataSynchronized {
    /// A producer attached now has published this state and is still attached.
    Now,
    /// Stale: the data was last known to be current at this instant.
    LastAt(Instant),
}

impl DataSynchronized {
    /// `true` for [`DataSynchronized::Now`].
    pub fn is_now(&self) -> bool {
        matches!(self, DataSynchronized::Now)
    }

    /// Microseconds since the data was last known current, as the wire and the C API carry it:
    /// `0` for `Now`, at least `1` for a stale state so the two stay distinguishable.
    pub fn to_micros_ago(&self, now: Instant) -> u64 {
        match self {
            DataSynchronized::Now => 0,
            DataSynchronized::LastAt(at) => {
                let micros = now.saturating_duration_since(*at).as_micros();
                u64::try_from(micros).unwrap_or(u64::MAX).max(1)
            }
        }
    }

    /// The inverse of [`to_micros_ago`](Self::to_micros_ago): `0` is `Now`; an age reaching past
    /// the clock's origin saturates at the earliest representable instant instead of failing.
    pub fn from_micros_ago(micros: u64, now: Instant) -> Self {
        if micros == 0 {
            return DataSynchronized::Now;
        }
        let mut ago = Duration::from_micros(micros);
        loop {
            if let Some(at) = now.checked_sub(ago) {
                return DataSynchronized::LastAt(at);
            }
            ago /= 2;
            if ago.is_zero() {
                return DataSynchronized::LastAt(now);
            }
        }
    }
}

/// One state of an object: what observers receive and exposers send.
#[derive(Clone, Debug, PartialEq)]
pub struct ObjectState<T> {
    /// The payload; [`DataBytes`] inside the core and on the wire.
    pub data: T,
    /// How `data` is encoded, as a stack (see [`DataFormat`]).
    pub format: DataFormat,
    /// The version (see [`DataVersion`]).
    pub version: DataVersion,
    /// Whether a producer is keeping this state current.
    pub synchronized: DataSynchronized,
}

impl<T> ObjectState<T> {
    /// A state of `data` with an empty format, `synchronized: Now` and a time-based version
    /// `[0, unix_seconds, nanoseconds]`, so states made later (on roughly synchronised clocks)
    /// have higher versions. The leading `0` leaves room for a user's "epoch".
    pub fn new(data: T) -> Self {
        let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        let seconds = i64::try_from(since_epoch.as_secs()).unwrap_or(i64::MAX);
        ObjectState {
            data,
            format: Vec::new(),
            version: vec![0, seconds, i64::from(since_epoch.subsec_nanos())],
            synchronized: DataSynchronized::Now,
        }
    }

    /// Replaces the data, keeping the other fields.
    pub fn with_data<U>(self, data: U) -> ObjectState<U> {
        ObjectState { data, format: self.format, version: self.version, synchronized: self.synchronized }
    }

    /// Replaces the version.
    pub fn with_version(mut self, version: impl Into<DataVersion>) -> Self {
        self.version = version.into();
        self
    }

    /// Replaces the format stack.
    pub fn with_format<S: Into<String>>(mut self, format: impl IntoIterator<Item = S>) -> Self {
        self.format = format.into_iter().map(Into::into).collect();
        self
    }

    /// Replaces the synchronisation flag.
    pub fn with_synchronized(mut self, synchronized: DataSynchronized) -> Self {
        self.synchronized = synchronized;
        self
    }
}

/// Why a state could not be decoded from JSON.
#[derive(Debug, thiserror::Error)]
pub enum JsonDeserializeError {
    /// The top of the format stack is not `"JSON"` (or the stack is empty): the data is in another
    /// encoding. Look at `format` before decoding.
    #[error("state format is not JSON (format stack {0:?})")]
    WrongFormat(DataFormat),
    /// The bytes are not valid JSON for the requested type.
    #[error("state data is not the expected JSON: {0}")]
    SerdeError(#[from] serde_json::Error),
}

/// Why a state could not be encoded as JSON.
#[derive(Debug, thiserror::Error)]
pub enum JsonSerializeError {
    /// The data's `Serialize` implementation failed (e.g. a map with non-string keys).
    #[error("state data cannot be encoded as JSON: {0}")]
    SerdeError(#[from] serde_json::Error),
}

/// The format label pushed by [`JsonSerializeState`] and expected by [`JsonDeserializeState`].
pub const JSON_FORMAT: &str = "JSON";

/// Encodes a state's data as JSON bytes.
pub trait JsonSerializeState {
    /// Encodes `data` as JSON and pushes `"JSON"` onto the format stack.
    ///
    /// # Panics
    /// If the data's `Serialize` implementation fails; see
    /// [`try_json_serialize`](Self::try_json_serialize).
    fn json_serialize(self) -> ObjectState<DataBytes>;
    /// Like [`json_serialize`](Self::json_serialize), returning the error instead of panicking.
    fn try_json_serialize(self) -> Result<ObjectState<DataBytes>, JsonSerializeError>;
}

impl<T: Serialize> JsonSerializeState for ObjectState<T> {
    fn json_serialize(self) -> ObjectState<DataBytes> {
        match self.try_json_serialize() {
            Ok(state) => state,
            Err(error) => panic!("json_serialize: {error}"),
        }
    }

    fn try_json_serialize(self) -> Result<ObjectState<DataBytes>, JsonSerializeError> {
        let bytes = serde_json::to_vec(&self.data)?;
        let mut format = self.format;
        format.push(JSON_FORMAT.to_string());
        Ok(ObjectState { data: Arc::new(bytes), format, version: self.version, synchronized: self.synchronized })
    }
}

/// Decodes a state's JSON bytes into a typed value.
pub trait JsonDeserializeState {
    /// Pops `"JSON"` off the format stack and decodes the data into `T`.
    ///
    /// # Panics
    /// If the format is not JSON or the bytes do not decode; see
    /// [`try_json_deserialize`](Self::try_json_deserialize).
    fn json_deserialize<T: DeserializeOwned>(self) -> ObjectState<T>;
    /// Like [`json_deserialize`](Self::json_deserialize), returning a typed error instead.
    fn try_json_deserialize<T: DeserializeOwned>(self) -> Result<ObjectState<T>, JsonDeserializeError>;
}

fn try_json_decode<T: DeserializeOwned>(
    bytes: &[u8],
    mut format: DataFormat,
    version: DataVersion,
    synchronized: DataSynchronized,
) -> Result<ObjectState<T>, JsonDeserializeError> {
    if format.last().map(String::as_str) != Some(JSON_FORMAT) {
        return Err(JsonDeserializeError::WrongFormat(format));
    }
    let data = serde_json::from_slice(bytes)?;
    format.pop();
    Ok(ObjectState { data, format, version, synchronized })
}

macro_rules! json_deserialize_for {
    ($bytes:ty) => {
        impl JsonDeserializeState for ObjectState<$bytes> {
            fn json_deserialize<T: DeserializeOwned>(self) -> ObjectState<T> {
                match self.try_json_deserialize() {
                    Ok(state) => state,
                    Err(error) => panic!("json_deserialize: {error}"),
                }
            }

            fn try_json_deserialize<T: DeserializeOwned>(self) -> Result<ObjectState<T>, JsonDeserializeError> {
                try_json_decode(&self.data[..], self.format, self.version, self.synchronized)
            }
        }
    };
}
json_deserialize_for!(DataBytes);
json_deserialize_for!(Vec<u8>);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_order_lexicographically() {
        let a: DataVersion = vec![1];
        let b: DataVersion = vec![1, 0];
        let c: DataVersion = vec![2];
        assert!(a < b && b < c);
        let first = ObjectState::new(());
        let second = ObjectState::new(());
        assert_eq!(first.version[0], 0);
        assert!(first.version <= second.version);
    }

    #[test]
    fn json_round_trip_uses_the_format_stack() {
        let state = ObjectState::new("🦀").with_version(vec![7]).with_format(["gzip"]).json_serialize();
        assert_eq!(state.format, vec!["gzip".to_string(), "JSON".to_string()]);
        assert_eq!(state.data.as_slice(), "\"🦀\"".as_bytes());
        let back = state.json_deserialize::<String>();
        assert_eq!(back.data, "🦀");
        assert_eq!(back.format, vec!["gzip".to_string()]);
        assert_eq!(back.version, vec![7]);
    }

    #[test]
    fn wrong_format_is_a_typed_error() {
        let state = ObjectState::new(Arc::new(b"1".to_vec())).with_format(["abc"]);
        let err = state.try_json_deserialize::<i32>().unwrap_err();
        assert!(matches!(err, JsonDeserializeError::WrongFormat(f) if f == vec!["abc".to_string()]));
        let bad = ObjectState::new(Arc::new(b"{".to_vec())).with_format([JSON_FORMAT]);
        assert!(matches!(bad.try_json_deserialize::<i32>(), Err(JsonDeserializeError::SerdeError(_))));
    }

    #[test]
    fn synchronized_micros_round_trip() {
        let now = Instant::now();
        assert_eq!(DataSynchronized::Now.to_micros_ago(now), 0);
        assert_eq!(DataSynchronized::LastAt(now).to_micros_ago(now), 1);
        let earlier = DataSynchronized::from_micros_ago(100_000, now);
        assert_eq!(earlier.to_micros_ago(now), 100_000);
        assert_eq!(DataSynchronized::from_micros_ago(0, now), DataSynchronized::Now);
        assert!(matches!(DataSynchronized::from_micros_ago(u64::MAX, now), DataSynchronized::LastAt(_)));
    }
}
