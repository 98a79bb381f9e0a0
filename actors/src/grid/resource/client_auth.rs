//! A namespace's authentication settings and quotas, parts of `topicSpacesConfiguration`
//! (docs/eventgrid.md §7.4, §7.9): `clientAuthentication` (`alternativeAuthenticationNameSources`,
//! `customJwtAuthentication`, `webHookAuthentication`) and evgrid's extension `quotas`.
//!
//! Owns their validation and the normalised objects a GET shows. Pure: never reads a file or the
//! network — an issuer certificate's PEM must already be in its entry's `encodedCertificate`
//! (evgrid's extension; the grid reads a `file:` `certificateUrl` into it before calling here).

use serde_json::{Map, Value, json};

use super::get_str;
use crate::identity::cert::NameSource;
use crate::identity::directory::{AuthSettings, Quotas, WebhookSettings};
use crate::identity::jwt::JwtSettings;

const P: &str = "properties.topicSpacesConfiguration.clientAuthentication";
const Q: &str = "properties.topicSpacesConfiguration.quotas";

/// Largest value a quota may take.
pub const MAX_QUOTA: u64 = 1_000_000_000;

const SOURCES: [(&str, NameSource); 5] = [
    ("ClientCertificateSubject", NameSource::Subject),
    ("ClientCertificateDns", NameSource::Dns),
    ("ClientCertificateUri", NameSource::Uri),
    ("ClientCertificateIp", NameSource::Ip),
    ("ClientCertificateEmail", NameSource::Email),
];

fn obj<'a>(v: Option<&'a Value>, at: &str) -> Result<Option<&'a Map<String, Value>>, String> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(m)) => Ok(Some(m)),
        Some(_) => Err(format!("{at} must be a JSON object")),
    }
}

/// `clientAuthentication`; `audience` is the namespace's MQTT host name, the `aud` a custom JWT
/// must carry. Answers the settings and the object a GET shows (`Null` when absent).
pub fn client_auth(v: Option<&Value>, audience: &str) -> Result<(AuthSettings, Value), String> {
    let Some(m) = obj(v, P)? else {
        return Ok((AuthSettings::default(), Value::Null));
    };
    let mut out = json!({});
    let mut auth = AuthSettings::default();
    match m.get("alternativeAuthenticationNameSources") {
        None | Some(Value::Null) => {}
        Some(Value::Array(a)) => {
            let mut shown = Vec::new();
            for (i, s) in a.iter().enumerate() {
                let s = s.as_str().unwrap_or_default();
                let (name, src) = SOURCES
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case(s))
                    .ok_or_else(|| {
                        format!(
                            "{P}.alternativeAuthenticationNameSources[{i}] '{s}' is not one of {}",
                            SOURCES.map(|s| s.0).join(", ")
                        )
                    })?;
                if !auth.name_sources.contains(src) {
                    auth.name_sources.push(*src);
                    shown.push(json!(name));
                }
            }
            out["alternativeAuthenticationNameSources"] = Value::Array(shown);
        }
        Some(_) => {
            return Err(format!(
                "{P}.alternativeAuthenticationNameSources must be an array of strings"
            ));
        }
    }
    let jp = format!("{P}.customJwtAuthentication");
    if let Some(j) = obj(m.get("customJwtAuthentication"), &jp)? {
        let (settings, shown) = custom_jwt(j, &jp, audience)?;
        auth.custom_jwt = Some(settings);
        out["customJwtAuthentication"] = shown;
    }
    let wp = format!("{P}.webHookAuthentication");
    if let Some(w) = obj(m.get("webHookAuthentication"), &wp)? {
        let url = get_str(w, "endpointUrl", &format!("{wp}."))?.ok_or_else(|| {
            format!("{wp}.endpointUrl is required: the http(s) URL the broker asks at each CONNECT")
        })?;
        let lower = url.to_ascii_lowercase();
        let ok = ["http://", "https://"]
            .iter()
            .any(|s| lower.starts_with(s) && lower.len() > s.len());
        if !ok {
            return Err(format!(
                "{wp}.endpointUrl '{url}' must be an http:// or https:// URL"
            ));
        }
        auth.webhook = Some(WebhookSettings {
            endpoint_url: url.to_string(),
        });
        // The Entra fields (identity, azureActiveDirectory…) are echoed; evgrid's stand-in for
        // the Entra token is configured on the server.
        out["webHookAuthentication"] = Value::Object(w.clone());
    }
    Ok((auth, out))
}

