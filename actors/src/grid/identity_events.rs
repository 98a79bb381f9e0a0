//! Lifecycle events of the client registry (docs/eventgrid.md §7.7):
//! `Microsoft.EventGrid.MQTTClientCreatedOrUpdated` and `Microsoft.EventGrid.MQTTClientDeleted`,
//! in the Event Grid schema, published to every system topic whose source is the client's
//! namespace once the change is committed.
//!
//! Owns the events' shape (subject `clients/{clientName}`; data `namespaceName`, `clientName`,
//! `clientAuthenticationName`, and for a create or update `state`, `createdOn`, `updatedOn`,
//! `attributes`). Best effort, as in Azure: an event no system topic takes, or that its topic
//! refuses, is counted in [`LIFECYCLE`], never retried, and never fails the management call.

use ntex_bytes::Bytes;
use serde_json::{Value, json};

use super::basic::{Basic, random_id};
use super::identities::ClientChange;
use super::topic::{Publish, TopicEvent};
use crate::identity::AttrValue;
use crate::identity::Attributes;
use crate::metrics::LIFECYCLE;
use crate::model::clock::now_ms;
use crate::model::time::format_rfc3339_ms;

pub const CREATED_OR_UPDATED: &str = "Microsoft.EventGrid.MQTTClientCreatedOrUpdated";
pub const DELETED: &str = "Microsoft.EventGrid.MQTTClientDeleted";

/// A client's attributes as JSON (the event's `attributes`).
pub(super) fn attributes_json(a: &Attributes) -> Value {
    Value::Object(
        a.iter()
            .map(|(k, v)| {
                let v = match v {
                    AttrValue::Int(i) => json!(i),
                    AttrValue::Bool(b) => json!(b),
                    AttrValue::Str(s) => json!(s),
                    AttrValue::Strs(s) => json!(s),
                };
                (k.clone(), v)
            })
            .collect(),
    )
}

/// The event for `change`, as the system topic whose source is `topic` carries it.
fn event(id: &str, topic: &str, change: &ClientChange, time: &str) -> TopicEvent {
    let (ty, client, data) = match change {
        ClientChange::CreatedOrUpdated {
            namespace,
            client,
            created_ms,
            updated_ms,
        } => (
            CREATED_OR_UPDATED,
            client.name.as_str(),
            json!({
                "createdOn": format_rfc3339_ms(*created_ms),
                "updatedOn": format_rfc3339_ms(*updated_ms),
                "namespaceName": namespace,
                "clientName": client.name,
                "clientAuthenticationName": client.auth_name,
                "state": if client.enabled { "Enabled" } else { "Disabled" },
                "attributes": attributes_json(&client.attributes),
            }),
        ),
        ClientChange::Deleted {
            namespace,
            client,
            auth_name,
        } => (
            DELETED,
            client.as_str(),
            json!({
                "namespaceName": namespace,
                "clientName": client,
                "clientAuthenticationName": auth_name,
            }),
        ),
    };
    let subject = format!("clients/{client}");
    let raw = json!({
        "id": id,
        "topic": topic,
        "subject": subject,
        "data": data,
        "eventType": ty,
        "dataVersion": "1",
        "metadataVersion": "1",
        "eventTime": time,
    });
    TopicEvent::system(
        id,
        topic,
        ty,
        subject,
        Bytes::from(raw.to_string().into_bytes()),
    )
}

/// Publishes `change` to the system topics of its namespace (awaited, so a management caller
/// sees its event committed in order with its other changes; the management lock is not held).
pub(super) async fn announce(basic: &Basic, change: ClientChange) {
    let ns = match &change {
        ClientChange::CreatedOrUpdated { namespace, .. }
        | ClientChange::Deleted { namespace, .. } => namespace,
    };
    let targets = basic.system_topics_of_namespace(ns);
    if targets.is_empty() {
        LIFECYCLE.no_system_topic.inc();
        return;
    }
    let time = format_rfc3339_ms(now_ms());
    for (topic, addr) in targets {
        let ev = event(&random_id(), &topic, &change, &time);
        match addr.send(Publish(vec![ev])).await {
            Ok(Ok(_)) => LIFECYCLE.published.inc(),
            Ok(Err(e)) => {
                LIFECYCLE.failed.inc();
                tracing::warn!(error = %e, "client lifecycle event refused by the system topic");
            }
            Err(_) => LIFECYCLE.failed.inc(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::identity::directory::ClientDef;

    #[test]
    fn created_and_deleted_events_carry_the_reference_fields() {
        let mut attributes = Attributes::new();
        attributes.insert("floor".into(), AttrValue::Int(3));
        attributes.insert("tags".into(), AttrValue::Strs(vec!["a".into()]));
        let client = Arc::new(ClientDef {
            name: "dev1".into(),
            auth_name: "Dev-1".into(),
            enabled: false,
            attributes,
            cert: Default::default(),
            password: None,
        });
        let c = ClientChange::CreatedOrUpdated {
            namespace: "ns1".into(),
            client,
            created_ms: 0,
            updated_ms: 1_000,
        };
        let ev = event(
            "id1",
            "/providers/Microsoft.EventGrid/namespaces/ns1",
            &c,
            "t",
        );
        let v: Value = serde_json::from_slice(&ev.ev.raw).unwrap();
        assert_eq!(v["eventType"], CREATED_OR_UPDATED);
        assert_eq!(v["subject"], "clients/dev1");
        assert_eq!(
            v["data"],
            json!({"createdOn": "1970-01-01T00:00:00.000Z", "updatedOn": "1970-01-01T00:00:01.000Z",
                "namespaceName": "ns1", "clientName": "dev1", "clientAuthenticationName": "Dev-1",
                "state": "Disabled", "attributes": {"floor": 3, "tags": ["a"]}})
        );
        let d = ClientChange::Deleted {
            namespace: "ns1".into(),
            client: "dev1".into(),
            auth_name: "Dev-1".into(),
        };
        let v: Value = serde_json::from_slice(&event("i", "t", &d, "t").ev.raw).unwrap();
        assert_eq!(v["eventType"], DELETED);
        assert_eq!(
            v["data"],
            json!({"namespaceName": "ns1", "clientName": "dev1", "clientAuthenticationName": "Dev-1"})
        );
        assert_eq!(v["metadataVersion"], "1");
    }
}
