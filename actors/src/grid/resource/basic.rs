//! Basic-tier resources as Azure's ARM documents describe them (docs/eventgrid.md §1, §2.4, §4):
//! custom topics and domains (input schema, input mappings) and their event subscriptions (webhook
//! destination, batching, delivery attribute mappings, filter, delivery schema, retry policy,
//! dead-lettering, expiration, labels).
//!
//! Owns validation, defaults and the `properties` a GET returns (write-only values such as the
//! endpoint URL's query and secret header values are never echoed). Pure: never touches the
//! store or an actor. Every error is a sentence naming the property and what is allowed.

use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::{expiration, get_int, get_obj, get_str, props_obj};
use crate::delivery::push::PushSettings;
use crate::delivery::request::{DeliverySchema, HeaderValue};
use crate::delivery::retry::Profile;
use crate::grid::filter::Filter;
use crate::model::time::format_rfc3339_ms;

/// The schema events are published in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputSchema {
    EventGrid,
    CloudEvents,
    Custom,
}

impl InputSchema {
    pub fn name(self) -> &'static str {
        match self {
            InputSchema::EventGrid => "EventGridSchema",
            InputSchema::CloudEvents => "CloudEventSchemaV1_0",
            InputSchema::Custom => "CustomEventSchema",
        }
    }
}

/// Where a mapped Event Grid field comes from in a custom-schema event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Field {
    /// A top-level field or dotted path of the published object.
    pub source: Option<String>,
    pub default: Option<String>,
}

/// `inputSchemaMapping` of a custom-schema topic (docs/eventgrid.md §2.4).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Mapping {
    pub id: Field,
    pub topic: Field,
    pub event_time: Field,
    pub event_type: Field,
    pub subject: Field,
    pub data_version: Field,
}

/// A custom topic's or domain's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceCfg {
    pub input: InputSchema,
    pub mapping: Option<Arc<Mapping>>,
}

/// Validates a custom topic's or a domain's `properties`.
pub fn source(props: &Value, domain: bool) -> Result<(SourceCfg, Value), String> {
    let m = props_obj(props)?;
    let at = "properties.";
    let input = match get_str(m, "inputSchema", at)?.unwrap_or("EventGridSchema") {
        "EventGridSchema" => InputSchema::EventGrid,
        "CloudEventSchemaV1_0" => InputSchema::CloudEvents,
        "CustomEventSchema" => InputSchema::Custom,
        other => {
            return Err(format!(
                "properties.inputSchema must be 'EventGridSchema', 'CloudEventSchemaV1_0' or 'CustomEventSchema', got '{other}'"
            ));
        }
    };
    let mapping = match (input, get_obj(m, "inputSchemaMapping", at)?) {
        (InputSchema::Custom, Some(map)) => Some(Arc::new(mapping(map)?)),
        (InputSchema::Custom, None) => {
            return Err(
                "properties.inputSchemaMapping is required when inputSchema is 'CustomEventSchema'"
                    .into(),
            );
        }
        (_, Some(_)) => {
            return Err(
                "properties.inputSchemaMapping is only allowed with inputSchema 'CustomEventSchema'"
                    .into(),
            );
        }
        (_, None) => None,
    };
    let mut out = json!({
        "provisioningState": "Succeeded",
        "inputSchema": input.name(),
        "publicNetworkAccess": "Enabled",
    });
    if let Some(v) = m.get("inputSchemaMapping").filter(|_| mapping.is_some()) {
        out["inputSchemaMapping"] = v.clone();
    }
    if domain {
        for k in [
            "autoCreateTopicWithFirstSubscription",
            "autoDeleteTopicWithLastSubscription",
        ] {
            match m.get(k) {
                None | Some(Value::Null) => out[k] = json!(true),
                Some(Value::Bool(b)) => out[k] = json!(b),
                Some(v) => return Err(format!("properties.{k} must be true or false, got {v}")),
            }
        }
    }
    Ok((SourceCfg { input, mapping }, out))
}

