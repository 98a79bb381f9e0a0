//! A system topic's `properties` (docs/eventgrid.md §7.7): the one topic type evgrid has, whose
//! events are the MQTT client lifecycle events of a namespace, and the namespace its `source`
//! names.
//!
//! Pure validation: never touches the store, an actor or the registry; whether the namespace
//! exists and whether another system topic already has the source is the grid's check.

use serde_json::{Value, json};

use super::{get_str, props_obj};

/// The only `topicType` evgrid has: MQTT client lifecycle events of a namespace.
pub const NAMESPACES_TOPIC_TYPE: &str = "Microsoft.EventGrid.Namespaces";

/// A valid system topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemTopicCfg {
    /// The namespace's resource id as given; lifecycle events carry it as `topic`.
    pub source: String,
    /// The namespace `source` names, lowercased.
    pub namespace: String,
}

/// The namespace a resource id names: `/providers/Microsoft.EventGrid/namespaces/{name}`,
/// optionally after `/subscriptions/{id}/resourceGroups/{group}` (evgrid has neither, so any
/// prefix of that shape names the same namespace). Case-insensitive; answers the name
/// lowercased.
pub fn namespace_of_source(source: &str) -> Option<String> {
    let s = source.strip_suffix('/').unwrap_or(source);
    let parts: Vec<&str> = s.split('/').collect();
    let is = |a: &str, b: &str| a.eq_ignore_ascii_case(b);
    let tail = match parts.as_slice() {
        ["", sub, _, rg, _, p, rest @ ..]
            if is(sub, "subscriptions") && is(rg, "resourceGroups") && is(p, "providers") =>
        {
            rest
        }
        ["", p, rest @ ..] if is(p, "providers") => rest,
        _ => return None,
    };
    match tail {
        [rp, ns, name]
            if is(rp, "Microsoft.EventGrid")
                && is(ns, "namespaces")
                && !name.is_empty()
                && parts.iter().skip(1).all(|p| !p.is_empty()) =>
        {
            Some(name.to_ascii_lowercase())
        }
        _ => None,
    }
}

/// Validates a system topic's `properties`; answers its settings and the `properties` to store
/// (`metricResourceId` is the grid's to add, once, when the topic is created).
pub fn system_topic(props: &Value) -> Result<(SystemTopicCfg, Value), String> {
    let m = props_obj(props)?;
    let at = "properties.";
    let ty = get_str(m, "topicType", at)?.ok_or_else(|| {
        format!("properties.topicType is required; the only topic type supported is '{NAMESPACES_TOPIC_TYPE}'")
    })?;
    if !ty.eq_ignore_ascii_case(NAMESPACES_TOPIC_TYPE) {
        return Err(format!(
            "properties.topicType '{ty}' is not supported; the only topic type supported is '{NAMESPACES_TOPIC_TYPE}' (MQTT client lifecycle events of a namespace)"
        ));
    }
    let source = get_str(m, "source", at)?
        .ok_or_else(|| "properties.source is required: the resource id of an Event Grid namespace, such as '/providers/Microsoft.EventGrid/namespaces/default'".to_string())?;
    let namespace = namespace_of_source(source).ok_or_else(|| {
        format!(
            "properties.source '{source}' is not the resource id of an Event Grid namespace, such as '/providers/Microsoft.EventGrid/namespaces/default' (optionally after '/subscriptions/{{id}}/resourceGroups/{{group}}')"
        )
    })?;
    let out = json!({
        "provisioningState": "Succeeded",
        "source": source,
        "topicType": NAMESPACES_TOPIC_TYPE,
    });
    Ok((
        SystemTopicCfg {
            source: source.to_string(),
            namespace,
        },
        out,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_name_a_namespace_with_or_without_the_arm_prefix() {
        let ok = [
            (
                "/providers/Microsoft.EventGrid/namespaces/default",
                "default",
            ),
            (
                "/providers/microsoft.eventgrid/Namespaces/Orders/",
                "orders",
            ),
            (
                "/subscriptions/0000/resourceGroups/rg1/providers/Microsoft.EventGrid/namespaces/ns-1",
                "ns-1",
            ),
            (
                "/SUBSCRIPTIONS/x/RESOURCEGROUPS/y/PROVIDERS/MICROSOFT.EVENTGRID/NAMESPACES/A",
                "a",
            ),
        ];
        for (s, ns) in ok {
            assert_eq!(namespace_of_source(s).as_deref(), Some(ns), "{s}");
        }
        let bad = [
            "",
            "default",
            "/providers/Microsoft.EventGrid/topics/t",
            "/providers/Microsoft.Storage/namespaces/x",
            "/providers/Microsoft.EventGrid/namespaces",
            "/providers/Microsoft.EventGrid/namespaces/a/topics/b",
            "/subscriptions/x/providers/Microsoft.EventGrid/namespaces/a",
            "/subscriptions//resourceGroups/y/providers/Microsoft.EventGrid/namespaces/a",
            "providers/Microsoft.EventGrid/namespaces/a",
        ];
        for s in bad {
            assert_eq!(namespace_of_source(s), None, "{s}");
        }
    }

    #[test]
    fn properties_need_the_namespaces_type_and_a_namespace_source() {
        let (cfg, out) = system_topic(&json!({
            "source": "/providers/Microsoft.EventGrid/namespaces/Default",
            "topicType": "microsoft.eventgrid.namespaces",
        }))
        .unwrap();
        assert_eq!(cfg.namespace, "default");
        assert_eq!(
            cfg.source,
            "/providers/Microsoft.EventGrid/namespaces/Default"
        );
        assert_eq!(out["topicType"], NAMESPACES_TOPIC_TYPE);
        assert_eq!(out["provisioningState"], "Succeeded");

        let e = system_topic(&json!({"source": "/providers/Microsoft.EventGrid/namespaces/a", "topicType": "Microsoft.Storage.StorageAccounts"})).unwrap_err();
        assert!(
            e.contains("'Microsoft.Storage.StorageAccounts' is not supported"),
            "{e}"
        );
        assert!(e.contains(NAMESPACES_TOPIC_TYPE), "{e}");
        let e = system_topic(&json!({"source": "/providers/Microsoft.EventGrid/namespaces/a"}))
            .unwrap_err();
        assert!(e.starts_with("properties.topicType is required"), "{e}");
        let e = system_topic(&json!({"topicType": NAMESPACES_TOPIC_TYPE})).unwrap_err();
        assert!(e.starts_with("properties.source is required"), "{e}");
        let e =
            system_topic(&json!({"topicType": NAMESPACES_TOPIC_TYPE, "source": "/x"})).unwrap_err();
        assert!(e.contains("'/x' is not the resource id"), "{e}");
        let e = system_topic(&json!({"topicType": 3})).unwrap_err();
        assert!(e.contains("properties.topicType must be a string"), "{e}");
    }
}
