//! Webhook authentication's HTTP side (docs/eventgrid.md §7.4 item 5): POSTs the body
//! [`crate::identity::webhook::request_body`] built to the namespace's authentication webhook and
//! reads the decision with [`crate::identity::webhook::read_reply`].
//!
//! Owns one awc client on an arbiter of its own (awc is `!Send`; the MQTT edge runs on ntex
//! threads), fed through a channel, with push delivery's TLS configuration (`push.tls`) so
//! `https://` webhooks trust the same roots. Must never wait more than [`TIMEOUT`] for an answer,
//! and never log the request body (it carries passwords and tokens).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::identity::Identity;
use crate::identity::directory::{Credentials, Denied};

/// How long the broker waits for the webhook (Event Grid's 5 s).
pub const TIMEOUT: Duration = Duration::from_secs(5);

struct Ask {
    url: String,
    body: Vec<u8>,
    reply: oneshot::Sender<Result<Vec<u8>, String>>,
}

/// Handle to the webhook client. Cheap to clone, `Send`.
#[derive(Clone)]
pub struct Webhook {
    tx: Option<mpsc::Sender<Ask>>,
}

impl Webhook {
    /// Starts the client on a new arbiter (must be called inside a running actix system).
    /// `token`: sent as `Authorization: Bearer <token>` unless empty.
    pub fn start(tls: Option<Arc<rustls::ClientConfig>>, token: String) -> Webhook {
        let (tx, rx) = mpsc::channel::<Ask>(1024);
        let arbiter = actix::Arbiter::new();
        arbiter.spawn_fn(move || {
            actix::spawn(serve(rx, tls, token));
        });
        // The arbiter lives as long as the channel: dropping the handle does not stop it.
        std::mem::forget(arbiter);
        Webhook { tx: Some(tx) }
    }

    /// A client that never answers (tests, tools): every question is unavailable.
    pub fn disabled() -> Webhook {
        Webhook { tx: None }
    }

    /// Asks `url` about `creds` at `now_ms` (for the reply's expiration): the identity, or why
    /// not. A timeout, a status other than 200, a connection error or an unreadable reply is
    /// [`Denied::Unavailable`].
    pub async fn authenticate(
        &self,
        url: &str,
        creds: &Credentials<'_>,
        now_ms: impl FnOnce() -> u64,
    ) -> Result<Identity, Denied> {
        let Some(tx) = &self.tx else {
            return Err(Denied::Unavailable("webhook client not running".into()));
        };
        let body = crate::identity::webhook::request_body(creds);
        let (reply, rx) = oneshot::channel();
        let ask = Ask {
            url: url.to_string(),
            body,
            reply,
        };
        // The whole wait is bounded, the queue's too: a full queue (1,024 questions waiting
        // for a stalled webhook) must not hold a CONNECT longer than the webhook's own timeout.
        let asked = async {
            if tx.send(ask).await.is_err() {
                return Err("webhook client stopped".to_string());
            }
            rx.await
                .unwrap_or_else(|_| Err("webhook client stopped".into()))
        };
        let answer = match tokio::time::timeout(TIMEOUT + Duration::from_secs(1), asked).await {
            Ok(a) => a,
            Err(_) => Err("no answer within 5 s".into()),
        };
        match answer {
            Ok(body) => crate::identity::webhook::read_reply(&body, creds, now_ms()),
            Err(e) => Err(Denied::Unavailable(format!("authentication webhook: {e}"))),
        }
    }
}

/// The client's loop, on its own arbiter: one task per question, so a slow webhook holds up no
/// other CONNECT.
async fn serve(mut rx: mpsc::Receiver<Ask>, tls: Option<Arc<rustls::ClientConfig>>, token: String) {
    let mut connector = awc::Connector::new().timeout(TIMEOUT);
    if let Some(tls) = tls {
        connector = connector.rustls_0_23(tls).handshake_timeout(TIMEOUT);
    }
    let client = awc::Client::builder()
        .connector(connector)
        .timeout(TIMEOUT)
        .disable_redirects()
        .no_default_headers()
        .finish();
    let bearer = (!token.is_empty()).then(|| format!("Bearer {token}"));
    while let Some(ask) = rx.recv().await {
        let mut req = client
            .post(&ask.url)
            .insert_header(("content-type", "application/json"));
        if let Some(b) = &bearer {
            req = req.insert_header(("authorization", b.as_str()));
        }
        actix::spawn(async move {
            let res = tokio::time::timeout(TIMEOUT, async {
                let mut resp = req.send_body(ask.body).await.map_err(|e| e.to_string())?;
                let status = resp.status().as_u16();
                if status != 200 {
                    return Err(format!("status {status}"));
                }
                resp.body()
                    .limit(64 * 1024)
                    .await
                    .map(|b| b.to_vec())
                    .map_err(|e| e.to_string())
            })
            .await
            .unwrap_or_else(|_| Err("no answer within 5 s".into()));
            let _ = ask.reply.send(res);
        });
    }
}
