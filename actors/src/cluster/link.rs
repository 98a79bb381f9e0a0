//! The MQTT side of the cluster link: messages, interest and client-id claims between nodes.
//!
//! Owns this node's NATS subscriptions and the tasks that feed what arrives on them to the
//! local broker. Each node serves its own connections. A message published here is routed here
//! and published once on `{prefix}.m.{escaped topic}`; each node subscribes only to the subjects
//! of the [`subject::Covers`] of its sessions' filters (NATS carries a message to the nodes with
//! interest in it and to no other), and routes what arrives through its own routing shards, which
//! match exactly. The connection is opened with `no_echo`, so a node never gets its own messages
//! back. A shared subscription (`$share/{group}/{filter}`) is a NATS queue subscription on the
//! subjects of exactly its filter, in a queue group named after group and filter, on a second
//! connection (without `no_echo`: this node's own messages must reach it too); NATS hands each
//! message to one node of the group, which gives it to one of its members. Messages are never
//! given to shared groups directly on any node, so each goes to one member cluster-wide.
//! A CONNECT here publishes `{prefix}.c.{escaped client id}` with the time of the connect;
//! a node holding a session of that client id attached earlier ends it, as a takeover would on
//! one node (comparing wall clocks: nodes must keep theirs synchronised, as NTP does, to within
//! the time a client takes to reconnect).
//!
//! What the link promises: messages of one publisher keep their order on every node (one NATS
//! connection, one writer task, one subscription per cover); while connected, a QoS 1/2 message
//! is acknowledged to its publisher after the NATS server has it (a flush after the write), and a
//! SUBACK is sent after the node's new subscriptions reached its NATS server. It is core NATS:
//! at most once between nodes. A node cut off from NATS serves its own clients on; what it
//! could not hand over is counted (`evgrid_cluster_mqtt_not_forwarded_total`), never waited for.
//!
//! Persistent sessions move: a CONNECT of a persistent session also puts the node's name under
//! the client id in the KV bucket `{prefix}-sessions`. A CONNECT without clean start on a node
//! that holds no session of that client id looks it up there and asks the named node
//! (`{prefix}.s.{node}.{client id}`, request and reply); that node hands the session over
//! (subscriptions, QoS 1/2 messages, inbound QoS 2 ids) and forgets it, and this one adopts it
//! before the CONNACK (session present).
//!
//! Retained messages are the cluster's: a retained PUBLISH is also put in the JetStream KV bucket
//! `{prefix}-retained` (key: the escaped topic; an empty payload purges it) before its PUBACK,
//! and every node applies the bucket's values at start and its changes as they come.
//!
//! Must never block an MQTT or actor thread: the [`Link`] handle only queues into channels.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{FutureExt, StreamExt};
use ntex_bytes::ByteString;
use tokio::sync::{mpsc, oneshot};

use super::{Settings, handover, retained, set_connected, subject};
use crate::metrics::CLUSTER;
use crate::model::clock::now_ms;
use crate::mqtt::broker::Broker;
use crate::mqtt::message::AppMessage;
use crate::mqtt::persist::{decode_retained, encode_retained_into};
use crate::mqtt::remote::{Forwarded, Moved, Remote};

/// Header bit of a forwarded message: it was published with RETAIN.
const RETAIN: u8 = 1;
/// Batches of published messages the link queues while NATS is slow; beyond, QoS 0 messages are
/// not forwarded (counted) and QoS 1/2 publishes fail.
const FORWARD_QUEUE: usize = 4096;
/// Most messages from one subscription routed as one batch.
const BATCH: usize = 256;
/// How long a QoS 1/2 acknowledgement or a SUBACK waits for the NATS server before giving up.
pub(super) const SERVER_WAIT: Duration = Duration::from_secs(5);
/// Longest subject published or subscribed (a topic of `mqtt.max_topic_length` can be longer
/// once escaped; such a topic stays on its node).
const MAX_SUBJECT: usize = 3_500;

struct Outbound {
    msgs: Vec<AppMessage>,
    ack: Option<oneshot::Sender<()>>,
}

