//! Object and tag descriptors: the rich JSON names of Hakuban's objects and tags.
//!
//! Identity is structural JSON equality (key order never matters, integer `1` differs from float
//! `1.0`); an object descriptor is its JSON value plus a *set* of tags. Hashing and ordering are
//! consistent with that equality. What an object *is* at run time lives in the engine, not here.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

mod json_order;

use json_order::{canonical_text, cmp_json, has_negative_zero, hash_json};

/// Error building a descriptor from JSON text.
#[derive(Debug, thiserror::Error)]
pub enum DescriptorError {
    /// The text is not valid JSON. Check the string passed in; the inner error says where.
    #[error("descriptor is not valid JSON: {0}")]
    InvalidJson(#[from] serde_json::Error),
}

/// The name of a tag: exactly one arbitrary JSON value.
///
/// Anything convertible into a JSON value converts into a tag: `"utilizations"` becomes the JSON
/// string `"utilizations"`, `json!({"a": 1})` a JSON object. Serialised transparently as its value.
#[derive(Clone)]
pub struct TagDescriptor {
    json: Arc<Value>,
}

impl TagDescriptor {
    /// A tag named by `json`.
    pub fn new(json: impl Into<Value>) -> Self {
        TagDescriptor { json: Arc::new(json.into()) }
    }

    /// Parses `text` as JSON and names a tag with it.
    pub fn from_json_string(text: &str) -> Result<Self, DescriptorError> {
        Ok(TagDescriptor::new(serde_json::from_str::<Value>(text)?))
    }

    /// The tag's JSON value.
    pub fn json(&self) -> &Value {
        &self.json
    }

    /// Compact JSON text of the tag (object keys sorted, so equal tags give equal text).
    pub fn json_to_string(&self) -> String {
        canonical_text(&self.json)
    }
}

impl PartialEq for TagDescriptor {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.json, &other.json) || *self.json == *other.json
    }
}
impl Eq for TagDescriptor {}

impl Hash for TagDescriptor {
    fn hash<H: Hasher>(&self, state: &mut H) {
        hash_json(&self.json, state);
    }
}

impl PartialOrd for TagDescriptor {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for TagDescriptor {
    fn cmp(&self, other: &Self) -> Ordering {
        cmp_json(&self.json, &other.json)
    }
}

impl fmt::Display for TagDescriptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&canonical_text(&self.json))
    }
}
impl fmt::Debug for TagDescriptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Serialize for TagDescriptor {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.json.serialize(serializer)
    }
}
impl<'de> Deserialize<'de> for TagDescriptor {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(TagDescriptor::new(Value::deserialize(deserializer)?))
    }
}

impl From<Value> for TagDescriptor {
    fn from(json: Value) -> Self {
        TagDescriptor::new(json)
    }
}
impl From<&Value> for TagDescriptor {
    fn from(json: &Value) -> Self {
        TagDescriptor::new(json.clone())
    }
}
impl From<&str> for TagDescriptor {
    fn from(text: &str) -> Self {
        TagDescriptor::new(text)
    }
}
impl From<String> for TagDescriptor {
    fn from(text: String) -> Self {
        TagDescriptor::new(text)
    }
}
impl From<&String> for TagDescriptor {
    fn from(text: &String) -> Self {
        TagDescriptor::new(text.as_str())
    }
}
impl From<&TagDescriptor> for TagDescriptor {
    fn from(tag: &TagDescriptor) -> Self {
        tag.clone()
    }
}

struct ObjectDescriptorInner {
    /// Sorted by [`cmp_json`] and free of duplicates, so set equality is slice equality.
    tags: Box<[TagDescriptor]>,
    /// Canonical compact JSON text of the identifier (object keys sorted, `-0.0` written as
    /// `0.0`): equal texts are equal values. Identity goes by it.
    text: Box<str>,
    /// The identifier as a value: kept when the descriptor was made from one, parsed from
    /// `text` on first use when it came from the wire. A router never needs it, so each object
    /// costs it the text only, not serde_json's tree.
    /// Boxed: a `Value` inline would cost every descriptor 32 bytes, used by few of them.
    json: std::sync::OnceLock<Box<Value>>,
    hash: u64,
}

