//! MQTT 5.0 handlers: CONNECT, PUBLISH, SUBSCRIBE/UNSUBSCRIBE/DISCONNECT, and the v5 sink.

use std::cell::RefCell;
use std::collections::HashMap;
use std::num::{NonZeroU16, NonZeroU32};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use evgrid_actors::bridge::RouteError;
use evgrid_actors::metrics::METRICS;
use evgrid_actors::mqtt::broker::OpenError;
use evgrid_actors::mqtt::lifecycle::EndReason;
use evgrid_actors::mqtt::message::{AppMessage, CloseReason, OutMsg, Properties, owned_str};
use evgrid_actors::mqtt::router::SubReq;
use evgrid_actors::mqtt::session::Will;
use evgrid_actors::mqtt::trie::{SubOpts, parse_filter, validate_topic};
use ntex_bytes::{ByteString, Bytes};
use ntex_mqtt::v5::codec::{
    self, ConnectAckReason, DisconnectReasonCode, PublishAckReason, SubscribeAckReason,
    UnsubscribeAckReason,
};
use ntex_mqtt::v5::{self as mqtt, ProtocolMessage, ProtocolMessageAck};
use ntex_util::future::Either;

use super::conn::{self, Conn, Routed};
use super::pump::Sink;
use super::service::Reply;
use super::{EdgeError, Shared, qos_from, send_timeout};

pub(super) type Session = mqtt::Session<Conn>;