enum Control {
    Interest(ByteString, bool),
    Claim(ByteString, u64, bool),
    Released(ByteString),
    Settled(oneshot::Sender<()>),
}

/// What finding and fetching a session needs, once the link has it.
type Directory = Option<(async_nats::Client, async_nats::jetstream::kv::Store)>;

/// The handle the broker holds ([`Remote`]): queues work for the link's thread.
pub struct Link {
    out: mpsc::Sender<Outbound>,
    control: mpsc::UnboundedSender<Control>,
    directory: tokio::sync::watch::Receiver<Directory>,
    node: String,
    prefix: String,
}

impl Remote for Link {
    fn forward(&self, msgs: &[AppMessage], wait: bool) -> Option<Forwarded> {
        let (ack, rx) = match wait {
            true => {
                let (tx, rx) = oneshot::channel();
                (Some(tx), Some(rx))
            }
            false => (None, None),
        };
        if self
            .out
            .try_send(Outbound {
                msgs: msgs.to_vec(),
                ack,
            })
            .is_err()
        {
            CLUSTER.not_forwarded.add(msgs.len() as u64);
            return None;
        }
        rx
    }

    fn interest(&self, filter: &ByteString, added: bool) {
        let _ = self.control.send(Control::Interest(filter.clone(), added));
    }

    fn claim(&self, client_id: &ByteString, at_us: u64, persistent: bool) {
        let _ = self
            .control
            .send(Control::Claim(client_id.clone(), at_us, persistent));
    }

    fn released(&self, client_id: &ByteString) {
        let _ = self.control.send(Control::Released(client_id.clone()));
    }

    fn connected(&self) -> bool {
        super::connected() == Some(true)
    }

    fn fetch(
        &self,
        client_id: &ByteString,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Option<Moved>> + Send>> {
        let dir = self.directory.borrow().clone();
        let (node, prefix, id) = (self.node.clone(), self.prefix.clone(), client_id.clone());
        Box::pin(async move {
            let (client, kv) = dir?;
            if !connected(&client) {
                return None;
            }
            let key = subject::client_key(&id);
            let owner = tokio::time::timeout(SERVER_WAIT, kv.get(&key))
                .await
                .ok()?
                .ok()??;
            let owner = std::str::from_utf8(&owner).ok()?;
            if owner == node {
                return None;
            }
            let asked = format!("{prefix}.s.{}.{key}", subject::escape_one(owner));
            let body = bytes::Bytes::copy_from_slice(id.as_bytes());
            let reply = tokio::time::timeout(SERVER_WAIT, client.request(asked, body))
                .await
                .ok()?
                .ok()?;
            let moved = handover::decode_moved(&reply.payload);
            if moved.is_some() {
                CLUSTER.sessions_moved_in.inc();
            }
            moved
        })
    }

    fn settled(&self) -> Option<Forwarded> {
        let (tx, rx) = oneshot::channel();
        self.control.send(Control::Settled(tx)).ok()?;
        Some(rx)
    }
}

/// The running link: its thread, stopped by [`Cluster::stop`].
pub struct Cluster {
    thread: Option<std::thread::JoinHandle<()>>,
    stop: Option<oneshot::Sender<()>>,
}

impl Cluster {
    /// Starts the link's thread and joins `broker` to the cluster. The connection is made (and
    /// remade) in the background: the node starts while NATS is unreachable and reports it
    /// (`/readyz`, `evgrid_cluster_connected`).
    pub fn start(settings: Settings, broker: Broker) -> std::io::Result<Cluster> {
        let mut addrs = Vec::with_capacity(settings.urls.len());
        for u in &settings.urls {
            addrs.push(u.parse::<async_nats::ServerAddr>().map_err(|e| {
                std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{u}: {e}"))
            })?);
        }
        let (out_tx, out_rx) = mpsc::channel(FORWARD_QUEUE);
        let (ctl_tx, ctl_rx) = mpsc::unbounded_channel();
        let (stop_tx, stop_rx) = oneshot::channel();
        let (dir_tx, dir_rx) = tokio::sync::watch::channel(None);
        let link = Arc::new(Link {
            out: out_tx,
            control: ctl_tx,
            directory: dir_rx,
            node: settings.node.clone(),
            prefix: settings.prefix.clone(),
        });
        if broker.set_remote(link).is_err() {
            return Err(std::io::Error::other("the broker is already in a cluster"));
        }
        set_connected(false);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let thread = std::thread::Builder::new()
            .name("evgrid-cluster".into())
            .spawn(move || {
                rt.block_on(run(
                    settings, addrs, broker, out_rx, ctl_rx, stop_rx, dir_tx,
                ))
            })?;
        Ok(Cluster {
            thread: Some(thread),
            stop: Some(stop_tx),
        })
    }

