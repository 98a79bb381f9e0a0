//! MQTT 3.1.1 handlers: CONNECT, PUBLISH, SUBSCRIBE/UNSUBSCRIBE/DISCONNECT, and the v3 sink.

use std::num::NonZeroU16;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use evgrid_actors::bridge::RouteError;
use evgrid_actors::identity::directory::Credentials;
use evgrid_actors::metrics::METRICS;
use evgrid_actors::mqtt::broker::OpenError;
use evgrid_actors::mqtt::lifecycle::EndReason;
use evgrid_actors::mqtt::message::{AppMessage, CloseReason, OutMsg, owned_str};
use evgrid_actors::mqtt::router::SubReq;
use evgrid_actors::mqtt::session::Will;
use evgrid_actors::mqtt::trie::{SubOpts, parse_filter, validate_topic};
use ntex_bytes::{ByteString, Bytes};
use ntex_mqtt::v3::codec::{self, ConnectAckReason};
use ntex_mqtt::v3::{self as mqtt, ProtocolMessage, ProtocolMessageAck};
use ntex_util::future::Either;
use ntex_util::time::Seconds;

use super::conn::{self, Conn, Routed};
use super::pump::Sink;
use super::service::Reply;
use super::{EdgeError, Shared, qos_from, send_timeout};

pub(super) type Session = mqtt::Session<Conn>;

/// A broker-assigned client id, unique for this process.
pub(crate) fn assign_client_id(sh: &Shared) -> ByteString {
    let n = sh.next_conn.fetch_add(1, Ordering::Relaxed);
    ByteString::from(format!("evgrid-{}-{n:x}", std::process::id()))
}

fn refuse(h: mqtt::Connect, code: ConnectAckReason) -> mqtt::ConnectAck<Conn> {
    METRICS.connections_refused.inc();
    h.failed(code)
}