fn refuse(h: mqtt::Connect, code: ConnectAckReason, why: &'static str) -> mqtt::ConnectAck<Conn> {
    METRICS.connections_refused.inc();
    h.fail_with(codec::ConnectAck {
        reason_code: code,
        reason_string: Some(ByteString::from_static(why)),
        ..Default::default()
    })
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
        return Ok(refuse(
            h,
            ConnectAckReason::ServerUnavailable,
            "connection limit reached",
        ));
    }
    let Ok(quota) = super::quota::on_connect(&sh, &pkt.client_id) else {
        return Ok(refuse(
            h,
            ConnectAckReason::QuotaExceeded,
            "connect quota exceeded (connects per second)",
        ));
    };
    if pkt
        .auth_method
        .as_ref()
        .is_some_and(|m| m != super::auth::CUSTOM_JWT)
    {
        // [MQTT-4.12.0-1]: CUSTOM-JWT is the one method (docs/eventgrid.md §7.4 item 4).
        return Ok(refuse(
            h,
            ConnectAckReason::BadAuthenticationMethod,
            "the only authentication method is CUSTOM-JWT",
        ));
    }
    let (client_id, assigned) = if pkt.client_id.is_empty() {
        (super::v3::assign_client_id(&sh), true)
    } else {
        (owned_str(&pkt.client_id), false)
    };
    let will = match &pkt.last_will {
        None => None,
        Some(w) => {
            if validate_topic(&w.topic, sh.limits).is_err() {
                return Ok(refuse(
                    h,
                    ConnectAckReason::TopicNameInvalid,
                    "invalid will topic",
                ));
            }
            if w.qos as u8 > cfg.max_qos {
                return Ok(refuse(
                    h,
                    ConnectAckReason::QosNotSupported,
                    "will QoS above maximum QoS",
                ));
            }
            let props = Properties {
                response_topic: w.response_topic.clone(),
                correlation_data: w.correlation_data.clone(),
                content_type: w.content_type.clone(),
                payload_utf8: w.is_utf8_payload.unwrap_or(false),
                user_properties: w.user_properties.clone(),
            };
            Some(Will {
                msg: AppMessage {
                    topic: w.topic.clone(),
                    payload: w.message.clone(),
                    qos: w.qos as u8,
                    retain: w.retain,
                    props: (props != Properties::default()).then(|| Box::new(props)),
                    expires_at: w
                        .message_expiry_interval
                        .map(|s| Instant::now() + Duration::from_secs(u64::from(s.get()))),
                    publisher: None,
                }
                .detached(),
                delay_secs: w.will_delay_interval_sec.unwrap_or(0),
            })
        }
    };
    let window = pkt
        .receive_max
        .map_or(65_535, NonZeroU16::get)
        .min(cfg.max_inflight) as usize;
    let asked_expiry = pkt.session_expiry_interval_secs;
    let cap = sh.bridge.max_session_expiry_secs().unwrap_or(u32::MAX);
    let expiry = asked_expiry.min(cfg.max_session_expiry).min(cap);
    let keep_alive = pkt.keep_alive;
    let admitted = match super::auth::admit_v5(&sh, pkt, &client_id, peer.as_ref()).await {
        Ok(a) => a,
        Err(r) => {
            // The reason string only when the client asked for problem information
            // [MQTT-3.1.2-29].
            let why = pkt
                .request_problem_info
                .then(|| ByteString::from(r.reason()));
            METRICS.connections_refused.inc();
            return Ok(h.fail_with(codec::ConnectAck {
                reason_code: r.v5(),
                reason_string: why,
                ..Default::default()
            }));
        }
    };
    let auth_name = ByteString::from(admitted.id.auth_name.as_str());
    let opened = conn::open(
        &sh,
        &client_id,
        Some(&auth_name),
        pkt.clean_start,
        window,
        expiry,
        will,
    )
    .await;
    let (mut state, present, writer) = match opened {
        Ok(o) => o,
        Err(OpenError::TooManySessions) => {
            tracing::debug!(client_id = %client_id, "session limit reached");
            return Ok(refuse(
                h,
                ConnectAckReason::QuotaExceeded,
                "session limit reached (mqtt.max_sessions)",
            ));
        }
        Err(OpenError::Unavailable) => {
            return Ok(refuse(
                h,
                ConnectAckReason::ServerUnavailable,
                "server is shutting down",
            ));
        }
    };
    state.authorize(
        admitted,
        pkt.clean_start,
        writer.outbox(),
        pkt.username.clone(),
    );
    state.problem_info.set(pkt.request_problem_info);
    state.quota = quota;
    if let Some(p) = peer {
        super::tls::log_peer(&client_id, &p);
        state.tls = Some(Box::new(p));
    }
    state.connected();
    let sink = h.sink();
    let auth_method = pkt.auth_method.clone();
    let topic_alias_max = pkt.topic_alias_max;
    let max_ka = cfg.max_keepalive;
    let mut ack = h.ack(state).max_send(Some(window as u16)).with(|a| {
        a.session_present = present;
        if assigned {
            a.assigned_client_id = Some(client_id.clone());
        }
        a.retain_available = true;
        a.wildcard_subscription_available = true;
        a.shared_subscription_available = true;
        // [MQTT-4.12.0-5]: a CONNACK answering an authentication method names it.
        a.auth_method = auth_method;
        a.subscription_identifiers_available = true;
        if asked_expiry > expiry {
            a.session_expiry_interval_secs = Some(expiry);
        }
    });
    // [MQTT-3.2.2-21]: a keep-alive above the maximum (or none at all) is replaced by the
    // server's, and the client is told with Server Keep Alive.
    if keep_alive == 0 || keep_alive > max_ka {
        ack = ack
            .with(|a| a.server_keepalive_sec = Some(max_ka))
            .keep_alive(max_ka.saturating_add(max_ka / 2));
    }
    let aliases = Rc::new(Aliases::new(topic_alias_max, cfg.max_topic_alias));
    writer.start(V5Sink(sink, aliases), send_timeout(cfg));
    Ok(ack)
}

fn props_of(p: &codec::PublishProperties) -> Option<Box<Properties>> {
    if p.response_topic.is_none()
        && p.correlation_data.is_none()
        && p.content_type.is_none()
        && !p.is_utf8_payload
        && p.user_properties.is_empty()
    {
        return None;
    }
    Some(Box::new(Properties {
        response_topic: p.response_topic.clone(),
        correlation_data: p.correlation_data.clone(),
        content_type: p.content_type.clone(),
        payload_utf8: p.is_utf8_payload,
        user_properties: p.user_properties.clone(),
    }))
}

