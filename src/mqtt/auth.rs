//! Who may connect and what a connection may touch, at the MQTT edge (docs/eventgrid.md
//! §7.1–§7.5): authentication of a CONNECT against the served namespace's
//! [`Directory`] (and its webhook), sessions per authentication name, the compiled
//! [`ClientPolicy`] each connection checks its PUBLISH and SUBSCRIBE packets against, and the
//! registry of live connections that a change of the namespace's identity configuration (or a
//! token's expiry) disconnects.
//!
//! Owns the registry and the per-connection policy cell. Never evaluates a group query or a
//! template (the identity core compiles policies); never logs a password or a token; the
//! publish path costs one string compare while the topic stays the same.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use evgrid_actors::bridge::auth::Webhook;
use evgrid_actors::identity::cert::CertInfo;
use evgrid_actors::identity::directory::{Credentials, Decision, Denied, Directory};
use evgrid_actors::identity::password::PasswordHash;
use evgrid_actors::identity::policy::ClientPolicy;
use evgrid_actors::identity::{AuthMethod, AuthzMode, Identity};
use evgrid_actors::metrics::{AUTH, ConnectOutcome, DenialKind, RevokeKind};
use evgrid_actors::model::clock::now_ms;
use evgrid_actors::mqtt::outbox::OutboxTx;
use ntex_bytes::ByteString;

use super::Shared;
use crate::tls::peer::PeerTls;

/// The MQTT 5 authentication method evgrid implements (docs/eventgrid.md §7.4 item 4).
pub(crate) const CUSTOM_JWT: &str = "CUSTOM-JWT";

/// The client certificate of a TLS connection, as the identity core matches it.
pub(crate) fn cert_info(p: &PeerTls) -> Option<CertInfo> {
    let c = p.client_cert.as_ref()?;
    Some(CertInfo {
        chain: c.chain.iter().map(|d| d.as_ref().to_vec()).collect(),
        thumbprint: c.thumbprint.clone(),
        subject: c.subject.clone(),
        common_name: c.common_name.clone(),
        sans: c.sans.clone(),
    })
}

/// Why a CONNECT was refused at the edge, beyond [`Denied`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refused {
    Denied(Denied),
    /// `maximumClientSessionsPerAuthenticationName` reached (v5 0x97, v3.1.1 0x03).
    Quota,
    /// The will's topic is one the client may not publish to (v5 0x87, v3.1.1 0x05).
    Will,
}

impl Refused {
    pub fn outcome(&self) -> ConnectOutcome {
        // (`Accepted` never: a refusal is one of the others.)
        match self {
            Refused::Denied(Denied::BadCredentials(_)) => ConnectOutcome::BadCredentials,
            Refused::Denied(Denied::NotAuthorized(_)) | Refused::Will => {
                ConnectOutcome::NotAuthorized
            }
            Refused::Denied(Denied::Unavailable(_)) => ConnectOutcome::Unavailable,
            Refused::Quota => ConnectOutcome::Quota,
        }
    }

    pub fn reason(&self) -> &str {
        match self {
            Refused::Denied(d) => d.reason(),
            Refused::Quota => "too many sessions for this authentication name",
            Refused::Will => "the will's topic is not authorized",
        }
    }

    pub fn v5(&self) -> ntex_mqtt::v5::codec::ConnectAckReason {
        use ntex_mqtt::v5::codec::ConnectAckReason as R;
        match self.outcome() {
            ConnectOutcome::BadCredentials => R::BadUserNameOrPassword,
            ConnectOutcome::NotAuthorized | ConnectOutcome::Accepted => R::NotAuthorized,
            ConnectOutcome::Unavailable => R::ServerUnavailable,
            ConnectOutcome::Quota => R::QuotaExceeded,
        }
    }

