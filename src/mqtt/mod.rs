//! The MQTT edge: ntex-mqtt on its own thread(s), translating packets to the actor engine.
//!
//! Owns the listener, the per-connection state ([`conn::Conn`]: publish re-sequencing and
//! batching), and the writer task that owns each connection's `!Send` sink. Holds no business
//! state: sessions, subscriptions and routing live in `evgrid_actors`. Must never block an ntex
//! worker, and never call the sink from another thread.

mod auth;
mod conn;
mod pump;
mod quota;
mod routing;
mod service;
mod tls;
mod v3;
mod v5;
pub mod ws;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use evgrid_actors::bridge::Bridge;
use evgrid_actors::metrics::METRICS;
use evgrid_actors::mqtt::lifecycle::{EndReason, LifecycleTx};
use evgrid_actors::mqtt::trie::TopicLimits;
use ntex_mqtt::{MqttServer, MqttServiceConfig, QoS};
use ntex_service::cfg::SharedCfg;
use ntex_util::time::Seconds;

use crate::config::MqttConfig;

/// What every connection handler needs; shared by all ntex workers.
pub(crate) struct Shared {
    /// The broker, and the way into the namespace the broker serves (routing into its topics, lifecycle events).
    pub bridge: Bridge,
    pub cfg: MqttConfig,
    pub limits: TopicLimits,
    pub next_conn: AtomicU64,
    /// Where connections report connecting and ending (docs/eventgrid.md §7.7); never waits.
    pub lifecycle: LifecycleTx,
    /// Set when the server is stopping: connections it cuts end with a server shutdown.
    pub stopping: AtomicBool,
    /// Authentication's webhook client, the live connections' identities and policies.
    pub auth: auth::EdgeAuth,
    /// The namespace's CONNECTs in the current second, for its connect quota.
    pub connects: quota::ConnectMeter,
}

