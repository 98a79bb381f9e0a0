//! Resources as Azure's ARM documents describe them: what a management PUT may carry, the
//! defaults it gets, and the `properties` a GET returns — for namespaces ([`namespace`]) and for
//! the basic tier's custom topics, domains and their subscriptions ([`basic`]), and a
//! namespace's identity resources ([`identity`], [`client_auth`]).
//!
//! Owns validation and the helpers both tiers read `properties` with, so every error names the
//! property at fault in the same words. Pure: never touches the store, an actor or the clock
//! (`now_ms` comes in as an argument); the grid calls it before it commits anything.

pub mod basic;
pub mod client_auth;
pub mod identity;
pub mod namespace;
pub mod system_topic;
pub mod topic_spaces;

use serde_json::{Map, Value};

use crate::model::time::parse_rfc3339_ms;

/// Server-side bounds that deployments (and tests) may loosen.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Shortest receive lock a subscription may ask for (Event Grid: 60 s).
    pub min_lock_secs: u32,
}

/// Namespace, topic and domain names: 3–50 characters of letters, digits and hyphens.
pub fn check_name(kind: &str, name: &str, max: usize) -> Result<(), String> {
    let ok = (3..=max).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "The {kind} name '{name}' is invalid: it must be 3 to {max} characters of letters, digits and hyphens."
        ))
    }
}

pub(super) fn props_obj(props: &Value) -> Result<&Map<String, Value>, String> {
    static EMPTY: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();
    match props {
        Value::Null => Ok(EMPTY.get_or_init(Map::new)),
        Value::Object(m) => Ok(m),
        _ => Err("'properties' must be a JSON object".into()),
    }
}

pub(super) fn get_u64(
    m: &Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<Option<u64>, String> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .map(Some)
            .ok_or_else(|| format!("{path}{key} must be a whole number, got {v}")),
    }
}

pub(super) fn get_str<'a>(
    m: &'a Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<Option<&'a str>, String> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(v) => Err(format!("{path}{key} must be a string, got {v}")),
    }
}

/// `properties.expirationTimeUtc`: absent, or an RFC 3339 time after `now_ms`.
pub fn expiration(v: Option<&str>, now_ms: u64) -> Result<Option<u64>, String> {
    let Some(s) = v else {
        return Ok(None);
    };
    let t = parse_rfc3339_ms(s).ok_or_else(|| {
        format!("properties.expirationTimeUtc '{s}' is not an RFC 3339 time such as '2030-01-01T00:00:00Z'")
    })?;
    if t <= now_ms {
        return Err(format!(
            "Invalid expiration time. properties.expirationTimeUtc '{s}' is in the past"
        ));
    }
    Ok(Some(t))
}

pub(super) fn get_obj<'a>(
    m: &'a Map<String, Value>,
    key: &str,
    at: &str,
) -> Result<Option<&'a Map<String, Value>>, String> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(o)) => Ok(Some(o)),
        Some(_) => Err(format!("{at}{key} must be a JSON object")),
    }
}

pub(super) fn get_int(
    m: &Map<String, Value>,
    key: &str,
    at: &str,
    lo: u64,
    hi: u64,
) -> Result<Option<u64>, String> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_u64() {
            Some(n) if (lo..=hi).contains(&n) => Ok(Some(n)),
            _ => Err(format!(
                "{at}{key} must be a whole number from {lo} to {hi}, got {v}"
            )),
        },
    }
}