pub(super) async fn connect(
    h: mqtt::Connect,
    sh: Arc<Shared>,
    tls: bool,
) -> Result<mqtt::ConnectAck<Conn>, EdgeError> {
    let cfg = &sh.cfg;
    // What the TLS handshake told (verified client certificate, SNI), for authentication.
    let peer = tls.then(|| super::tls::peer_tls(h.io()));
    let pkt = h.packet();
    if METRICS.connections.get() >= cfg.max_connections as i64 {
        return Ok(refuse(h, ConnectAckReason::ServiceUnavailable));
    }
    // Over the namespace's connects per second: v3.1.1 has no quota code, 0x03 as for the
    // session limit.
    let Ok(quota) = super::quota::on_connect(&sh, &pkt.client_id) else {
        return Ok(refuse(h, ConnectAckReason::ServiceUnavailable));
    };
    // v3.1.1 cannot tell a client to use a shorter keep-alive, so (like Mosquitto) refuse it.
    if pkt.keep_alive > cfg.max_keepalive {
        return Ok(refuse(h, ConnectAckReason::IdentifierRejected));
    }
    let client_id = if pkt.client_id.is_empty() {
        // [MQTT-3.1.3-7], [MQTT-3.1.3-8]: only with a clean session.
        if !pkt.clean_session {
            return Ok(refuse(h, ConnectAckReason::IdentifierRejected));
        }
        assign_client_id(&sh)
    } else {
        owned_str(&pkt.client_id)
    };
    let will = match &pkt.last_will {
        None => None,
        Some(w) => {
            if validate_topic(&w.topic, sh.limits).is_err() || (w.qos as u8) > cfg.max_qos {
                return Ok(refuse(h, ConnectAckReason::NotAuthorized));
            }
            Some(Will {
                msg: AppMessage {
                    topic: w.topic.clone(),
                    payload: w.message.clone(),
                    qos: w.qos as u8,
                    retain: w.retain,
                    props: None,
                    expires_at: None,
                    publisher: None,
                }
                .detached(),
                delay_secs: 0,
            })
        }
    };
    let window = cfg.max_inflight as usize;
    // A persistent v3 session never expires by itself; the server's cap applies, and the
    // namespace's maximumSessionExpiryInHours while its topicSpacesConfiguration is enabled.
    let expiry = if pkt.clean_session {
        0
    } else {
        let cap = sh.bridge.max_session_expiry_secs().unwrap_or(u32::MAX);
        cfg.max_session_expiry.min(cap)
    };
    let keep_alive = pkt.keep_alive;
    let cert = peer.as_ref().and_then(super::auth::cert_info);
    let creds = Credentials {
        client_id: &client_id,
        username: pkt.username.as_deref(),
        password: pkt.password.as_deref(),
        cert: cert.as_ref(),
        ..Default::default()
    };
    let will_topic = pkt.last_will.as_ref().map(|w| &*w.topic);
    let admitted =
        match super::auth::admit(&sh, &creds, &client_id, will_topic, !pkt.clean_session).await {
            Ok(a) => a,
            Err(r) => return Ok(refuse(h, r.v3())),
        };
    let auth_name = ByteString::from(admitted.id.auth_name.as_str());
    let opened = conn::open(
        &sh,
        &client_id,
        Some(&auth_name),
        pkt.clean_session,
        window,
        expiry,
        will,
    )
    .await;
    let (mut state, present, writer) = match opened {
        Ok(o) => o,
        // v3.1.1 has no code for a quota: 0x03, server unavailable (as Mosquitto answers).
        Err(OpenError::TooManySessions) => {
            tracing::debug!(client_id = %client_id, "session limit reached");
            return Ok(refuse(h, ConnectAckReason::ServiceUnavailable));
        }
        Err(OpenError::Unavailable) => {
            return Ok(refuse(h, ConnectAckReason::ServiceUnavailable));
        }
    };
    state.authorize(
        admitted,
        pkt.clean_session,
        writer.outbox(),
        pkt.username.clone(),
    );
    if let Some(p) = peer {
        super::tls::log_peer(&client_id, &p);
        state.tls = Some(Box::new(p));
    }
    state.quota = quota;
    state.connected();
    let sink = h.sink();
    // [MQTT-3.2.2-1]: with a clean session, session present is always 0.
    let present = present && expiry != 0;
    let mut ack = h
        .ack(state, present)
        .max_send(Some(window as u16))
        .max_packet_size(std::num::NonZeroU32::new(cfg.max_packet_size).expect("validated"));
    // Keep-alive 0 turns the mechanism off [MQTT-3.1.2-24]; ntex would otherwise apply 30 s.
    if keep_alive == 0 {
        ack = ack.idle_timeout(Seconds(u16::MAX));
    }
    writer.start(V3Sink(sink), send_timeout(cfg));
    Ok(ack)
}

pub(super) fn publish(s: &Session, p: mqtt::Publish) -> Reply<'_, ()> {
    let conn: &Conn = s;
    let ticket = conn.ticket();
    if p.qos() == codec::QoS::AtMostOnce
        && let Some(payload) = p.take_fixed_payload()
    {
        let res = accept(conn, &p, payload, ticket).map(|msg| conn.push(ticket, msg));
        return Either::Left(std::future::ready(res));
    }
    Either::Right(Box::pin(publish_slow(conn, p, ticket)))
}

/// Validates a PUBLISH whose payload is in hand and builds its message; skips the ticket if not.
fn accept(
    conn: &Conn,
    p: &mqtt::Publish,
    payload: Bytes,
    ticket: u64,
) -> Result<AppMessage, EdgeError> {
    let pkt = p.packet();
    if validate_topic(&pkt.topic, conn.shared.limits).is_err() {
        conn.skip(ticket);
        return Err(EdgeError::Closed("topic name too long or too deep"));
    }
    if !conn.may_publish(&pkt.topic) {
        // docs/eventgrid.md §7.5: v3.1.1 has no negative acknowledgement; the client is
        // disconnected.
        super::auth::publish_denied();
        conn.skip(ticket);
        conn.ending.set(EndReason::AuthorizationError);
        return Err(EdgeError::Closed(super::NOT_AUTHORIZED));
    }
    if super::quota::admit(conn, payload.len()).is_err() {
        conn.skip(ticket);
        quota_close(conn);
        return Err(EdgeError::Closed(super::QUOTA_EXCEEDED));
    }
    Ok(message(conn, pkt, payload))
}