fn mapping(m: &Map<String, Value>) -> Result<Mapping, String> {
    let at = "properties.inputSchemaMapping.";
    match get_str(m, "inputSchemaMappingType", at)? {
        Some("Json") | None => {}
        Some(o) => {
            return Err(format!(
                "{at}inputSchemaMappingType must be 'Json', got '{o}'"
            ));
        }
    }
    let empty = Map::new();
    let p = get_obj(m, "properties", at)?.unwrap_or(&empty);
    let field = |name: &str, with_default: bool| -> Result<Field, String> {
        let at = format!("{at}properties.{name}.");
        let Some(f) = get_obj(p, name, &format!("{at}properties."))? else {
            return Ok(Field::default());
        };
        let source = get_str(f, "sourceField", &at)?.map(str::to_string);
        let default = get_str(f, "defaultValue", &at)?.map(str::to_string);
        if default.is_some() && !with_default {
            return Err(format!("{at}defaultValue is not allowed for {name}"));
        }
        Ok(Field { source, default })
    };
    Ok(Mapping {
        id: field("id", false)?,
        topic: field("topic", false)?,
        event_time: field("eventTime", false)?,
        event_type: field("eventType", true)?,
        subject: field("subject", true)?,
        data_version: field("dataVersion", true)?,
    })
}

/// A push (webhook) subscription's settings: what delivery uses, and what the grid keeps.
#[derive(Debug, Clone, PartialEq)]
pub struct PushCfg {
    pub delivery: PushSettings,
    pub filter: Filter,
    pub expires_ms: Option<u64>,
}

/// Validates a basic-tier event subscription's `properties`; answers the settings, the
/// properties to store (with secrets) and nothing else. `input` is the source's schema.
pub fn subscription(
    props: &Value,
    input: InputSchema,
    now_ms: u64,
) -> Result<(PushCfg, Value), String> {
    let m = props_obj(props)?;
    let at = "properties.";
    let dest = get_obj(m, "destination", at)?
        .ok_or("properties.destination is required: {\"endpointType\":\"WebHook\",\"properties\":{\"endpointUrl\":\"http://...\"}}")?;
    let hook = webhook(dest, "properties.destination.")?;

    let schema = match get_str(m, "eventDeliverySchema", at)? {
        None => match input {
            InputSchema::EventGrid => DeliverySchema::EventGrid,
            InputSchema::CloudEvents => DeliverySchema::CloudEvents,
            InputSchema::Custom => DeliverySchema::CustomInput,
        },
        Some("EventGridSchema") => DeliverySchema::EventGrid,
        Some("CloudEventSchemaV1_0") => DeliverySchema::CloudEvents,
        Some("CustomInputSchema") => DeliverySchema::CustomInput,
        Some(o) => {
            return Err(format!(
                "properties.eventDeliverySchema must be 'EventGridSchema', 'CloudEventSchemaV1_0' or 'CustomInputSchema', got '{o}'"
            ));
        }
    };
    // The conversion matrix (docs/eventgrid.md §2.5).
    match (input, schema) {
        (InputSchema::CloudEvents, DeliverySchema::EventGrid) => {
            return Err("properties.eventDeliverySchema 'EventGridSchema' is not supported for a topic whose input schema is 'CloudEventSchemaV1_0'".into());
        }
        (InputSchema::EventGrid | InputSchema::CloudEvents, DeliverySchema::CustomInput) => {
            return Err(format!(
                "properties.eventDeliverySchema 'CustomInputSchema' needs a topic with input schema 'CustomEventSchema', not '{}'",
                input.name()
            ));
        }
        _ => {}
    }
    let empty2 = Map::new();
    let rp = get_obj(m, "retryPolicy", at)?.unwrap_or(&empty2);
    let at_r = "properties.retryPolicy.";
    let max_attempts = get_int(rp, "maxDeliveryAttempts", at_r, 1, 30)?.unwrap_or(30);
    let ttl_min = get_int(rp, "eventTimeToLiveInMinutes", at_r, 1, 1440)?.unwrap_or(1440);
    let dl = get_obj(m, "deadLetterDestination", at)?.cloned();
    let filter = Filter::compile_basic(m.get("filter"))?;
    let expires_ms = expiration(get_str(m, "expirationTimeUtc", at)?, now_ms)?;
    let labels = match m.get("labels") {
        None | Some(Value::Null) => json!([]),
        Some(Value::Array(a)) if a.iter().all(Value::is_string) => json!(a),
        Some(_) => return Err("properties.labels must be an array of strings".into()),
    };

    let mut out = json!({
        "destination": hook.out.clone(),
        "eventDeliverySchema": schema.name(),
        "retryPolicy": {"maxDeliveryAttempts": max_attempts, "eventTimeToLiveInMinutes": ttl_min},
        "filter": m.get("filter").filter(|v| !v.is_null()).cloned().unwrap_or_else(|| json!({})),
        "labels": labels,
    });
    if let Some(d) = dl {
        out["deadLetterDestination"] = Value::Object(d);
    }
    if let Some(t) = expires_ms {
        out["expirationTimeUtc"] = json!(format_rfc3339_ms(t));
    }
    let cfg = hook.cfg(
        schema,
        max_attempts as u32,
        ttl_min * 60,
        out.get("deadLetterDestination").is_some(),
        filter,
        expires_ms,
    );
    Ok((cfg, out))
}