    /// Flushes what is queued for NATS (bounded) and closes the connection.
    pub fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn run(
    s: Settings,
    addrs: Vec<async_nats::ServerAddr>,
    broker: Broker,
    out: mpsc::Receiver<Outbound>,
    control: mpsc::UnboundedReceiver<Control>,
    stop: oneshot::Receiver<()>,
    directory: tokio::sync::watch::Sender<Directory>,
) {
    let client = match options(&s, true).connect(addrs.clone()).await {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot use the NATS cluster; this node serves alone");
            return;
        }
    };
    // Shared groups' queue subscriptions on a connection of their own: they must get the
    // messages this node publishes too (the other connection has `no_echo`), since NATS may
    // choose this node's member for them.
    let shared = match options(&s, false).connect(addrs).await {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot use the NATS cluster; this node serves alone");
            return;
        }
    };
    // Event callbacks miss a connection made before they were installed.
    if connected(&client) {
        set_connected(true);
    }
    let messages = format!("{}.m", s.prefix);
    let claims = format!("{}.c", s.prefix);
    match client.subscribe(format!("{claims}.>")).await {
        Ok(sub) => drop(tokio::spawn(takeovers(sub, broker.clone()))),
        Err(e) => tracing::error!(error = %e, "no takeovers across nodes: subscribing failed"),
    }
    // Requests for this node's persistent sessions, from the nodes their clients moved to.
    let asks = format!("{}.s.{}", s.prefix, subject::escape_one(&s.node));
    match client.subscribe(format!("{asks}.>")).await {
        Ok(sub) => drop(tokio::spawn(handover::hand_overs(
            sub,
            client.clone(),
            broker.clone(),
        ))),
        Err(e) => tracing::error!(error = %e, "no session handover: subscribing failed"),
    }
    let (sessions_tx, sessions_rx) = tokio::sync::watch::channel(None);
    let dir_client = client.clone();
    let sessions_bucket = tokio::spawn({
        let (js, name, replicas) = (
            async_nats::jetstream::new(client.clone()),
            format!("{}-sessions", s.prefix),
            s.replicas,
        );
        async move {
            let kv = open_bucket(
                &js,
                &name,
                "evgrid: which node holds each persistent MQTT session",
                replicas,
            )
            .await;
            let _ = directory.send(Some((dir_client, kv.clone())));
            let _ = sessions_tx.send(Some(kv));
        }
    });
    let (bucket_tx, bucket) = tokio::sync::watch::channel(None);
    let retained = tokio::spawn(retained::retained_bucket(
        client.clone(),
        format!("{}-retained", s.prefix),
        s.replicas,
        broker.clone(),
        bucket_tx,
    ));
    let writer = tokio::spawn(writer(client.clone(), out, messages.clone(), bucket));
    let links = Links {
        sessions: sessions_rx,
        client: client.clone(),
        shared,
        groups: HashMap::new(),
        broker,
        messages,
        claims,
        covers: subject::Covers::default(),
        subs: HashMap::new(),
        node: s.node.clone(),
    };
    tokio::select! {
        _ = links.serve(control) => {}
        _ = stop => {}
    }
    writer.abort();
    retained.abort();
    sessions_bucket.abort();
    let _ = tokio::time::timeout(Duration::from_secs(2), client.flush()).await;
}

pub(super) fn connected(client: &async_nats::Client) -> bool {
    client.connection_state() == async_nats::connection::State::Connected
}