pub(super) fn publish(s: &Session, p: mqtt::Publish) -> Reply<'_, mqtt::PublishAck> {
    let conn: &Conn = s;
    let ticket = conn.ticket();
    if p.qos() == codec::QoS::AtMostOnce
        && let Some(payload) = p.take_fixed_payload()
    {
        let res = match accept(s, &p, payload, ticket) {
            Ok(msg) => {
                conn.push(ticket, msg);
                p.ack()
            }
            Err(reason) => p.ack().reason_code(reason),
        };
        return Either::Left(std::future::ready(Ok(res)));
    }
    Either::Right(Box::pin(publish_slow(s, p, ticket)))
}

/// Validates a PUBLISH whose payload is in hand and builds its message. On failure the ticket is
/// skipped and the reason returned; a QoS 0 publisher, which gets no acknowledgement, is
/// disconnected with it.
fn accept(
    s: &Session,
    p: &mqtt::Publish,
    payload: Bytes,
    ticket: u64,
) -> Result<AppMessage, PublishAckReason> {
    let conn: &Conn = s;
    let pkt = p.packet();
    let qos = pkt.qos as u8;
    let refuse = |reason: PublishAckReason, code, why: Option<&'static str>| {
        conn.skip(ticket);
        if qos == 0 {
            conn.ending.set(EndReason::ProtocolError);
            s.sink().close_with_reason(codec::Disconnect {
                reason_code: code,
                reason_string: why.map(ByteString::from_static),
                ..Default::default()
            });
        }
        Err(reason)
    };
    if validate_topic(&pkt.topic, conn.shared.limits).is_err() {
        return refuse(
            PublishAckReason::TopicNameInvalid,
            DisconnectReasonCode::TopicNameInvalid,
            Some("topic name too long or too deep"),
        );
    }
    if !conn.may_publish(&pkt.topic) {
        // docs/eventgrid.md §7.5: QoS 1 gets PUBACK 0x87 (QoS 2 PUBREC 0x87); QoS 0, which has
        // no acknowledgement, is dropped and counted.
        super::auth::publish_denied();
        conn.skip(ticket);
        return Err(PublishAckReason::NotAuthorized);
    }
    if !payload_format_ok(pkt, &payload) {
        // [MQTT-3.3.2-4]: payload format indicator says UTF-8 and it is not.
        return refuse(
            PublishAckReason::PayloadFormatInvalid,
            DisconnectReasonCode::PayloadFormatInvalid,
            None,
        );
    }
    // Over a session quota: PUBACK/PUBREC 0x97, a QoS 0 message dropped (counted), the
    // connection kept (docs/eventgrid.md §7.2; README, "Quotas"). A QoS 2 resend of a message
    // already routed goes on to be acknowledged: a failure PUBREC would tell the client its
    // subscribers do not have it.
    if super::quota::admit(conn, payload.len()).is_err()
        && !(qos == 2 && pkt.packet_id.is_some_and(|id| conn.qos2_pending(id.get())))
    {
        conn.skip(ticket);
        return Err(PublishAckReason::QuotaExceeded);
    }
    Ok(message(conn, pkt, payload, qos))
}

fn payload_format_ok(pkt: &codec::Publish, payload: &[u8]) -> bool {
    !pkt.properties.is_utf8_payload || std::str::from_utf8(payload).is_ok()
}

/// The fast path (`ntex_mqtt`'s `fast_publish`, patch 15): a QoS 0 PUBLISH that arrived whole
/// and has no topic alias, offered before the service stack. It takes only what [`publish`]
/// would accept without a word; anything to refuse, and any PUBLISH while the connection is
/// out of capacity, goes the usual way, which answers or waits.
pub(super) fn fast_publish(s: &Session, pkt: &codec::Publish, payload: &Bytes) -> bool {
    let conn: &Conn = s;
    if !conn.has_capacity()
        || validate_topic(&pkt.topic, conn.shared.limits).is_err()
        || !payload_format_ok(pkt, payload)
        || !conn.may_publish(&pkt.topic)
    {
        return false;
    }
    // Over a session quota: dropped (and counted), as `accept` would.
    if super::quota::admit(conn, payload.len()).is_err() {
        return true;
    }
    let ticket = conn.ticket();
    conn.push(ticket, message(conn, pkt, payload.clone(), 0));
    true
}

