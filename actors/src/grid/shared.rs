//! What both tiers of the grid share: the store's writer, the settings, the one management
//! lock, the subscription key counter, the arbiters actors run on, the delivery shards, and how
//! a topic or subscription actor is started.
//!
//! Owns no resource: the namespace tier ([`super::namespaces`]) and the basic tier
//! ([`super::basic`]) each keep their own registry and take this by reference. Must never hold
//! a lock across an await other than the management lock.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use actix::prelude::*;
use serde_json::{Value, json};

use super::error::GridError;
use super::resource::Limits;
use super::resource::basic::PushCfg;
use super::resource::namespace::SubCfg;
use super::topic::TopicActor;
use crate::delivery::PushConfig;
use crate::delivery::backlog::{Pager, WindowLimits};
use crate::delivery::push::{Names, PushSub};
use crate::delivery::queue::QueueSub;
use crate::delivery::shard::{self, DeliveryShard, Handshake, Validate};
use crate::store::{StoreError, Writer};

/// Settings of the grid. `src/config.rs` builds the value the server runs with.
#[derive(Debug, Clone)]
pub struct GridConfig {
    pub limits: Limits,
    /// How often subscription actors check locks, delays, time to live and long polls.
    pub tick: Duration,
    /// Push (webhook) delivery.
    pub push: PushConfig,
    /// The MQTT host name (`mqtt.hostname`): what `topicSpacesConfiguration.hostname` shows and
    /// the audience a custom JWT must carry (docs/eventgrid.md §7.4, §7.9).
    pub mqtt_hostname: String,
    /// How much of the pull and push backlogs stays in memory.
    pub backlog: WindowLimits,
}

/// Access keys of a namespace, a custom topic or a domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    pub key1: String,
    pub key2: String,
}

impl Keys {
    pub(crate) fn of(keys: &[String; 2]) -> Keys {
        Keys {
            key1: keys[0].clone(),
            key2: keys[1].clone(),
        }
    }
}

/// The one management lock, and the generation of the registries it guards: every holder of
/// the lock may have changed them, so releasing it moves the generation on. Readers that cache
/// what they looked up (the bridge's route) compare generations instead of locking.
pub(crate) struct Mgmt {
    lock: tokio::sync::Mutex<()>,
    generation: AtomicU64,
}

/// Held while a management change is made; bumps the generation when dropped.
pub(crate) struct MgmtGuard<'a> {
    _lock: tokio::sync::MutexGuard<'a, ()>,
    generation: &'a AtomicU64,
}

impl Drop for MgmtGuard<'_> {
    fn drop(&mut self) {
        self.generation.fetch_add(1, Ordering::Release);
    }
}

impl Mgmt {
    fn new() -> Mgmt {
        Mgmt {
            lock: tokio::sync::Mutex::new(()),
            generation: AtomicU64::new(0),
        }
    }

    pub async fn lock(&self) -> MgmtGuard<'_> {
        MgmtGuard {
            _lock: self.lock.lock().await,
            generation: &self.generation,
        }
    }

    /// Changes with every management change (load it before reading what it guards).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }
}

pub(crate) struct Shared {
    pub writer: Writer,
    pub cfg: GridConfig,
    /// Serialises management changes; the data plane never takes it.
    pub mgmt: Mgmt,
    next_key: AtomicU64,
    arbiters: Vec<ArbiterHandle>,
    next_arbiter: AtomicUsize,
    shards: Vec<Addr<DeliveryShard>>,
}

impl Shared {
    /// Starts the delivery shards. Must run inside an actix system.
    pub fn new(writer: Writer, arbiters: Vec<ArbiterHandle>, cfg: GridConfig) -> Shared {
        assert!(!arbiters.is_empty(), "at least one arbiter");
        let shards = (0..cfg.push.shards.max(1))
            .map(|i| {
                let c = cfg.push.clone();
                DeliveryShard::start_in_arbiter(&arbiters[i % arbiters.len()], move |_| {
                    DeliveryShard::new(c)
                })
            })
            .collect();
        Shared {
            writer,
            cfg,
            mgmt: Mgmt::new(),
            next_key: AtomicU64::new(1),
            arbiters,
            next_arbiter: AtomicUsize::new(0),
            shards,
        }
    }

    fn arbiter(&self) -> ArbiterHandle {
        let n = self.next_arbiter.fetch_add(1, Ordering::Relaxed) % self.arbiters.len();
        self.arbiters[n].clone()
    }

    /// A fresh subscription key (the store's name for a subscription's entries).
    pub fn new_key(&self) -> u64 {
        self.next_key.fetch_add(1, Ordering::Relaxed)
    }

