//! A namespace's `topicSpacesConfiguration` (docs/eventgrid.md §7.6, §7.9): whether its MQTT
//! broker is enabled, the topic its MQTT messages are routed into, the routing enrichments, and
//! the session bounds; its `clientAuthentication` and evgrid's `quotas` are parsed by
//! [`super::client_auth`], and the read-only `hostname` shown is the server's `mqtt.hostname`.
//!
//! Owns the validation rules of §7.6 (enrichment keys and values, the route topic's id) and the
//! parsed form the bridge evaluates per message ([`Enrichments`], [`Dynamic`]). Pure: never
//! looks a resource up — whether the route topic exists and takes CloudEvents is the registry's
//! check, made before the namespace is committed.
//!
//! Enrichment rules (docs/eventgrid.md §7.6): keys are 1–20 characters of `[a-z0-9]`, unique
//! across `static` and `dynamic`, never a CloudEvents context attribute nor `data`/`data_base64`,
//! never starting with `azsp`; values are at most 128 characters; a static enrichment's
//! `valueType` is `String`; a dynamic value is exactly one supported variable. §7.6 gives two
//! limits on their number (10 in the reference text, 20 in the portal); evgrid chooses
//! [`MAX_ENRICHMENTS`] = 20, so every configuration Azure's portal accepts is accepted here.

use serde_json::{Value, json};

use super::client_auth;
use super::{get_str, get_u64};
use crate::identity::directory::{AuthSettings, Quotas};

/// The parsed configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpaces {
    /// `state`: `Enabled` or `Disabled` (the default). Disabled: nothing is routed, and
    /// `maximumSessionExpiryInHours` does not apply. (The MQTT listener, and HTTP publishes to
    /// its topics, serve the namespace either way: the listener is evgrid's configuration.)
    pub enabled: bool,
    /// `routeTopicResourceId`, parsed.
    pub route: Option<RouteTopic>,
    pub enrichments: Enrichments,
    /// `maximumSessionExpiryInHours`, 1–8 (default 1).
    pub max_session_expiry_hours: u32,
    /// `maximumClientSessionsPerAuthenticationName`, 1–100 (default 1).
    pub max_sessions_per_auth_name: u32,
    /// `clientAuthentication` (docs/eventgrid.md §7.4).
    pub auth: AuthSettings,
    /// evgrid's `quotas` (off by default).
    pub quotas: Quotas,
}

impl Default for TopicSpaces {
    fn default() -> Self {
        TopicSpaces {
            enabled: false,
            route: None,
            enrichments: Enrichments::default(),
            max_session_expiry_hours: 1,
            max_sessions_per_auth_name: 1,
            auth: AuthSettings::default(),
            quotas: Quotas::default(),
        }
    }
}

/// The topic a namespace routes its MQTT messages into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteTopic {
    /// `…/providers/Microsoft.EventGrid/namespaces/{namespace}/topics/{topic}`.
    Namespace { namespace: String, topic: String },
    /// `…/providers/Microsoft.EventGrid/topics/{name}` (a custom topic; it must take
    /// CloudEvents input).
    Custom(String),
}

impl std::fmt::Display for RouteTopic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RouteTopic::Namespace { namespace, topic } => {
                write!(f, "the topic '{topic}' of namespace '{namespace}'")
            }
            RouteTopic::Custom(t) => write!(f, "the custom topic '{t}'"),
        }
    }
}

/// Routing enrichments: extension attributes added to every routed CloudEvent, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Enrichments {
    /// `static`: key and string value.
    pub statics: Vec<(String, String)>,
    /// `dynamic`: key and the variable whose value it takes per message.
    pub dynamics: Vec<(String, Dynamic)>,
}

impl Enrichments {
    pub fn is_empty(&self) -> bool {
        self.statics.is_empty() && self.dynamics.is_empty()
    }
}

/// A dynamic enrichment's variable (docs/eventgrid.md §7.6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dynamic {
    /// `${client.authenticationName}`
    AuthName,
    /// `${client.attributes.x}`
    Attribute(String),
    /// `${mqtt.message.userProperties.x}` or `${mqtt.message.userProperties['x.y']}`
    UserProperty(String),
    /// `${mqtt.message.topicName}`
    TopicName,
    /// `${mqtt.message.responseTopic}`
    ResponseTopic,
    /// `${mqtt.message.correlationData}` (emitted base64)
    CorrelationData,
    /// `${mqtt.message.pfi}` (emitted as an integer)
    Pfi,
}

