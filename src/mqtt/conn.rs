//! Per-connection state shared by the v3 and v5 handlers, and the steps both protocols take
//! alike: opening the session for a CONNECT, routing an accepted PUBLISH, subscribing and
//! unsubscribing (the handlers keep what differs: packet checks and acknowledgement codes).
//!
//! Owns the publish re-sequencer and the per-turn batch. ntex-mqtt 9.0 can finish a PUBLISH that
//! straddled a TCP read after later ones (ARCHITECTURE.md, "the ntex/actix seam"), so each
//! handler takes a ticket before its first `.await` and messages leave in ticket order.
//! Everything completed in one event-loop turn goes to the routers as one batch; QoS 1/2 handlers
//! wait for that batch to be routed before they acknowledge.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::Arc;

use std::sync::atomic::Ordering;
use std::time::Duration;

use actix::Addr;
use evgrid_actors::bridge::route::Prepared;
use evgrid_actors::bridge::{Bridge, Client, RouteError};
use evgrid_actors::metrics::METRICS;
use evgrid_actors::model::clock::now_ms;
use evgrid_actors::mqtt::broker::{OpenError, Opened};
use evgrid_actors::mqtt::lifecycle::{EndReason, Happened, SessionEvent};
use evgrid_actors::mqtt::message::{AppMessage, ConnId, Delivery, SessionId, owned_str};
use evgrid_actors::mqtt::outbox::{OutboxRx, OutboxTx, outbox};
use evgrid_actors::mqtt::router::{InFlight, SubReq};
use evgrid_actors::mqtt::session::{
    Attach, Deliver, Detach, InboundQos2, Link, Mailbox, Session, Will,
};
use ntex_bytes::ByteString;
use tokio::sync::oneshot;

use super::pump::{self, Acks, Sink};
use super::routing;
use super::{EdgeError, Shared};

/// What became of a QoS 1/2 message, for its acknowledgement.
#[derive(Debug)]
pub(crate) enum Routed {
    /// Queued for MQTT subscribers and, when the namespace routes MQTT messages, committed to
    /// its route topic.
    Ok,
    /// Queued for MQTT subscribers; the route topic did not take it.
    MqttOnly(RouteError),
    /// Not routed at all: the broker is shutting down.
    Failed,
}

enum Slot {
    Waiting,
    Ready(AppMessage, Option<oneshot::Sender<Routed>>),
    Skip,
}

#[derive(Default)]
struct Publisher {
    next_ticket: u64,
    head: u64,
    slots: VecDeque<Slot>,
    pending: Vec<AppMessage>,
    /// The acknowledgements waiting on `pending`, with their message's index in it.
    acks: Vec<(usize, oneshot::Sender<Routed>)>,
    flushing: bool,
    /// Woken each time the flush task takes the pending batch.
    drained: Rc<tokio::sync::Notify>,
    /// QoS 0 messages handed to the routers and not yet routed.
    in_flight: Arc<InFlight>,
    /// Resolves once the last batch waiting on a route-topic commit has been answered.
    answered: Option<oneshot::Receiver<()>>,
}

/// Opens (or takes over) the session `client_id` for a CONNECT that passed its protocol's
/// checks: this connection's state for the handlers, whether the broker held the session
/// already, and the connection's writer.
pub(super) async fn open(
    sh: &Arc<Shared>,
    client_id: &ByteString,
    user_name: Option<&ByteString>,
    clean_start: bool,
    window: usize,
    expiry_secs: u32,
    will: Option<Will>,
) -> Result<(Conn, bool, Writer), OpenError> {
    let conn = ConnId(sh.next_conn.fetch_add(1, Ordering::Relaxed));
    let (tx, rx) = outbox();
    let opened = sh
        .bridge
        .broker()
        .open(client_id, clean_start, || Attach {
            link: Link {
                conn,
                tx: tx.clone(),
                window,
            },
            expiry_secs,
            will: will.clone(),
            fresh: false,
        })
        .await?;
    let acks = Acks::new(opened.addr.clone(), conn);
    let client = Client {
        auth_name: owned_str(user_name.unwrap_or(client_id)),
        session: client_id.clone(),
    };
    let (session, present) = (opened.addr.clone(), opened.present);
    let state = Conn::new(conn, opened, acks.clone(), sh.clone(), client);
    let writer = Writer {
        tx,
        rx,
        session,
        conn,
        acks,
        ending: state.ending.clone(),
    };
    Ok((state, present, writer))
}