/// How this node connects; `main`: the connection that publishes and watches its state.
fn options(s: &Settings, main: bool) -> async_nats::ConnectOptions {
    let mut opts = async_nats::ConnectOptions::new()
        .retry_on_initial_connect()
        .max_reconnects(None);
    opts = match main {
        true => opts.name(&s.node).no_echo().event_callback(|e| async move {
            match e {
                async_nats::Event::Connected => {
                    set_connected(true);
                    tracing::info!("connected to NATS");
                }
                async_nats::Event::Disconnected | async_nats::Event::Closed => {
                    set_connected(false);
                    tracing::warn!("disconnected from NATS");
                }
                // Each failed attempt while reconnecting: the disconnection was logged
                // once.
                async_nats::Event::ClientError(e) => tracing::debug!(error = %e, "NATS"),
                other => tracing::warn!(event = %other, "NATS"),
            }
        }),
        false => opts.name(format!("{}-shared", s.node)),
    };
    if let Some((u, p)) = s.user.clone() {
        opts = opts.user_and_password(u, p);
    }
    if let Some(t) = s.token.clone() {
        opts = opts.token(t);
    }
    if let Some(ca) = s.tls_ca.clone() {
        opts = opts.add_root_certificates(ca).require_tls(true);
    }
    opts
}

/// Frames `m` for the other nodes: a header byte, then the retained-message record.
fn encode(m: &AppMessage, now: u64, mono: Instant) -> Vec<u8> {
    let mut out = Vec::with_capacity(40 + m.topic.len() + m.payload.len());
    out.push(if m.retain { RETAIN } else { 0 });
    let expires = m
        .expires_at
        .map(|t| now + t.saturating_duration_since(mono).as_millis() as u64);
    encode_retained_into(&mut out, m, now, expires);
    out
}

/// The message framed by [`encode`]; `None` if damaged or already expired.
pub(super) fn decode(b: &[u8], now: u64, mono: Instant) -> Option<AppMessage> {
    let (&flags, rest) = b.split_first()?;
    let r = decode_retained(rest)?;
    let mut msg = r.msg;
    msg.retain = flags & RETAIN != 0;
    if let Some(e) = r.expires_ms {
        if e <= now {
            return None;
        }
        msg.expires_at = Some(mono + Duration::from_millis(e - now));
    }
    Some(msg)
}

/// Publishes what the broker queued, in order; acknowledges waiting batches after a flush, one
/// flush for every batch that was queued meanwhile.
/// A retained message also goes to the retained-message bucket (awaited: retained messages
/// are rare, and a QoS 1/2 one is acknowledged after the bucket has it).
async fn writer(
    client: async_nats::Client,
    mut rx: mpsc::Receiver<Outbound>,
    prefix: String,
    bucket: tokio::sync::watch::Receiver<Option<async_nats::jetstream::kv::Store>>,
) {
    let mut acks = Vec::new();
    let mut subject = String::new();
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        while let Some(ob) = next.take() {
            let (now, mono) = (now_ms(), Instant::now());
            // Cut off from NATS, a publish would wait in the client's buffer and then block
            // this writer, and with it every publisher's acknowledgement: the node serves its
            // own clients on, and what it cannot hand over is counted.
            if !connected(&client) {
                CLUSTER.not_forwarded.add(ob.msgs.len() as u64);
                acks.extend(ob.ack);
                if acks.len() < 1024 {
                    next = rx.try_recv().ok();
                }
                continue;
            }
            for m in &ob.msgs {
                let key = subject::escape(&m.topic);
                // A NATS server closes a connection whose protocol line passes 4,096 bytes.
                if key.len() + prefix.len() > MAX_SUBJECT {
                    CLUSTER.not_forwarded.inc();
                    continue;
                }
                subject.clear();
                subject.push_str(&prefix);
                subject.push('.');
                subject.push_str(&key);
                let payload = bytes::Bytes::from(encode(m, now, mono));
                if m.retain {
                    // Cut off from NATS, the put could only time out: the message stays this
                    // node's (counted), and the writer goes on.
                    let kv = bucket.borrow().clone().filter(|_| connected(&client));
                    match kv {
                        Some(kv) => retained::keep_retained(&kv, &key, m, payload.clone()).await,
                        None => CLUSTER.retained_not_kept.inc(),
                    }
                }
                match client.publish(subject.clone(), payload).await {
                    Ok(()) => CLUSTER.forwarded.inc(),
                    Err(_) => CLUSTER.not_forwarded.inc(),
                }
            }
            acks.extend(ob.ack);
            if acks.len() < 1024 {
                next = rx.try_recv().ok();
            }
        }
        if !acks.is_empty() {
            // Disconnected, the messages wait in the client's buffer for the reconnect: the
            // node serves its own clients on meanwhile, as a partitioned EMQX node does.
            if connected(&client) {
                let _ = tokio::time::timeout(SERVER_WAIT, client.flush()).await;
            }
            for a in acks.drain(..) {
                let _ = a.send(());
            }
        }
    }
}

