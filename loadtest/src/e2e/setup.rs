//! `e2e --setup`: what the scenario needs, made through the management API with the admin key
//! (`Authorization: Bearer KEY`): the namespace if missing, the route topic, its subscription
//! (Queue, or Push to a webhook), the namespace's `topicSpacesConfiguration` routing into the
//! topic (docs/eventgrid.md §7.6, §7.9), and the namespace key when none was given.
//!
//! It only creates or updates what it names; it never deletes anything.

use std::time::Duration;

use crate::http::h1::{self, Conn, Response, Url, encode_component};
use crate::transport::TlsClient;

/// One keep-alive connection to the management API.
pub struct Mgmt {
    conn: Conn,
    url: Url,
    auth: String,
    timeout: Duration,
}

/// What to create.
pub struct Plan<'a> {
    pub namespace: &'a str,
    pub topic: &'a str,
    pub subscription: &'a str,
    /// Some(url): a Push subscription to this webhook; None: Queue
    pub push: Option<&'a str>,
    pub routing: bool,
}

/// The namespace named by an endpoint's path `/namespaces/{ns}`.
pub fn namespace_of(url: &Url) -> Result<String, String> {
    let mut parts = url.base_path.trim_start_matches('/').split('/');
    match (parts.next(), parts.next(), parts.next()) {
        (Some("namespaces"), Some(ns), None) if !ns.is_empty() => Ok(ns.to_string()),
        _ => Err(format!(
            "--url {url}: expected http://HOST:PORT/namespaces/NAMESPACE"
        )),
    }
}

/// The body of the subscription `plan` asks for.
pub fn subscription_body(push: Option<&str>) -> serde_json::Value {
    match push {
        Some(url) => serde_json::json!({"properties": {"deliveryConfiguration": {
            "deliveryMode": "Push",
            "push": {"destination": {"endpointType": "WebHook", "properties": {
                "endpointUrl": url, "maxEventsPerBatch": 100}}}}}}),
        None => serde_json::json!({"properties": {"deliveryConfiguration": {
            "deliveryMode": "Queue",
            "queue": {"receiveLockDurationInSeconds": 60, "maxDeliveryCount": 10}}}}),
    }
}

/// The namespace body that turns routing into `topic` on (or off).
pub fn namespace_body(ns: &str, topic: &str, routing: bool) -> serde_json::Value {
    if routing {
        serde_json::json!({"properties": {"topicSpacesConfiguration": {
            "state": "Enabled",
            "routeTopicResourceId":
                format!("/providers/Microsoft.EventGrid/namespaces/{ns}/topics/{topic}")}}})
    } else {
        serde_json::json!({"properties": {"topicSpacesConfiguration": {"state": "Disabled"}}})
    }
}

impl Mgmt {
    pub async fn connect(
        url: &Url,
        tls: Option<&TlsClient>,
        admin_key: &str,
        timeout: Duration,
    ) -> Result<Mgmt, String> {
        let addr = crate::net::resolve(&url.host, url.port).await?;
        let conn = Conn::open(addr, timeout, tls)
            .await
            .map_err(|e| format!("cannot connect to the management API at {addr}: {e}"))?;
        Ok(Mgmt {
            conn,
            url: url.clone(),
            auth: format!("Bearer {admin_key}"),
            timeout,
        })
    }

    async fn call(&mut self, method: &str, path: &str, body: &[u8]) -> Result<Response, String> {
        let mut req = Vec::new();
        h1::write_request(
            &mut req,
            method,
            path,
            &self.url.authority,
            &[
                ("Content-Type", "application/json"),
                ("Authorization", &self.auth),
            ],
            body,
        );
        self.conn
            .roundtrip(&req, self.timeout)
            .await
            .map_err(|e| format!("{method} {path}: {e}"))
    }

    /// A call that must succeed (2xx).
    async fn ok(&mut self, method: &str, path: &str, body: &[u8]) -> Result<Response, String> {
        let r = self.call(method, path, body).await?;
        if !(200..300).contains(&r.status) {
            return Err(format!(
                "{method} {path} answered {}{}",
                r.status_text(),
                r.error_message()
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default()
            ));
        }
        Ok(r)
    }

    /// Creates what `p` names; the namespace's key1 when `want_key`.
    pub async fn apply(&mut self, p: &Plan<'_>, want_key: bool) -> Result<Option<String>, String> {
        let ns_path = format!("/mgmt/namespaces/{}", encode_component(p.namespace));
        if self.call("GET", &ns_path, b"").await?.status == 404 {
            self.ok("PUT", &ns_path, br#"{"properties":{}}"#).await?;
        }
        let topic_path = format!("{ns_path}/topics/{}", encode_component(p.topic));
        self.ok("PUT", &topic_path, br#"{"properties":{}}"#).await?;
        let sub_path = format!(
            "{topic_path}/eventSubscriptions/{}",
            encode_component(p.subscription)
        );
        let sub = subscription_body(p.push).to_string();
        self.ok("PUT", &sub_path, sub.as_bytes()).await?;
        let ns = namespace_body(p.namespace, p.topic, p.routing).to_string();
        self.ok("PUT", &ns_path, ns.as_bytes()).await?;
        if !want_key {
            return Ok(None);
        }
        let r = self.ok("POST", &format!("{ns_path}/listKeys"), b"").await?;
        let keys: serde_json::Value = serde_json::from_slice(&r.body)
            .map_err(|e| format!("listKeys answered no JSON: {e}"))?;
        keys["key1"]
            .as_str()
            .map(|k| Some(k.to_string()))
            .ok_or_else(|| "listKeys answered no key1".to_string())
    }
}