    pub fn v3(&self) -> ntex_mqtt::v3::codec::ConnectAckReason {
        use ntex_mqtt::v3::codec::ConnectAckReason as R;
        match self.outcome() {
            ConnectOutcome::BadCredentials => R::BadUserNameOrPassword,
            ConnectOutcome::NotAuthorized | ConnectOutcome::Accepted => R::NotAuthorized,
            ConnectOutcome::Unavailable | ConnectOutcome::Quota => R::ServiceUnavailable,
        }
    }

    /// Counts the refusal and logs it once: the client, the method it tried, the reason (never
    /// a secret).
    pub fn report(&self, client_id: &str, method: Option<&str>) {
        AUTH.connect(method, self.outcome());
        tracing::info!(
            client_id,
            method = method.unwrap_or("none"),
            reason = self.reason(),
            "mqtt connect refused"
        );
    }
}

/// The method a CONNECT tried, for the log and the metric when it was refused.
pub(crate) fn tried(creds: &Credentials<'_>) -> Option<&'static str> {
    use evgrid_actors::identity::AuthMethod as M;
    let m = if creds.auth_method.is_some() {
        M::CustomJwt
    } else if creds.cert.is_some() {
        M::Certificate
    } else if creds.username.is_some() || creds.password.is_some() {
        M::Password
    } else {
        M::Anonymous
    };
    Some(m.label())
}

/// Authenticates a CONNECT against the served namespace (docs/eventgrid.md §7.4), asking its
/// webhook when only the webhook can decide. A refusal comes with the method that refused it
/// (for the log and `evgrid_mqtt_connects_total{method}`).
pub(crate) async fn authenticate(
    sh: &Shared,
    creds: &Credentials<'_>,
) -> Result<Identity, (Denied, Option<&'static str>)> {
    let dir = sh.bridge.directory();
    let anon = sh.cfg.allow_anonymous;
    let mut decision = decide(sh, &dir, creds, anon).await;
    if matches!(decision, Decision::Deny(Denied::NotAuthorized(_)))
        && creds.cert.is_some()
        && listener_verified(sh)
    {
        // A certificate the listener verified against `mqtt.tls.ca_file` (client_auth optional
        // or required) admitted the client to TLS; the registry not knowing it is no reason to
        // refuse what the same CONNECT without it would get (anonymous access, a password).
        let without = Credentials {
            cert: None,
            ..*creds
        };
        decision = decide(sh, &dir, &without, anon).await;
    }
    let webhook = Some(AuthMethod::Webhook.label());
    match decision {
        Decision::Accept(id) => Ok(id),
        Decision::Deny(d) => Err((d, tried(creds))),
        Decision::AskWebhook => match &dir.auth.webhook {
            // The webhook vouches for names the namespace does not know, never for a
            // registered client's (Directory::admit_webhook).
            Some(w) => sh
                .auth
                .webhook
                .authenticate(&w.endpoint_url, creds, now_ms)
                .await
                .and_then(|id| dir.admit_webhook(id))
                .map_err(|d| (d, webhook)),
            None => Err((
                Denied::Unavailable("no authentication webhook".into()),
                webhook,
            )),
        },
    }
}

/// Password checks running at once, each on the blocking pool: a slow hash (100,000 PBKDF2
/// rounds) takes milliseconds, and on an MQTT worker a flood of CONNECTs with passwords, right
/// or wrong, would stall every connection that worker serves. Past this many, CONNECTs wait
/// (without holding a worker) and their handshake timeout bounds the wait.
static PASSWORD_CHECKS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(4);

/// [`Directory::authenticate`]; off the worker when the CONNECT carries a password (every
/// path that sees a password hashes it, a wrong or unknown one too).
async fn decide(
    sh: &Shared,
    dir: &Arc<Directory>,
    creds: &Credentials<'_>,
    anon: bool,
) -> Decision {
    let Some(pw) = creds.password else {
        return dir.authenticate(creds, anon, now_ms());
    };
    // A registered client's password that matched its stored hash before: no slow hash (the
    // first check in `authenticate` for these credentials is that one).
    if let (Some(user), None, None) = (creds.username, creds.cert, creds.auth_method)
        && let Some(hash) = dir.client(user).and_then(|c| c.password.as_ref())
        && sh.auth.verified.hit(user, hash, pw)
    {
        return dir.authenticate_with(creds, anon, now_ms(), &|h, _| h == hash);
    }
    let Ok(_permit) = PASSWORD_CHECKS.acquire().await else {
        return Decision::Deny(Denied::Unavailable("password checks stopped".into()));
    };
    let dir = dir.clone();
    let client_id = creds.client_id.to_owned();
    let username = creds.username.map(str::to_owned);
    let password = creds.password.map(<[u8]>::to_vec);
    let auth_method = creds.auth_method.map(str::to_owned);
    let auth_data = creds.auth_data.map(<[u8]>::to_vec);
    let cert = creds.cert.cloned();
    let verified = sh.auth.verified.clone();
    tokio::task::spawn_blocking(move || {
        let creds = Credentials {
            client_id: &client_id,
            username: username.as_deref(),
            password: password.as_deref(),
            auth_method: auth_method.as_deref(),
            auth_data: auth_data.as_deref(),
            cert: cert.as_ref(),
        };
        let verify = |h: &PasswordHash, pw: &[u8]| {
            let ok = h.verify(pw);
            if ok && let Some(user) = creds.username {
                verified.record(user, h, pw);
            }
            ok
        };
        dir.authenticate_with(&creds, anon, now_ms(), &verify)
    })
    .await
    .unwrap_or_else(|_| Decision::Deny(Denied::Unavailable("password check failed".into())))
}

/// Whether TLS client certificates reaching a CONNECT were verified by the listener against
/// `mqtt.tls.ca_file` (`client_auth` optional or required; not `request`).
fn listener_verified(sh: &Shared) -> bool {
    use crate::tls::ClientAuth;
    matches!(
        sh.cfg.tls.client_auth,
        ClientAuth::Optional | ClientAuth::Required
    )
}

/// What the edge's [`Shared`] holds for identity.
pub(crate) struct EdgeAuth {
    pub webhook: Webhook,
    /// Passwords verified recently (reconnects skip the slow hash).
    pub verified: Arc<Verified>,
    pub registry: Arc<Registry>,
    pub mode: AuthzMode,
}

/// Revision and expiry, for as long as the edge runs: a change of the namespace's identity
/// configuration reaches every live connection at once (docs/eventgrid.md §7.4: a disabled or
/// deleted client is disconnected), expiries are checked every second.
pub(crate) async fn watch(sh: Arc<Shared>) {
    let mut changes = sh.bridge.identity_changes();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut open = true;
    let mut ticks = 0u64;
    loop {
        tokio::select! {
            r = changes.changed(), if open => {
                if r.is_err() {
                    open = false;
                    continue;
                }
                let dir = sh.bridge.directory();
                sh.auth.registry.revise(&dir, sh.auth.mode);
            }
            _ = tick.tick() => {
                if sh.stopping.load(Ordering::Relaxed) {
                    return;
                }
                sh.auth.registry.expire(now_ms());
                ticks += 1;
                if ticks.is_multiple_of(10) {
                    let broker = sh.bridge.broker();
                    sh.auth.registry.sweep(|c| broker.has_session(c));
                }
            }
        }
    }
}

/// What a CONNECT that passed authentication carries to its session's opening.
pub(crate) struct Admitted {
    pub id: Identity,
    pub policy: ClientPolicy,
}

/// Authenticates a CONNECT, compiles its policy, authorizes its will like a PUBLISH and claims
/// its session name (docs/eventgrid.md §7.1, §7.4, §7.5). A refusal is counted and logged here.
pub(crate) async fn admit(
    sh: &Shared,
    creds: &Credentials<'_>,
    client_id: &ByteString,
    will_topic: Option<&str>,
    resume: bool,
) -> Result<Admitted, Refused> {
    let id = match authenticate(sh, creds).await {
        Ok(id) => id,
        Err((d, method)) => {
            let r = Refused::Denied(d);
            r.report(client_id, method);
            return Err(r);
        }
    };
    let method = Some(id.method.label());
    let dir = sh.bridge.directory();
    let policy = dir.policy(&id, sh.auth.mode);
    if let Some(t) = will_topic
        && !policy.may_publish(t)
    {
        AUTH.denied(DenialKind::Will, 1);
        let r = Refused::Will;
        r.report(client_id, method);
        return Err(r);
    }
    let broker = sh.bridge.broker();
    if resume
        && broker.has_session(client_id)
        && let Some(f) = sh.auth.registry.lost_subscription(client_id, &policy)
    {
        tracing::info!(client_id = ?client_id, filter = ?f,
            "the session to resume holds a subscription that is no longer authorized");
        AUTH.denied(DenialKind::Subscribe, 1);
        let r = Refused::Denied(Denied::NotAuthorized(
            "the session holds a subscription that is no longer authorized; connect with a clean start"
                .into(),
        ));
        r.report(client_id, method);
        return Err(r);
    }
    if let Err(r) = sh.auth.registry.claim(
        client_id,
        &id.auth_name,
        (id.method != AuthMethod::Anonymous).then_some(dir.max_sessions_per_auth_name),
        |c| broker.has_session(c),
    ) {
        r.report(client_id, method);
        return Err(r);
    }
    AUTH.connect(method, ConnectOutcome::Accepted);
    Ok(Admitted { id, policy })
}

impl super::conn::Conn {
    /// Registers this accepted connection for revocation and expiry, with what it may do.
    pub(crate) fn authorize(
        &mut self,
        a: Admitted,
        clean_start: bool,
        tx: OutboxTx,
        username: Option<ByteString>,
    ) {
        let r = self.shared.auth.registry.clone();
        let client_id = self.client.session.clone();
        self.auth = Some(r.enter(self.id, client_id, clean_start, a, tx, username));
    }

    /// Whether this connection may PUBLISH to `topic` (not counted: the caller refuses).
    pub(crate) fn may_publish(&self, topic: &ByteString) -> bool {
        self.auth.as_ref().is_none_or(|a| a.may_publish(topic))
    }

    /// Whether this connection may subscribe to `filter` (counted when not).
    pub(crate) fn may_subscribe(&self, filter: &str) -> bool {
        self.auth.as_ref().is_none_or(|a| a.may_subscribe(filter))
    }

    /// [`Self::subscribe`], recording the granted filters for revocation's check.
    pub(crate) async fn subscribe_recorded(
        &self,
        reqs: Vec<evgrid_actors::mqtt::router::SubReq>,
        sub_id: Option<u32>,
    ) -> Result<Vec<Option<u8>>, super::EdgeError> {
        let filters: Vec<ByteString> = reqs.iter().map(|r| r.filter.clone()).collect();
        let granted = self.subscribe(reqs, sub_id).await?;
        if let Some(a) = &self.auth {
            a.subscribed(
                filters
                    .into_iter()
                    .zip(&granted)
                    .filter_map(|(f, g)| g.map(|_| f)),
            );
        }
        Ok(granted)
    }

    pub(crate) fn unsubscribed(&self, filters: &[ByteString]) {
        if let Some(a) = &self.auth {
            a.unsubscribed(filters);
        }
    }
}

/// Counts a PUBLISH refused by authorization.
pub(crate) fn publish_denied() {
    AUTH.denied(DenialKind::Publish, 1);
}

/// MQTT 5 re-authentication (docs/eventgrid.md §7.4 item 4): a new CUSTOM-JWT for the same
/// client id and user name, verified as at CONNECT; it must name the same authentication name.
/// Ok: the connection's expiry, attributes and policy are renewed.
pub(crate) fn reauthenticate(conn: &super::conn::Conn, data: Option<&[u8]>) -> Result<(), String> {
    let Some(a) = &conn.auth else {
        return Err("not authenticated".into());
    };
    let old = a.identity();
    let creds = Credentials {
        client_id: &conn.client.session,
        username: a.username.as_deref(),
        auth_method: Some(CUSTOM_JWT),
        auth_data: data,
        ..Default::default()
    };
    let sh = &conn.shared;
    let dir = sh.bridge.directory();
    match dir.authenticate(&creds, false, now_ms()) {
        Decision::Accept(id)
            if evgrid_actors::identity::fold(&id.auth_name)
                == evgrid_actors::identity::fold(&old.auth_name) =>
        {
            a.reauthenticated(id, sh.auth.mode, &dir);
            Ok(())
        }
        Decision::Accept(_) => Err("the token names another authentication name".into()),
        Decision::Deny(d) => Err(d.reason().to_string()),
        Decision::AskWebhook => Err("not a valid CUSTOM-JWT".into()),
    }
}

/// [`admit`] for an MQTT 5 CONNECT: its credentials (with the TLS client certificate), its will.
pub(crate) async fn admit_v5(
    sh: &Shared,
    pkt: &ntex_mqtt::v5::codec::Connect,
    client_id: &ByteString,
    peer: Option<&PeerTls>,
) -> Result<Admitted, Refused> {
    let cert = peer.and_then(cert_info);
    let creds = Credentials {
        client_id,
        username: pkt.username.as_deref(),
        password: pkt.password.as_deref(),
        auth_method: pkt.auth_method.as_deref(),
        auth_data: pkt.auth_data.as_deref(),
        cert: cert.as_ref(),
    };
    let will_topic = pkt.last_will.as_ref().map(|w| &*w.topic);
    admit(sh, &creds, client_id, will_topic, !pkt.clean_start).await
}

/// An MQTT 5 AUTH packet asking for re-authentication (docs/eventgrid.md §7.4 item 4): AUTH
/// 0x00 when the new token verifies; else DISCONNECT 0x87 (written here: ntex-mqtt 9.0 closes
/// the socket before a DISCONNECT returned as the control answer goes out).
pub(crate) fn reauth_v5(
    s: &ntex_mqtt::v5::Session<super::conn::Conn>,
    a: ntex_mqtt::v5::control::Auth,
) -> ntex_mqtt::v5::ProtocolMessageAck {
    use evgrid_actors::mqtt::lifecycle::EndReason;
    use ntex_mqtt::v5::codec;
    let conn: &super::conn::Conn = s;
    match reauthenticate(conn, a.packet().auth_data.as_deref()) {
        Ok(()) => a.ack(codec::Auth {
            reason_code: codec::AuthReasonCode::Success,
            auth_method: Some(ByteString::from_static(CUSTOM_JWT)),
            auth_data: None,
            reason_string: None,
            user_properties: Vec::new(),
        }),
        Err(why) => {
            tracing::info!(client_id = ?conn.client.session, reason = %why,
                "mqtt re-authentication refused");
            AUTH.disconnected(RevokeKind::Reauth);
            conn.ending.set(EndReason::AuthenticationError);
            s.sink().close_with_reason(codec::Disconnect {
                reason_code: codec::DisconnectReasonCode::NotAuthorized,
                ..Default::default()
            });
            ntex_mqtt::v5::ProtocolMessage::Auth(a).disconnect()
        }
    }
}

/// Whether `auth` (an AUTH packet's method and reason) asks for a CUSTOM-JWT re-authentication.
pub(crate) fn is_reauth(method: Option<&str>, reason: u8) -> bool {
    reason == 0x19 && method == Some(CUSTOM_JWT)
}

mod registry;
mod verified;

pub(crate) use registry::{ConnAuth, Registry};
pub(crate) use verified::Verified;

#[cfg(test)]
mod tests;
