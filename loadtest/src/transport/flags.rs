//! The transport flags: `--tls`, `--cafile`, `--cert`, `--cert-key` (every MQTT mode and the HTTP
//! modes) and `--ws`, `--ws-path` (the MQTT modes). The client key is `--cert-key`, not `--key`:
//! `--key` is the Event Grid access key of the HTTP modes, and `e2e` takes both sides' flags.

use std::path::PathBuf;

/// TLS for one side of a run.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct TlsFlags {
    /// Connect over TLS (TLS 1.2 or 1.3; every connection does a full handshake, no session
    /// resumption). HTTP modes: also implied by an https:// URL
    #[arg(long)]
    pub tls: bool,
    /// PEM bundle of the CAs the server certificate is verified against [default: the system
    /// bundle, /etc/ssl/certs/ca-certificates.crt]
    #[arg(long, value_name = "FILE")]
    pub cafile: Option<PathBuf>,
    /// Client certificate (PEM, with its chain) for mutual TLS; needs --cert-key
    #[arg(long, value_name = "FILE", requires = "cert_key")]
    pub cert: Option<PathBuf>,
    /// Private key (PEM: PKCS#8, PKCS#1 or SEC1) of --cert
    #[arg(long, value_name = "FILE", requires = "cert")]
    pub cert_key: Option<PathBuf>,
}

impl TlsFlags {
    /// A TLS file given while TLS is off would be silently ignored: an error instead.
    pub fn check_used(&self, tls_on: bool, how: &str) -> Result<(), String> {
        if tls_on {
            return Ok(());
        }
        let flag = if self.cafile.is_some() {
            "--cafile"
        } else if self.cert.is_some() {
            "--cert"
        } else {
            return Ok(());
        };
        Err(format!("{flag} is for TLS connections: {how}"))
    }
}

/// What the MQTT modes connect over: TCP, TLS, WebSocket, or WebSocket over TLS.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct TransportFlags {
    #[command(flatten)]
    pub tls: TlsFlags,
    /// MQTT over WebSockets (subprotocol mqtt; binary frames); with --tls: wss
    #[arg(long)]
    pub ws: bool,
    /// Path of the WebSocket upgrade request [default: /mqtt]
    #[arg(long, value_name = "PATH", requires = "ws")]
    pub ws_path: Option<String>,
}

impl TransportFlags {
    /// The name reports use: tcp, tls, ws or wss.
    pub fn kind(&self) -> super::Kind {
        super::Kind::of(self.tls.tls, self.ws)
    }
}
