//! Custom JWT authentication (docs/eventgrid.md §7.4 item 4): RS256 tokens from the namespace's
//! configured issuer, their claims checked at `now`, other claims as client attributes.
//!
//! Only compact JWS with `{"alg":"RS256"}` (`typ` `JWT` or absent, no `crit`) is accepted; the
//! signature is checked against each configured issuer certificate's public key. `exp` must be
//! after `now` (no skew); `nbf` may be up to [`NBF_SKEW_SECS`] ahead. Tokens are bounded to
//! [`MAX_TOKEN`] bytes (the MQTT 5 authentication data a CONNECT carries). Errors never echo the
//! token.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use rustls::pki_types::CertificateDer;
use serde_json::{Map, Value};

use super::{AttrValue, Attributes};

/// Largest token accepted.
pub const MAX_TOKEN: usize = 8 * 1024;
/// How far in the future a token's `nbf` may be (clock skew between issuer and broker).
pub const NBF_SKEW_SECS: u64 = 60;
/// Longest `sub` (an authentication name, docs/eventgrid.md §7.3).
const MAX_SUB: usize = 128;
/// Claims that are about the token, not the client.
const REGISTERED: [&str; 7] = ["iss", "sub", "aud", "exp", "nbf", "iat", "jti"];

/// `customJwtAuthentication`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtSettings {
    /// `tokenIssuer`: the `iss` a token must carry.
    pub issuer: String,
    /// The `aud` a token must carry (string or array): the namespace's MQTT host name
    /// (`mqtt.hostname`, shown read-only as `topicSpacesConfiguration.hostname`).
    pub audience: String,
    /// `issuerCertificates` (1–2), PEM, read at PUT (evgrid takes `encodedCertificate`, PEM,
    /// beside Azure's `certificateUrl`, which must be a `file:` path or absent).
    pub issuer_certs_der: Vec<Vec<u8>>,
}

/// What a valid token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// `sub`: the authentication name.
    pub sub: String,
    /// `exp`, ms since the epoch.
    pub expires_ms: u64,
    /// Other claims of type int32, string or string array (floats, other arrays, objects
    /// ignored).
    pub attributes: super::Attributes,
}

impl JwtSettings {
    /// Settings from the issuer and audience and 1–2 PEM issuer certificates; `Err` names what
    /// is wrong (for the PUT's error).
    pub fn new(issuer: &str, audience: &str, pems: &[&str]) -> Result<JwtSettings, String> {
        if issuer.is_empty() {
            return Err("customJwtAuthentication.tokenIssuer is required".into());
        }
        if audience.is_empty() {
            return Err("the custom JWT audience is empty".into());
        }
        if pems.is_empty() || pems.len() > 2 {
            return Err(format!(
                "customJwtAuthentication.issuerCertificates must hold 1 or 2 certificates, not {}",
                pems.len()
            ));
        }
        let mut ders = Vec::with_capacity(pems.len());
        for (i, pem) in pems.iter().enumerate() {
            let n = i + 1;
            let mut certs = super::cert::pem_certificates(pem)
                .map_err(|e| format!("issuer certificate {n}: {e}"))?;
            if certs.len() != 1 {
                return Err(format!(
                    "issuer certificate {n}: one PEM certificate expected, found {}",
                    certs.len()
                ));
            }
            let der = certs.pop().expect("one certificate");
            webpki::EndEntityCert::try_from(&CertificateDer::from(der.as_slice()))
                .map_err(|e| format!("issuer certificate {n} is not an X.509 certificate ({e})"))?;
            ders.push(der);
        }
        Ok(JwtSettings {
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            issuer_certs_der: ders,
        })
    }
}

fn json_part(b64: &str, what: &str) -> Result<Map<String, Value>, String> {
    let bytes = B64URL
        .decode(b64)
        .map_err(|_| format!("the token's {what} is not base64url"))?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(format!("the token's {what} is not a JSON object")),
    }
}