/// The task that writes a connection's messages to its socket, not started yet.
pub(super) struct Writer {
    /// A sender for the connection's registry entry (revocation closes through it); dropped
    /// when the writer starts.
    tx: OutboxTx,
    rx: OutboxRx,
    session: Addr<Session>,
    conn: ConnId,
    acks: Acks,
    ending: Ending,
}

impl Writer {
    /// Another sender into the connection's outbox.
    pub fn outbox(&self) -> OutboxTx {
        self.tx.clone()
    }

    /// Starts writing to `sink`; called once the CONNACK is built.
    pub fn start(self, sink: impl Sink, send_timeout: Option<Duration>) {
        drop(self.tx);
        ntex_rt::spawn(pump::run(
            sink,
            self.rx,
            self.session,
            self.conn,
            self.acks,
            send_timeout,
            self.ending,
        ));
    }
}

/// Why a connection ended, for its Disconnected lifecycle event (docs/eventgrid.md §7.7). Shared
/// by the connection's handlers, its control service and its writer (which closes the socket
/// for a takeover or a stalled client); the first cause recorded wins, so a DISCONNECT followed
/// by the socket closing stays a client disconnect.
#[derive(Clone, Default)]
pub(crate) struct Ending(Rc<Cell<Option<EndReason>>>);

impl Ending {
    pub fn set(&self, why: EndReason) {
        if self.0.get().is_none() {
            self.0.set(Some(why));
        }
    }

    pub fn get(&self) -> Option<EndReason> {
        self.0.get()
    }
}

/// The reason a Disconnected event gives: what was recorded, a lost connection when nothing
/// was (the dispatcher just stopped), and a server shutdown for connections the shutdown cut.
pub(crate) fn end_reason(recorded: Option<EndReason>, stopping: bool) -> EndReason {
    match recorded {
        None | Some(EndReason::ConnectionLost | EndReason::ServerError) if stopping => {
            EndReason::ServerShutdown
        }
        None => EndReason::ConnectionLost,
        Some(r) => r,
    }
}

/// One MQTT connection attached to a session.
pub(crate) struct Conn {
    pub id: ConnId,
    pub session: SessionId,
    pub addr: Addr<Session>,
    /// The session's mailbox count, handed to the routing shards with each SUBSCRIBE.
    mailbox: Arc<Mailbox>,
    /// The session outlives this connection: its subscriptions are recorded (durable broker).
    persistent: bool,
    pub shared: Arc<Shared>,
    /// Who publishes on this connection, as routing enrichments see it.
    pub client: Arc<Client>,
    publisher: Rc<RefCell<Publisher>>,
    /// Set when the client sent DISCONNECT (normal): no will.
    pub graceful: Cell<bool>,
    /// A v5 DISCONNECT's new session expiry interval.
    pub expiry_override: Cell<Option<u32>>,
    /// The v5 CONNECT's Request Problem Information (true when absent, and for v3.1.1): reason
    /// strings only when it is set [MQTT-3.1.2-29].
    pub problem_info: Cell<bool>,
    /// The session's inbound QoS 2 ids awaiting PUBREL (outlives this connection).
    inbound_qos2: InboundQos2,
    /// QoS 1 acknowledgements the writer collected and has not reported yet.
    acks: Acks,
    /// Why the connection ended (first cause).
    pub ending: Ending,
    /// (authentication name, session name) once the Connected lifecycle event went out: the
    /// Disconnected event goes out only then.
    announced: RefCell<Option<(ByteString, ByteString)>>,
    /// What the TLS handshake told (TLS listener only): the client certificate for authentication.
    pub tls: Option<Box<crate::tls::peer::PeerTls>>,
    /// Who the connection authenticated as and what it may do (see [`super::auth`]).
    pub auth: Option<super::auth::ConnAuth>,
    /// The inbound quota of this connection (none unless the namespace sets one).
    pub quota: super::quota::SessionQuota,
}

