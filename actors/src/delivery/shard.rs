//! Webhook delivery shards: a fixed number of actors, each owning the HTTP client and the
//! health state of the endpoints hashed to it (endpoint URL → shard).
//!
//! A shard performs requests (deliveries and the validation handshakes of docs/eventgrid.md
//! §5.1, §5.2) and classifies each answer with [`retry::classify_status`] (docs/eventgrid.md
//! §5.4). After repeated failures an endpoint is put on probation ([`retry::Probation`],
//! docs/eventgrid.md §5.5): for a while, deliveries to it are deferred without an attempt, so a
//! dead endpoint costs nothing and never delays the others. Every request runs as its own
//! future, so a slow endpoint never holds up another one on the same shard.
//!
//! Owns no events: retry schedules, counts and dead-lettering belong to the subscription actors.
//! Must never block its arbiter or follow a redirect.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use awc::error::{ConnectError, SendRequestError};
use awc::http::Method;

use super::PushConfig;
use super::retry::{self, Outcome, Probation, Profile, WebhookOutcome};
use crate::metrics::{PUSH, PUSH_OUTCOMES};
use crate::model::clock::{mono_ms, now_ms};

/// One HTTP request to an endpoint.
pub struct Request {
    pub url: Arc<str>,
    pub content_type: &'static str,
    pub headers: Vec<(std::borrow::Cow<'static, str>, ntex_bytes::ByteString)>,
    pub body: Vec<u8>,
    /// Which tier's statuses are never retried (docs/eventgrid.md §6.4).
    pub profile: Profile,
}

/// One delivery attempt of one request (or a deferral, while its endpoint is on probation).
#[derive(Message)]
#[rtype(result = "Outcome")]
pub struct Attempt(pub Request);

/// The handshake a subscription's endpoint must pass before it gets events.
#[derive(Debug, Clone)]
pub enum Handshake {
    /// Event Grid schema: a SubscriptionValidationEvent POST (docs/eventgrid.md §5.1).
    EventGrid {
        code: String,
        validation_url: String,
        subscription: String,
    },
    /// CloudEvents abuse protection: OPTIONS with `WebHook-Request-Origin` (docs/eventgrid.md §5.2).
    CloudEvents,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Validation {
    /// The endpoint answered the handshake: active now.
    Validated,
    /// The endpoint answered 200 without the code: active once the validation URL is visited.
    AwaitingManual,
}

/// `Err` (why) if `url`'s host is, or resolves to, an address outside the public internet:
/// loopback, link-local, private (RFC 1918), shared (RFC 6598), unique-local, unspecified,
/// "this network", broadcast or multicast (`push.deny_private_endpoints`). Every resolved
/// address must pass, so a name that resolves to a public and a private address is refused.
/// Checked when an endpoint is validated, not again at each delivery.
pub async fn refuse_private(url: &str) -> Result<(), String> {
    let (rest, default_port) = match url.strip_prefix("http://") {
        Some(rest) => (rest, 80),
        None => (
            url.strip_prefix("https://")
                .ok_or_else(|| "the endpoint is not an http:// or https:// URL".to_string())?,
            443,
        ),
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    let (host, port) = match authority.strip_prefix('[') {
        // [v6] or [v6]:port
        Some(v6) => {
            let (h, after) = v6
                .split_once(']')
                .ok_or_else(|| format!("the endpoint's host '{authority}' is not valid"))?;
            (h, after.strip_prefix(':'))
        }
        None => match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        },
    };
    let port = match port {
        None | Some("") => default_port,
        Some(p) => p
            .parse::<u16>()
            .map_err(|_| format!("the endpoint's port '{p}' is not valid"))?,
    };
    let addrs: Vec<std::net::SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| format!("the endpoint's host '{host}' could not be resolved: {e}"))?
        .collect();
    if addrs.is_empty() {
        return Err(format!(
            "the endpoint's host '{host}' resolves to no address"
        ));
    }
    for a in addrs {
        if let Some(kind) = private_kind(a.ip()) {
            let verb = if host.parse::<std::net::IpAddr>().is_ok() {
                "is"
            } else {
                "resolves to"
            };
            return Err(format!(
                "the endpoint's host '{host}' {verb} {kind} address ({}), and this server refuses those (push.deny_private_endpoints)",
                a.ip()
            ));
        }
    }
    Ok(())
}

/// What kind of non-public address `ip` is, if it is one.
pub fn private_kind(ip: std::net::IpAddr) -> Option<&'static str> {
    use std::net::IpAddr;
    match ip {
        IpAddr::V4(a) => {
            let [o0, o1, ..] = a.octets();
            if a.is_loopback() {
                Some("a loopback")
            } else if a.is_private() {
                Some("a private (RFC 1918)")
            } else if a.is_link_local() {
                Some("a link-local")
            } else if a.is_unspecified() || o0 == 0 {
                Some("an unspecified")
            } else if o0 == 100 && (64..128).contains(&o1) {
                Some("a shared (RFC 6598)")
            } else if a.is_broadcast() || a.is_multicast() {
                Some("a broadcast or multicast")
            } else {
                None
            }
        }
        IpAddr::V6(a) => {
            if let Some(v4) = a.to_ipv4_mapped() {
                return private_kind(IpAddr::V4(v4));
            }
            let s0 = a.segments()[0];
            if a.is_loopback() {
                Some("a loopback")
            } else if a.is_unspecified() {
                Some("an unspecified")
            } else if s0 & 0xfe00 == 0xfc00 {
                Some("a unique-local")
            } else if s0 & 0xffc0 == 0xfe80 {
                Some("a link-local")
            } else if a.is_multicast() {
                Some("a multicast")
            } else {
                None
            }
        }
    }
}

