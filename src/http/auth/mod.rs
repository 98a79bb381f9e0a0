//! Publisher authentication for the HTTP data plane (docs/eventgrid.md §2.8, §3, §6.1).
//!
//! Owns: extracting the credential a request presents ([`credential`]) and verifying it against
//! a resource's two access keys ([`verify`]): plain access keys here, SAS tokens in [`sas`]
//! (signature, expiry and resource scope; also [`sign_sas`]). Keys are generated and compared by
//! `evgrid_actors::model::keys`.
//!
//! No I/O, no global state, no actix types beyond the `HeaderMap` that [`credential`] reads; the
//! caller passes the current time in. It must never log, print or put into an error message a
//! key, a token or a signature (only the non-secret `r` and `e` values may appear in messages),
//! must compare secrets in constant time, and must never panic on any input.

mod sas;

use std::time::{SystemTime, UNIX_EPOCH};

use actix_web::http::header::{AUTHORIZATION, HeaderMap};

use evgrid_actors::model::keys::ct_eq;

pub(crate) use self::sas::sign_prefix;
pub use self::sas::sign_sas;
use super::request::query::{percent_decode, raw_pairs};

/// What a request presented.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// An access key (`Authorization: SharedAccessKey`, `aeg-sas-key` header or query).
    Key(String),
    /// A SAS token `r=..&e=..&s=..` exactly as sent (`Authorization: SharedAccessSignature`,
    /// `aeg-sas-token` header or query).
    Sas(String),
    /// `Authorization: Bearer ...` (Microsoft Entra ID); the token itself is not kept.
    Bearer,
    /// Nothing usable was presented.
    Missing,
}

/// Why a credential was rejected. Every variant maps to HTTP 401 at the edge.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error(
        "No credentials were presented; send an access key (header aeg-sas-key or \
         Authorization: SharedAccessKey <key>) or a SAS token (header aeg-sas-token or \
         Authorization: SharedAccessSignature <token>)."
    )]
    Missing,
    #[error(
        "The access key does not match key1 or key2 of this resource; copy a current key of the \
         topic or namespace (keys may have been regenerated)."
    )]
    WrongKey,
    #[error(
        "The SAS token signature (s=) is invalid; sign the exact 'r=...&e=...' part of the token \
         with HMAC-SHA256 using the base64-decoded key1 or key2 of this resource, and do not \
         modify the token after signing."
    )]
    BadSignature,
    #[error(
        "The SAS token has expired; generate a new token whose expiry (e=) is in the future \
         (times without an offset are UTC)."
    )]
    Expired,
    #[error("The SAS token is malformed: {0}")]
    Malformed(String),
    #[error(
        "The SAS token's resource (r=) does not cover the requested resource; sign a token whose \
         r is the URL of this topic or namespace (or of a resource below it)."
    )]
    WrongResource,
    #[error(
        "Bearer tokens (Microsoft Entra ID) are not supported by evgrid; use an access key \
         (aeg-sas-key or Authorization: SharedAccessKey) or a SAS token."
    )]
    BearerUnsupported,
}

// ---------------------------------------------------------------------------------------------
// Credential extraction
// ---------------------------------------------------------------------------------------------

/// Reads, in this order: `Authorization: SharedAccessKey <key>`,
/// `Authorization: SharedAccessSignature <token>`, `Authorization: Bearer ...`, header
/// `aeg-sas-key`, header `aeg-sas-token`, query `aeg-sas-key=` (decoded leniently: `+`, `/`, `=`
/// may arrive unencoded), query `aeg-sas-token=`. Header names are case-insensitive, and so is the
/// Authorization scheme word. Empty values count as absent.
pub fn credential(headers: &HeaderMap, query: &str) -> Credential {
    let auth: Vec<(String, String)> = headers
        .get_all(AUTHORIZATION)
        .filter_map(|v| split_scheme(&String::from_utf8_lossy(v.as_bytes())))
        .collect();
    let scheme = |name: &str| {
        auth.iter()
            .find(|(s, v)| s.eq_ignore_ascii_case(name) && !v.is_empty())
            .map(|(_, v)| v.clone())
    };
    if let Some(key) = scheme("SharedAccessKey") {
        return Credential::Key(key);
    }
    if let Some(token) = scheme("SharedAccessSignature") {
        return Credential::Sas(token);
    }
    if auth.iter().any(|(s, _)| s.eq_ignore_ascii_case("Bearer")) {
        return Credential::Bearer;
    }
    if let Some(key) = header_value(headers, "aeg-sas-key") {
        return Credential::Key(key);
    }
    if let Some(token) = header_value(headers, "aeg-sas-token") {
        return Credential::Sas(token);
    }
    if let Some(key) = query_key(query) {
        return Credential::Key(key);
    }
    if let Some(token) = query_token(query) {
        return Credential::Sas(token);
    }
    Credential::Missing
}