impl Conn {
    pub fn new(
        id: ConnId,
        opened: Opened,
        acks: Acks,
        shared: Arc<Shared>,
        client: Client,
    ) -> Conn {
        let Opened {
            id: session,
            addr,
            mailbox,
            inbound_qos2,
            persistent,
            ..
        } = opened;
        METRICS.connections.inc();
        METRICS.connections_total.inc();
        Conn {
            id,
            session,
            addr,
            mailbox,
            persistent,
            shared,
            client: Arc::new(client),
            publisher: Rc::default(),
            graceful: Cell::new(false),
            expiry_override: Cell::new(None),
            problem_info: Cell::new(true),
            inbound_qos2,
            acks,
            ending: Ending::default(),
            announced: RefCell::new(None),
            tls: None,
            auth: None,
            quota: Default::default(),
        }
    }

    /// The CONNECT is accepted (session open, CONNACK built): reports the Connected lifecycle
    /// event; from now on the connection's end is reported too.
    pub fn connected(&self) {
        let (auth_name, client_id) = (self.client.auth_name.clone(), self.client.session.clone());
        self.shared.lifecycle.push(SessionEvent {
            what: Happened::Connected,
            conn: self.id,
            auth_name: auth_name.clone(),
            session: client_id.clone(),
            at_ms: now_ms(),
        });
        *self.announced.borrow_mut() = Some((auth_name, client_id));
    }

    /// An inbound QoS 2 PUBLISH with this id is about to be routed. False when the session
    /// already routed it and PUBREL has not come: a resend, to acknowledge without routing
    /// [MQTT-4.3.3-10].
    pub fn qos2_begin(&self, pid: u16) -> bool {
        let fresh = self.lock_qos2().insert(pid);
        if !fresh {
            METRICS.qos2_resends.inc();
        }
        fresh
    }

    /// Routing the QoS 2 PUBLISH with this id failed: the client was told, PUBREL will not come.
    pub fn qos2_abort(&self, pid: u16) {
        self.lock_qos2().remove(&pid);
    }

    /// Whether the session routed the QoS 2 PUBLISH with this id and awaits its PUBREL (a
    /// resend of it is acknowledged, never refused: its subscribers have it).
    pub fn qos2_pending(&self, pid: u16) -> bool {
        self.lock_qos2().contains(&pid)
    }

    /// PUBREL for this id: the exchange is over. False when the session never routed it.
    pub fn qos2_release(&self, pid: u16) -> bool {
        self.lock_qos2().remove(&pid)
    }