/// Most enrichments (static and dynamic together) a namespace may have; see the module doc.
pub const MAX_ENRICHMENTS: usize = 20;
/// Longest enrichment key, in characters.
pub const MAX_KEY_CHARS: usize = 20;
/// Longest enrichment value (a static value, or a dynamic one's variable), in characters.
pub const MAX_VALUE_CHARS: usize = 128;

/// Names an enrichment may not take: the CloudEvents attributes every routed event already has
/// or may have (docs/eventgrid.md §7.6).
const RESERVED_KEYS: [&str; 10] = [
    "specversion",
    "id",
    "time",
    "type",
    "source",
    "subject",
    "datacontenttype",
    "dataschema",
    "data",
    "data_base64",
];

const P: &str = "properties.topicSpacesConfiguration";

/// Validates `properties.topicSpacesConfiguration` (absent: the defaults) and answers the parsed
/// form with the normalised object a GET shows. `hostname` is the namespace's MQTT host name
/// (shown read-only, docs/eventgrid.md §7.9, and the audience of custom JWTs).
pub fn parse(v: Option<&Value>, hostname: &str) -> Result<(TopicSpaces, Value), String> {
    let m = match v {
        None | Some(Value::Null) => {
            let ts = TopicSpaces::default();
            let mut out = normalised(&ts, None, Value::Null);
            out["hostname"] = json!(hostname);
            return Ok((ts, out));
        }
        Some(Value::Object(m)) => m,
        Some(_) => return Err(format!("{P} must be a JSON object")),
    };
    let p = format!("{P}.");
    let enabled = match get_str(m, "state", &p)? {
        None => false,
        Some(s) if s.eq_ignore_ascii_case("Disabled") => false,
        Some(s) if s.eq_ignore_ascii_case("Enabled") => true,
        Some(s) => {
            return Err(format!(
                "{P}.state must be 'Enabled' or 'Disabled', got '{s}'"
            ));
        }
    };
    let route_id = get_str(m, "routeTopicResourceId", &p)?.filter(|s| !s.is_empty());
    let route = route_id.map(route_topic).transpose()?;
    let hours = get_u64(m, "maximumSessionExpiryInHours", &p)?.unwrap_or(1);
    if !(1..=8).contains(&hours) {
        return Err(format!(
            "{P}.maximumSessionExpiryInHours must be between 1 and 8, got {hours}"
        ));
    }
    let per_name = get_u64(m, "maximumClientSessionsPerAuthenticationName", &p)?.unwrap_or(1);
    if !(1..=100).contains(&per_name) {
        return Err(format!(
            "{P}.maximumClientSessionsPerAuthenticationName must be between 1 and 100, got {per_name}"
        ));
    }
    let (enrichments, shown) = enrichments(m.get("routingEnrichments"))?;
    let (auth, auth_shown) = client_auth::client_auth(m.get("clientAuthentication"), hostname)?;
    let (quotas, quotas_shown) = client_auth::quotas(m.get("quotas"))?;
    let ts = TopicSpaces {
        enabled,
        route,
        enrichments,
        max_session_expiry_hours: hours as u32,
        max_sessions_per_auth_name: per_name as u32,
        auth,
        quotas,
    };
    let mut out = normalised(&ts, route_id, shown);
    if !auth_shown.is_null() {
        out["clientAuthentication"] = auth_shown;
    }
    if !quotas_shown.is_null() {
        out["quotas"] = quotas_shown;
    }
    out["hostname"] = json!(hostname);
    Ok((ts, out))
}

/// The object a GET shows: every setting with its default filled in, the route id as given,
/// and the enrichments in their canonical shape (`valueType` filled in).
fn normalised(ts: &TopicSpaces, route_id: Option<&str>, enrichments: Value) -> Value {
    let mut out = json!({
        "state": if ts.enabled { "Enabled" } else { "Disabled" },
        "maximumSessionExpiryInHours": ts.max_session_expiry_hours,
        "maximumClientSessionsPerAuthenticationName": ts.max_sessions_per_auth_name,
    });
    if let Some(id) = route_id {
        out["routeTopicResourceId"] = json!(id);
    }
    if !enrichments.is_null() {
        out["routingEnrichments"] = enrichments;
    }
    out
}