/// The name of an object: one arbitrary JSON value (its rich identifier) and a set of tags.
///
/// Two descriptors are equal iff their JSON values are equal and their tag sets are equal: the same
/// JSON with other tags names another object. Cloning is cheap (the contents are shared).
///
/// ```
/// use hakuban_core::ObjectDescriptor;
/// let a = ObjectDescriptor::from((["some-tag", "other"], "xxx"));
/// let b = ObjectDescriptor::from((["other", "some-tag", "other"], "xxx"));
/// assert_eq!(a, b);
/// assert_ne!(a, ObjectDescriptor::from("xxx"));
/// ```
#[derive(Clone)]
pub struct ObjectDescriptor {
    inner: Arc<ObjectDescriptorInner>,
}

impl ObjectDescriptor {
    /// An object named by `json`, belonging to every tag in `tags` (duplicates collapse).
    ///
    /// Only the canonical text is kept: [`json`](Self::json) parses it again on first use. A
    /// JSON object's value costs serde_json several hundred bytes, and most descriptors (a
    /// router's, an observer's) are never looked into. A value with a `-0.0` in it is kept as
    /// given, since its text reads back as `0.0`.
    pub fn new<T: Into<TagDescriptor>>(tags: impl IntoIterator<Item = T>, json: impl Into<Value>) -> Self {
        let json = json.into();
        let inner = ObjectDescriptor::inner(tags, &json);
        if has_negative_zero(&json) {
            let _ = inner.json.set(Box::new(json));
        }
        ObjectDescriptor { inner: Arc::new(inner) }
    }

    /// The record of a descriptor, its value not kept.
    fn inner<T: Into<TagDescriptor>>(tags: impl IntoIterator<Item = T>, json: &Value) -> ObjectDescriptorInner {
        let mut tags: Vec<TagDescriptor> = tags.into_iter().map(Into::into).collect();
        tags.sort();
        tags.dedup();
        let mut hasher = std::hash::DefaultHasher::new();
        hash_json(json, &mut hasher);
        for tag in &tags {
            hash_json(&tag.json, &mut hasher);
        }
        let hash = hasher.finish();
        ObjectDescriptorInner {
            tags: tags.into_boxed_slice(),
            text: canonical_text(json).into_boxed_str(),
            json: std::sync::OnceLock::new(),
            hash,
        }
    }

    /// Parses each of `tags` and `json` as JSON text. The parsed value is not kept (it is parsed
    /// again on the first call to [`json`](Self::json)): descriptors from the network cost their
    /// text only.
    pub fn from_json_strings<S: AsRef<str>>(
        tags: impl IntoIterator<Item = S>,
        json: &str,
    ) -> Result<Self, DescriptorError> {
        let tags =
            tags.into_iter().map(|tag| TagDescriptor::from_json_string(tag.as_ref())).collect::<Result<Vec<_>, _>>()?;
        ObjectDescriptor::from_tags_and_json_string(tags, json)
    }

    /// As [`from_json_strings`](Self::from_json_strings), with the tags already parsed (a link's
    /// decoder shares one descriptor per tag between all the objects it declares).
    pub(crate) fn from_tags_and_json_string(tags: Vec<TagDescriptor>, json: &str) -> Result<Self, DescriptorError> {
        let value = serde_json::from_str::<Value>(json)?;
        Ok(ObjectDescriptor { inner: Arc::new(ObjectDescriptor::inner(tags, &value)) })
    }

    /// The object's tags, in a canonical order.
    pub fn tags(&self) -> &[TagDescriptor] {
        &self.inner.tags
    }

