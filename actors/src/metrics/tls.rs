//! The counters of the TLS listeners (MQTT over TLS and secure WebSockets, HTTPS): handshakes
//! completed, handshakes refused by reason, certificate reloads by outcome. Like every counter,
//! must never block or allocate on the bump path.

use std::fmt::Write;

use super::{Counter, header};

/// Which listener a handshake was on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsListenerKind {
    /// MQTT over TLS (`mqtt.tls.bind`).
    Mqtt = 0,
    /// MQTT over secure WebSockets (`mqtt.wss_bind`).
    MqttWss = 1,
    /// The HTTP API over TLS (`http.tls.bind`).
    Https = 2,
    /// The plain MQTT listener, which counts clients that start a TLS handshake on it.
    MqttPlain = 3,
}

const LISTENERS: [&str; 4] = ["mqtt", "mqtt_wss", "https", "mqtt_plain"];

/// Why a TLS handshake was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeFailure {
    /// Not finished within the listener's `handshake_timeout_ms`.
    Timeout = 0,
    /// The client did not speak TLS (plain MQTT or HTTP on the TLS port).
    NotTls = 1,
    /// The client offered no protocol version evgrid accepts (TLS 1.0/1.1 only).
    ProtocolVersion = 2,
    /// The client's certificate did not verify (unknown issuer, expired, bad signature, ...).
    BadCertificate = 3,
    /// A client certificate is required and none was sent.
    NoCertificate = 4,
    /// A TLS ClientHello on a plain listener.
    TlsOnPlainPort = 5,
    /// The peer closed the connection during the handshake.
    PeerClosed = 6,
    /// Anything else the TLS library refused.
    Other = 7,
}

const REASONS: [&str; 8] = [
    "timeout",
    "not_tls",
    "protocol_version",
    "bad_certificate",
    "no_certificate",
    "tls_on_plain_port",
    "peer_closed",
    "other",
];

impl HandshakeFailure {
    pub fn label(self) -> &'static str {
        REASONS[self as usize]
    }
}

/// `evgrid_tls_handshakes_total{listener}`, `evgrid_tls_handshake_failures_total{listener,
/// reason}` and `evgrid_tls_reloads_total{outcome}`.
#[derive(Debug)]
pub struct TlsMetrics {
    ok: [Counter; 4],
    failed: [[Counter; 8]; 4],
    /// Reloads that swapped the certificate, and reloads refused (the old one kept).
    reloads: [Counter; 2],
}

// Only array-repeat initialisers of the static below: each use is a fresh counter.
#[allow(clippy::declare_interior_mutable_const)]
const C: Counter = Counter::new();
#[allow(clippy::declare_interior_mutable_const)]
const ROW: [Counter; 8] = [C; 8];

pub static TLS: TlsMetrics = TlsMetrics {
    ok: [C; 4],
    failed: [ROW; 4],
    reloads: [C; 2],
};

impl TlsMetrics {
    pub fn handshake(&self, l: TlsListenerKind) {
        self.ok[l as usize].inc();
    }

    pub fn failure(&self, l: TlsListenerKind, why: HandshakeFailure) {
        self.failed[l as usize][why as usize].inc();
    }

    pub fn failures(&self, l: TlsListenerKind, why: HandshakeFailure) -> u64 {
        self.failed[l as usize][why as usize].get()
    }

    pub fn reloaded(&self, ok: bool) {
        self.reloads[usize::from(!ok)].inc();
    }

    pub(super) fn render(&self, s: &mut String) {
        let name = "evgrid_tls_handshakes_total";
        header(s, "counter", name, "TLS handshakes completed, by listener.");
        for (l, c) in LISTENERS.iter().zip(&self.ok).take(3) {
            let _ = writeln!(s, "{name}{{listener=\"{l}\"}} {}", c.get());
        }
        let name = "evgrid_tls_handshake_failures_total";
        header(
            s,
            "counter",
            name,
            "TLS handshakes refused, by listener and reason.",
        );
        for (l, row) in LISTENERS.iter().zip(&self.failed) {
            for (r, c) in REASONS.iter().zip(row) {
                let v = c.get();
                // The plain listener only ever sees one reason; the rest are always zero.
                if *l == "mqtt_plain" && *r != "tls_on_plain_port" {
                    continue;
                }
                let _ = writeln!(s, "{name}{{listener=\"{l}\",reason=\"{r}\"}} {v}");
            }
        }
        let name = "evgrid_tls_reloads_total";
        header(
            s,
            "counter",
            name,
            "Certificate reloads: ok (new handshakes use the new certificate) or refused (the old one kept).",
        );
        let _ = writeln!(s, "{name}{{outcome=\"ok\"}} {}", self.reloads[0].get());
        let _ = writeln!(s, "{name}{{outcome=\"refused\"}} {}", self.reloads[1].get());
    }
}