fn message(conn: &Conn, pkt: &codec::Publish, payload: Bytes, qos: u8) -> AppMessage {
    AppMessage {
        topic: pkt.topic.clone(),
        payload,
        qos,
        retain: pkt.retain,
        props: props_of(&pkt.properties),
        expires_at: pkt
            .properties
            .message_expiry_interval
            .map(|s| Instant::now() + Duration::from_secs(u64::from(s.get()))),
        publisher: Some(conn.session),
    }
}

/// QoS 1 and 2 (acknowledged once routed), and payloads that arrive in pieces.
async fn publish_slow(
    s: &Session,
    p: mqtt::Publish,
    ticket: u64,
) -> Result<mqtt::PublishAck, EdgeError> {
    let conn: &Conn = s;
    let payload = match p.read_all().await {
        Ok(b) => b,
        Err(_) => {
            conn.skip(ticket);
            return Err(EdgeError::Closed("payload read failed"));
        }
    };
    let msg = match accept(s, &p, payload, ticket) {
        Ok(msg) => msg,
        Err(reason) => return Ok(p.ack().reason_code(reason)),
    };
    let pid = p.packet().packet_id.map_or(0, NonZeroU16::get);
    let qos2 = p.packet().qos == codec::QoS::ExactlyOnce;
    Ok(match conn.route(ticket, msg, pid).await {
        Routed::Ok => p.ack(),
        // MQTT subscribers have it; the event grid does not (docs/eventgrid.md §7.6).
        Routed::MqttOnly(e) => {
            if qos2 {
                // A failure PUBREC ends the exchange: PUBREL will not come.
                conn.qos2_abort(pid);
            }
            let code = match e {
                RouteError::NoRoute(_) | RouteError::TooLarge(_) => {
                    PublishAckReason::ImplementationSpecificError
                }
                // An administrative limit: the data directory's free-space floor.
                RouteError::Full(_) => PublishAckReason::QuotaExceeded,
                _ => PublishAckReason::UnspecifiedError,
            };
            let ack = p.ack().reason_code(code);
            match conn.problem_info.get() {
                true => ack.reason(ByteString::from(format!(
                    "not routed into the event grid: {e}"
                ))),
                false => ack,
            }
        }
        Routed::Failed => p.ack().reason_code(PublishAckReason::UnspecifiedError),
    })
}

