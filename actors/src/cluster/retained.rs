//! Retained MQTT messages as the cluster's: the KV bucket `{prefix}-retained` (key: the escaped
//! topic; value: the link's message frame; an empty payload purges the key), written by the
//! link's writer before a retained QoS 1/2 PUBLISH is acknowledged, and read by every node at
//! start and on each change into its routing shards (kept, not delivered).
//!
//! Owns the bucket's writes and its watch. Must never block the link's writer longer than one
//! bounded put.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use ntex_bytes::ByteString;

use super::link::{decode, open_bucket};
use super::subject;
use crate::metrics::CLUSTER;
use crate::model::clock::now_ms;
use crate::mqtt::broker::Broker;
use crate::mqtt::message::AppMessage;

/// How long one put into the bucket may take: the link's writer (every node-to-node message
/// behind it) waits for it.
const PUT_WAIT: Duration = Duration::from_secs(2);

/// Puts (or, for an empty payload, purges) `m` in the retained-message bucket under `key`; at
/// most two tries of at most [`PUT_WAIT`] each.
pub(super) async fn keep_retained(
    kv: &async_nats::jetstream::kv::Store,
    key: &str,
    m: &AppMessage,
    framed: bytes::Bytes,
) {
    // A few tries, each bounded: a stream leader changing answers nothing for a moment.
    let mut done = Ok(());
    for attempt in 0..2 {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let put = async {
            match m.payload.is_empty() {
                true => kv.purge(key).await.map_err(|e| e.to_string()),
                false => kv
                    .put(key, framed.clone())
                    .await
                    .map(drop)
                    .map_err(|e| e.to_string()),
            }
        };
        done = tokio::time::timeout(PUT_WAIT, put)
            .await
            .unwrap_or_else(|_| Err("no answer from JetStream".into()));
        if done.is_ok() {
            break;
        }
    }
    if let Err(e) = done {
        CLUSTER.retained_not_kept.inc();
        tracing::warn!(error = %e, topic = %m.topic, "retained message not kept in the cluster");
    }
}

/// Opens (or creates) the retained-message bucket, hands it to the writer, and applies every
/// value in it, then every change, to this node's routing shards: a node has the cluster's
/// retained messages whenever it started and whoever published them. Retried while JetStream
/// is unreachable.
pub(super) async fn retained_bucket(
    client: async_nats::Client,
    name: String,
    replicas: usize,
    broker: Broker,
    tx: tokio::sync::watch::Sender<Option<async_nats::jetstream::kv::Store>>,
) {
    let js = async_nats::jetstream::new(client);
    let store = open_bucket(&js, &name, "evgrid: retained MQTT messages", replicas).await;
    let _ = tx.send(Some(store.clone()));
    loop {
        match store.watch_with_history(">").await {
            Ok(mut w) => {
                while let Some(e) = w.next().await {
                    match e {
                        Ok(entry) => apply_retained(&broker, entry),
                        Err(e) => {
                            tracing::warn!(error = %e, "retained-message bucket watch ended");
                            break;
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot watch the retained-message bucket"),
        }
        // Watched again from the current values: applying one twice changes nothing.
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

fn apply_retained(broker: &Broker, entry: async_nats::jetstream::kv::Entry) {
    use async_nats::jetstream::kv::Operation;
    let (now, mono) = (now_ms(), Instant::now());
    let msg = match entry.operation {
        Operation::Put => match decode(&entry.value, now, mono) {
            Some(mut m) => {
                m.retain = true;
                m
            }
            None => return, // expired, or not evgrid's
        },
        Operation::Delete | Operation::Purge => {
            let Some(topic) = subject::unescape(&entry.key) else {
                CLUSTER.undecodable.inc();
                return;
            };
            AppMessage {
                topic: ByteString::from(topic),
                payload: ntex_bytes::Bytes::new(),
                qos: 0,
                retain: true,
                props: None,
                expires_at: None,
                publisher: None,
            }
        }
    };
    broker.set_retained(msg);
}