/// Parses a route topic's resource id: any `/subscriptions/…/resourceGroups/…` prefix, then
/// `/providers/Microsoft.EventGrid/namespaces/{ns}/topics/{t}` or `…/topics/{name}`.
pub fn route_topic(id: &str) -> Result<RouteTopic, String> {
    let bad = || {
        format!(
            "{P}.routeTopicResourceId '{id}' is not the resource id of a namespace topic \
             ('/providers/Microsoft.EventGrid/namespaces/{{namespace}}/topics/{{topic}}') or of a custom topic \
             ('/providers/Microsoft.EventGrid/topics/{{topic}}')"
        )
    };
    const PROVIDER: &str = "/providers/microsoft.eventgrid/";
    let at = id.to_ascii_lowercase().find(PROVIDER).ok_or_else(bad)?;
    let tail = id[at + PROVIDER.len()..].trim_end_matches('/');
    let name_ok =
        |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    let mut parts = tail.split('/');
    match (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) {
        (Some(kind), Some(ns), Some(topics), Some(t), None)
            if kind.eq_ignore_ascii_case("namespaces")
                && topics.eq_ignore_ascii_case("topics")
                && name_ok(ns)
                && name_ok(t) =>
        {
            Ok(RouteTopic::Namespace {
                namespace: ns.to_string(),
                topic: t.to_string(),
            })
        }
        (Some(kind), Some(t), None, None, None)
            if kind.eq_ignore_ascii_case("topics") && name_ok(t) =>
        {
            Ok(RouteTopic::Custom(t.to_string()))
        }
        _ => Err(bad()),
    }
}

type Obj = serde_json::Map<String, Value>;

/// `routingEnrichments`: `{"static":[{"key","valueType","value"}],"dynamic":[{"key","value"}]}`.
/// Answers the parsed form and the canonical JSON a GET shows.
fn enrichments(v: Option<&Value>) -> Result<(Enrichments, Value), String> {
    let p = format!("{P}.routingEnrichments");
    let m = match v {
        None | Some(Value::Null) => return Ok((Enrichments::default(), Value::Null)),
        Some(Value::Object(m)) => m,
        Some(_) => return Err(format!("{p} must be a JSON object")),
    };
    let list = |k: &str| -> Result<Vec<&Obj>, String> {
        match m.get(k) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(a)) => a
                .iter()
                .enumerate()
                .map(|(i, e)| {
                    e.as_object()
                        .ok_or_else(|| format!("{p}.{k}[{i}] must be a JSON object"))
                })
                .collect(),
            Some(_) => Err(format!("{p}.{k} must be an array")),
        }
    };
    let (statics, dynamics) = (list("static")?, list("dynamic")?);
    let total = statics.len() + dynamics.len();
    if total > MAX_ENRICHMENTS {
        return Err(format!(
            "{p} has {total} enrichments; a namespace may have at most {MAX_ENRICHMENTS} \
             (static and dynamic together)"
        ));
    }
    let mut out = Enrichments::default();
    let (mut shown_static, mut shown_dynamic) = (Vec::new(), Vec::new());
    let mut keys: Vec<&str> = Vec::with_capacity(total);
    for (i, e) in statics.into_iter().enumerate() {
        let at = format!("{p}.static[{i}].");
        let key = key(e, &at, &mut keys)?;
        match get_str(e, "valueType", &at)? {
            None => {}
            Some(t) if t.eq_ignore_ascii_case("String") => {}
            Some(t) => {
                return Err(format!(
                    "{at}valueType '{t}' is not supported: static enrichments take 'String'"
                ));
            }
        }
        let value = get_str(e, "value", &at)?.ok_or(format!("{at}value is required"))?;
        check_value_len(&at, value)?;
        shown_static.push(json!({"key": key, "valueType": "String", "value": value}));
        out.statics.push((key.to_string(), value.to_string()));
    }
    for (i, e) in dynamics.into_iter().enumerate() {
        let at = format!("{p}.dynamic[{i}].");
        let key = key(e, &at, &mut keys)?;
        let value = get_str(e, "value", &at)?.ok_or(format!("{at}value is required"))?;
        check_value_len(&at, value)?;
        let d = dynamic(value).map_err(|why| format!("{at}value {why}"))?;
        shown_dynamic.push(json!({"key": key, "value": value}));
        out.dynamics.push((key.to_string(), d));
    }
    let shown = json!({"static": shown_static, "dynamic": shown_dynamic});
    Ok((out, shown))
}