/// Opens KV bucket `name`, creating it if missing; retried (warned once) while JetStream is
/// unreachable.
pub(super) async fn open_bucket(
    js: &async_nats::jetstream::Context,
    name: &str,
    description: &str,
    replicas: usize,
) -> async_nats::jetstream::kv::Store {
    use async_nats::jetstream::kv;
    let mut warned = false;
    loop {
        let opened = match js.get_key_value(name).await {
            Ok(s) => Ok(s),
            Err(_) => js
                .create_key_value(kv::Config {
                    bucket: name.to_string(),
                    description: description.to_string(),
                    history: 1,
                    num_replicas: replicas,
                    storage: async_nats::jetstream::stream::StorageType::File,
                    ..Default::default()
                })
                .await
                .map_err(|e| e.to_string()),
        };
        // A bucket just created is not known to every server at once ("no stream found"): it
        // is handed out once a read through this node's server works.
        let opened = match opened {
            Ok(s) => match tokio::time::timeout(SERVER_WAIT, s.get("evgrid-probe")).await {
                Ok(Ok(_)) => Ok(s),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err("no answer from JetStream".into()),
            },
            Err(e) => Err(e),
        };
        match opened {
            Ok(s) => return s,
            Err(e) => {
                if !warned {
                    tracing::warn!(error = %e, bucket = %name,
                        "no JetStream bucket yet (retrying): {description}");
                    warned = true;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

/// Routes what one subscription brings to the local subscribers, in batches: a cover's to the
/// direct subscriptions, a shared group's (`group`) to one of its members here.
async fn inbound(mut sub: async_nats::Subscriber, broker: Broker, group: Option<ByteString>) {
    while let Some(first) = sub.next().await {
        let (now, mono) = (now_ms(), Instant::now());
        let mut batch = Vec::new();
        let take = |m: async_nats::Message, batch: &mut Vec<AppMessage>| match decode(
            &m.payload, now, mono,
        ) {
            Some(msg) => batch.push(msg),
            None => CLUSTER.undecodable.inc(),
        };
        take(first, &mut batch);
        while batch.len() < BATCH {
            match sub.next().now_or_never() {
                Some(Some(m)) => take(m, &mut batch),
                _ => break,
            }
        }
        if batch.is_empty() {
            continue;
        }
        CLUSTER.received.add(batch.len() as u64);
        let routed = match &group {
            None => broker.route_remote(batch).await,
            Some(g) => broker.route_shared(g, batch).await,
        };
        if routed.is_err() {
            return; // the actor system is stopping
        }
    }
}

/// Ends the local session of every client id that connected to another node.
async fn takeovers(mut sub: async_nats::Subscriber, broker: Broker) {
    while let Some(m) = sub.next().await {
        // "{µs} {client id}": the subject's token may be a hash of a long id.
        let parsed = std::str::from_utf8(&m.payload)
            .ok()
            .and_then(|b| b.split_once(' '))
            .and_then(|(at, id)| Some((at.parse::<u64>().ok()?, id)));
        let Some((at_us, id)) = parsed else {
            CLUSTER.undecodable.inc();
            continue;
        };
        if broker.evict(id, at_us) {
            CLUSTER.takeovers.inc();
            tracing::debug!(client_id = %id, "session taken over on another node");
        }
    }
}

/// The control side: subscriptions follow the local filters; claims go out.
struct Links {
    /// The session directory bucket, once open.
    sessions: tokio::sync::watch::Receiver<Option<async_nats::jetstream::kv::Store>>,
    client: async_nats::Client,
    /// The connection of the shared groups' queue subscriptions.
    shared: async_nats::Client,
    /// Per shared subscription (`$share/{group}/{filter}`): local sessions holding it, and the
    /// tasks reading its queue subscriptions.
    groups: HashMap<ByteString, (usize, Vec<tokio::task::AbortHandle>)>,
    broker: Broker,
    messages: String,
    claims: String,
    covers: subject::Covers,
    /// The tasks reading each active cover's subscriptions; aborting one drops (and so
    /// unsubscribes) its subscription.
    subs: HashMap<String, Vec<tokio::task::AbortHandle>>,
    node: String,
}

impl Links {
    async fn serve(mut self, mut rx: mpsc::UnboundedReceiver<Control>) {
        while let Some(c) = rx.recv().await {
            match c {
                Control::Interest(filter, added) if filter.starts_with("$share/") => {
                    self.group(filter, added).await;
                }
                Control::Interest(filter, added) => {
                    let f: &str = &filter;
                    let changes = match added {
                        true => self.covers.add(f),
                        false => self.covers.remove(f),
                    };
                    // The new subscriptions are in force at the server before the ones they
                    // replace go: in between a message may come twice, never not at all.
                    let (new, gone): (Vec<_>, Vec<_>) = changes
                        .into_iter()
                        .partition(|c| matches!(c, subject::CoverChange::Subscribe(_)));
                    let replacing = !new.is_empty() && !gone.is_empty();
                    for ch in new {
                        self.apply(ch).await;
                    }
                    if replacing && connected(&self.client) {
                        let _ = tokio::time::timeout(SERVER_WAIT, self.client.flush()).await;
                    }
                    for ch in gone {
                        self.apply(ch).await;
                    }
                }
                Control::Claim(id, at_us, persistent) => {
                    let key = subject::client_key(&id);
                    let subject = format!("{}.{key}", self.claims);
                    let body = format!("{at_us} {id}");
                    if let Err(e) = self.client.publish(subject, body.into()).await {
                        tracing::warn!(error = %e, client_id = %id, "takeover not announced");
                    }
                    let kv = self.sessions.borrow().clone();
                    if persistent
                        && connected(&self.client)
                        && let Some(kv) = kv
                    {
                        // Apart from this loop: a connect storm's puts must not hold back the
                        // SUBACKs waiting for `Settled`.
                        let node = self.node.clone();
                        tokio::spawn(async move {
                            let put = kv.put(&key, node.into_bytes().into());
                            let done = tokio::time::timeout(SERVER_WAIT, put).await;
                            if !matches!(done, Ok(Ok(_))) {
                                tracing::warn!(client_id = %id,
                                    "the cluster will not find this session on another node");
                            }
                        });
                    }
                }
                Control::Released(id) => {
                    let kv = self.sessions.borrow().clone();
                    if let Some(kv) = kv.filter(|_| connected(&self.client)) {
                        let (key, node) = (subject::client_key(&id), self.node.clone());
                        tokio::spawn(async move {
                            // Only while it still names this node: the client may have moved on.
                            if let Ok(Ok(Some(e))) =
                                tokio::time::timeout(SERVER_WAIT, kv.entry(&key)).await
                                && e.value.as_ref() == node.as_bytes()
                            {
                                let _ = tokio::time::timeout(
                                    SERVER_WAIT,
                                    kv.delete_expect_revision(&key, Some(e.revision)),
                                )
                                .await;
                            }
                        });
                    }
                }
                Control::Settled(tx) => {
                    // Disconnected, there is nothing to wait for: the client subscribes again
                    // on whichever server it reconnects to.
                    if connected(&self.client) {
                        let both = async {
                            let _ = self.client.flush().await;
                            let _ = self.shared.flush().await;
                        };
                        let _ = tokio::time::timeout(SERVER_WAIT, both).await;
                    }
                    let _ = tx.send(());
                }
            }
        }
    }

    /// A local session joined (`added`) or left shared subscription `raw`: the node's queue
    /// subscriptions follow, one per subject of its filter, in the group's queue group.
    async fn group(&mut self, raw: ByteString, added: bool) {
        let Some((group, filter)) = raw.strip_prefix("$share/").and_then(|r| r.split_once('/'))
        else {
            return;
        };
        let entry = self.groups.entry(raw.clone()).or_default();
        if !added {
            entry.0 = entry.0.saturating_sub(1);
            if entry.0 == 0
                && let Some((_, tasks)) = self.groups.remove(&raw)
            {
                for t in tasks {
                    t.abort();
                }
            }
            return;
        }
        entry.0 += 1;
        if entry.0 > 1 {
            return;
        }
        let queue = subject::queue_group(group, filter);
        for subj in subject::filter_subjects(&self.messages, filter) {
            if subj.len() > MAX_SUBJECT {
                tracing::warn!(filter = %raw, "shared filter too long for NATS: its members here get nothing while the node is clustered");
                continue;
            }
            match self
                .shared
                .queue_subscribe(subj.clone(), queue.clone())
                .await
            {
                Ok(sub) => {
                    let task = tokio::spawn(inbound(sub, self.broker.clone(), Some(raw.clone())));
                    entry.1.push(task.abort_handle());
                }
                Err(e) => tracing::error!(error = %e, subject = %subj, "subscribe failed"),
            }
        }
    }

    async fn apply(&mut self, ch: subject::CoverChange) {
        match ch {
            subject::CoverChange::Subscribe(key) => {
                let mut tasks = Vec::new();
                for subj in subject::cover_subjects(&self.messages, &key) {
                    if subj.len() > MAX_SUBJECT {
                        tracing::warn!(subject = %subj, "too long for NATS: not subscribed");
                        continue;
                    }
                    match self.client.subscribe(subj.clone()).await {
                        Ok(sub) => tasks.push(
                            tokio::spawn(inbound(sub, self.broker.clone(), None)).abort_handle(),
                        ),
                        Err(e) => tracing::error!(error = %e, subject = %subj, "subscribe failed"),
                    }
                }
                self.subs.insert(key, tasks);
            }
            subject::CoverChange::Unsubscribe(key) => {
                for t in self.subs.remove(&key).into_iter().flatten() {
                    t.abort();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mqtt::message::Properties;

    #[test]
    fn a_message_crosses_with_its_flags_properties_and_remaining_expiry() {
        let mono = Instant::now();
        let m = AppMessage {
            topic: ByteString::from_static("a/b"),
            payload: ntex_bytes::Bytes::from_static(b"hello"),
            qos: 1,
            retain: true,
            props: Some(Box::new(Properties {
                response_topic: Some(ByteString::from_static("r/1")),
                correlation_data: Some(ntex_bytes::Bytes::from_static(b"c")),
                content_type: None,
                payload_utf8: true,
                user_properties: vec![(ByteString::from_static("k"), ByteString::from_static("v"))],
            })),
            expires_at: Some(mono + Duration::from_secs(10)),
            publisher: Some(crate::mqtt::message::SessionId(7)),
        };
        let b = encode(&m, 1_000_000, mono);
        // Decoded 2 s later on another node: 8 s remain.
        let later = mono + Duration::from_secs(2);
        let d = decode(&b, 1_002_000, later).unwrap();
        assert_eq!(d.topic, m.topic);
        assert_eq!(d.payload, m.payload);
        assert_eq!((d.qos, d.retain), (1, true));
        assert_eq!(d.props, m.props);
        assert_eq!(d.expires_at, Some(later + Duration::from_secs(8)));
        // No-local is about sessions of this node: a forwarded message has no local publisher.
        assert_eq!(d.publisher, None);
        // Expired on the way: dropped.
        assert!(decode(&b, 1_010_000, later).is_none());
        assert!(decode(b"", 0, mono).is_none());
        assert!(decode(&b[..5], 1_000_000, mono).is_none());
        let plain = AppMessage {
            retain: false,
            props: None,
            expires_at: None,
            ..m
        };
        let d = decode(&encode(&plain, 5, mono), 6, mono).unwrap();
        assert!(!d.retain && d.props.is_none() && d.expires_at.is_none());
    }
}