/// The application error of the MQTT services: the connection is closed.
#[derive(Debug, thiserror::Error)]
pub enum EdgeError {
    #[error("{0}")]
    Closed(&'static str),
}

impl From<()> for EdgeError {
    fn from(_: ()) -> Self {
        EdgeError::Closed("closed")
    }
}

impl TryFrom<EdgeError> for ntex_mqtt::v5::PublishAck {
    type Error = EdgeError;
    fn try_from(e: EdgeError) -> Result<Self, EdgeError> {
        Err(e)
    }
}

/// Connection events: counts protocol violations (malformed packets, spec breaches) and records
/// why the connection stops, for its Disconnected lifecycle event.
fn control<T>(conn: &conn::Conn, c: ntex_mqtt::Control<EdgeError>) -> Result<Option<T>, EdgeError> {
    use ntex_mqtt::Reason;
    let ntex_mqtt::Control::Stop(reason) = &c else {
        return Ok(None);
    };
    let why = match reason {
        Reason::Protocol(e) => {
            METRICS.protocol_errors.inc();
            tracing::debug!(error = ?e.get_ref(), "mqtt protocol error");
            end_of_protocol_error(e.get_ref())
        }
        Reason::PeerGone(_) => EndReason::ConnectionLost,
        Reason::Error(e) => end_of_edge_error(e.get_ref()),
    };
    conn.ending.set(why);
    Ok(None)
}

/// What a handler's error that closed the connection means for the Disconnected event: a payload
/// the peer stopped sending is a lost connection, a v3.1.1 PUBLISH to a bad topic (which has no
/// other answer) the client's error, anything else (routing unavailable) the server's.
fn end_of_edge_error(e: &EdgeError) -> EndReason {
    match e {
        EdgeError::Closed(PAYLOAD_READ_FAILED) => EndReason::ConnectionLost,
        EdgeError::Closed(BAD_TOPIC) => EndReason::ProtocolError,
        EdgeError::Closed(NOT_AUTHORIZED) => EndReason::AuthorizationError,
        EdgeError::Closed(QUOTA_EXCEEDED) => EndReason::QuotaExceeded,
        EdgeError::Closed(_) => EndReason::ServerError,
    }
}

// The errors' texts as v3.rs and v5.rs give them (patterns compare the text).
/// The [`EdgeError`] of a PUBLISH whose payload stopped arriving.
const PAYLOAD_READ_FAILED: &str = "payload read failed";
/// The [`EdgeError`] of a v3.1.1 PUBLISH to a topic the client may not publish to.
const NOT_AUTHORIZED: &str = "not authorized to publish to this topic";
/// The [`EdgeError`] of a v3.1.1 PUBLISH to a topic name over the limits.
const BAD_TOPIC: &str = "topic name too long or too deep";
/// The [`EdgeError`] of a v3.1.1 PUBLISH over a session quota.
const QUOTA_EXCEEDED: &str = "session quota exceeded";

/// What a protocol-level stop means for the Disconnected event: a keep-alive timeout and a
/// frame that stopped arriving are a client gone silent; anything malformed is the client's
/// error; failing to encode is the server's.
fn end_of_protocol_error(e: &ntex_mqtt::error::MqttProtocolError) -> EndReason {
    use ntex_mqtt::error::MqttProtocolError as E;
    match e {
        E::KeepAliveTimeout => EndReason::KeepAliveTimeout,
        E::ReadTimeout => EndReason::ConnectionLost,
        E::Decode(_) | E::ProtocolViolation(_) => EndReason::ProtocolError,
        E::Encode(_) => EndReason::ServerError,
    }
}

/// An acknowledgement for a packet id with nothing outstanding (vendor patch 22): ignored, as
/// MQTT 5 allows; a late one from before a reconnect is no reason to drop a healthy client.
fn count_unknown_ack() {
    METRICS.unknown_acks.inc();
}

fn count_handshake_error(e: ntex_mqtt::MqttError<EdgeError>) -> ntex_mqtt::MqttError<EdgeError> {
    use ntex_mqtt::{MqttConnectError as C, MqttError as M};
    if matches!(e, M::Connect(C::Protocol(_) | C::Timeout)) {
        METRICS.protocol_errors.inc();
        tracing::debug!(error = %e, "mqtt handshake failed");
    }
    e
}

/// `mqtt.send_timeout` as the writer takes it (0: never).
pub(crate) fn send_timeout(cfg: &MqttConfig) -> Option<Duration> {
    (cfg.send_timeout > 0).then(|| Duration::from_secs(u64::from(cfg.send_timeout)))
}

pub(crate) fn qos_from(q: u8) -> QoS {
    match q {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        _ => QoS::ExactlyOnce,
    }
}

/// What every connection's decoder is set to: the largest packet (`mqtt.max_packet_size`) and
/// the payload size below which a PUBLISH is decoded whole (ntex-mqtt's default, 32 KiB; see
/// vendor/ntex-mqtt/PATCHES.md, patch 12). The fuzz targets decode with the same values.
pub(crate) fn codec_limits(c: &MqttConfig) -> (u32, u32) {
    (c.max_packet_size, 32 * 1024)
}

/// Handle to the running MQTT listener.
pub struct MqttHandle {
    /// The plain TCP listener's address (`mqtt.bind`), unless `mqtt.tcp_enabled` is false.
    pub addr: Option<SocketAddr>,
    /// The MQTT TLS listener's address, when `mqtt.tls` is enabled.
    pub tls_addr: Option<SocketAddr>,
    /// MQTT over WebSockets (`mqtt.ws_bind`), when on.
    pub ws_addr: Option<SocketAddr>,
    /// MQTT over secure WebSockets (`mqtt.wss_bind`), when on.
    pub wss_addr: Option<SocketAddr>,
    /// The secure WebSocket listener's own TLS configuration (`mqtt.tls`'s files), for reload:
    /// only when the MQTT TLS listener is off (with it on, both share the one `start` was given).
    pub wss_tls: Option<crate::tls::ServerTls>,
    shared: Arc<Shared>,
    server: ntex_server::Server<ntex_server::net::Connection>,
    thread: std::thread::JoinHandle<()>,
}

impl MqttHandle {
    /// Stops accepting, closes connections, and joins the ntex thread.
    pub async fn stop(self) {
        self.shared.stopping.store(true, Ordering::Relaxed);
        // ntex's graceful stop can sit out its whole shutdown timeout even with no connection
        // open (seen under load: over 15 s after SIGTERM). HTTP has drained by now and session
        // state lives in memory, so a bounded wait keeps everything a longer one would.
        let stop = tokio::time::timeout(Duration::from_secs(3), self.server.stop(true));
        if stop.await.is_err() {
            tracing::warn!("the MQTT server did not stop within 3 s; exiting without it");
            return;
        }
        let join = tokio::task::spawn_blocking(move || self.thread.join());
        let _ = tokio::time::timeout(Duration::from_secs(2), join).await;
    }
}

/// What every MQTT listener's connections are configured with (decoder limits, flow control,
/// connect timeout): the plain and the TLS listener alike.
fn service_config(c: &MqttConfig) -> MqttServiceConfig {
    let (max_size, min_chunk) = codec_limits(c);
    MqttServiceConfig::new()
        .set_max_qos(qos_from(c.max_qos))
        .set_max_size(max_size)
        .set_min_chunk_size(min_chunk)
        .set_max_receive(c.max_receive)
        .set_max_send(c.max_inflight)
        .set_max_topic_alias(c.max_topic_alias)
        .set_connect_timeout(Seconds(c.connect_timeout))
        // mosquitto_pub sends PUBLISH, DISCONNECT and FIN in one write; without this
        // the PUBLISH would be dropped.
        .set_handle_qos_after_disconnect(Some(QoS::ExactlyOnce))
}

/// The MQTT service (v3.1.1 and v5) every listener serves: the same broker, sessions and limits
/// whatever the transport. `tls`: its connections come through a TLS handshake, whose client
/// certificate and server name the CONNECT handlers read.
fn mqtt_service<Req>(
    sh: Arc<Shared>,
    tls: bool,
) -> impl ntex_service::Service<(), Req, Res = (), Error = ntex_mqtt::MqttError<EdgeError>>
where
    Req: ntex_service::RequestState<ntex_io::IoBoxed, State = ()>,
{
    let (s3, s5) = (sh.clone(), sh);
    // The control handlers are boxed (they run per SUBSCRIBE, PUBREL, PINGREQ, ...): inline,
    // their state (856 B for v3, 1,144 B for v5) would be part of the dispatcher's future for
    // every PUBLISH too (see service::Reply).
    MqttServer::new()
        .v3(
            ntex_mqtt::v3::MqttServer::new(service::PublishFactory::<v3::Publish3>::new())
                .protocol(async |s: &v3::Session, m| Box::pin(v3::protocol(s, m)).await)
                .control(async |s: &v3::Session, c| control(s, c))
                .build(move |h| v3::connect(h, s3.clone(), tls))
                .fast_publish(v3::fast_publish),
        )
        .v5(
            ntex_mqtt::v5::MqttServer::new(service::PublishFactory::<v5::Publish5>::new())
                .protocol(async |s: &v5::Session, m| Box::pin(v5::protocol(s, m)).await)
                .control(async |s: &v5::Session, c| control(s, c))
                .build(move |h| v5::connect(h, s5.clone(), tls))
                .fast_publish(v5::fast_publish),
        )
}

/// An address key such as `mqtt.ws_bind` bound, when set (config validation parsed it).
fn listen_opt(bind: &str) -> std::io::Result<Option<std::net::TcpListener>> {
    let bind = bind.trim();
    if bind.is_empty() {
        return Ok(None);
    }
    let addr = bind.parse().map_err(std::io::Error::other)?;
    crate::net::listen(addr).map(Some)
}

/// Binds the MQTT port (and, with `tls`, the MQTT TLS port; `mqtt.ws_bind` and `mqtt.wss_bind`
/// when set) and starts the ntex system on its own thread. Connections report connecting and
/// ending into `lifecycle`; webhook authentication asks through `webhook`. Must be called inside
/// the actix system (revocation's task runs there).
pub fn start(
    cfg: &MqttConfig,
    tls: Option<&crate::tls::ServerTls>,
    bridge: Bridge,
    lifecycle: LifecycleTx,
    webhook: evgrid_actors::bridge::auth::Webhook,
) -> std::io::Result<MqttHandle> {
    let listener = match cfg.tcp_enabled {
        true => Some(crate::net::listen(cfg.bind)?),
        false => None,
    };
    let addr = listener.as_ref().map(|l| l.local_addr()).transpose()?;
    let tls_config = tls;
    let tls = match tls {
        Some(t) => {
            let bind = t.settings().addr().ok_or_else(|| {
                std::io::Error::other(format!("{}.bind: not an address", t.section()))
            })?;
            let l = crate::net::listen(bind)?;
            let acceptor = tls::Acceptor {
                config: t.server_config(),
                timeout: ntex_util::time::Millis(
                    u32::try_from(t.settings().handshake_timeout_ms).unwrap_or(u32::MAX),
                ),
            };
            Some((l, acceptor))
        }
        None => None,
    };
    let tls_addr = match &tls {
        Some((l, _)) => Some(l.local_addr()?),
        None => None,
    };
    let ws = listen_opt(&cfg.ws_bind)?;
    let ws_addr = ws.as_ref().map(|l| l.local_addr()).transpose()?;
    let wss = listen_opt(&cfg.wss_bind)?;
    let wss_addr = wss.as_ref().map(|l| l.local_addr()).transpose()?;
    // wss presents mqtt.tls's certificate: through the MQTT TLS listener's configuration when
    // that listener is on, else its own (no ALPN: browsers and paho speak HTTP/1.1 without it,
    // and a server list would refuse a client offering only other protocols).
    let (wss_config, wss_tls) = match (&wss, tls_config) {
        (None, _) => (None, None),
        (Some(_), Some(t)) => (Some(t.server_config()), None),
        (Some(_), None) => {
            let t = crate::tls::ServerTls::load("mqtt.tls", &cfg.tls, &[])
                .map_err(std::io::Error::other)?;
            (Some(t.server_config()), Some(t))
        }
    };
    let wss = wss.zip(wss_config);
    let shared = Arc::new(Shared {
        bridge,
        cfg: cfg.clone(),
        limits: TopicLimits {
            max_len: cfg.max_topic_length,
            max_levels: cfg.max_topic_levels,
        },
        next_conn: AtomicU64::new(1),
        lifecycle,
        stopping: AtomicBool::new(false),
        auth: auth::EdgeAuth {
            webhook,
            verified: Arc::new(auth::Verified::new()),
            registry: Default::default(),
            mode: cfg.authorization.mode(),
        },
        connects: quota::ConnectMeter::new(std::time::Instant::now()),
    });
    let handle_shared = shared.clone();
    // Revocation and expiry run on the caller's (actix) runtime: they only send to outboxes.
    actix::spawn(auth::watch(shared.clone()));
    let workers = if cfg.workers == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        cfg.workers
    };
    ntex_mqtt::set_unknown_ack_hook(count_unknown_ack);
    let (tx, rx) = std::sync::mpsc::channel();
    let thread = std::thread::Builder::new()
        .name("mqtt".into())
        .spawn(move || {
            let res = ntex_rt::System::build()
                .name("mqtt")
                .disable_signals()
                .build(ntex_net::DefaultRuntime)
                .block_on(async move {
                    let mut builder = ntex_server::net::build();
                    if let Some(listener) = listener {
                        let sh = shared.clone();
                        builder = builder.listen(
                            "mqtt",
                            listener,
                            SharedCfg::new("MQTT").add(service_config(&shared.cfg)),
                            async move |_| {
                                // Failures before or during the handshake (garbage, a first
                                // packet that is not CONNECT, a bad protocol name or level, no
                                // CONNECT in time) never reach the session services: count here.
                                tls::SniffTls(
                                    ntex_service::service(mqtt_service(sh.clone(), false))
                                        .map_err(count_handshake_error),
                                )
                            },
                        )?;
                    }
                    if let Some((l, acceptor)) = tls {
                        let sh = shared.clone();
                        builder = builder.listen(
                            "mqtt-tls",
                            l,
                            SharedCfg::new("MQTT-TLS").add(service_config(&shared.cfg)),
                            async move |_| {
                                ntex_service::service(acceptor.clone())
                                    .and_then(mqtt_service(sh.clone(), true))
                                    .map_err(count_handshake_error)
                            },
                        )?;
                    }
                    builder = ws::listen(builder, &shared, ws, wss)?;
                    let srv = builder
                        .workers(workers)
                        .shutdown_timeout(Seconds(2))
                        .disable_signals()
                        .run();
                    let _ = tx.send(srv.clone());
                    let _ = srv.await;
                    Ok::<_, std::io::Error>(())
                });
            if let Err(e) = res {
                tracing::error!(error = %e, "mqtt server failed");
            }
        })?;
    let server = rx
        .recv()
        .map_err(|_| std::io::Error::other("mqtt server thread failed to start"))?;
    Ok(MqttHandle {
        addr,
        tls_addr,
        ws_addr,
        wss_addr,
        wss_tls,
        shared: handle_shared,
        server,
        thread,
    })
}