/// `"Scheme  rest"` → `("Scheme", "rest")` (rest trimmed); `None` for an empty header.
fn split_scheme(value: &str) -> Option<(String, String)> {
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    let (scheme, rest) = match value.find(|c: char| c.is_ascii_whitespace()) {
        Some(i) => (&value[..i], value[i..].trim()),
        None => (value, ""),
    };
    Some((scheme.to_string(), rest.to_string()))
}

/// First non-empty value of a header, trimmed (non-UTF-8 bytes replaced, so it simply fails to
/// verify instead of being reported as missing).
fn header_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(name)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).trim().to_string())
        .find(|v| !v.is_empty())
}

fn name_is(raw_name: &str, wanted: &str) -> bool {
    String::from_utf8_lossy(&percent_decode(raw_name, false)).eq_ignore_ascii_case(wanted)
}

/// `aeg-sas-key=`: percent-decoded, but `+` stays `+` (base64 keys are often sent unencoded).
fn query_key(query: &str) -> Option<String> {
    raw_pairs(query.strip_prefix('?').unwrap_or(query))
        .into_iter()
        .filter(|(n, _)| name_is(n, "aeg-sas-key"))
        .map(|(_, v)| {
            String::from_utf8_lossy(&percent_decode(v, false))
                .trim()
                .to_string()
        })
        .find(|v| !v.is_empty())
}

/// `aeg-sas-token=`: normally the whole token percent-encoded once; if it arrives unencoded
/// (`aeg-sas-token=r=..&e=..&s=..`) the following `e=`/`s=` parameters are reassembled verbatim.
fn query_token(query: &str) -> Option<String> {
    let pairs = raw_pairs(query.strip_prefix('?').unwrap_or(query));
    let start = pairs
        .iter()
        .position(|(n, _)| name_is(n, "aeg-sas-token"))?;
    let raw = pairs[start].1;
    if raw.is_empty() {
        return None;
    }
    let unencoded = raw
        .split_once('=')
        .is_some_and(|(n, _)| !n.is_empty() && n.bytes().all(|c| c.is_ascii_alphabetic()));
    if unencoded {
        // Unencoded token: "r=..." followed by the rest of its parameters up to and including s=.
        let mut token = raw.to_string();
        if !raw.starts_with("s=") {
            for (n, v) in &pairs[start + 1..] {
                token.push('&');
                token.push_str(n);
                token.push('=');
                token.push_str(v);
                if *n == "s" {
                    break;
                }
            }
        }
        return Some(token);
    }
    let decoded = String::from_utf8_lossy(&percent_decode(raw, false))
        .trim()
        .to_string();
    (!decoded.is_empty()).then_some(decoded)
}

// ---------------------------------------------------------------------------------------------
// Verification
// ---------------------------------------------------------------------------------------------

/// Verifies `cred` against a resource.
///
/// `keys`: the resource's access keys (base64 strings; key1, key2). `path`: the request path as
/// received (e.g. `/namespaces/ns1/topics/t1:publish` or `/topics/t1/api/events`). `scope`: the
/// resource's own base path (e.g. `/namespaces/ns1` or `/topics/t1`), used for SAS tokens whose
/// `r` has no path (see the module doc). `now`: current time.
pub fn verify(
    cred: &Credential,
    keys: &[&str],
    path: &str,
    scope: &str,
    now: SystemTime,
) -> Result<(), AuthError> {
    match cred {
        Credential::Missing => Err(AuthError::Missing),
        Credential::Bearer => Err(AuthError::BearerUnsupported),
        Credential::Key(k) => verify_key(k, keys),
        Credential::Sas(t) => sas::verify(t, keys, path, scope, nanos_since_epoch(now)),
    }
}

fn verify_key(presented: &str, keys: &[&str]) -> Result<(), AuthError> {
    let presented = presented.trim();
    if presented.is_empty() {
        return Err(AuthError::Missing);
    }
    let mut ok = false;
    for key in keys {
        // No short-circuit: every configured key is compared.
        ok |= !key.is_empty() & ct_eq(presented.as_bytes(), key.as_bytes());
    }
    if ok { Ok(()) } else { Err(AuthError::WrongKey) }
}

fn nanos_since_epoch(t: SystemTime) -> i128 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as i128,
        Err(e) => -(e.duration().as_nanos() as i128),
    }
}

#[cfg(test)]
mod tests;