/// A validated WebHook `destination` (basic tier and namespace push).
pub struct Webhook {
    pub endpoint: String,
    pub max_events: Option<u64>,
    pub preferred_kb: Option<u64>,
    pub headers: Vec<(String, HeaderValue)>,
    /// The destination as stored.
    pub out: Value,
}

impl Webhook {
    pub fn cfg(
        self,
        schema: DeliverySchema,
        max_attempts: u32,
        ttl_secs: u64,
        dead_letter: bool,
        filter: Filter,
        expires_ms: Option<u64>,
    ) -> PushCfg {
        let batching = self.max_events.is_some() || self.preferred_kb.is_some();
        PushCfg {
            delivery: PushSettings {
                endpoint: self.endpoint,
                schema,
                max_events: if batching {
                    self.max_events.unwrap_or(5000) as usize
                } else {
                    1
                },
                preferred_bytes: self
                    .preferred_kb
                    .unwrap_or(if batching { 64 } else { 1024 })
                    as usize
                    * 1024,
                batching,
                max_attempts,
                ttl_secs,
                dead_letter,
                headers: Arc::new(self.headers),
                profile: Profile::Basic,
            },
            filter,
            expires_ms,
        }
    }
}

/// Validates a `destination` object; `at` is its path in messages (`properties.destination.`).
pub fn webhook(dest: &Map<String, Value>, at: &str) -> Result<Webhook, String> {
    match get_str(dest, "endpointType", at)? {
        Some("WebHook") => {}
        Some(other) => {
            return Err(format!(
                "{at}endpointType '{other}' is not supported by evgrid; use 'WebHook'"
            ));
        }
        None => return Err(format!("{at}endpointType is required ('WebHook')")),
    }
    let empty = Map::new();
    let dp = get_obj(dest, "properties", at)?.unwrap_or(&empty);
    let at_p = format!("{at}properties.");
    let endpoint = get_str(dp, "endpointUrl", &at_p)?
        .ok_or_else(|| format!("{at_p}endpointUrl is required"))?
        .to_string();
    check_url(&endpoint)?;
    let max_events = get_int(dp, "maxEventsPerBatch", &at_p, 1, 5000)?;
    let preferred_kb = get_int(dp, "preferredBatchSizeInKilobytes", &at_p, 1, 1024)?;
    let headers = attribute_mappings(dp.get("deliveryAttributeMappings"))?;
    let mut dprops = json!({"endpointUrl": endpoint});
    if let Some(n) = max_events {
        dprops["maxEventsPerBatch"] = json!(n);
    }
    if let Some(n) = preferred_kb {
        dprops["preferredBatchSizeInKilobytes"] = json!(n);
    }
    if let Some(v) = dp.get("deliveryAttributeMappings").filter(|v| !v.is_null()) {
        dprops["deliveryAttributeMappings"] = v.clone();
    }
    Ok(Webhook {
        endpoint,
        max_events,
        preferred_kb,
        headers,
        out: json!({"endpointType": "WebHook", "properties": dprops}),
    })
}

