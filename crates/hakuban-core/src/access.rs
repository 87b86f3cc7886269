//! Access control: which objects and tags a peer may observe and expose.
//!
//! A parent (a router) holds an [`AccessPolicy`]: a map from access tokens to [`Rights`], plus the
//! rights of peers that send no token. A child sends its [`AccessToken`] in its hello. The parent
//! then filters each of the child's declarations through its rights: a declaration outside them
//! is refused (the child is told why, in a frame) and has no effect, so nothing about that object
//! reaches the child and nothing the child sends for it is accepted. Without a policy every peer
//! may do everything.
//!
//! Rights name objects and tags by [`JsonPattern`]s on their JSON. An object is covered by a grant
//! when its JSON matches one of the grant's object patterns, or one of its tags matches one of
//! the grant's tag patterns; a tag (for tag contracts) when it matches one of the tag patterns.

use std::collections::HashMap;
use std::sync::Arc;

use hakuban_proto::DeclarationState;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::descriptor::{ObjectDescriptor, TagDescriptor};

/// A secret a child presents to its parent. Its `Debug` output never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken(String);

impl AccessToken {
    /// Wraps a token's text.
    pub fn new(token: impl Into<String>) -> Self {
        AccessToken(token.into())
    }

    /// The token's text (to send it; never log it).
    pub fn secret(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AccessToken(<redacted>)")
    }
}

/// A pattern on a JSON value.
///
/// * the string `"*"` matches any value;
/// * another string containing `*` matches strings, `*` standing for any run of characters
///   (`"sensor/*"` matches `"sensor/kitchen"`);
/// * an object matches objects that have every key of the pattern with a matching value (other
///   keys are allowed): `{"type": "temperature", "room": "*"}`;
/// * an array matches arrays of the same length, element by element;
/// * anything else matches an equal value.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(transparent)]
pub struct JsonPattern(Value);

impl JsonPattern {
    /// A pattern from its JSON form.
    pub fn new(pattern: Value) -> Self {
        JsonPattern(pattern)
    }

    /// Whether `value` matches.
    pub fn matches(&self, value: &Value) -> bool {
        matches(&self.0, value)
    }
}

fn matches(pattern: &Value, value: &Value) -> bool {
    match (pattern, value) {
        (Value::String(p), _) if p == "*" => true,
        (Value::String(p), Value::String(v)) if p.contains('*') => glob(p, v),
        (Value::Object(p), Value::Object(v)) => p.iter().all(|(key, p)| v.get(key).is_some_and(|v| matches(p, v))),
        (Value::Array(p), Value::Array(v)) => p.len() == v.len() && p.iter().zip(v).all(|(p, v)| matches(p, v)),
        (p, v) => p == v,
    }
}

/// `*`-glob match, linear in the text for each star (greedy with backtracking to the last star).
fn glob(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = text.strip_prefix(first) else { return false };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else { return rest.is_empty() };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// What one kind of contract (observe, or expose) may cover.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    /// Patterns on tag JSON: tag contracts on matching tags, and objects carrying one.
    #[serde(default)]
    pub tags: Vec<JsonPattern>,
    /// Patterns on object JSON.
    #[serde(default)]
    pub objects: Vec<JsonPattern>,
}

impl Grant {
    /// Everything.
    pub fn all() -> Self {
        Grant { tags: vec![JsonPattern::new("*".into())], objects: vec![JsonPattern::new("*".into())] }
    }

    /// Whether the grant covers this object.
    pub fn covers_object(&self, object: &ObjectDescriptor) -> bool {
        (!self.objects.is_empty() && object.with_json(|json| self.objects.iter().any(|p| p.matches(json))))
            || object.tags().iter().any(|tag| self.covers_tag(tag))
    }

    /// Whether the grant covers this tag.
    pub fn covers_tag(&self, tag: &TagDescriptor) -> bool {
        self.tags.iter().any(|p| p.matches(tag.json()))
    }
}

