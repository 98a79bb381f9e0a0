//! A namespace's `topicSpacesConfiguration` (docs/eventgrid.md §7.6, §7.9): whether its MQTT
//! broker is enabled, the topic its MQTT messages are routed into, the routing enrichments, and
//! the session bounds.
//!
//! Owns the validation rules of §7.6 (enrichment keys and values, the route topic's id) and the
//! parsed form the bridge evaluates per message ([`Enrichments`], [`Dynamic`]). Pure: never
//! looks a resource up — whether the route topic exists and takes CloudEvents is the registry's
//! check, made before the namespace is committed.

use serde_json::{Value, json};

use super::{get_str, get_u64};

/// The parsed configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpaces {
    /// `state`: `Enabled` or `Disabled` (the default). Disabled: nothing is routed and HTTP
    /// publishes to MQTT topics are refused.
    pub enabled: bool,
    /// `routeTopicResourceId`, parsed.
    pub route: Option<RouteTopic>,
    pub enrichments: Enrichments,
    /// `maximumSessionExpiryInHours`, 1–8 (default 1).
    pub max_session_expiry_hours: u32,
    /// `maximumClientSessionsPerAuthenticationName`, 1–100 (default 1).
    pub max_sessions_per_auth_name: u32,
}

impl Default for TopicSpaces {
    fn default() -> Self {
        TopicSpaces {
            enabled: false,
            route: None,
            enrichments: Enrichments::default(),
            max_session_expiry_hours: 1,
            max_sessions_per_auth_name: 1,
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

/// Validates `properties.topicSpacesConfiguration` (absent: the defaults) and answers the parsed
/// form with the normalised object a GET shows.
pub fn parse(v: Option<&Value>) -> Result<(TopicSpaces, Value), String> {
    let p = "properties.topicSpacesConfiguration.";
    let m = match v {
        None | Some(Value::Null) => {
            return Ok((
                TopicSpaces::default(),
                normalised(None, &TopicSpaces::default()),
            ));
        }
        Some(Value::Object(m)) => m,
        Some(_) => return Err("properties.topicSpacesConfiguration must be a JSON object".into()),
    };
    let enabled = match get_str(m, "state", p)? {
        None | Some("Disabled") => false,
        Some("Enabled") => true,
        Some(s) => {
            return Err(format!(
                "{p}state must be 'Enabled' or 'Disabled', got '{s}'"
            ));
        }
    };
    let route = get_str(m, "routeTopicResourceId", p)?
        .filter(|s| !s.is_empty())
        .map(route_topic)
        .transpose()?;
    let hours = get_u64(m, "maximumSessionExpiryInHours", p)?.unwrap_or(1);
    if !(1..=8).contains(&hours) {
        return Err(format!(
            "{p}maximumSessionExpiryInHours must be between 1 and 8, got {hours}"
        ));
    }
    let per_name = get_u64(m, "maximumClientSessionsPerAuthenticationName", p)?.unwrap_or(1);
    if !(1..=100).contains(&per_name) {
        return Err(format!(
            "{p}maximumClientSessionsPerAuthenticationName must be between 1 and 100, got {per_name}"
        ));
    }
    let enrichments = enrichments(m.get("routingEnrichments"))?;
    let ts = TopicSpaces {
        enabled,
        route,
        enrichments,
        max_session_expiry_hours: hours as u32,
        max_sessions_per_auth_name: per_name as u32,
    };
    let out = normalised(Some(m), &ts);
    Ok((ts, out))
}

fn normalised(given: Option<&serde_json::Map<String, Value>>, ts: &TopicSpaces) -> Value {
    let given = |k: &str| given.and_then(|m| m.get(k)).cloned().unwrap_or(Value::Null);
    let mut out = json!({
        "state": if ts.enabled { "Enabled" } else { "Disabled" },
        "maximumSessionExpiryInHours": ts.max_session_expiry_hours,
        "maximumClientSessionsPerAuthenticationName": ts.max_sessions_per_auth_name,
    });
    if let Value::String(s) = given("routeTopicResourceId")
        && !s.is_empty()
    {
        out["routeTopicResourceId"] = json!(s);
    }
    let e = given("routingEnrichments");
    if !e.is_null() {
        out["routingEnrichments"] = e;
    }
    out
}

/// Parses a route topic's resource id: any `/subscriptions/…/resourceGroups/…` prefix, then
/// `/providers/Microsoft.EventGrid/namespaces/{ns}/topics/{t}` or `…/topics/{name}`.
pub fn route_topic(id: &str) -> Result<RouteTopic, String> {
    let bad = || {
        format!(
            "properties.topicSpacesConfiguration.routeTopicResourceId '{id}' is not the resource id of a namespace topic \
             ('/providers/Microsoft.EventGrid/namespaces/{{namespace}}/topics/{{topic}}') or of a custom topic \
             ('/providers/Microsoft.EventGrid/topics/{{topic}}')"
        )
    };
    let lower = id.to_ascii_lowercase();
    let at = lower
        .find("/providers/microsoft.eventgrid/")
        .ok_or_else(bad)?;
    let tail = &id[at + "/providers/microsoft.eventgrid/".len()..];
    let parts: Vec<&str> = tail.trim_end_matches('/').split('/').collect();
    match parts.as_slice() {
        [kind, ns, topics, t]
            if kind.eq_ignore_ascii_case("namespaces")
                && topics.eq_ignore_ascii_case("topics")
                && !ns.is_empty()
                && !t.is_empty() =>
        {
            Ok(RouteTopic::Namespace {
                namespace: ns.to_string(),
                topic: t.to_string(),
            })
        }
        [kind, t] if kind.eq_ignore_ascii_case("topics") && !t.is_empty() => {
            Ok(RouteTopic::Custom(t.to_string()))
        }
        _ => Err(bad()),
    }
}

/// `routingEnrichments`: `{"static":[{"key","valueType","value"}],"dynamic":[{"key","value"}]}`.
fn enrichments(v: Option<&Value>) -> Result<Enrichments, String> {
    let p = "properties.topicSpacesConfiguration.routingEnrichments";
    let m = match v {
        None | Some(Value::Null) => return Ok(Enrichments::default()),
        Some(Value::Object(m)) => m,
        Some(_) => return Err(format!("{p} must be a JSON object")),
    };
    let list = |k: &str| -> Result<Vec<&serde_json::Map<String, Value>>, String> {
        match m.get(k) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(a)) => a
                .iter()
                .map(|e| {
                    e.as_object()
                        .ok_or_else(|| format!("{p}.{k} entries must be JSON objects"))
                })
                .collect(),
            Some(_) => Err(format!("{p}.{k} must be an array")),
        }
    };
    let mut out = Enrichments::default();
    for e in list("static")? {
        let key = get_str(e, "key", &format!("{p}.static[]."))?
            .ok_or(format!("{p}.static[].key is required"))?;
        let value = get_str(e, "value", &format!("{p}.static[]."))?.unwrap_or("");
        out.statics.push((key.to_string(), value.to_string()));
    }
    for e in list("dynamic")? {
        let key = get_str(e, "key", &format!("{p}.dynamic[]."))?
            .ok_or(format!("{p}.dynamic[].key is required"))?;
        let value = get_str(e, "value", &format!("{p}.dynamic[]."))?.unwrap_or("");
        out.dynamics.push((key.to_string(), dynamic(value)?));
    }
    Ok(out)
}

/// One dynamic enrichment value: exactly one supported variable.
pub fn dynamic(v: &str) -> Result<Dynamic, String> {
    let inner = v
        .strip_prefix("${")
        .and_then(|s| s.strip_suffix('}'))
        .ok_or_else(|| format!("dynamic enrichment value '{v}' is not a variable such as '${{client.authenticationName}}'"))?;
    Ok(match inner {
        "client.authenticationName" => Dynamic::AuthName,
        "mqtt.message.topicName" => Dynamic::TopicName,
        "mqtt.message.responseTopic" => Dynamic::ResponseTopic,
        "mqtt.message.correlationData" => Dynamic::CorrelationData,
        "mqtt.message.pfi" => Dynamic::Pfi,
        s if s.starts_with("client.attributes.") => {
            Dynamic::Attribute(s["client.attributes.".len()..].to_string())
        }
        s if s.starts_with("mqtt.message.userProperties.") => {
            Dynamic::UserProperty(s["mqtt.message.userProperties.".len()..].to_string())
        }
        _ => {
            return Err(format!(
                "dynamic enrichment value '{v}' is not a supported variable"
            ));
        }
    })
}