    /// The object's JSON identifier.
    pub fn json(&self) -> &Value {
        // The text was written from a value, so it parses; `Null` is only a formal fallback.
        self.inner.json.get_or_init(|| Box::new(serde_json::from_str(&self.inner.text).unwrap_or(Value::Null)))
    }

    /// Calls `f` with the identifier's value without keeping a parsed copy (for code that looks
    /// at many descriptors once, such as access checks).
    pub(crate) fn with_json<R>(&self, f: impl FnOnce(&Value) -> R) -> R {
        match self.inner.json.get() {
            Some(value) => f(value),
            None => f(&serde_json::from_str(&self.inner.text).unwrap_or(Value::Null)),
        }
    }

    /// Compact JSON text of the identifier (object keys sorted).
    pub fn json_to_string(&self) -> String {
        self.inner.text.to_string()
    }

    /// The same text, borrowed.
    pub fn json_text(&self) -> &str {
        &self.inner.text
    }

    /// Compact JSON text of each tag, in the canonical tag order.
    pub fn tags_to_strings(&self) -> Vec<String> {
        self.inner.tags.iter().map(TagDescriptor::json_to_string).collect()
    }
}

impl PartialEq for ObjectDescriptor {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
            || (self.inner.hash == other.inner.hash
                && self.inner.text == other.inner.text
                && self.inner.tags == other.inner.tags)
    }
}
impl Eq for ObjectDescriptor {}

impl Hash for ObjectDescriptor {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.inner.hash);
    }
}

impl fmt::Display for ObjectDescriptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.inner.text)
    }
}
impl fmt::Debug for ObjectDescriptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, tag) in self.inner.tags.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{tag}")?;
        }
        write!(f, "]:{}", self.inner.text)
    }
}

#[derive(Serialize, Deserialize)]
struct ObjectDescriptorWire {
    tags: Vec<TagDescriptor>,
    json: Value,
}

impl Serialize for ObjectDescriptor {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut s = serializer.serialize_struct("ObjectDescriptor", 2)?;
        s.serialize_field("tags", &self.inner.tags)?;
        self.with_json(|json| s.serialize_field("json", json))?;
        s.end()
    }
}
impl<'de> Deserialize<'de> for ObjectDescriptor {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let wire = ObjectDescriptorWire::deserialize(deserializer)?;
        Ok(ObjectDescriptor::new(wire.tags, wire.json))
    }
}