/// Verifies an RS256 `token` (compact JWS) at `now_ms`; `Err` says why not (never echoing the
/// token).
pub fn verify(token: &[u8], settings: &JwtSettings, now_ms: u64) -> Result<Claims, String> {
    if token.len() > MAX_TOKEN {
        return Err(format!("the token is longer than {MAX_TOKEN} bytes"));
    }
    let token = std::str::from_utf8(token).map_err(|_| "the token is not text".to_owned())?;
    let mut parts = token.trim().split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("the token is not a compact JWS (header.payload.signature)".into());
    };
    let header = json_part(h, "header")?;
    if header.get("alg").and_then(Value::as_str) != Some("RS256") {
        return Err("only RS256 tokens are accepted".into());
    }
    match header.get("typ") {
        None => {}
        Some(Value::String(t)) if t.eq_ignore_ascii_case("JWT") => {}
        Some(_) => return Err("the token's typ is not JWT".into()),
    }
    if header.contains_key("crit") {
        return Err("the token has critical header extensions".into());
    }
    let sig = B64URL
        .decode(s)
        .map_err(|_| "the token's signature is not base64url".to_owned())?;
    let signed = &token.trim()[..h.len() + 1 + p.len()];
    let verified = settings.issuer_certs_der.iter().any(|der| {
        let cd = CertificateDer::from(der.as_slice());
        webpki::EndEntityCert::try_from(&cd).is_ok_and(|ee| {
            ee.verify_signature(
                webpki::ring::RSA_PKCS1_2048_8192_SHA256,
                signed.as_bytes(),
                &sig,
            )
            .is_ok()
        })
    });
    if !verified {
        return Err("the token's signature does not verify with the issuer certificates".into());
    }
    let claims = json_part(p, "payload")?;
    if claims.get("iss").and_then(Value::as_str) != Some(settings.issuer.as_str()) {
        return Err("the token's iss is not the configured issuer".into());
    }
    let aud_ok = match claims.get("aud") {
        Some(Value::String(a)) => *a == settings.audience,
        Some(Value::Array(items)) => items
            .iter()
            .any(|a| a.as_str() == Some(settings.audience.as_str())),
        _ => false,
    };
    if !aud_ok {
        return Err("the token's aud does not name this namespace".into());
    }
    let now_s = now_ms / 1000;
    let exp = claims
        .get("exp")
        .and_then(seconds)
        .ok_or("the token has no numeric exp".to_owned())?;
    let expires_ms = exp.saturating_mul(1000);
    if expires_ms <= now_ms {
        return Err("the token has expired".into());
    }
    match claims.get("nbf") {
        None => {}
        Some(v) => {
            let nbf = seconds(v).ok_or("the token's nbf is not numeric".to_owned())?;
            if nbf > now_s + NBF_SKEW_SECS {
                return Err("the token is not valid yet (nbf)".into());
            }
        }
    }
    let sub = match claims.get("sub") {
        Some(Value::String(s)) if !s.is_empty() && s.chars().count() <= MAX_SUB => s.clone(),
        _ => return Err("the token's sub must be a 1–128 character string".into()),
    };
    let mut attributes = Attributes::new();
    for (k, v) in &claims {
        if REGISTERED.contains(&k.as_str())
            || k.is_empty()
            || !k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            continue;
        }
        if let Some(a) = AttrValue::from_json(v, false) {
            attributes.insert(k.clone(), a);
        }
    }
    Ok(Claims {
        sub,
        expires_ms,
        attributes,
    })
}

/// A NumericDate (fractions dropped); `None` when not a non-negative number.
fn seconds(v: &Value) -> Option<u64> {
    v.as_u64().or_else(|| {
        v.as_f64()
            .filter(|f| f.is_finite() && *f >= 0.0)
            .map(|f| f as u64)
    })
}

#[cfg(test)]
pub(crate) mod tests;
