//! Webhook authentication (docs/eventgrid.md §7.4 item 5): the body the broker POSTs and the
//! reading of the reply. The request itself is the edge's (it owns the HTTP client and the 5 s
//! timeout).
//!
//! Request: `{"clientId", "userName", "password" (base64), "authenticationMethod",
//! "authenticationData" (base64), "clientCertificate" (PEM), "clientCertificateChain" (PEM, the
//! certificates after the leaf)}`, absent fields omitted. Reply: `{"decision": "allow",
//! "clientAuthenticationName", "attributes", "expiration"}` or `{"decision": "deny",
//! "errorReason"}`.
//!
//! An allow read here is not yet an admission: the edge must pass it through
//! [`super::directory::Directory::admit_webhook`], which refuses a name that is a registered
//! client's (the webhook never vouches for a registered client).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::Serialize;
use serde_json::Value;

use super::directory::{Credentials, Denied};
use super::{AttrValue, Attributes, AuthMethod, Identity};

/// Longest authentication name a reply may give (docs/eventgrid.md §7.3).
const MAX_AUTH_NAME: usize = 128;
/// Longest deny reason kept (it goes to logs).
const MAX_REASON: usize = 256;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Request<'a> {
    client_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    password: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    authentication_method: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    authentication_data: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_certificate: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_certificate_chain: Option<String>,
}

/// The JSON body for `creds` (only `clientId` is always present; binary fields base64; the
/// certificate and chain as PEM).
pub fn request_body(creds: &Credentials<'_>) -> Vec<u8> {
    let chain = creds.cert.map(|c| c.chain.as_slice()).unwrap_or_default();
    let pem = |ders: &[Vec<u8>]| {
        (!ders.is_empty()).then(|| {
            let mut s = String::new();
            for d in ders {
                super::cert::to_pem(d, &mut s);
            }
            s
        })
    };
    let req = Request {
        client_id: creds.client_id,
        user_name: creds.username,
        password: creds.password.map(|p| B64.encode(p)),
        authentication_method: creds.auth_method,
        authentication_data: creds.auth_data.map(|d| B64.encode(d)),
        client_certificate: pem(chain.get(..1).unwrap_or_default()),
        client_certificate_chain: pem(chain.get(1..).unwrap_or_default()),
    };
    serde_json::to_vec(&req).expect("a request body serializes")
}

/// The decision in a 200 reply's body at `now_ms` (an allow still goes through
/// `Directory::admit_webhook`): allow (with `clientAuthenticationName`,
/// `attributes`, `expiration` in Unix seconds) or deny (`errorReason`). A body that is not one
/// of those is [`Denied::Unavailable`].
pub fn read_reply(body: &[u8], creds: &Credentials<'_>, now_ms: u64) -> Result<Identity, Denied> {
    let bad = |why: &str| Denied::Unavailable(format!("authentication webhook reply: {why}"));
    let v: Value = serde_json::from_slice(body).map_err(|_| bad("not JSON"))?;
    let Some(obj) = v.as_object() else {
        return Err(bad("not a JSON object"));
    };
    let decision = obj.get("decision").and_then(Value::as_str).unwrap_or("");
    if decision.eq_ignore_ascii_case("deny") {
        let reason = obj
            .get("errorReason")
            .and_then(Value::as_str)
            .filter(|r| !r.is_empty())
            .unwrap_or("denied by the authentication webhook");
        return Err(Denied::NotAuthorized(super::directory::escape_max(
            reason, MAX_REASON,
        )));
    }
    if !decision.eq_ignore_ascii_case("allow") {
        return Err(bad("'decision' is neither 'allow' nor 'deny'"));
    }
    let auth_name = match obj.get("clientAuthenticationName") {
        None | Some(Value::Null) => creds.username.unwrap_or(creds.client_id),
        Some(Value::String(s)) if !s.is_empty() && s.chars().count() <= MAX_AUTH_NAME => s,
        Some(_) => {
            return Err(bad(
                "'clientAuthenticationName' is not a 1–128 character string",
            ));
        }
    };
    if auth_name.is_empty() {
        return Err(bad(
            "no authentication name (no user name or client id either)",
        ));
    }
    let mut attributes = Attributes::new();
    match obj.get("attributes") {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) => {
            // The same rules as a JWT's claims (docs/eventgrid.md §7.3): keys `[A-Za-z0-9_]`,
            // integers in the int32 range; anything else is dropped.
            for (k, v) in m {
                if k.is_empty() || !k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                    continue;
                }
                if let Some(a) = AttrValue::from_json(v, true) {
                    attributes.insert(k.clone(), a);
                }
            }
        }
        Some(_) => return Err(bad("'attributes' is not an object")),
    }
    let expires_ms = match obj.get("expiration") {
        None | Some(Value::Null) => None,
        Some(e) => {
            let secs = e
                .as_u64()
                .or_else(|| {
                    e.as_f64()
                        .filter(|f| f.is_finite() && *f >= 0.0)
                        .map(|f| f as u64)
                })
                .ok_or_else(|| bad("'expiration' is not Unix seconds"))?;
            let ms = secs.saturating_mul(1000);
            if ms <= now_ms {
                return Err(Denied::NotAuthorized(
                    "the authentication webhook's expiration is in the past".into(),
                ));
            }
            Some(ms)
        }
    };
    Ok(Identity {
        auth_name: auth_name.to_owned(),
        client: None,
        claims: attributes.clone(),
        attributes,
        method: AuthMethod::Webhook,
        expires_ms,
    })
}

#[cfg(test)]
mod tests;