/// What a peer may observe and expose.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rights {
    /// What it may observe.
    #[serde(default)]
    pub observe: Grant,
    /// What it may expose.
    #[serde(default)]
    pub expose: Grant,
}

impl Rights {
    /// Everything, both ways.
    pub fn all() -> Self {
        Rights { observe: Grant::all(), expose: Grant::all() }
    }

    /// Splits a declaration on `object` into its allowed and its refused parts.
    pub fn filter_object(
        &self,
        object: &ObjectDescriptor,
        state: DeclarationState,
    ) -> (DeclarationState, DeclarationState) {
        split(state, || self.observe.covers_object(object), || self.expose.covers_object(object))
    }

    /// Splits a declaration on `tag` into its allowed and its refused parts.
    pub fn filter_tag(&self, tag: &TagDescriptor, state: DeclarationState) -> (DeclarationState, DeclarationState) {
        split(state, || self.observe.covers_tag(tag), || self.expose.covers_tag(tag))
    }
}

fn split(
    state: DeclarationState,
    may_observe: impl FnOnce() -> bool,
    may_expose: impl FnOnce() -> bool,
) -> (DeclarationState, DeclarationState) {
    let mut allowed = DeclarationState::default();
    let mut refused = DeclarationState::default();
    if state.observe {
        if may_observe() { allowed.observe = true } else { refused.observe = true }
    }
    if let Some(capacity) = state.expose {
        if may_expose() { allowed.expose = Some(capacity) } else { refused.expose = Some(capacity) }
    }
    (allowed, refused)
}

/// A parent's refusal of parts of a declaration, as the child records it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    /// Observing was refused.
    pub observe: bool,
    /// Exposing was refused.
    pub expose: bool,
    /// The parent's reason.
    pub reason: String,
}

impl Refusal {
    /// Whether nothing is refused.
    pub fn is_empty(&self) -> bool {
        !self.observe && !self.expose
    }
}

/// Who a peer is to the policy: a token's name (never the token) and its rights.
#[derive(Clone, Debug, PartialEq)]
pub struct Principal {
    /// The name given to the token in the policy, or `anonymous`.
    pub name: String,
    /// What it may do.
    pub rights: Arc<Rights>,
}

/// Tokens and their rights, and what peers without a token may do.
#[derive(Clone, Debug, Default)]
pub struct AccessPolicy {
    anonymous: Option<Arc<Rights>>,
    tokens: HashMap<String, Principal>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    #[serde(default)]
    anonymous: Option<Rights>,
    #[serde(default)]
    tokens: Vec<TokenEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenEntry {
    name: String,
    token: String,
    #[serde(default)]
    observe: Grant,
    #[serde(default)]
    expose: Grant,
}

/// Shortest token a policy accepts.
pub const MIN_TOKEN_LEN: usize = 16;

impl AccessPolicy {
    /// A policy from its JSON form (see `docs/security.md`): `anonymous` (optional rights of
    /// peers without a token; none by default) and `tokens`, each with a `name` for the logs, the
    /// `token` (at least [`MIN_TOKEN_LEN`] characters) and its `observe` and `expose` grants.
    pub fn from_json(text: &str) -> Result<AccessPolicy, String> {
        let file: PolicyFile = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let mut tokens = HashMap::new();
        for entry in file.tokens {
            if entry.token.len() < MIN_TOKEN_LEN {
                return Err(format!("token `{}` is shorter than {MIN_TOKEN_LEN} characters", entry.name));
            }
            let rights = Arc::new(Rights { observe: entry.observe, expose: entry.expose });
            let principal = Principal { name: entry.name.clone(), rights };
            if tokens.insert(entry.token, principal).is_some() {
                return Err(format!("token `{}` appears twice", entry.name));
            }
        }
        Ok(AccessPolicy { anonymous: file.anonymous.map(Arc::new), tokens })
    }

