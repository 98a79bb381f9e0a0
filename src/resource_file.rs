//! The resource file (`--resources FILE`): namespaces, topics and event subscriptions declared in
//! TOML and applied at start-up with the same PUTs as the management API, so a deployment can
//! live in git. Applying it twice changes nothing. (The module is `resource_file`, not
//! `resources`: it is the file, not the resources, whose rules live in the grid.)
//!
//! ```toml
//! [[namespaces]]
//! name = "orders"
//!
//! [[namespaces.topics]]
//! name = "created"
//! properties = { eventRetentionInDays = 1 }
//!
//! [[namespaces.topics.subscriptions]]
//! name = "worker"
//! properties = { deliveryConfiguration = { deliveryMode = "Queue", queue = { receiveLockDurationInSeconds = 60 } } }
//!
//! [[namespaces.clients]]         # identity resources (docs/eventgrid.md §7.3-§7.5)
//! name = "device-17"
//! properties = { authenticationName = "device-17", attributes = { type = "sensor" }, password = "s3cret" }
//!
//! [[namespaces.clientGroups]]
//! name = "sensors"
//! properties = { query = "attributes.type = 'sensor'" }
//!
//! [[namespaces.topicSpaces]]
//! name = "telemetry"
//! properties = { topicTemplates = ["devices/${client.authenticationName}/telemetry"] }
//!
//! [[namespaces.permissionBindings]]
//! name = "sensors-publish"
//! properties = { clientGroupName = "sensors", topicSpaceName = "telemetry", permission = "Publisher" }
//!
//! [[topics]]                      # basic tier: custom topics, domains, webhook subscriptions
//! name = "orders"
//!
//! [[topics.subscriptions]]
//! name = "billing"
//! properties = { destination = { endpointType = "WebHook", properties = { endpointUrl = "http://billing:9000/hook" } } }
//!
//! [[domains]]
//! name = "tenants"
//!
//! [[domains.topics]]
//! name = "tenant-a"
//!
//! [[systemTopics]]                # MQTT client lifecycle events of a namespace
//! name = "mqtt-lifecycle"
//! properties = { source = "/providers/Microsoft.EventGrid/namespaces/default", topicType = "Microsoft.EventGrid.Namespaces" }
//!
//! [[systemTopics.subscriptions]]
//! name = "ops"
//! properties = { destination = { endpointType = "WebHook", properties = { endpointUrl = "http://ops:9000/hook" } } }
//! ```
//!
//! Owns parsing and ordering (parents before children). A webhook subscription whose endpoint
//! fails its validation handshake is skipped with a warning (the endpoint may not be up yet);
//! every other error stops the start. Must never delete what the file does not mention: it
//! declares resources, it is not the whole truth.

use std::path::Path;