/// v3.1.1 has no negative acknowledgement: a client over a session quota is disconnected, as
/// Event Grid throttles 3.1.1 clients (README, "Quotas").
fn quota_close(conn: &Conn) {
    conn.ending.set(EndReason::QuotaExceeded);
    super::quota::closing(conn);
}

/// The fast path (`ntex_mqtt`'s `fast_publish`, patch 15): a QoS 0 PUBLISH that arrived whole,
/// offered before the service stack. It takes only what [`publish`] would accept; a topic to
/// refuse, and any PUBLISH while the connection is out of capacity, goes the usual way, which
/// closes the connection or waits.
pub(super) fn fast_publish(s: &Session, pkt: &codec::Publish, payload: &Bytes) -> bool {
    let conn: &Conn = s;
    if !conn.has_capacity()
        || validate_topic(&pkt.topic, conn.shared.limits).is_err()
        || !conn.may_publish(&pkt.topic)
    {
        return false;
    }
    if super::quota::admit(conn, payload.len()).is_err() {
        quota_close(conn);
        s.sink().close();
        return true;
    }
    let ticket = conn.ticket();
    conn.push(ticket, message(conn, pkt, payload.clone()));
    true
}

fn message(conn: &Conn, pkt: &codec::Publish, payload: Bytes) -> AppMessage {
    AppMessage {
        topic: pkt.topic.clone(),
        payload,
        qos: pkt.qos as u8,
        retain: pkt.retain,
        props: None,
        expires_at: None,
        publisher: Some(conn.session),
    }
}

/// QoS 1 and 2 (acknowledged once routed), and payloads that arrive in pieces.
async fn publish_slow(conn: &Conn, p: mqtt::Publish, ticket: u64) -> Result<(), EdgeError> {
    let payload = match p.read_all().await {
        Ok(b) => b,
        Err(_) => {
            conn.skip(ticket);
            return Err(EdgeError::Closed("payload read failed"));
        }
    };
    let msg = accept(conn, &p, payload, ticket)?;
    let pid = p.packet().packet_id.map_or(0, NonZeroU16::get);
    match conn.route(ticket, msg, pid).await {
        Routed::Ok => Ok(()),
        // MQTT subscribers have it, and sending it again would not route it (the route topic does
        // not exist, or the event is too large): counted by the bridge; v3.1.1 has no negative
        // acknowledgement.
        Routed::MqttOnly(RouteError::NoRoute(_) | RouteError::TooLarge(_)) => Ok(()),
        // Not committed to the route topic: no PUBACK, so the client sends it again.
        Routed::MqttOnly(_) => Err(EdgeError::Closed("routing into the event grid failed")),
        Routed::Failed => Err(EdgeError::Closed("routing failed")),
    }
}