    /// After loading: new keys continue above every key the store holds.
    pub fn keys_above(&self, max_key: u64) {
        self.next_key.store(max_key + 1, Ordering::Relaxed);
    }

    pub fn public_url(&self) -> &str {
        self.cfg.push.public_url.trim_end_matches('/')
    }

    /// A topic actor with no routes yet.
    pub fn start_topic(&self) -> Addr<TopicActor> {
        let w = self.writer.clone();
        TopicActor::start_in_arbiter(&self.arbiter(), move |_| TopicActor::new(w))
    }

    /// Starts a pull queue on what the store holds for `key`; also answers the highest
    /// sequence it holds (0 if none).
    pub fn start_queue(&self, key: u64, cfg: SubCfg) -> Result<(Addr<QueueSub>, u64), StoreError> {
        let store = self.writer.store();
        let last = store.queue_last(key)?;
        let head = Pager::open(key, self.cfg.backlog, &**store)?;
        let dl = store.last_dead_letter(key)?;
        let (writer, tick) = (self.writer.clone(), self.cfg.tick);
        let addr = QueueSub::start_in_arbiter(&self.arbiter(), move |_| {
            QueueSub::new(key, cfg.queue, writer, tick, head, dl)
        });
        Ok((addr, last))
    }

    /// Starts the actor of an active push subscription on what the store holds for it;
    /// answers the highest sequence it holds.
    pub fn start_push(
        &self,
        key: u64,
        cfg: PushCfg,
        names: Names,
    ) -> Result<(Addr<PushSub>, u64), StoreError> {
        let store = self.writer.store();
        let last = store.queue_last(key)?;
        let queued = Pager::open(key, self.cfg.backlog, &**store)?;
        let dl = store.last_dead_letter(key)?;
        let shard = self.shard_for(&cfg.delivery.endpoint);
        let (writer, tick, push) = (self.writer.clone(), self.cfg.tick, self.cfg.push.clone());
        let addr = PushSub::start_in_arbiter(&self.arbiter(), move |_| {
            PushSub::new(
                key,
                cfg.delivery,
                push,
                names,
                writer,
                shard,
                tick,
                queued,
                dl,
            )
        });
        Ok((addr, last))
    }

    pub fn shard_for(&self, url: &str) -> Addr<DeliveryShard> {
        let n = shard::shard_of(url, self.shards.len());
        self.shards[n].clone()
    }

    /// Runs a validation handshake on the endpoint's shard.
    pub async fn handshake(
        &self,
        url: &str,
        handshake: Handshake,
    ) -> Result<Result<shard::Validation, String>, GridError> {
        self.shard_for(url)
            .send(Validate {
                url: url.to_string(),
                handshake,
            })
            .await
            .map_err(|_| GridError::Closed)
    }

    /// The CloudEvents abuse-protection handshake (namespace push subscriptions).
    pub async fn validate_cloudevents_endpoint(&self, url: &str) -> Result<(), GridError> {
        match self.handshake(url, Handshake::CloudEvents).await? {
            Ok(_) => Ok(()),
            Err(why) => Err(GridError::Handshake {
                url: without_query(url).to_string(),
                why,
                guide: false,
            }),
        }
    }
}

/// A URL without its query, which may hold a secret.
pub(crate) fn without_query(url: &str) -> &str {
    url.split('?').next().unwrap_or_default()
}

/// A fresh access key; refused like a failed commit when the OS has no randomness to give.
pub(crate) fn generate_key() -> Result<String, GridError> {
    crate::model::keys::generate_key().map_err(|e| StoreError::Io(e.to_string()).into())
}

/// Which of the two keys `keyName` names.
pub(crate) fn key_index(which: &str) -> Result<usize, GridError> {
    match which {
        "key1" => Ok(0),
        "key2" => Ok(1),
        other => Err(GridError::BadRequest(format!(
            "keyName must be 'key1' or 'key2', got '{other}'"
        ))),
    }
}

/// Azure names are case-insensitive: registries and store paths use the lowercased form.
pub(crate) fn lc(s: &str) -> String {
    s.to_ascii_lowercase()
}

/// The ARM document a GET returns.
pub(crate) fn arm(id: String, name: &str, ty: &str, props: &Value) -> Value {
    json!({"id": id, "name": name, "type": ty, "properties": props})
}

/// Why a stored document cannot be loaded.
pub(crate) fn bad(path: &str, e: String) -> StoreError {
    StoreError::Refused(format!("stored resource {path} is invalid: {e}"))
}
