//! MQTT message → CloudEvent (docs/eventgrid.md §7.6). Minimal form; the full mapping
//! (enrichments, data vs data_base64, CloudEvents bindings) replaces it.

use base64::Engine;
use ntex_bytes::{ByteString, Bytes};
use serde_json::json;

use super::Client;
use crate::grid::resource::topic_spaces::Enrichments;
use crate::model::event::CloudEvent;
use crate::model::time::format_rfc3339_ms;
use crate::mqtt::message::AppMessage;

pub fn to_cloudevent(
    msg: &AppMessage,
    _client: &Client,
    namespace: &str,
    _enrich: &Enrichments,
    received_ms: u64,
    id: &str,
) -> CloudEvent {
    let raw = json!({
        "specversion": "1.0",
        "id": id,
        "time": format_rfc3339_ms(received_ms),
        "type": "MQTT.EventPublished",
        "source": namespace,
        "subject": msg.topic.as_str(),
        "data_base64": base64::engine::general_purpose::STANDARD.encode(&msg.payload),
    });
    CloudEvent {
        id: ByteString::from(id),
        source: ByteString::from(namespace),
        ty: ByteString::from_static("MQTT.EventPublished"),
        subject: Some(msg.topic.clone()),
        ext: Vec::new(),
        raw: Bytes::from(raw.to_string()),
    }
}
