//! Persistent sessions moving between nodes: the node that holds one answers another node's
//! request for it (`{prefix}.s.{node}.{client id}`, request and reply) with what it held, and the
//! frame that carries it there.
//!
//! Owns the answering side and the frame; the asking side is `Link::fetch`. Must never answer
//! for a session it did not hand over (an empty reply says "none here").

use futures_util::StreamExt;
use ntex_bytes::ByteString;

use crate::metrics::CLUSTER;
use crate::mqtt::broker::Broker;
use crate::mqtt::persist::{decode_delivery, decode_sub, encode_delivery, encode_sub};
use crate::mqtt::remote::Moved;
use crate::mqtt::router::SubReq;

/// Answers other nodes' requests for a persistent session held here (`{prefix}.s.{node}.{id}`):
/// hands it over and replies with it, or with nothing.
pub(super) async fn hand_overs(
    mut sub: async_nats::Subscriber,
    client: async_nats::Client,
    broker: Broker,
) {
    while let Some(m) = sub.next().await {
        let Some(reply) = m.reply.clone() else {
            continue;
        };
        // One task each: a reconnect storm's requests must not queue behind one another past
        // the asking nodes' timeouts.
        let (client, broker) = (client.clone(), broker.clone());
        tokio::spawn(async move {
            let Ok(id) = std::str::from_utf8(&m.payload) else {
                CLUSTER.undecodable.inc();
                let _ = client.publish(reply, Default::default()).await;
                return;
            };
            let body = match broker.hand_over(id).await {
                Some(moved) => {
                    CLUSTER.sessions_moved_out.inc();
                    tracing::debug!(client_id = %id, "session handed to another node");
                    encode_moved(&moved)
                }
                None => Vec::new(),
            };
            if let Err(e) = client.publish(reply, body.into()).await {
                tracing::warn!(error = %e, client_id = %id, "a handed-over session was lost on the way");
            }
        });
    }
}

fn put(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_le_bytes());
    out.extend_from_slice(b);
}

/// Frames a session for another node: expiry, subscriptions (filter, recorded options),
/// messages (the journal's record), inbound QoS 2 packet ids.
fn encode_moved(m: &Moved) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&m.expiry_secs.to_le_bytes());
    out.extend_from_slice(&(m.subs.len() as u32).to_le_bytes());
    for s in &m.subs {
        put(&mut out, s.filter.as_bytes());
        put(&mut out, &encode_sub(&s.opts));
    }
    out.extend_from_slice(&(m.saved.len() as u32).to_le_bytes());
    for d in &m.saved {
        put(
            &mut out,
            &encode_delivery(&d.delivery, d.inflight, d.expires_ms),
        );
    }
    out.extend_from_slice(&(m.inbound_qos2.len() as u32).to_le_bytes());
    for p in &m.inbound_qos2 {
        out.extend_from_slice(&p.to_le_bytes());
    }
    out
}

/// The session framed by [`encode_moved`]; `None` for an empty reply (no session) or a damaged one.
pub(super) fn decode_moved(b: &[u8]) -> Option<Moved> {
    struct R<'a>(&'a [u8]);
    impl<'a> R<'a> {
        fn take(&mut self, n: usize) -> Option<&'a [u8]> {
            (self.0.len() >= n).then(|| {
                let (a, b) = self.0.split_at(n);
                self.0 = b;
                a
            })
        }
        fn u32(&mut self) -> Option<u32> {
            Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
        }
        fn bytes(&mut self) -> Option<&'a [u8]> {
            let n = self.u32()? as usize;
            self.take(n)
        }
    }
    let mut r = R(b);
    let expiry_secs = r.u32()?;
    let mut m = Moved {
        expiry_secs,
        ..Moved::default()
    };
    for _ in 0..r.u32()? {
        let filter = ByteString::from(std::str::from_utf8(r.bytes()?).ok()?);
        m.subs.push(SubReq {
            filter,
            opts: decode_sub(r.bytes()?)?,
        });
    }
    for _ in 0..r.u32()? {
        m.saved.push(decode_delivery(r.bytes()?)?);
    }
    for _ in 0..r.u32()? {
        m.inbound_qos2
            .push(u16::from_le_bytes(r.take(2)?.try_into().ok()?));
    }
    r.0.is_empty().then_some(m)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::mqtt::message::AppMessage;

    #[test]
    fn a_moved_session_crosses_whole() {
        use crate::mqtt::message::Delivery;
        use crate::mqtt::persist::SavedDelivery;
        use crate::mqtt::trie::SubOpts;
        let msg = |t: &'static str| {
            Arc::new(AppMessage {
                topic: ByteString::from_static(t),
                payload: ntex_bytes::Bytes::from_static(b"p"),
                qos: 1,
                retain: false,
                props: None,
                expires_at: None,
                publisher: None,
            })
        };
        let d = |t| Delivery {
            msg: msg(t),
            qos: 1,
            retain: false,
            sub_ids: vec![7],
            journal: 0,
        };
        let m = Moved {
            expiry_secs: 3600,
            subs: vec![SubReq {
                filter: ByteString::from_static("cmd/+"),
                opts: SubOpts {
                    qos: 1,
                    sub_id: Some(7),
                    ..SubOpts::default()
                },
            }],
            saved: vec![
                SavedDelivery {
                    delivery: d("cmd/a"),
                    inflight: Some((42, true)),
                    expires_ms: Some(123),
                },
                SavedDelivery {
                    delivery: d("cmd/b"),
                    inflight: None,
                    expires_ms: None,
                },
            ],
            inbound_qos2: vec![5, 9],
        };
        let b = encode_moved(&m);
        let back = decode_moved(&b).unwrap();
        assert_eq!(back.expiry_secs, 3600);
        assert_eq!(back.subs[0].filter, m.subs[0].filter);
        assert_eq!(back.subs[0].opts, m.subs[0].opts);
        assert_eq!(back.saved.len(), 2);
        assert_eq!(back.saved[0].inflight, Some((42, true)));
        assert_eq!(back.saved[0].expires_ms, Some(123));
        assert_eq!(back.saved[0].delivery.msg.topic, "cmd/a");
        assert_eq!(back.saved[0].delivery.sub_ids, vec![7]);
        assert_eq!(back.saved[1].inflight, None);
        assert_eq!(back.inbound_qos2, vec![5, 9]);
        // No session: an empty reply. A damaged one is refused, not half read.
        assert!(decode_moved(b"").is_none());
        assert!(decode_moved(&b[..b.len() - 1]).is_none());
    }
}
