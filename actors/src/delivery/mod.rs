//! Getting events out: the pull queue of a namespace subscription ([`queue`]), the webhook
//! subscription actor of both tiers ([`push`]), the endpoint shards that perform HTTP requests
//! ([`shard`]), and the pure policy they follow: when to retry ([`retry`]), what a request looks
//! like ([`request`]), and what a dead-letter record holds ([`dead_letter`]).
//!
//! Owns every event from the moment its commit hands it over until it is acknowledged, delivered,
//! dead-lettered or dropped, always with a store commit saying so. Receives its settings as
//! delivery-side values ([`push::PushSettings`], [`queue::QueueSettings`]), never a resource
//! definition. Must never import the resource layer (resource definitions, filters, the
//! registry) nor the message broker: both hand events in; nothing here reaches back.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use retry::Profile;

pub mod backlog;
pub mod dead_letter;
pub mod push;
pub mod queue;
pub mod request;
pub mod retry;
pub mod shard;

/// Settings of push delivery.
#[derive(Debug, Clone)]
pub struct PushConfig {
    /// Waits before the 1st, 2nd, … retry (Event Grid: 10 s, 30 s, 1 m, 5 m, 10 m, 30 m, 1 h,
    /// 3 h, 6 h, then every 12 h). Also the unit of the status minimums and probation times.
    pub retry_schedule: Arc<Vec<Duration>>,
    /// The same for namespace subscriptions in Push mode (Event Grid: immediately, 10 s, 30 s,
    /// 1 m, 5 m, then every 5 m).
    pub namespace_retry_schedule: Arc<Vec<Duration>>,
    pub request_timeout: Duration,
    /// How long the synchronous validation handshake may take.
    pub validation_timeout: Duration,
    /// How long a subscription waits for its `validationUrl` to be visited.
    pub manual_validation: Duration,
    /// Requests in flight per subscription.
    pub max_in_flight: usize,
    pub shards: usize,
    /// Consecutive failures that put an endpoint on probation.
    pub probation_after: u32,
    /// Also write dead letters as JSON files under this directory.
    pub dead_letter_dir: Option<std::path::PathBuf>,
    /// Base URL of this server as webhooks can reach it (for `validationUrl`).
    pub public_url: String,
    /// Refuse endpoints whose host is or resolves to a loopback, link-local, private,
    /// unique-local or unspecified address (checked before the validation handshake), so the
    /// handshake cannot be used to probe the server's own network.
    pub deny_private_endpoints: bool,
    /// How `https://` endpoints are connected to and their certificates verified (the system's
    /// roots plus `push.tls.ca_file`, built by the server); `None`: no TLS client, so an
    /// `https://` endpoint fails every attempt (never falls back to plaintext).
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

impl PushConfig {
    /// The retry schedule of `profile`.
    pub fn schedule(&self, profile: Profile) -> Arc<Vec<Duration>> {
        match profile {
            Profile::Basic => self.retry_schedule.clone(),
            Profile::Namespace => self.namespace_retry_schedule.clone(),
        }
    }

    /// The first step of the schedule: the unit the fixed Event Grid minimums are scaled by, so
    /// that a shortened schedule (tests) shortens them too.
    pub fn unit(&self) -> Duration {
        self.retry_schedule
            .first()
            .copied()
            .unwrap_or(Duration::from_secs(10))
    }
}

/// Sequences waiting for their time, as (available at, in ms; sequence), earliest first.
type Delayed = BinaryHeap<Reverse<(u64, u64)>>;

/// Lines `seq` up to be handed out: at once if `at_ms` has come by `now`, else once it has.
fn schedule(ready: &mut VecDeque<u64>, delayed: &mut Delayed, seq: u64, at_ms: u64, now: u64) {
    if at_ms > now {
        delayed.push(Reverse((at_ms, seq)));
    } else {
        ready.push_back(seq);
    }
}

/// Takes the delayed sequences whose time has come by `now`, and lines up those `wanted` still
/// holds (the others were settled or handed out meanwhile).
fn release_due(
    ready: &mut VecDeque<u64>,
    delayed: &mut Delayed,
    now: u64,
    wanted: impl Fn(u64) -> bool,
) {
    while let Some(Reverse((at, seq))) = delayed.peek().copied() {
        if at > now {
            break;
        }
        delayed.pop();
        if wanted(seq) {
            ready.push_back(seq);
        }
    }
}