/// An absolute `http://` or `https://` URL with a host (https endpoints are verified against the
/// system's roots plus `push.tls.ca_file` at delivery).
fn check_url(url: &str) -> Result<(), String> {
    let at = "properties.destination.properties.endpointUrl";
    if url.len() > 4096 {
        return Err(format!("{at} is longer than 4096 characters"));
    }
    let Some(rest) = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
    else {
        return Err(format!(
            "{at} '{url}' must be an absolute http:// or https:// URL"
        ));
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if host.is_empty() || host.contains('@') || host.contains(char::is_whitespace) {
        return Err(format!("{at} '{url}' has no valid host"));
    }
    // The HTTPS client hands the bracketed literal to certificate verification, which refuses
    // it: every delivery would fail, so the subscription is refused now instead.
    if url.starts_with("https://") && host.starts_with('[') {
        return Err(format!(
            "{at} '{url}': an https:// endpoint must be a host name or an IPv4 address \
             (IPv6 address literals are not supported for https)"
        ));
    }
    Ok(())
}

fn attribute_mappings(v: Option<&Value>) -> Result<Vec<(String, HeaderValue)>, String> {
    let at = "properties.destination.properties.deliveryAttributeMappings";
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return Ok(Vec::new());
    };
    let arr = v
        .as_array()
        .ok_or_else(|| format!("{at} must be an array"))?;
    if arr.len() > 10 {
        return Err(format!("{at}: at most 10 mappings, got {}", arr.len()));
    }
    let mut out = Vec::new();
    for (i, m) in arr.iter().enumerate() {
        let at = format!("{at}[{i}].");
        let m = m
            .as_object()
            .ok_or_else(|| format!("{at} must be an object"))?;
        let name = get_str(m, "name", &at)?.ok_or_else(|| format!("{at}name is required"))?;
        let valid_name = !name.is_empty()
            && name.len() <= 256
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b));
        if !valid_name {
            return Err(format!("{at}name '{name}' is not a valid header name"));
        }
        if name.to_ascii_lowercase().starts_with("aeg-") {
            return Err(format!("{at}name '{name}' must not start with 'aeg-'"));
        }
        const RESERVED: [&str; 7] = [
            "content-type",
            "content-length",
            "host",
            "transfer-encoding",
            "connection",
            "origin",
            "expect",
        ];
        if RESERVED.contains(&name.to_ascii_lowercase().as_str()) {
            return Err(format!(
                "{at}name '{name}' is a header evgrid sets itself; choose another name"
            ));
        }
        let empty = Map::new();
        let p = get_obj(m, "properties", &at)?.unwrap_or(&empty);
        let value = match get_str(m, "type", &at)? {
            Some("Static") => {
                let v = get_str(p, "value", &format!("{at}properties."))?.ok_or_else(|| {
                    format!("{at}properties.value is required for a Static mapping")
                })?;
                if !crate::delivery::request::valid_header_value(v) {
                    return Err(format!(
                        "{at}properties.value must be at most 4096 bytes of printable characters"
                    ));
                }
                HeaderValue::Static(v.to_string())
            }
            Some("Dynamic") => {
                let f =
                    get_str(p, "sourceField", &format!("{at}properties."))?.ok_or_else(|| {
                        format!("{at}properties.sourceField is required for a Dynamic mapping")
                    })?;
                HeaderValue::Dynamic(f.to_string())
            }
            other => {
                return Err(format!(
                    "{at}type must be 'Static' or 'Dynamic', got {}",
                    other.map_or("nothing".to_string(), |o| format!("'{o}'"))
                ));
            }
        };
        out.push((name.to_string(), value));
    }
    Ok(out)
}

/// The `properties` a GET shows: the endpoint without its query (`endpointBaseUrl`) and secret
/// header values left out, as Azure does.
pub fn redacted(props: &Value, state: &str) -> Value {
    let mut p = props.clone();
    p["provisioningState"] = json!(state);
    if let Some(d) = p.get_mut("destination") {
        redact_destination(d);
    }
    p
}

/// A WebHook destination as a GET shows it (see [`redacted`]).
pub fn redact_destination(dest: &mut Value) {
    let Some(dp) = dest.get_mut("properties").and_then(Value::as_object_mut) else {
        return;
    };
    if let Some(Value::String(url)) = dp.remove("endpointUrl") {
        let base = url.split('?').next().unwrap_or_default().to_string();
        dp.insert("endpointBaseUrl".into(), json!(base));
    }
    if let Some(Value::Array(maps)) = dp.get_mut("deliveryAttributeMappings") {
        for m in maps {
            let secret = m
                .pointer("/properties/isSecret")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            if secret && let Some(props) = m.get_mut("properties").and_then(Value::as_object_mut) {
                props.remove("value");
            }
        }
    }
}

#[cfg(test)]
mod tests;