#[cfg(test)]
mod tests {
    use ntex_bytes::BytesMut;
    use ntex_codec::Decoder;

    /// A QoS 0 PUBLISH to `t` with a payload of `len` bytes (v5: with an empty property list).
    fn publish(v5: bool, len: usize) -> Vec<u8> {
        let mut body = vec![0, 1, b't'];
        if v5 {
            body.push(0);
        }
        body.resize(body.len() + len, 7);
        let mut wire = vec![0x30];
        let mut n = body.len();
        loop {
            let b = (n % 128) as u8;
            n /= 128;
            wire.push(if n > 0 { b | 0x80 } else { b });
            if n == 0 {
                break;
            }
        }
        wire.extend(body);
        wire
    }

    /// What the vendored codec yields for `wire` cut `short` bytes before its end, then for the
    /// rest: (payload bytes with the first item, whether the first part yielded anything).
    macro_rules! split_decode {
        ($codec:ty, $decoded:path, $wire:expr, $short:expr) => {{
            let codec = <$codec>::default();
            codec.set_min_chunk_size(32 * 1024);
            let wire: Vec<u8> = $wire;
            let mut buf = BytesMut::from(&wire[..wire.len() - $short]);
            let first = codec.decode(&mut buf).expect("valid");
            let early = first.is_some();
            let item = match first {
                Some(i) => i,
                None => {
                    buf.extend_from_slice(&wire[wire.len() - $short..]);
                    codec
                        .decode(&mut buf)
                        .expect("valid")
                        .expect("whole packet")
                }
            };
            match item {
                $decoded(_, payload, _) => (payload.len(), early),
                _ => panic!("not a PUBLISH"),
            }
        }};
    }

