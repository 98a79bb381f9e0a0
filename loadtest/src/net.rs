//! Name resolution shared by every mode: the MQTT runs, the HTTP modes and the webhook sink's
//! asynchronous validation all turn a host and port into one socket address the same way.

use std::net::SocketAddr;

/// Resolves `host`, preferring an IPv4 address when the name has both (the broker, an HTTP
/// endpoint or a validation URL).
pub async fn resolve(host: &str, port: u16) -> Result<SocketAddr, String> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| format!("cannot resolve host '{host}': {e}"))?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| format!("cannot resolve host '{host}': no addresses"))
}