/// An enrichment's `key`, checked against the rules of §7.6 and the keys seen before it.
fn key<'a>(e: &'a Obj, at: &str, seen: &mut Vec<&'a str>) -> Result<&'a str, String> {
    let key = get_str(e, "key", at)?.ok_or(format!("{at}key is required"))?;
    let shape = !key.is_empty()
        && key.len() <= MAX_KEY_CHARS
        && key
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if !shape {
        return Err(format!(
            "{at}key '{key}' is invalid: enrichment keys must be 1 to {MAX_KEY_CHARS} lowercase \
             letters (a-z) or digits"
        ));
    }
    if RESERVED_KEYS.contains(&key) {
        return Err(format!(
            "{at}key '{key}' is reserved: it is a CloudEvents attribute every routed event \
             may carry (reserved: {})",
            RESERVED_KEYS.join(", ")
        ));
    }
    if key.starts_with("azsp") {
        return Err(format!(
            "{at}key '{key}' is invalid: keys starting with 'azsp' are reserved"
        ));
    }
    if seen.contains(&key) {
        return Err(format!(
            "{at}key '{key}' is used by another enrichment: keys must be unique across static \
             and dynamic enrichments"
        ));
    }
    seen.push(key);
    Ok(key)
}

fn check_value_len(at: &str, value: &str) -> Result<(), String> {
    let n = value.chars().count();
    if n > MAX_VALUE_CHARS {
        return Err(format!(
            "{at}value is {n} characters long; enrichment values may have at most \
             {MAX_VALUE_CHARS}"
        ));
    }
    Ok(())
}

const USER_PROPERTIES: &str = "mqtt.message.userProperties";
const SUPPORTED: &str = "${client.authenticationName}, ${client.attributes.<name>}, \
    ${mqtt.message.userProperties.<name>}, ${mqtt.message.userProperties['<name>']}, \
    ${mqtt.message.topicName}, ${mqtt.message.responseTopic}, \
    ${mqtt.message.correlationData} or ${mqtt.message.pfi}";

/// One dynamic enrichment value: exactly one supported variable, nothing around it. The error
/// completes a sentence that starts with the property's name.
pub fn dynamic(v: &str) -> Result<Dynamic, String> {
    let unsupported = || format!("'{v}' is not one supported variable: use one of {SUPPORTED}");
    let inner = v
        .strip_prefix("${")
        .and_then(|s| s.strip_suffix('}'))
        .ok_or_else(unsupported)?;
    let name_ok = |s: &str| !s.is_empty() && !s.contains(['$', '{', '}', '[', ']', '\'', '.']);
    Ok(match inner {
        "client.authenticationName" => Dynamic::AuthName,
        "mqtt.message.topicName" => Dynamic::TopicName,
        "mqtt.message.responseTopic" => Dynamic::ResponseTopic,
        "mqtt.message.correlationData" => Dynamic::CorrelationData,
        "mqtt.message.pfi" => Dynamic::Pfi,
        s => {
            if let Some(name) = s.strip_prefix("client.attributes.") {
                if !name_ok(name) {
                    return Err(unsupported());
                }
                Dynamic::Attribute(name.to_string())
            } else if let Some(rest) = s.strip_prefix(USER_PROPERTIES) {
                if let Some(name) = rest.strip_prefix('.') {
                    if !name_ok(name) {
                        return Err(format!(
                            "'{v}' names a user property that is empty or has '.', '[', ']', \
                             ''' or braces: write such names in the quoted form \
                             ${{{USER_PROPERTIES}['<name>']}}"
                        ));
                    }
                    Dynamic::UserProperty(name.to_string())
                } else if let Some(q) = rest.strip_prefix("['").and_then(|r| r.strip_suffix("']")) {
                    Dynamic::UserProperty(unquote(q).ok_or_else(|| {
                        format!(
                            "'{v}' has a malformed quoted user property name: inside '…' write \
                             \\' for a quote and \\\\ for a backslash, and nothing else after \\"
                        )
                    })?)
                } else {
                    return Err(unsupported());
                }
            } else {
                return Err(unsupported());
            }
        }
    })
}

/// The name inside `['…']`: `\'` is a quote and `\\` a backslash; a bare quote or any other
/// escape is malformed, and so is an empty name.
fn unquote(q: &str) -> Option<String> {
    let mut out = String::with_capacity(q.len());
    let mut chars = q.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next()? {
                c @ ('\'' | '\\') => out.push(c),
                _ => return None,
            },
            '\'' => return None,
            c => out.push(c),
        }
    }
    (!out.is_empty()).then_some(out)
}

#[cfg(test)]
mod tests;