pub(super) async fn protocol(
    s: &Session,
    msg: ProtocolMessage,
) -> Result<ProtocolMessageAck, EdgeError> {
    let conn: &Conn = s;
    let sh = &conn.shared;
    match msg {
        ProtocolMessage::Subscribe(mut sub) => {
            let sub_id = sub.packet().id.map(NonZeroU32::get);
            let mut reqs = Vec::new();
            let mut positions = Vec::new();
            for (i, mut t) in sub.iter_mut().enumerate() {
                let o = *t.options();
                match parse_filter(t.topic(), sh.limits) {
                    // [MQTT-3.8.3-4]: no-local on a shared subscription is a protocol error.
                    Ok(f) if f.group.is_some() && o.no_local => {
                        t.fail(SubscribeAckReason::TopicFilterInvalid)
                    }
                    // docs/eventgrid.md §7.5: SUBACK 0x87, no subscription.
                    Ok(_) if !conn.may_subscribe(t.topic()) => {
                        t.fail(SubscribeAckReason::NotAuthorized)
                    }
                    Ok(_) => {
                        positions.push(i);
                        reqs.push(SubReq {
                            filter: owned_str(t.topic()),
                            opts: SubOpts {
                                qos: (o.qos as u8).min(sh.cfg.max_qos),
                                no_local: o.no_local,
                                retain_as_published: o.retain_as_published,
                                retain_handling: o.retain_handling as u8,
                                sub_id,
                            },
                        });
                    }
                    Err(_) => t.fail(SubscribeAckReason::TopicFilterInvalid),
                }
            }
            let granted = conn.subscribe_recorded(reqs, sub_id).await?;
            let mut next = positions.iter().zip(granted).peekable();
            for (i, mut t) in sub.iter_mut().enumerate() {
                let Some((_, granted)) = next.next_if(|(p, _)| **p == i) else {
                    continue; // refused above
                };
                match granted {
                    Some(qos) => t.confirm(qos_from(qos)),
                    None => t.fail(SubscribeAckReason::QuotaExceeded),
                }
            }
            Ok(sub.ack())
        }
        ProtocolMessage::Unsubscribe(mut unsub) => {
            let filters: Vec<ByteString> = unsub.iter().cloned().collect();
            conn.unsubscribed(&filters);
            let existed = conn.unsubscribe(filters).await?;
            for (mut t, existed) in unsub.iter_mut().zip(existed) {
                if !existed {
                    t.fail(UnsubscribeAckReason::NoSubscriptionExisted);
                }
            }
            Ok(unsub.ack())
        }
        ProtocolMessage::Disconnect(d) => {
            conn.ending.set(EndReason::ClientDisconnect);
            let p = d.packet();
            conn.graceful
                .set(p.reason_code != DisconnectReasonCode::DisconnectWithWillMessage);
            if let Some(e) = p.session_expiry_interval_secs {
                conn.expiry_override.set(Some(e));
            }
            Ok(d.ack())
        }
        ProtocolMessage::PublishRelease(r) => {
            // [MQTT-4.3.3-11]: PUBCOMP; an id this session never routed gets 0x92.
            if conn.qos2_release(r.packet().packet_id.get()) {
                conn.record_inbound_qos2().await;
                Ok(r.ack())
            } else {
                Ok(r.reason_code(codec::PublishAck2Reason::PacketIdNotFound)
                    .ack())
            }
        }
        ProtocolMessage::Auth(a)
            if super::auth::is_reauth(
                a.packet().auth_method.as_deref(),
                u8::from(a.packet().reason_code),
            ) =>
        {
            Ok(super::auth::reauth_v5(s, a))
        }
        m @ ProtocolMessage::Auth(_) => {
            // Only re-authentication with CUSTOM-JWT is offered; any other AUTH packet is a
            // protocol error [MQTT-4.12.0-6].
            METRICS.protocol_errors.inc();
            conn.ending.set(EndReason::ProtocolError);
            // Written here: ntex-mqtt 9.0 closes the socket before a DISCONNECT returned as the
            // control answer goes out.
            s.sink().close_with_reason(codec::Disconnect {
                reason_code: DisconnectReasonCode::ProtocolError,
                reason_string: Some(ByteString::from_static(
                    "AUTH without an authentication method",
                )),
                ..Default::default()
            });
            Ok(m.disconnect())
        }
        other => Ok(other.ack()),
    }
}

#[derive(Clone)]
struct V5Sink(mqtt::MqttSink, Rc<Aliases>);

/// Topic aliases this connection's outbound PUBLISH packets use ([MQTT-3.3.2-12]): as many as
/// the client's Topic Alias Maximum allows, capped by `mqtt.max_topic_alias`, handed out to the
/// first topics sent and kept for the connection (no eviction: the topics a device receives
/// repeat). An alias counts as known to the client only once the packet that set it was handed
/// to the writer.
struct Aliases {
    max: u16,
    map: RefCell<HashMap<ByteString, NonZeroU16>>,
}

#[derive(Clone, Copy)]
enum AliasUse {
    None,
    /// Sent before: the topic goes empty.
    Known(NonZeroU16),
    /// Set by this packet (the topic goes with it).
    New(NonZeroU16),
}

impl Aliases {
    fn new(client_max: u16, server_max: u16) -> Aliases {
        Aliases {
            max: client_max.min(server_max),
            map: RefCell::default(),
        }
    }

    fn lookup(&self, topic: &ByteString, may_set: bool) -> AliasUse {
        if self.max == 0 {
            return AliasUse::None;
        }
        let map = self.map.borrow();
        if let Some(a) = map.get(topic) {
            return AliasUse::Known(*a);
        }
        match NonZeroU16::new(map.len() as u16 + 1) {
            Some(a) if may_set && map.len() < self.max as usize => AliasUse::New(a),
            _ => AliasUse::None,
        }
    }

