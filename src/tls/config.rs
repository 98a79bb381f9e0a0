//! The TLS sections of the configuration: what a TLS listener is given (`mqtt.tls`, `http.tls`)
//! and what push delivery trusts (`push.tls`).
//!
//! Owns the shapes, defaults and the checks that need no file. Must never read the files it
//! names: [`crate::tls::ServerTls::load`] does, at start and on reload.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Whether a listener asks for, and requires, a client certificate (mutual TLS).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientAuth {
    /// No client certificate is asked for.
    #[default]
    None,
    /// Asked for; a client without one is let in, one with a certificate that does not verify
    /// against `ca_file` is refused.
    Optional,
    /// A client without a certificate that verifies against `ca_file` is refused.
    Required,
    /// Asked for, and any chain taken at the TLS layer (the client still proves it holds the
    /// key): the MQTT CONNECT checks it against the namespace's registered thumbprints and CA
    /// certificates. `ca_file` is not used.
    Request,
}

/// A TLS listener: where it listens and the PEM files it serves.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsListener {
    /// Address of the TLS listener (`0.0.0.0:8883`); empty: no TLS listener.
    pub bind: String,
    /// The server's certificate chain, PEM, leaf first.
    pub cert_file: PathBuf,
    /// The certificate's private key, PEM (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// `none`, `optional` or `required`.
    pub client_auth: ClientAuth,
    /// CA certificates (PEM) client certificates must chain to; required unless `client_auth`
    /// is `none`.
    pub ca_file: PathBuf,
    /// How long a client has to finish the TLS handshake, in ms; then the connection is closed.
    pub handshake_timeout_ms: u64,
}

impl Default for TlsListener {
    fn default() -> Self {
        TlsListener {
            bind: String::new(),
            cert_file: PathBuf::new(),
            key_file: PathBuf::new(),
            client_auth: ClientAuth::None,
            ca_file: PathBuf::new(),
            handshake_timeout_ms: 10_000,
        }
    }
}

impl TlsListener {
    /// Whether the listener is configured at all.
    pub fn enabled(&self) -> bool {
        !self.bind.trim().is_empty()
    }

    /// The bind address, when enabled.
    pub fn addr(&self) -> Option<std::net::SocketAddr> {
        self.bind.trim().parse().ok()
    }

    /// Checks what needs no file: `section` is the key prefix for messages (`mqtt.tls`). `used`:
    /// another listener takes these settings even when this one is off (`mqtt.wss_bind` takes
    /// `mqtt.tls`'s certificate, client authentication and timeout).
    pub fn validate(&self, section: &str, used: bool) -> Result<(), (String, String)> {
        let bad = |k: &str, why: &str| Err((format!("{section}.{k}"), why.to_string()));
        if self.handshake_timeout_ms == 0 {
            return bad("handshake_timeout_ms", "must be above 0");
        }
        if !self.enabled() && !used {
            return Ok(());
        }
        if self.enabled() && self.addr().is_none() {
            return bad("bind", "must be an address such as 0.0.0.0:8883");
        }
        if self.cert_file.as_os_str().is_empty() {
            return bad("cert_file", "is required when bind is set");
        }
        if self.key_file.as_os_str().is_empty() {
            return bad("key_file", "is required when bind is set");
        }
        if matches!(
            self.client_auth,
            ClientAuth::Optional | ClientAuth::Required
        ) && self.ca_file.as_os_str().is_empty()
        {
            return bad(
                "ca_file",
                "is required when client_auth is optional or required",
            );
        }
        Ok(())
    }
}

/// What push delivery trusts when it calls `https://` webhooks.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PushTls {
    /// Extra CA certificates (PEM) trusted beside the system's roots; empty: the system's only.
    pub ca_file: PathBuf,
}
