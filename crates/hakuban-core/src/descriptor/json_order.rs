//! Identity of JSON values, independent of how serde_json orders its maps: the canonical text, a
//! total order and a hash, each consistent with `Value`'s equality.
//!
//! serde_json iterates a map in key order, unless any crate in the build enables its
//! `preserve_order` feature (Cargo unifies features over the whole dependency graph, so a user's
//! unrelated dependency can do it), which keeps insertion order. Equality ignores order either
//! way, so everything here reads maps in key order explicitly: `{"a":1,"b":2}` and
//! `{"b":2,"a":1}` name the same object in every build, and exchanges built differently agree on
//! the text they declare.

use std::cmp::Ordering;
use std::hash::{Hash, Hasher};

use serde_json::{Map, Value};

/// Whether `value` holds a float `-0.0` anywhere (its canonical text writes it as `0.0`).
pub(super) fn has_negative_zero(value: &Value) -> bool {
    match value {
        Value::Number(n) => n.as_f64().is_some_and(|f| f == 0.0 && f.is_sign_negative()) && n.is_f64(),
        Value::Array(items) => items.iter().any(has_negative_zero),
        Value::Object(map) => map.values().any(has_negative_zero),
        _ => false,
    }
}

/// Compact text of `value` that is equal for equal values: object keys in order, floats in their
/// shortest form (serde_json's), and `-0.0`, equal to `0.0`, written as `0.0`.
pub(super) fn canonical_text(value: &Value) -> String {
    if has_negative_zero(value) || !keys_in_order(value) { normalized(value).to_string() } else { value.to_string() }
}

/// Whether every map in `value` already iterates in key order (always, without `preserve_order`).
fn keys_in_order(value: &Value) -> bool {
    match value {
        Value::Array(items) => items.iter().all(keys_in_order),
        Value::Object(map) => map.keys().is_sorted() && map.values().all(keys_in_order),
        _ => true,
    }
}

/// A copy of `value` whose maps were filled in key order and whose `-0.0`s are `0.0`.
fn normalized(value: &Value) -> Value {
    match value {
        Value::Number(n) if n.is_f64() && n.as_f64() == Some(0.0) => serde_json::json!(0.0),
        Value::Array(items) => Value::Array(items.iter().map(normalized).collect()),
        Value::Object(map) => {
            Value::Object(in_key_order(map).map(|(key, item)| (key.clone(), normalized(item))).collect())
        }
        other => other.clone(),
    }
}

/// The entries of `map` in key order, whatever order the map keeps.
fn in_key_order(map: &Map<String, Value>) -> Entries<'_> {
    if map.keys().is_sorted() {
        Entries::Kept(map.iter())
    } else {
        let mut entries: Vec<_> = map.iter().collect();
        entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
        Entries::Sorted(entries.into_iter())
    }
}

/// [`in_key_order`]'s iterator: the map's own when it is in order, a sorted copy otherwise.
enum Entries<'a> {
    Kept(serde_json::map::Iter<'a>),
    Sorted(std::vec::IntoIter<(&'a String, &'a Value)>),
}

impl<'a> Iterator for Entries<'a> {
    type Item = (&'a String, &'a Value);

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Entries::Kept(entries) => entries.next(),
            Entries::Sorted(entries) => entries.next(),
        }
    }
}

/// Rank of a JSON value's type, the first key of the total order.
fn json_rank(value: &Value) -> u8 {
    match value {
        Value::Null => 0,
        Value::Bool(_) => 1,
        Value::Number(_) => 2,
        Value::String(_) => 3,
        Value::Array(_) => 4,
        Value::Object(_) => 5,
    }
}

/// A number's kind and value, so that `1` (integer) and `1.0` (float) stay distinct, as in equality.
enum NumberKey {
    Int(i128),
    Float(f64),
}

fn number_key(number: &serde_json::Number) -> NumberKey {
    if let Some(i) = number.as_i64() {
        NumberKey::Int(i128::from(i))
    } else if let Some(u) = number.as_u64() {
        NumberKey::Int(i128::from(u))
    } else {
        // -0.0 equals 0.0 under serde_json's equality, so they must order and hash alike.
        let f = number.as_f64().unwrap_or(0.0);
        NumberKey::Float(if f == 0.0 { 0.0 } else { f })
    }
}

/// A total order over JSON values consistent with `Value`'s equality.
pub(crate) fn cmp_json(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Number(x), Value::Number(y)) => match (number_key(x), number_key(y)) {
            (NumberKey::Int(x), NumberKey::Int(y)) => x.cmp(&y),
            (NumberKey::Float(x), NumberKey::Float(y)) => x.total_cmp(&y),
            (NumberKey::Int(_), NumberKey::Float(_)) => Ordering::Less,
            (NumberKey::Float(_), NumberKey::Int(_)) => Ordering::Greater,
        },
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Array(x), Value::Array(y)) => {
            for (x, y) in x.iter().zip(y) {
                let order = cmp_json(x, y);
                if order != Ordering::Equal {
                    return order;
                }
            }
            x.len().cmp(&y.len())
        }
        (Value::Object(x), Value::Object(y)) => {
            for ((kx, vx), (ky, vy)) in in_key_order(x).zip(in_key_order(y)) {
                let order = kx.cmp(ky).then_with(|| cmp_json(vx, vy));
                if order != Ordering::Equal {
                    return order;
                }
            }
            x.len().cmp(&y.len())
        }
        _ => json_rank(a).cmp(&json_rank(b)),
    }
}

/// Hashes a JSON value consistently with `Value`'s equality.
pub(crate) fn hash_json<H: Hasher>(value: &Value, state: &mut H) {
    state.write_u8(json_rank(value));
    match value {
        Value::Null => {}
        Value::Bool(b) => b.hash(state),
        Value::Number(n) => match number_key(n) {
            NumberKey::Int(i) => {
                state.write_u8(0);
                i.hash(state);
            }
            NumberKey::Float(f) => {
                state.write_u8(1);
                f.to_bits().hash(state);
            }
        },
        Value::String(s) => s.hash(state),
        Value::Array(items) => {
            state.write_usize(items.len());
            for item in items {
                hash_json(item, state);
            }
        }
        Value::Object(map) => {
            state.write_usize(map.len());
            for (key, item) in in_key_order(map) {
                key.hash(state);
                hash_json(item, state);
            }
        }
    }
}