    /// The principal a hello's token names; `None` for an unknown token. Without a token: the
    /// anonymous rights (nothing, unless the policy grants some).
    pub fn principal(&self, token: Option<&str>) -> Option<Principal> {
        match token {
            None => {
                Some(Principal { name: "anonymous".to_string(), rights: self.anonymous.clone().unwrap_or_default() })
            }
            Some(token) => self.tokens.get(token).cloned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn patterns_match_as_documented() {
        let p = |v: Value| JsonPattern::new(v);
        assert!(p(json!("*")).matches(&json!({"any": [1, 2]})));
        assert!(p(json!("sensor/*")).matches(&json!("sensor/kitchen")));
        assert!(!p(json!("sensor/*")).matches(&json!("actuator/kitchen")));
        assert!(p(json!("*/kitchen/*")).matches(&json!("a/kitchen/b")));
        assert!(!p(json!("a*b*c")).matches(&json!("acb")));
        assert!(p(json!("a*b*c")).matches(&json!("aXbYc")));
        assert!(!p(json!("ab*ba")).matches(&json!("aba")), "prefix and suffix may not overlap");
        let room = p(json!({"type": "temperature", "room": "*"}));
        assert!(room.matches(&json!({"type": "temperature", "room": "hall", "extra": 1})));
        assert!(!room.matches(&json!({"type": "temperature"})));
        assert!(!room.matches(&json!({"type": "humidity", "room": "hall"})));
        assert!(p(json!([1, "*"])).matches(&json!([1, {"x": 2}])));
        assert!(!p(json!([1, "*"])).matches(&json!([1, 2, 3])));
        assert!(!p(json!(1)).matches(&json!("1")));
    }

    #[test]
    fn an_object_is_covered_by_its_json_or_by_one_of_its_tags() {
        let grant =
            Grant { tags: vec![JsonPattern::new(json!("public"))], objects: vec![JsonPattern::new(json!("x"))] };
        assert!(grant.covers_object(&ObjectDescriptor::from("x")));
        assert!(grant.covers_object(&ObjectDescriptor::from((["public", "other"], "y"))));
        assert!(!grant.covers_object(&ObjectDescriptor::from((["other"], "y"))));
        assert!(grant.covers_tag(&TagDescriptor::from("public")));
        assert!(!grant.covers_tag(&TagDescriptor::from("x")));
    }

    #[test]
    fn a_declaration_splits_into_allowed_and_refused() {
        let rights = Rights { observe: Grant::all(), expose: Grant::default() };
        let state = DeclarationState { observe: true, expose: Some(3) };
        let (allowed, refused) = rights.filter_object(&ObjectDescriptor::from("x"), state);
        assert_eq!(allowed, DeclarationState { observe: true, expose: None });
        assert_eq!(refused, DeclarationState { observe: false, expose: Some(3) });
    }

    #[test]
    fn a_policy_names_tokens_and_refuses_what_it_does_not_know() {
        let policy = AccessPolicy::from_json(
            r#"{"tokens": [{"name": "reader", "token": "0123456789abcdef", "observe": {"tags": ["*"]}}]}"#,
        )
        .unwrap_or_default();
        let reader = policy.principal(Some("0123456789abcdef"));
        assert_eq!(reader.as_ref().map(|p| p.name.as_str()), Some("reader"));
        assert!(policy.principal(Some("0123456789abcdeX")).is_none());
        let anonymous = policy.principal(None);
        assert_eq!(anonymous.map(|p| *p.rights == Rights::default()), Some(true), "nothing by default");
        for bad in [
            r#"{"tokens": [{"name": "a", "token": "short"}]}"#,
            r#"{"tokens": [{"name": "a", "token": "0123456789abcdef"}, {"name": "b", "token": "0123456789abcdef"}]}"#,
            r#"{"tokens": [{"name": "a", "token": "0123456789abcdef", "observe": {"tag": []}}]}"#,
            r#"{"anonymus": {}}"#,
        ] {
            assert!(AccessPolicy::from_json(bad).is_err(), "{bad} accepted");
        }
        assert_eq!(format!("{:?}", AccessToken::new("0123456789abcdef")), "AccessToken(<redacted>)");
    }
}