    fn sent(&self, topic: &ByteString, used: AliasUse) {
        if let AliasUse::New(a) = used {
            self.map.borrow_mut().insert(topic.clone(), a);
        }
    }
}

impl V5Sink {
    fn builder(&self, m: &OutMsg, alias: AliasUse) -> mqtt::PublishBuilder {
        let mut props = codec::PublishProperties::default();
        if let Some(p) = &m.msg.props {
            props.response_topic = p.response_topic.clone();
            props.correlation_data = p.correlation_data.clone();
            props.content_type = p.content_type.clone();
            props.is_utf8_payload = p.payload_utf8;
            props.user_properties = p.user_properties.clone();
        }
        if let Some(at) = m.msg.expires_at {
            // [MQTT-3.3.2-6]: the subscriber sees the time that is left.
            let left = at
                .saturating_duration_since(Instant::now())
                .as_secs()
                .max(1);
            props.message_expiry_interval = NonZeroU32::new(left.min(u64::from(u32::MAX)) as u32);
        }
        props.subscription_ids = m
            .sub_ids
            .iter()
            .filter_map(|i| NonZeroU32::new(*i))
            .collect();
        let topic = match alias {
            AliasUse::None => m.msg.topic.clone(),
            AliasUse::Known(a) => {
                props.topic_alias = Some(a);
                ByteString::new()
            }
            AliasUse::New(a) => {
                props.topic_alias = Some(a);
                m.msg.topic.clone()
            }
        };
        let b = self.0.publish_pkt(codec::Publish {
            dup: m.dup,
            retain: m.retain,
            qos: qos_from(m.qos),
            packet_id: None,
            topic,
            payload_size: 0,
            properties: props,
        });
        if m.qos > 0 { b.packet_id(m.pid) } else { b }
    }
}

impl Sink for V5Sink {
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
    fn close(&self, reason: CloseReason) {
        let reason_code = match reason {
            CloseReason::SessionTakenOver => DisconnectReasonCode::SessionTakenOver,
            CloseReason::ServerShuttingDown => DisconnectReasonCode::ServerShuttingDown,
            CloseReason::SendTimeout => DisconnectReasonCode::QuotaExceeded,
            CloseReason::NotAuthenticated | CloseReason::NotAuthorized => {
                DisconnectReasonCode::NotAuthorized
            }
        };
        self.0.close_with_reason(codec::Disconnect {
            reason_code,
            ..Default::default()
        });
    }
    fn send0(&self, m: &OutMsg) -> Result<(), ()> {
        let alias = self.1.lookup(&m.msg.topic, true);
        self.builder(m, alias)
            .send_at_most_once(m.msg.payload.clone())
            .map_err(|_| ())?;
        self.1.sent(&m.msg.topic, alias);
        Ok(())
    }
    fn send1(&self, m: &OutMsg) -> Result<(), ()> {
        let alias = self.1.lookup(&m.msg.topic, true);
        self.builder(m, alias)
            .send_at_least_once_no_block(m.msg.payload.clone())
            .map_err(|_| ())?;
        self.1.sent(&m.msg.topic, alias);
        Ok(())
    }
    fn send2(
        &self,
        m: &OutMsg,
        received: Box<dyn FnOnce()>,
    ) -> Pin<Box<dyn Future<Output = bool>>> {
        // Only an alias the client knows: whether this packet goes out is known later.
        let alias = self.1.lookup(&m.msg.topic, false);
        let f = self
            .builder(m, alias)
            .send_exactly_once(m.msg.payload.clone());
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
        self.0.publish_ack_cb(move |ack, disconnected| {
            if !disconnected {
                f(ack.packet_id.get());
            }
        });
    }
}

/// The v5 publish handler, for [`super::service::PublishFactory`].
pub(crate) struct Publish5;

impl super::service::Handler for Publish5 {
    type Sess = Session;
    type Req = mqtt::Publish;
    type Res = mqtt::PublishAck;
    fn call(
        s: &Session,
        req: mqtt::Publish,
    ) -> impl Future<Output = Result<mqtt::PublishAck, EdgeError>> {
        publish(s, req)
    }
}