fn custom_jwt(
    j: &Map<String, Value>,
    jp: &str,
    audience: &str,
) -> Result<(JwtSettings, Value), String> {
    let issuer = get_str(j, "tokenIssuer", &format!("{jp}."))?
        .filter(|s| !s.is_empty())
        .ok_or_else(|| format!("{jp}.tokenIssuer is required: the 'iss' tokens must carry"))?;
    let certs = match j.get("issuerCertificates") {
        Some(Value::Array(a)) if (1..=2).contains(&a.len()) => a,
        _ => {
            return Err(format!(
                "{jp}.issuerCertificates is required: 1 or 2 entries, each with encodedCertificate (PEM, evgrid's extension) or a file: certificateUrl"
            ));
        }
    };
    let mut pems = Vec::with_capacity(certs.len());
    for (i, c) in certs.iter().enumerate() {
        let at = format!("{jp}.issuerCertificates[{i}]");
        let c = c
            .as_object()
            .ok_or_else(|| format!("{at} must be a JSON object"))?;
        match get_str(c, "encodedCertificate", &format!("{at}."))? {
            Some(pem) => pems.push(pem),
            None => {
                let url = get_str(c, "certificateUrl", &format!("{at}."))?.unwrap_or_default();
                return Err(format!(
                    "{at}.certificateUrl '{url}' cannot be fetched by evgrid: give the certificate as encodedCertificate (PEM, evgrid's extension) or as a file: URL readable by the server"
                ));
            }
        }
    }
    let settings = JwtSettings::new(issuer, audience, &pems)
        .map_err(|e| format!("{jp}.issuerCertificates: {e}"))?;
    let shown = json!({"tokenIssuer": issuer, "issuerCertificates": certs});
    Ok((settings, shown))
}

