//! MQTT over WebSockets (`mqtt.ws_bind`, and `mqtt.wss_bind` behind TLS): the HTTP/1.1 upgrade
//! and the framing that carries the MQTT byte stream, as a transport under the same MQTT service
//! as TCP (same broker, sessions and limits).
//!
//! [`handshake`] (pure) checks the upgrade request, [`frame`] (pure) decodes and encodes
//! frames, [`filter`] is the ntex-io layer over an upgraded connection, [`accept`] the service
//! that performs the upgrade. Knows nothing of MQTT packets: payload bytes pass through as they
//! are.

mod accept;
pub mod filter;
pub mod frame;
pub mod handshake;

pub use accept::{WsAcceptor, WssAcceptor};

use std::io;
use std::net::TcpListener;
use std::sync::Arc;

use ntex_mqtt::{MqttConnectError, MqttError};
use ntex_service::cfg::SharedCfg;
use ntex_util::time::Millis;

use super::{EdgeError, Shared, count_handshake_error, mqtt_service, service_config};

/// What a client data frame may carry at most: the largest MQTT packet and its longest fixed
/// header (1 byte of type and flags, 4 of remaining length).
pub fn max_frame_payload(max_packet_size: u32) -> u64 {
    u64::from(max_packet_size) + 5
}

/// Adds the WebSocket listeners to the MQTT server: `ws` plain, `wss` (its listener and TLS
/// configuration) behind TLS. Both run [`super::mqtt_service`] after the upgrade, configured
/// like the TCP listener.
pub(super) fn listen(
    mut srv: ntex_server::net::ServerBuilder,
    shared: &Arc<Shared>,
    ws: Option<TcpListener>,
    wss: Option<(TcpListener, Arc<rustls::ServerConfig>)>,
) -> io::Result<ntex_server::net::ServerBuilder> {
    let c = &shared.cfg;
    let max_payload = max_frame_payload(c.max_packet_size);
    // One timeout for each step a client could stall (TLS, then the upgrade request).
    let timeout = Millis(u32::try_from(c.tls.handshake_timeout_ms).unwrap_or(u32::MAX));
    let upgrade = WsAcceptor::new(timeout, max_payload).behind_tls();
    if let Some(l) = ws {
        let sh = shared.clone();
        srv = srv.listen(
            "mqtt-ws",
            l,
            SharedCfg::new("MQTT-WS").add(service_config(c)),
            async move |_| {
                ntex_service::service(WsAcceptor::new(timeout, max_payload))
                    .map_err(upgrade_failed)
                    .and_then(mqtt_service(sh.clone(), false))
                    .map_err(count_handshake_error)
            },
        )?;
    }
    if let Some((l, tls)) = wss {
        let sh = shared.clone();
        srv = srv.listen(
            "mqtt-wss",
            l,
            SharedCfg::new("MQTT-WSS").add(service_config(c)),
            async move |_| {
                ntex_service::service(WssAcceptor::new(tls.clone(), timeout, upgrade.clone()))
                    .map_err(upgrade_failed)
                    // The client certificate and server name of the TLS layer under the
                    // WebSocket one reach the CONNECT handlers as on the TLS listener.
                    .and_then(mqtt_service(sh.clone(), true))
                    .map_err(count_handshake_error)
            },
        )?;
    }
    Ok(srv)
}

/// A connection that never got to MQTT (TLS or the upgrade failed; already counted).
fn upgrade_failed(e: io::Error) -> MqttError<EdgeError> {
    MqttError::Connect(MqttConnectError::Disconnected(Some(e)))
}