use evgrid_actors::grid::Grid;
use evgrid_actors::grid::HANDSHAKE_FAILED;
use evgrid_actors::grid::basic::{Kind, Scope};
use evgrid_actors::grid::resource::identity::Kind as IdKind;
use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    namespaces: Vec<Ns>,
    #[serde(default)]
    topics: Vec<Topic>,
    #[serde(default)]
    domains: Vec<Domain>,
    /// System topics (docs/eventgrid.md §7.7), applied after the namespaces their sources name.
    #[serde(default, rename = "systemTopics")]
    system_topics: Vec<Topic>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Domain {
    name: String,
    #[serde(default)]
    properties: Option<toml::Value>,
    #[serde(default)]
    subscriptions: Vec<Sub>,
    #[serde(default)]
    topics: Vec<Topic>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Ns {
    name: String,
    #[serde(default)]
    properties: Option<toml::Value>,
    #[serde(default)]
    topics: Vec<Topic>,
    /// Identity resources, applied in this order (bindings name groups and spaces).
    #[serde(default, rename = "caCertificates")]
    ca_certificates: Vec<Sub>,
    #[serde(default)]
    clients: Vec<Sub>,
    #[serde(default, rename = "clientGroups")]
    client_groups: Vec<Sub>,
    #[serde(default, rename = "topicSpaces")]
    topic_spaces: Vec<Sub>,
    #[serde(default, rename = "permissionBindings")]
    permission_bindings: Vec<Sub>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Topic {
    name: String,
    #[serde(default)]
    properties: Option<toml::Value>,
    #[serde(default)]
    subscriptions: Vec<Sub>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Sub {
    name: String,
    #[serde(default)]
    properties: Option<toml::Value>,
}

fn json(v: &Option<toml::Value>) -> Value {
    v.as_ref()
        .and_then(|v| serde_json::to_value(v).ok())
        .unwrap_or(Value::Null)
}

/// Reads and applies `path`. Errors name the file and the resource.
pub async fn apply(grid: &Grid, path: &Path) -> Result<usize, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("resource file {}: {e}", path.display()))?;
    let file: File =
        toml::from_str(&text).map_err(|e| format!("resource file {}: {e}", path.display()))?;
    let at = |what: String, e: String| format!("resource file {}: {what}: {e}", path.display());
    let mut n = 0;
    // A namespace's route topic (`topicSpacesConfiguration.routeTopicResourceId`) must exist when
    // the namespace is put: namespaces go in first without it, and again whole at the end, once
    // every topic the file declares exists. (This runs before the MQTT listener opens.)
    let mut routed = Vec::new();
    for ns in &file.namespaces {
        let mut props = json(&ns.properties);
        if let Some(p) = props.as_object_mut()
            && p.remove("topicSpacesConfiguration").is_some()
        {
            routed.push((&ns.name, json(&ns.properties)));
        }
        grid.put_namespace(&ns.name, &props)
            .await
            .map_err(|e| at(format!("namespace {}", ns.name), e.to_string()))?;
        n += 1;
        for (kind, items) in [
            (IdKind::CaCertificate, &ns.ca_certificates),
            (IdKind::Client, &ns.clients),
            (IdKind::ClientGroup, &ns.client_groups),
            (IdKind::TopicSpace, &ns.topic_spaces),
            (IdKind::PermissionBinding, &ns.permission_bindings),
        ] {
            for r in items {
                grid.put_identity(&ns.name, kind, &r.name, &json(&r.properties))
                    .await
                    .map_err(|e| {
                        at(
                            format!("{} {}/{}", kind.noun(), ns.name, r.name),
                            e.to_string(),
                        )
                    })?;
                n += 1;
            }
        }
        for t in &ns.topics {
            grid.put_topic(&ns.name, &t.name, &json(&t.properties))
                .await
                .map_err(|e| at(format!("topic {}/{}", ns.name, t.name), e.to_string()))?;
            n += 1;
            for s in &t.subscriptions {
                let props = json(&s.properties);
                if expired(&props, &s.name) {
                    continue;
                }
                grid.put_subscription(&ns.name, &t.name, &s.name, &props)
                    .await
                    .map_err(|e| {
                        at(
                            format!("subscription {}/{}/{}", ns.name, t.name, s.name),
                            e.to_string(),
                        )
                    })?;
                n += 1;
            }
        }
    }
    for t in &file.topics {
        grid.put_source(Kind::Topic, &t.name, &json(&t.properties))
            .await
            .map_err(|e| at(format!("topic {}", t.name), e.to_string()))?;
        n += 1;
        n += push_subs(grid, Scope::Topic(&t.name), &t.subscriptions, &at).await?;
    }
    for d in &file.domains {
        grid.put_source(Kind::Domain, &d.name, &json(&d.properties))
            .await
            .map_err(|e| at(format!("domain {}", d.name), e.to_string()))?;
        n += 1;
        n += push_subs(grid, Scope::Domain(&d.name), &d.subscriptions, &at).await?;
        for t in &d.topics {
            grid.put_domain_topic(&d.name, &t.name)
                .await
                .map_err(|e| at(format!("domain topic {}/{}", d.name, t.name), e.to_string()))?;
            n += 1;
            n += push_subs(
                grid,
                Scope::DomainTopic(&d.name, &t.name),
                &t.subscriptions,
                &at,
            )
            .await?;
        }
    }
    for t in &file.system_topics {
        grid.put_system_topic(&t.name, &json(&t.properties))
            .await
            .map_err(|e| at(format!("system topic {}", t.name), e.to_string()))?;
        n += 1;
        n += push_subs(grid, Scope::SystemTopic(&t.name), &t.subscriptions, &at).await?;
    }
    for (name, props) in routed {
        grid.put_namespace(name, &props)
            .await
            .map_err(|e| at(format!("namespace {name}"), e.to_string()))?;
    }
    Ok(n)
}

/// Declared with an expiration that has passed: the subscription is over (the server deleted
/// it, or will); re-creating it would fail every start.
fn expired(props: &Value, name: &str) -> bool {
    let gone = props["expirationTimeUtc"]
        .as_str()
        .and_then(evgrid_actors::model::time::parse_rfc3339_ms)
        .is_some_and(|t| t <= evgrid_actors::model::clock::now_ms());
    if gone {
        tracing::warn!(subscription = %name, "resource file: subscription's expirationTimeUtc has passed; not applied");
    }
    gone
}

async fn push_subs(
    grid: &Grid,
    scope: Scope<'_>,
    subs: &[Sub],
    at: &impl Fn(String, String) -> String,
) -> Result<usize, String> {
    let mut n = 0;
    for s in subs {
        let props = json(&s.properties);
        if expired(&props, &s.name) {
            continue;
        }
        match grid.put_push_subscription(scope, &s.name, &props).await {
            Ok(_) => n += 1,
            Err(e) if e.to_string().starts_with(HANDSHAKE_FAILED) => {
                tracing::warn!(subscription = %s.name, error = %e, "resource file: subscription not applied");
            }
            Err(e) => {
                return Err(at(
                    format!("subscription {scope:?}/{}", s.name),
                    e.to_string(),
                ));
            }
        }
    }
    Ok(n)
}