pub(super) async fn protocol(
    s: &Session,
    msg: ProtocolMessage,
) -> Result<ProtocolMessageAck, EdgeError> {
    let conn: &Conn = s;
    let sh = &conn.shared;
    match msg {
        ProtocolMessage::Subscribe(mut sub) => {
            let mut reqs = Vec::new();
            let mut positions = Vec::new();
            for (i, mut t) in sub.iter_mut().enumerate() {
                // docs/eventgrid.md §7.5: an unauthorized filter gets 0x80 and no subscription.
                if parse_filter(t.topic(), sh.limits).is_ok() && conn.may_subscribe(t.topic()) {
                    positions.push(i);
                    reqs.push(SubReq {
                        filter: owned_str(t.topic()),
                        opts: SubOpts {
                            qos: (t.qos() as u8).min(sh.cfg.max_qos),
                            ..SubOpts::default()
                        },
                    });
                } else {
                    t.fail();
                }
            }
            let granted = conn.subscribe_recorded(reqs, None).await?;
            let mut next = positions.iter().zip(granted).peekable();
            for (i, mut t) in sub.iter_mut().enumerate() {
                let Some((_, granted)) = next.next_if(|(p, _)| **p == i) else {
                    continue;
                };
                match granted {
                    Some(qos) => t.confirm(qos_from(qos)),
                    None => t.fail(),
                }
            }
            Ok(sub.ack())
        }
        ProtocolMessage::Unsubscribe(unsub) => {
            let filters: Vec<ByteString> = unsub.iter().cloned().collect();
            conn.unsubscribed(&filters);
            conn.unsubscribe(filters).await?;
            Ok(unsub.ack())
        }
        ProtocolMessage::Disconnect(d) => {
            conn.ending.set(EndReason::ClientDisconnect);
            conn.graceful.set(true);
            Ok(d.ack())
        }
        ProtocolMessage::PublishRelease(r) => {
            // [MQTT-4.3.3-11]: always PUBCOMP, also for an id from an earlier connection.
            conn.qos2_release(r.packet_id.get());
            conn.record_inbound_qos2().await;
            Ok(r.ack())
        }
        other => Ok(other.ack()),
    }
}

#[derive(Clone)]
struct V3Sink(mqtt::MqttSink);

impl V3Sink {
    fn builder(&self, m: &OutMsg) -> mqtt::PublishBuilder {
        let b = self.0.publish_pkt(codec::Publish {
            dup: m.dup,
            retain: m.retain,
            qos: qos_from(m.qos),
            topic: m.msg.topic.clone(),
            packet_id: None,
            payload_size: 0,
        });
        if m.qos > 0 { b.packet_id(m.pid) } else { b }
    }
}

impl Sink for V3Sink {
    fn is_open(&self) -> bool {
        self.0.is_open()
    }
    fn is_ready(&self) -> bool {
        self.0.is_ready()
    }
    fn backpressure(&self) -> bool {
        self.0.is_write_backpressure()
    }
    fn write_buffered(&self) -> usize {
        self.0.write_buffer_len()
    }
    fn ready(&self) -> impl Future<Output = bool> {
        self.0.ready()
    }
    fn close(&self, _: CloseReason) {
        // v3.1.1 has no server DISCONNECT: the connection is just closed.
        self.0.close();
    }
    fn send0(&self, m: &OutMsg) -> Result<(), ()> {
        self.builder(m)
            .send_at_most_once(m.msg.payload.clone())
            .map_err(|_| ())
    }
    fn send1(&self, m: &OutMsg) -> Result<(), ()> {
        self.builder(m)
            .send_at_least_once_no_block(m.msg.payload.clone())
            .map_err(|_| ())
    }
    fn send2(
        &self,
        m: &OutMsg,
        received: Box<dyn FnOnce()>,
    ) -> Pin<Box<dyn Future<Output = bool>>> {
        let f = self.builder(m).send_exactly_once(m.msg.payload.clone());
        Box::pin(async move {
            match f.await {
                Ok(rec) => {
                    received();
                    rec.release().await.is_ok()
                }
                Err(_) => false,
            }
        })
    }
    fn release(&self, pid: u16) -> Pin<Box<dyn Future<Output = bool>>> {
        let Some(id) = NonZeroU16::new(pid) else {
            return Box::pin(std::future::ready(false));
        };
        let f = self.0.release_resumed(id);
        Box::pin(async move { f.await.is_ok() })
    }
    fn on_ack(&self, f: Box<dyn Fn(u16)>) {
        self.0.publish_ack_cb(move |pid, disconnected| {
            if !disconnected {
                f(pid.get());
            }
        });
    }
}

/// The v3.1.1 publish handler, for [`super::service::PublishFactory`].
pub(crate) struct Publish3;

impl super::service::Handler for Publish3 {
    type Sess = Session;
    type Req = mqtt::Publish;
    type Res = ();
    fn call(s: &Session, req: mqtt::Publish) -> impl Future<Output = Result<(), EdgeError>> {
        publish(s, req)
    }
}