    fn lock_qos2(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<u16>> {
        // A poisoned set is still a valid set of ids: no code path leaves it half-updated.
        self.inbound_qos2
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Reserves this PUBLISH's place in the connection's order. Call before any `.await`.
    pub fn ticket(&self) -> u64 {
        let mut p = self.publisher.borrow_mut();
        let t = p.next_ticket;
        p.next_ticket += 1;
        p.slots.push_back(Slot::Waiting);
        t
    }

    /// The PUBLISH with this ticket will not be routed (bad topic, payload error).
    pub fn skip(&self, ticket: u64) {
        self.fill(ticket, Slot::Skip);
    }

    /// Routes a QoS 0 message in order; does not wait.
    pub fn push(&self, ticket: u64, msg: AppMessage) {
        self.fill(ticket, Slot::Ready(msg, None));
    }

    /// Routes a QoS 1/2 message in order; resolves once it is routed (and committed to the
    /// namespace's route topic, when there is one).
    pub async fn push_acked(&self, ticket: u64, msg: AppMessage) -> Routed {
        let (tx, rx) = oneshot::channel();
        self.fill(ticket, Slot::Ready(msg, Some(tx)));
        rx.await.unwrap_or(Routed::Failed)
    }

    /// Routes an accepted PUBLISH in order: QoS 0 without waiting, QoS 1 and 2 once routed; a
    /// QoS 2 resend whose PUBREL has not come is acknowledged without routing it again. When it
    /// is not [`Routed::Ok`], a QoS 2 id is forgotten: the client is told, PUBREL will not come.
    pub async fn route(&self, ticket: u64, msg: AppMessage, pid: u16) -> Routed {
        let qos = msg.qos;
        if qos == 0 {
            self.push(ticket, msg);
            return Routed::Ok;
        }
        if qos == 2 && !self.qos2_begin(pid) {
            self.skip(ticket);
            return Routed::Ok;
        }
        let routed = self.push_acked(ticket, msg).await;
        // Only when no subscriber got it: a message MQTT subscribers have keeps its id, so a
        // v3.1.1 resend after a failed commit is not delivered twice (v5 handlers, whose failure
        // PUBREC ends the exchange, forget the id themselves).
        if qos == 2 && matches!(routed, Routed::Failed) {
            self.qos2_abort(pid);
        }
        if qos == 2 {
            self.record_inbound_qos2().await;
        }
        routed
    }

    /// A persistent session's inbound QoS 2 ids, committed before the PUBREC or PUBCOMP that
    /// depends on them (a durable broker keeps them across `kill -9`: a resend is recognised,
    /// and an id whose PUBCOMP went out is free again).
    pub async fn record_inbound_qos2(&self) {
        if !self.persistent {
            return;
        }
        let ids: Vec<u16> = self.lock_qos2().iter().copied().collect();
        self.shared
            .bridge
            .broker()
            .record_inbound_qos2(self.session, &ids)
            .await;
    }

    /// Adds this session's subscriptions (up to `mqtt.max_subscriptions_per_client`) and sends
    /// it the retained messages they match, tagged with `sub_id`. Per request, in order: the
    /// granted QoS, or `None` when refused for the quota.
    pub async fn subscribe(
        &self,
        reqs: Vec<SubReq>,
        sub_id: Option<u32>,
    ) -> Result<Vec<Option<u8>>, EdgeError> {
        let sh = &self.shared;
        let granted: Vec<u8> = reqs.iter().map(|r| r.opts.qos).collect();
        let recorded = self.persistent.then(|| reqs.clone());
        let broker = sh.bridge.broker();
        let results = broker
            .subscribe(
                self.session,
                &self.addr,
                &self.mailbox,
                reqs,
                sh.cfg.max_subscriptions_per_client,
            )
            .await
            .map_err(|_| EdgeError::Closed("router unavailable"))?;
        if let Some(reqs) = recorded {
            // Before SUBACK: a granted subscription of a persistent session survives a crash.
            broker
                .record_subscriptions(self.session, true, &reqs, &results)
                .await;
        }
        let mut retained = Vec::new();
        let mut out = Vec::with_capacity(results.len());
        for (qos, r) in granted.into_iter().zip(results) {
            if r.quota_exceeded {
                out.push(None);
                continue;
            }
            out.push(Some(qos));
            retained.extend(r.retained.into_iter().map(|m| Delivery {
                qos: m.qos.min(qos),
                msg: m,
                retain: true,
                sub_ids: sub_id.into_iter().collect(),
                journal: 0,
            }));
        }
        if !retained.is_empty() {
            self.addr.do_send(Deliver::unbounded(retained));
        }
        Ok(out)
    }

    /// Removes this session's subscriptions to `filters`; per filter, whether it had one.
    pub async fn unsubscribe(&self, filters: Vec<ByteString>) -> Result<Vec<bool>, EdgeError> {
        let broker = self.shared.bridge.broker();
        let recorded = self.persistent.then(|| filters.clone());
        let existed = broker
            .unsubscribe(self.session, filters)
            .await
            .map_err(|_| EdgeError::Closed("router unavailable"))?;
        if let Some(filters) = recorded {
            broker
                .forget_subscriptions(self.session, true, &filters)
                .await;
        }
        Ok(existed)
    }

    fn fill(&self, ticket: u64, slot: Slot) {
        let start = {
            let mut p = self.publisher.borrow_mut();
            let i = (ticket - p.head) as usize;
            p.slots[i] = slot;
            while matches!(p.slots.front(), Some(Slot::Ready(..) | Slot::Skip)) {
                p.head += 1;
                if let Some(Slot::Ready(m, ack)) = p.slots.pop_front() {
                    let i = p.pending.len();
                    p.acks.extend(ack.map(|a| (i, a)));
                    p.pending.push(m);
                }
            }
            let start = !p.flushing && !p.pending.is_empty();
            p.flushing |= start;
            start
        };
        if start {
            ntex_rt::spawn(flush(
                self.publisher.clone(),
                self.shared.bridge.clone(),
                self.client.clone(),
            ));
        }
    }
}

/// Sends whatever the connection completed in one turn as one batch, until nothing is left:
/// to the MQTT routers, and as one batch to the namespace's route topic when it routes MQTT
/// messages. The next batch goes to the routers without waiting for this one's commit; the
/// acknowledgements wait for it (commits complete in order, so acknowledgements stay in order).
async fn flush(p: Rc<RefCell<Publisher>>, bridge: Bridge, client: Arc<Client>) {
    let broker = bridge.broker();
    loop {
        // Let every PUBLISH decoded from the same read join this batch.
        tokio::task::yield_now().await;
        let (msgs, acks) = {
            let mut p = p.borrow_mut();
            if p.pending.is_empty() {
                p.flushing = false;
                return;
            }
            p.drained.notify_waiters();
            (std::mem::take(&mut p.pending), std::mem::take(&mut p.acks))
        };
        let mut n = [0u64; 3];
        let mut b = [0u64; 3];
        for m in &msgs {
            n[m.qos as usize] += 1;
            b[m.qos as usize] += m.payload.len() as u64;
        }
        for q in 0..3 {
            if n[q] > 0 {
                METRICS.messages_in[q].add(n[q]);
                METRICS.bytes_in[q].add(b[q]);
            }
        }
        if acks.is_empty() {
            // QoS 0 only: nobody waits for the answer (see `InFlight`); routing into the event
            // grid is best effort, its outcome counted by the bridge.
            if let Some(Ok(Prepared { batch: Some(b), .. })) = bridge.prepare(&msgs, &client, true)
            {
                routing::enqueue(&bridge, b, false);
            }
            let in_flight = p.borrow().in_flight.clone();
            broker.route_detached(msgs, &in_flight);
            continue;
        }
        // Into the worker's batch for the route topic before the MQTT routers, so the other
        // connections of this turn join it meanwhile.
        let (committed, too_large) = match bridge.prepare(&msgs, &client, false) {
            None => (Ok(None), Vec::new()),
            Some(Err(e)) => (Err(e), Vec::new()),
            Some(Ok(p)) => (
                Ok(p.batch.and_then(|b| routing::enqueue(&bridge, b, true))),
                p.too_large,
            ),
        };
        if broker.route(msgs).await.is_err() {
            for (_, a) in acks {
                let _ = a.send(Routed::Failed);
            }
            continue;
        }
        let answer = move |res: &Result<(), RouteError>, i: usize| {
            if too_large.contains(&i) {
                return Routed::MqttOnly(RouteError::TooLarge(
                    "its CloudEvent is larger than events.max_event_bytes".into(),
                ));
            }
            match res {
                Ok(()) => Routed::Ok,
                Err(e) => Routed::MqttOnly(e.clone()),
            }
        };
        // Acknowledgements leave in the order their PUBLISHes came [MQTT-4.6.0-2]: a batch
        // answered at once (nothing to commit) must not overtake an earlier one still waiting
        // for its commit, so each waits for the previous batch's answers.
        let before = p.borrow_mut().answered.take();
        if before.is_none() && !matches!(committed, Ok(Some(_))) {
            let res = committed.map(|_| ());
            for (i, a) in acks {
                let _ = a.send(answer(&res, i));
            }
            continue;
        }
        let (done, answered) = oneshot::channel();
        p.borrow_mut().answered = Some(answered);
        ntex_rt::spawn(async move {
            let res = match committed {
                Ok(Some(rx)) => rx.await.unwrap_or(Err(RouteError::Unavailable)),
                other => other.map(|_| ()),
            };
            if let Some(before) = before {
                let _ = before.await;
            }
            for (i, a) in acks {
                let _ = a.send(answer(&res, i));
            }
            let _ = done.send(());
        });
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        METRICS.connections.dec();
        // Before Detach, in the same mailbox: after it the session would ignore them, and the
        // messages they acknowledge would be sent again on resume.
        self.acks.flush();
        // A client whose authentication was revoked, expired or failed again has no say any
        // more: its will is dropped like a graceful disconnect's.
        let revoked = matches!(self.ending.get(), Some(EndReason::AuthenticationError));
        self.addr.do_send(Detach {
            conn: self.id,
            graceful: self.graceful.get() || revoked,
            expiry_secs: self.expiry_override.get(),
        });
        if let Some((auth_name, session)) = self.announced.take() {
            let stopping = self.shared.stopping.load(Ordering::Relaxed);
            self.shared.lifecycle.push(SessionEvent {
                what: Happened::Disconnected(end_reason(self.ending.get(), stopping)),
                conn: self.id,
                auth_name,
                session,
                at_ms: now_ms(),
            });
        }
    }
}

/// Messages a connection may have waiting to be routed, and again handed to the routers but not yet
/// routed, before it stops reading: beyond this the publish service reports "not ready" and ntex
/// stops reading the socket (TCP back-pressure to the publisher) instead of buffering without
/// bound.
const MAX_PENDING: usize = 16 * 1024;

impl Conn {
    /// Whether the connection may take another PUBLISH now: [`Conn::capacity`] would not wait.
    pub fn has_capacity(&self) -> bool {
        let p = self.publisher.borrow();
        p.pending.len() < MAX_PENDING && p.in_flight.count() < MAX_PENDING
    }

    /// Resolves when the connection may take more PUBLISH packets.
    pub async fn capacity(&self) {
        loop {
            let (drained, in_flight) = {
                let p = self.publisher.borrow();
                if p.pending.len() >= MAX_PENDING {
                    (Some(p.drained.clone()), None)
                } else if p.in_flight.count() >= MAX_PENDING {
                    (None, Some(p.in_flight.clone()))
                } else {
                    return;
                }
            };
            if let Some(d) = drained {
                d.notified().await;
            } else if let Some(f) = in_flight {
                f.released().await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_cause_wins_and_a_shutdown_explains_what_it_cut() {
        let e = Ending::default();
        assert_eq!(end_reason(e.get(), false), EndReason::ConnectionLost);
        e.set(EndReason::ClientDisconnect);
        e.set(EndReason::ConnectionLost);
        assert_eq!(e.get(), Some(EndReason::ClientDisconnect));
        let shared = e.clone();
        shared.set(EndReason::TakenOver);
        assert_eq!(e.get(), Some(EndReason::ClientDisconnect));
        assert_eq!(end_reason(None, true), EndReason::ServerShutdown);
        assert_eq!(
            end_reason(Some(EndReason::ConnectionLost), true),
            EndReason::ServerShutdown
        );
        assert_eq!(
            end_reason(Some(EndReason::ClientDisconnect), true),
            EndReason::ClientDisconnect
        );
        assert_eq!(
            end_reason(Some(EndReason::TakenOver), false),
            EndReason::TakenOver
        );
    }
}