/// evgrid's `quotas`: `sessionMessagesPerSecond`, `sessionBytesPerSecond`, `connectsPerSecond`,
/// each absent or null (off) or 1 to [`MAX_QUOTA`]. Answers the quotas and the object a GET
/// shows (`Null` when absent).
pub fn quotas(v: Option<&Value>) -> Result<(Quotas, Value), String> {
    let Some(m) = obj(v, Q)? else {
        return Ok((Quotas::default(), Value::Null));
    };
    let one = |k: &str| -> Result<Option<u32>, String> {
        match m.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => match v.as_u64() {
                Some(n) if (1..=MAX_QUOTA).contains(&n) => Ok(Some(n as u32)),
                _ => Err(format!(
                    "{Q}.{k} must be a whole number from 1 to {MAX_QUOTA} (or null: no quota), got {v}"
                )),
            },
        }
    };
    let q = Quotas {
        session_messages_per_sec: one("sessionMessagesPerSecond")?,
        session_bytes_per_sec: one("sessionBytesPerSecond")?,
        connects_per_sec: one("connectsPerSecond")?,
    };
    let out = json!({
        "sessionMessagesPerSecond": q.session_messages_per_sec,
        "sessionBytesPerSecond": q.session_bytes_per_sec,
        "connectsPerSecond": q.connects_per_sec,
    });
    Ok((q, out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(v: Value) -> Result<(AuthSettings, Value), String> {
        client_auth(Some(&v), "mqtt.example")
    }

    #[test]
    fn absent_is_default() {
        assert_eq!(
            client_auth(None, "h").unwrap(),
            (AuthSettings::default(), Value::Null)
        );
        assert_eq!(quotas(None).unwrap(), (Quotas::default(), Value::Null));
        assert!(
            auth(json!([]))
                .unwrap_err()
                .ends_with("must be a JSON object")
        );
    }

    #[test]
    fn name_sources_in_order_without_repeats() {
        let (a, out) = auth(json!({"alternativeAuthenticationNameSources":
            ["ClientCertificateUri", "clientcertificatedns", "ClientCertificateUri"]}))
        .unwrap();
        assert_eq!(a.name_sources, vec![NameSource::Uri, NameSource::Dns]);
        assert_eq!(
            out["alternativeAuthenticationNameSources"],
            json!(["ClientCertificateUri", "ClientCertificateDns"])
        );
        let e = auth(json!({"alternativeAuthenticationNameSources": ["Subject"]})).unwrap_err();
        assert_eq!(
            e,
            "properties.topicSpacesConfiguration.clientAuthentication.alternativeAuthenticationNameSources[0] 'Subject' is not one of ClientCertificateSubject, ClientCertificateDns, ClientCertificateUri, ClientCertificateIp, ClientCertificateEmail"
        );
    }

    #[test]
    fn webhook_needs_an_http_url_and_echoes_the_rest() {
        let w = json!({"endpointUrl": "https://auth.example/check",
            "azureActiveDirectoryTenantId": "t", "identity": {"type": "SystemAssigned"}});
        let (a, out) = auth(json!({"webHookAuthentication": w})).unwrap();
        assert_eq!(
            a.webhook,
            Some(WebhookSettings {
                endpoint_url: "https://auth.example/check".into()
            })
        );
        assert_eq!(out["webHookAuthentication"], w);
        for v in [
            json!({}),
            json!({"endpointUrl": "ftp://x"}),
            json!({"endpointUrl": "http://"}),
        ] {
            assert!(auth(json!({"webHookAuthentication": v})).is_err(), "{v}");
        }
    }

    #[test]
    fn custom_jwt_refusals() {
        let j = |v: Value| auth(json!({"customJwtAuthentication": v})).unwrap_err();
        assert!(
            j(json!({"issuerCertificates": [{"encodedCertificate": "x"}]}))
                .contains("tokenIssuer is required")
        );
        assert!(j(json!({"tokenIssuer": "i"})).contains("issuerCertificates is required"));
        assert!(
            j(json!({"tokenIssuer": "i", "issuerCertificates": []})).contains("1 or 2 entries")
        );
        let e = j(
            json!({"tokenIssuer": "i", "issuerCertificates": [{"certificateUrl": "https://kv/cert"}]}),
        );
        assert!(
            e.contains(
                "issuerCertificates[0].certificateUrl 'https://kv/cert' cannot be fetched by evgrid"
            ),
            "{e}"
        );
    }

    #[test]
    fn quotas_are_off_or_bounded() {
        let (q, out) = quotas(Some(&json!({"sessionMessagesPerSecond": 1000,
            "sessionBytesPerSecond": null, "connectsPerSecond": 5})))
        .unwrap();
        assert_eq!(
            q,
            Quotas {
                session_messages_per_sec: Some(1000),
                session_bytes_per_sec: None,
                connects_per_sec: Some(5),
            }
        );
        assert_eq!(
            out,
            json!({"sessionMessagesPerSecond": 1000, "sessionBytesPerSecond": null, "connectsPerSecond": 5})
        );
        for v in [0u64, MAX_QUOTA + 1] {
            let e = quotas(Some(&json!({"sessionBytesPerSecond": v}))).unwrap_err();
            assert_eq!(
                e,
                format!(
                    "properties.topicSpacesConfiguration.quotas.sessionBytesPerSecond must be a whole number from 1 to 1000000000 (or null: no quota), got {v}"
                )
            );
        }
        assert!(quotas(Some(&json!({"connectsPerSecond": "many"}))).is_err());
    }
}