/// Runs a validation handshake; `Err` says why the endpoint failed it.
#[derive(Message)]
#[rtype(result = "Result<Validation, String>")]
pub struct Validate {
    pub url: String,
    pub handshake: Handshake,
}

pub struct DeliveryShard {
    cfg: PushConfig,
    client: Option<awc::Client>,
    endpoints: HashMap<Arc<str>, Probation>,
}

impl DeliveryShard {
    pub fn new(cfg: PushConfig) -> DeliveryShard {
        DeliveryShard {
            cfg,
            client: None,
            endpoints: HashMap::new(),
        }
    }

    fn client(&mut self) -> awc::Client {
        let timeout = self.cfg.request_timeout;
        let tls = self.cfg.tls.clone();
        self.client
            .get_or_insert_with(|| {
                // The client is !Send: it is built on the shard's own arbiter. One client, so
                // one connection pool, for http:// and https:// endpoints alike.
                let mut connector = awc::Connector::new()
                    .limit(4096)
                    .timeout(timeout.min(Duration::from_secs(10)));
                if let Some(tls) = tls {
                    connector = connector
                        .rustls_0_23(tls)
                        .handshake_timeout(timeout.min(Duration::from_secs(10)));
                }
                awc::Client::builder()
                    .connector(connector)
                    .timeout(timeout)
                    .disable_redirects()
                    // HTTP/1.1 only, through the ClientConfig's ALPN: awc's max_http_version
                    // would replace the TLS configuration with its own default.
                    .no_default_headers()
                    .finish()
            })
            .clone()
    }
}

impl Actor for DeliveryShard {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(65_536);
    }
}