impl<I, T, J> From<(I, J)> for ObjectDescriptor
where
    I: IntoIterator<Item = T>,
    T: Into<TagDescriptor>,
    J: Into<Value>,
{
    fn from((tags, json): (I, J)) -> Self {
        ObjectDescriptor::new(tags, json)
    }
}
impl<J: Into<Value>> From<(J,)> for ObjectDescriptor {
    fn from((json,): (J,)) -> Self {
        ObjectDescriptor::new(std::iter::empty::<TagDescriptor>(), json)
    }
}
impl From<Value> for ObjectDescriptor {
    fn from(json: Value) -> Self {
        ObjectDescriptor::new(std::iter::empty::<TagDescriptor>(), json)
    }
}
impl From<&str> for ObjectDescriptor {
    fn from(json: &str) -> Self {
        ObjectDescriptor::new(std::iter::empty::<TagDescriptor>(), json)
    }
}
impl From<&ObjectDescriptor> for ObjectDescriptor {
    fn from(descriptor: &ObjectDescriptor) -> Self {
        descriptor.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn hash_of<T: Hash>(value: &T) -> u64 {
        let mut hasher = std::hash::DefaultHasher::new();
        value.hash(&mut hasher);
        hasher.finish()
    }

    #[test]
    fn tag_round_trips_through_json() {
        let tag = TagDescriptor::new(json!({}));
        let text = serde_json::to_string(&tag).unwrap();
        assert_eq!(text, "{}");
        let back: TagDescriptor = serde_json::from_str(&text).unwrap();
        assert_eq!(back, tag);
        assert_eq!(TagDescriptor::from("utilizations").json(), &json!("utilizations"));
    }

    #[test]
    fn object_round_trips_through_json() {
        let desc = ObjectDescriptor::from((vec![json!({"b": 1, "a": [1, 2]}), json!("t")], json!({"x": null})));
        let text = serde_json::to_string(&desc).unwrap();
        let back: ObjectDescriptor = serde_json::from_str(&text).unwrap();
        assert_eq!(back, desc);
        assert_eq!(hash_of(&back), hash_of(&desc));
        let parsed: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(parsed["json"], json!({"x": null}));
        assert_eq!(parsed["tags"].as_array().unwrap().len(), 2);
    }

    /// Every object costs one descriptor record in each exchange that knows it.
    #[test]
    fn a_descriptor_record_stays_compact() {
        let size = std::mem::size_of::<ObjectDescriptorInner>();
        assert!(size <= 64, "ObjectDescriptorInner grew to {size} bytes");
    }

    /// The value is not kept, but `json()` gives back what the descriptor was made from.
    #[test]
    fn json_gives_back_the_value_it_was_made_from() {
        let values = [
            json!({"id": 7, "name": "ünïcode \"quoted\"", "nested": [1.5, -2, 1e300, null, true, {"z": 0.1}]}),
            json!(u64::MAX),
            json!(i64::MIN),
            json!(0.30000000000000004),
            json!(-0.0),
            json!({"a": [-0.0, 1]}),
            json!("plain"),
            json!([]),
        ];
        for value in values {
            let desc = ObjectDescriptor::new(["t"], value.clone());
            assert_eq!(desc.json(), &value, "{value}");
            assert_eq!(desc.json().to_string(), value.to_string());
        }
        let zero = ObjectDescriptor::new(["t"], json!(-0.0));
        assert!(zero.json().as_f64().is_some_and(f64::is_sign_negative));
    }

    #[test]
    fn tuple_conversions_make_json_strings() {
        let desc = ObjectDescriptor::from((["some-tag"], "xxx"));
        assert_eq!(desc.json(), &json!("xxx"));
        assert_eq!(desc.tags(), &[TagDescriptor::from("some-tag")]);
        assert_eq!(desc.json_to_string(), "\"xxx\"");
        assert_eq!(desc.tags_to_strings(), vec!["\"some-tag\"".to_string()]);
        let untagged = ObjectDescriptor::from((json!("exchange"),));
        assert!(untagged.tags().is_empty());
        assert_eq!(format!("{desc}"), "\"xxx\"");
        assert_eq!(format!("{desc:?}"), "[\"some-tag\"]:\"xxx\"");
    }

    #[test]
    fn equality_is_structural_and_tags_are_a_set() {
        let a = ObjectDescriptor::from((["x", "y"], json!({"a": 1, "b": 2})));
        let b = ObjectDescriptor::from_json_strings(["\"y\"", "\"x\"", "\"y\""], "{\"b\":2,\"a\":1}").unwrap();
        assert_eq!(a, b);
        assert_eq!(hash_of(&a), hash_of(&b));
        let untagged = ObjectDescriptor::from(json!({"a": 1, "b": 2}));
        assert_ne!(a, untagged);
        assert_ne!(ObjectDescriptor::from(json!(1)), ObjectDescriptor::from(json!(1.0)));
        assert_eq!(ObjectDescriptor::from(json!({"a": [-0.0]})), ObjectDescriptor::from(json!({"a": [0.0]})));
        let wire = ObjectDescriptor::from_json_strings(["\"t\""], r#"{ "b": 1, "a": 2.50 }"#).unwrap();
        assert_eq!(wire, ObjectDescriptor::from((["t"], json!({"a": 2.5, "b": 1}))), "canonical text from the wire");
        assert_eq!(wire.json_text(), r#"{"a":2.5,"b":1}"#);
        assert_eq!(wire.json(), &json!({"a": 2.5, "b": 1}), "parsed on first use");
        assert_ne!(TagDescriptor::new(json!(1)), TagDescriptor::new(json!(1.0)));
    }

    /// Identity never depends on the order a map keeps. Without serde_json's `preserve_order`
    /// feature every map iterates sorted and this holds by construction; the test command runs
    /// these tests again with it (`cargo xtask test`), where `json!` keeps the order written.
    #[test]
    fn identity_ignores_the_order_maps_keep() {
        let written = json!({"b": 1, "a": {"d": [1, {"f": 0, "e": 0.5}], "c": 2}});
        let canonical = r#"{"a":{"c":2,"d":[1,{"e":0.5,"f":0}]},"b":1}"#;
        let sorted: Value = serde_json::from_str(canonical).unwrap();
        let (one, other) =
            (ObjectDescriptor::new([&written], written.clone()), ObjectDescriptor::new([&sorted], sorted.clone()));
        assert_eq!(one, other);
        assert_eq!(hash_of(&one), hash_of(&other));
        assert_eq!(one.json_text(), canonical);
        assert_eq!(one.tags_to_strings(), vec![canonical.to_string()]);
        assert_eq!(format!("{one:?}"), format!("[{canonical}]:{canonical}"));
        let wire =
            ObjectDescriptor::from_json_strings([r#"{"b":1,"a":{"c":2,"d":[1,{"f":0,"e":0.5}]}}"#], canonical).unwrap();
        assert_eq!(wire, one);
        let (tag, tag_sorted) =
            (TagDescriptor::new(written.clone()), TagDescriptor::from_json_string(canonical).unwrap());
        assert_eq!(hash_of(&tag), hash_of(&tag_sorted));
        assert_eq!(tag.cmp(&tag_sorted), Ordering::Equal);
        assert_eq!(tag.json_to_string(), canonical);
        assert_ne!(cmp_json(&written, &json!({"b": 1, "a": {}})), Ordering::Equal);
        assert_eq!(cmp_json(&json!({"b": 1, "a": 2}), &json!({"a": 2, "c": 0})), Ordering::Less, "a=2,b=1 < a=2,c=0");
    }

    /// The second run of the descriptor tests (see above) really has maps that keep insertion
    /// order; `cargo xtask test` sets the variable for that run only.
    #[test]
    fn the_preserve_order_run_keeps_insertion_order() {
        if std::env::var_os("HAKUBAN_TEST_PRESERVE_ORDER").is_some() {
            let map = json!({"b": 1, "a": 2});
            assert_eq!(map.as_object().and_then(|m| m.keys().next()).map(String::as_str), Some("b"));
        }
    }

    #[test]
    fn invalid_json_is_a_typed_error() {
        let err = ObjectDescriptor::from_json_strings(["\"ok\""], "{not json").unwrap_err();
        assert!(matches!(err, DescriptorError::InvalidJson(_)));
        assert!(TagDescriptor::from_json_string("[").is_err());
    }

    #[test]
    fn ordering_is_consistent_with_equality() {
        let values = [
            json!(null),
            json!(false),
            json!(true),
            json!(-1),
            json!(1),
            json!(u64::MAX),
            json!(0.0),
            json!(-0.0),
            json!(1.5),
            json!("a"),
            json!(["a"]),
            json!({"a": 1}),
            json!({"a": 1, "b": 1}),
        ];
        for a in &values {
            for b in &values {
                let equal = a == b;
                assert_eq!(cmp_json(a, b) == Ordering::Equal, equal, "{a} vs {b}");
                if equal {
                    assert_eq!(hash_of(&TagDescriptor::new(a.clone())), hash_of(&TagDescriptor::new(b.clone())));
                }
                assert_eq!(cmp_json(a, b), cmp_json(b, a).reverse());
            }
        }
    }
}
