//! The counter of the MQTT-over-WebSocket listeners' HTTP upgrades (`mqtt.ws_bind`,
//! `mqtt.wss_bind`), by outcome: accepted, or refused and why. Like every counter, must never
//! block or allocate on the bump path.

use std::fmt::Write;

use super::{Counter, header};

/// How a WebSocket upgrade request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WsUpgrade {
    /// Upgraded: MQTT follows in binary frames.
    Accepted = 0,
    /// Not a valid WebSocket upgrade (garbage, not GET, a missing or bad header): 400.
    BadRequest = 1,
    /// No `mqtt` / `mqttv3.1` among the offered subprotocols: 400.
    NoSubprotocol = 2,
    /// A `Sec-WebSocket-Version` other than 13: 426.
    BadVersion = 3,
    /// A path other than `/mqtt` or `/`: 404.
    NotFound = 4,
    /// The request head did not arrive within the handshake timeout.
    Timeout = 5,
    /// The peer closed the connection before its request was complete.
    PeerClosed = 6,
}

const OUTCOMES: [&str; 7] = [
    "accepted",
    "bad_request",
    "no_subprotocol",
    "bad_version",
    "not_found",
    "timeout",
    "peer_closed",
];

impl WsUpgrade {
    pub fn label(self) -> &'static str {
        OUTCOMES[self as usize]
    }
}

/// `evgrid_mqtt_ws_upgrades_total{outcome}`.
#[derive(Debug)]
pub struct WsMetrics {
    upgrades: [Counter; 7],
}

#[allow(clippy::declare_interior_mutable_const)]
const C: Counter = Counter::new();

pub static WS: WsMetrics = WsMetrics { upgrades: [C; 7] };

impl WsMetrics {
    pub fn upgrade(&self, outcome: WsUpgrade) {
        self.upgrades[outcome as usize].inc();
    }

    pub fn upgrades(&self, outcome: WsUpgrade) -> u64 {
        self.upgrades[outcome as usize].get()
    }

    pub(super) fn render(&self, s: &mut String) {
        let name = "evgrid_mqtt_ws_upgrades_total";
        header(
            s,
            "counter",
            name,
            "WebSocket upgrades on the MQTT-over-WebSocket listeners, by outcome.",
        );
        for (o, c) in OUTCOMES.iter().zip(&self.upgrades) {
            let _ = writeln!(s, "{name}{{outcome=\"{o}\"}} {}", c.get());
        }
    }
}