/// Why the endpoint's certificate was refused, if that is why the request failed: the TLS
/// handshake's error comes back as an I/O error wrapping rustls's.
pub fn certificate_error(e: &SendRequestError) -> Option<&rustls::Error> {
    let SendRequestError::Connect(ConnectError::Io(io)) = e else {
        return None;
    };
    let mut inner: &(dyn std::error::Error + 'static) = io.get_ref()?;
    loop {
        if let Some(r) = inner.downcast_ref::<rustls::Error>() {
            return matches!(
                r,
                rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented
            )
            .then_some(r);
        }
        if let Some(io) = inner.downcast_ref::<std::io::Error>() {
            inner = io.get_ref()?;
            continue;
        }
        inner = inner.source()?;
    }
}

/// The outcome Event Grid names a request that got no answer.
fn error_outcome(e: &SendRequestError) -> WebhookOutcome {
    if certificate_error(e).is_some() {
        return WebhookOutcome::CertificateError;
    }
    match e {
        SendRequestError::Timeout => WebhookOutcome::TimedOut,
        SendRequestError::Connect(ConnectError::Resolver(_)) => WebhookOutcome::ResolutionError,
        SendRequestError::Connect(ConnectError::Timeout) => WebhookOutcome::TimedOut,
        _ => WebhookOutcome::SocketError,
    }
}

impl Handler<Attempt> for DeliveryShard {
    type Result = ResponseActFuture<Self, Outcome>;

    fn handle(&mut self, msg: Attempt, _: &mut Context<Self>) -> Self::Result {
        let req = msg.0;
        if let Some(until_ms) = self
            .endpoints
            .get(&req.url)
            .and_then(|p| p.deferred_until(mono_ms()))
        {
            PUSH.deferred.inc();
            return Box::pin(fut::ready(Outcome::Deferred { until_ms }));
        }
        let client = self.client();
        let unit = self.cfg.unit();
        let url = req.url.clone();
        let mut r = client
            .post(&*req.url)
            .insert_header(("Content-Type", req.content_type));
        for (k, v) in &req.headers {
            r = r.insert_header((k.as_ref(), v.as_str()));
        }
        let body = req.body;
        let profile = req.profile;
        PUSH.requests.inc();
        let started = Instant::now();
        Box::pin(
            async move {
                match r.send_body(body).await {
                    Ok(mut resp) => {
                        // Drained so the connection can be reused; the content is not used.
                        let _ = resp.body().limit(64 * 1024).await;
                        retry::classify_status(resp.status().as_u16(), unit, profile)
                    }
                    Err(e) => {
                        if let Some(why) = certificate_error(&e) {
                            // The operator's to fix (a CA to trust, a certificate to renew): said
                            // at each attempt, not only in the dead-letter record.
                            tracing::warn!(endpoint = %base(&url), "webhook request failed: certificate error: {why}");
                        } else {
                            tracing::debug!(endpoint = %base(&url), error = %e, "webhook request failed");
                        }
                        let mut out = retry::classify_error(error_outcome(&e), unit);
                        if let (Some(why), Outcome::Failed { detail, .. }) =
                            (certificate_error(&e), &mut out)
                        {
                            *detail = Some(Arc::from(format!("certificate error: {why}")));
                        }
                        out
                    }
                }
            }
            .into_actor(self)
            .map(move |out, act, _| {
                PUSH.latency.observe_us(started.elapsed().as_micros() as u64);
                if let Outcome::Failed { outcome, .. } = &out {
                    PUSH.failures.inc();
                    PUSH_OUTCOMES.failed(outcome.name());
                }
                let h = act.endpoints.entry(req.url.clone()).or_default();
                let after = act.cfg.probation_after;
                if let Some(d) = h.record(&out, after, unit, mono_ms(), now_ms())
                    && let Outcome::Failed { outcome, .. } = &out
                {
                    tracing::info!(endpoint = %base(&req.url), outcome = outcome.name(), secs = d.as_secs(), "endpoint on probation");
                }
                out
            }),
        )
    }
}

impl Handler<Validate> for DeliveryShard {
    type Result = ResponseActFuture<Self, Result<Validation, String>>;

    fn handle(&mut self, msg: Validate, _: &mut Context<Self>) -> Self::Result {
        let client = self.client();
        let timeout = self.cfg.validation_timeout;
        let deny_private = self.cfg.deny_private_endpoints;
        Box::pin(
            async move {
                let url = msg.url;
                if deny_private {
                    refuse_private(&url).await?;
                }
                match msg.handshake {
                    Handshake::CloudEvents => {
                        let mut resp = client
                            .request(Method::OPTIONS, &url)
                            .insert_header(("WebHook-Request-Origin", "eventgrid.azure.net"))
                            .timeout(timeout)
                            .send()
                            .await
                            .map_err(|e| request_failed("the OPTIONS request", &e))?;
                        let _ = resp.body().limit(64 * 1024).await;
                        let allowed = resp
                            .headers()
                            .get("WebHook-Allowed-Origin")
                            .and_then(|v| v.to_str().ok())
                            .map(str::trim);
                        let status = resp.status().as_u16();
                        match allowed {
                            _ if !(200..300).contains(&status) => Err(format!(
                                "the OPTIONS request was answered with HTTP {status}"
                            )),
                            Some("*") | Some("eventgrid.azure.net") => Ok(Validation::Validated),
                            Some(other) => Err(format!(
                                "WebHook-Allowed-Origin was '{other}', not 'eventgrid.azure.net' or '*'"
                            )),
                            None => Err("the answer to OPTIONS had no WebHook-Allowed-Origin header".into()),
                        }
                    }
                    Handshake::EventGrid {
                        code,
                        validation_url,
                        subscription,
                    } => {
                        let body = validation_event(&code, &validation_url);
                        let mut resp = client
                            .post(&url)
                            .insert_header(("Content-Type", "application/json; charset=utf-8"))
                            .insert_header(("aeg-event-type", "SubscriptionValidation"))
                            .insert_header(("aeg-subscription-name", subscription.to_ascii_uppercase()))
                            .insert_header(("aeg-delivery-count", "0"))
                            .insert_header(("aeg-data-version", "1"))
                            .insert_header(("aeg-metadata-version", "1"))
                            .timeout(timeout)
                            .send_body(body)
                            .await
                            .map_err(|e| request_failed("the validation request", &e))?;
                        let status = resp.status().as_u16();
                        let text = resp.body().limit(64 * 1024).await.unwrap_or_default();
                        if status != 200 {
                            return Err(format!(
                                "the validation request was answered with HTTP {status} (only 200 is accepted)"
                            ));
                        }
                        let answer: Option<String> = serde_json::from_slice::<serde_json::Value>(&text)
                            .ok()
                            .and_then(|v| v.get("validationResponse")?.as_str().map(str::to_string));
                        match answer {
                            Some(a) if a == code => Ok(Validation::Validated),
                            Some(a) => Err(format!(
                                "the validationResponse '{}' does not match the validation code",
                                a.chars().take(64).collect::<String>()
                            )),
                            None => Ok(Validation::AwaitingManual),
                        }
                    }
                }
            }
            .into_actor(self),
        )
    }
}

/// Why a handshake request got no answer; a refused certificate says so.
fn request_failed(what: &str, e: &SendRequestError) -> String {
    match certificate_error(e) {
        Some(why) => format!("{what} failed: certificate error: {why}"),
        None => format!("{what} failed: {e}"),
    }
}

fn validation_event(code: &str, url: &str) -> Vec<u8> {
    let now = crate::model::time::format_rfc3339_ms(now_ms());
    serde_json::json!([{
        "id": code,
        "topic": "/providers/Microsoft.EventGrid",
        "subject": "",
        "data": {"validationCode": code, "validationUrl": url},
        "eventType": "Microsoft.EventGrid.SubscriptionValidationEvent",
        "eventTime": now,
        "metadataVersion": "1",
        "dataVersion": "1",
    }])
    .to_string()
    .into_bytes()
}

/// The URL without its query, which may hold secrets (`?code=…`): for logs.
fn base(url: &str) -> &str {
    url.split('?').next().unwrap_or_default()
}

/// The shard that owns `url`.
pub fn shard_of(url: &str, shards: usize) -> usize {
    // FNV-1a: stable across restarts, so an endpoint's state stays on one shard.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in url.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h % shards.max(1) as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_addresses_are_named() {
        let kind = |a: &str| private_kind(a.parse().unwrap());
        assert_eq!(kind("127.0.0.1"), Some("a loopback"));
        assert_eq!(kind("10.0.0.1"), Some("a private (RFC 1918)"));
        assert_eq!(kind("172.16.5.4"), Some("a private (RFC 1918)"));
        assert_eq!(kind("192.168.1.1"), Some("a private (RFC 1918)"));
        assert_eq!(kind("169.254.169.254"), Some("a link-local"));
        assert_eq!(kind("0.0.0.0"), Some("an unspecified"));
        assert_eq!(kind("100.64.0.1"), Some("a shared (RFC 6598)"));
        assert_eq!(kind("::1"), Some("a loopback"));
        assert_eq!(kind("::"), Some("an unspecified"));
        assert_eq!(kind("fd12::1"), Some("a unique-local"));
        assert_eq!(kind("fe80::1"), Some("a link-local"));
        assert_eq!(kind("::ffff:192.168.0.1"), Some("a private (RFC 1918)"));
        assert_eq!(kind("8.8.8.8"), None);
        assert_eq!(kind("172.32.0.1"), None);
        assert_eq!(kind("2001:4860::8888"), None);
    }

    #[test]
    fn refused_certificates_are_their_own_outcome() {
        use rustls::CertificateError as C;
        let io = |e: rustls::Error| {
            SendRequestError::Connect(ConnectError::Io(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                e,
            )))
        };
        let unknown = io(rustls::Error::InvalidCertificate(C::UnknownIssuer));
        assert_eq!(error_outcome(&unknown), WebhookOutcome::CertificateError);
        assert_eq!(
            request_failed("the validation request", &unknown),
            "the validation request failed: certificate error: invalid peer certificate: UnknownIssuer"
        );
        let expired = io(rustls::Error::InvalidCertificate(C::Expired));
        assert_eq!(error_outcome(&expired), WebhookOutcome::CertificateError);
        // Other TLS failures, and plain I/O errors, stay socket errors.
        let alert = io(rustls::Error::DecryptError);
        assert_eq!(error_outcome(&alert), WebhookOutcome::SocketError);
        let reset = SendRequestError::Connect(ConnectError::Io(std::io::Error::from(
            std::io::ErrorKind::ConnectionReset,
        )));
        assert_eq!(error_outcome(&reset), WebhookOutcome::SocketError);
        assert_eq!(
            error_outcome(&SendRequestError::Timeout),
            WebhookOutcome::TimedOut
        );
    }

    #[tokio::test]
    async fn https_endpoints_are_checked_for_private_addresses() {
        let e = refuse_private("https://127.0.0.1/hook").await.unwrap_err();
        assert!(e.contains("loopback"), "{e}");
        let e = refuse_private("https://[::1]:8443/hook").await.unwrap_err();
        assert!(e.contains("loopback"), "{e}");
        let e = refuse_private("ftp://8.8.8.8/").await.unwrap_err();
        assert!(e.contains("http:// or https://"), "{e}");
        assert!(refuse_private("https://8.8.8.8/hook").await.is_ok());
    }

    #[test]
    fn logged_endpoints_leave_out_their_query() {
        assert_eq!(base("http://h/p?code=secret"), "http://h/p");
    }

    #[test]
    fn shards_are_stable() {
        assert_eq!(shard_of("http://a/x", 4), shard_of("http://a/x", 4));
        assert!(shard_of("http://a/x", 3) < 3);
        assert_eq!(shard_of("x", 0), 0);
    }
}