    /// A TCP read that ends inside a small payload must not turn that PUBLISH into a streamed one:
    /// a streamed payload makes the publish service pending, and ntex then spawns a task for every
    /// later packet of the next read (vendor/ntex-mqtt/PATCHES.md, patch 12).
    #[test]
    fn small_payloads_decode_whole_large_ones_stream() {
        use ntex_mqtt::{v3::codec as c3, v5::codec as c5};
        for short in [1, 10, 63] {
            let v3 = split_decode!(c3::Codec, c3::Decoded::Publish, publish(false, 64), short);
            let v5 = split_decode!(c5::Codec, c5::Decoded::Publish, publish(true, 64), short);
            assert_eq!(v3, (64, false), "v3, {short} bytes short");
            assert_eq!(v5, (64, false), "v5, {short} bytes short");
        }
        // Above the chunk size a payload still streams: the header comes first, without waiting.
        let big = 40 * 1024;
        let v3 = split_decode!(c3::Codec, c3::Decoded::Publish, publish(false, big), 1000);
        let v5 = split_decode!(c5::Codec, c5::Decoded::Publish, publish(true, big), 1000);
        assert!(v3.1 && v3.0 < big, "v3 streams: {v3:?}");
        assert!(v5.1 && v5.0 < big, "v5 streams: {v5:?}");
    }

    /// A stop for a silent client (keep-alive, a frame that stopped) is a lost connection, not
    /// the client's error; malformed input is.
    #[test]
    fn protocol_stops_map_to_end_reasons() {
        use super::end_of_protocol_error as end;
        use evgrid_actors::mqtt::lifecycle::EndReason;
        use ntex_mqtt::error::{DecodeError, EncodeError, MqttProtocolError as E};
        assert_eq!(end(&E::KeepAliveTimeout), EndReason::KeepAliveTimeout);
        assert_eq!(end(&E::ReadTimeout), EndReason::ConnectionLost);
        assert_eq!(
            end(&E::Decode(DecodeError::InvalidLength)),
            EndReason::ProtocolError
        );
        assert_eq!(
            end(&E::Encode(EncodeError::OverMaxPacketSize)),
            EndReason::ServerError
        );
        use super::{BAD_TOPIC, EdgeError, PAYLOAD_READ_FAILED, end_of_edge_error as edge};
        assert_eq!(
            edge(&EdgeError::Closed(PAYLOAD_READ_FAILED)),
            EndReason::ConnectionLost
        );
        assert_eq!(
            edge(&EdgeError::Closed(BAD_TOPIC)),
            EndReason::ProtocolError
        );
        assert_eq!(
            edge(&EdgeError::Closed(super::NOT_AUTHORIZED)),
            EndReason::AuthorizationError
        );
        assert_eq!(
            edge(&EdgeError::Closed(super::QUOTA_EXCEEDED)),
            EndReason::QuotaExceeded
        );
        assert_eq!(
            edge(&EdgeError::Closed("router unavailable")),
            EndReason::ServerError
        );
    }

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
            .collect()
    }

    /// A PUBLISH whose topic length (with the packet id; v5: and the properties) exceeds its
    /// remaining length is malformed. ntex-mqtt 9.0.0 subtracted anyway: a panic with overflow
    /// checks, and in a release build a payload of nearly 4 GiB that swallowed the rest of the
    /// connection (vendor/ntex-mqtt/PATCHES.md, patch 24). The first input of each pair is what
    /// the `mqtt_v3` / `mqtt_v5` fuzz targets found (a leading chunk-size byte, then a CONNECT
    /// and the bad PUBLISH); the second is the smallest such packet. Both panicked before.
    #[test]
    fn publish_header_longer_than_its_packet_is_an_error() {
        use crate::fuzzing::{mqtt_v3, mqtt_v5};
        use ntex_mqtt::error::DecodeError::InvalidLength;
        let found_v3 = unhex(
            "03100e00044d5154540402003c00026332320000002b00017878787878787878780002012302a270020002",
        );
        assert_eq!(mqtt_v3(&found_v3), Err(InvalidLength));
        // QoS 0, remaining length 2, topic length 5.
        assert_eq!(mqtt_v3(&[0, 0x30, 2, 0, 5]), Err(InvalidLength));
        let found_v5 = unhex(concat!(
            "00103200044d5154540502001e231100000e102100142700010000220005170119012600016b000176150001",
            "6d160001640002633531300003612f62310101020000003c0300106170706c69636174696f6e2f6a736f6e08",
            "0003722f74090004636f7272260001780001792300017b7d300b000003230001616c69611500016d16000164",
            "0002633530390003",
        ));
        assert_eq!(mqtt_v5(&found_v5), Err(InvalidLength));
        // QoS 0, remaining length 3: topic "a" (3 bytes) and a property length of 5.
        let mut small_v5 = vec![0, 0x30, 3, 0, 1, b'a', 5];
        small_v5.resize(20, 0);
        assert_eq!(mqtt_v5(&small_v5), Err(InvalidLength));
    }
}
