//! A session handed to another node of a cluster ([`Handover`]): what it holds leaves with it,
//! and it ends here without its will. Kept apart from the session's own life so that the
//! cluster's one entry point into a session is in one place.

use std::time::Instant;

use actix::prelude::*;

use super::Session;
use crate::model::clock::now_ms;
use crate::mqtt::message::{CloseReason, Delivery};
use crate::mqtt::persist;

/// The session moves to another node of a cluster: it answers what it holds (QoS 1/2 messages
/// in flight then queued, inbound QoS 2 packet ids awaiting PUBREL, its expiry) and ends here,
/// closing a connection still attached (Session taken over), without publishing its will (the
/// session goes on elsewhere) and deleting its records. The broker has already taken it out of
/// the registry.
#[derive(Message)]
#[rtype(result = "Handed")]
pub struct Handover;

/// What a session hands over ([`Handover`]).
#[derive(Debug, Default)]
pub struct Handed {
    pub expiry_secs: u32,
    pub saved: Vec<persist::SavedDelivery>,
    pub inbound_qos2: Vec<u16>,
}

impl Handler<Handover> for Session {
    type Result = MessageResult<Handover>;

    fn handle(&mut self, _: Handover, ctx: &mut Self::Context) -> Self::Result {
        let (now, mono) = (now_ms(), Instant::now());
        let expires = |d: &Delivery| {
            d.msg
                .expires_at
                .map(|t| now + t.saturating_duration_since(mono).as_millis() as u64)
        };
        let mut saved = Vec::with_capacity(self.inflight.len() + self.queue.len());
        // Numbered by the node that takes them (journal 0): its journal, not this one's.
        for i in &self.inflight {
            saved.push(persist::SavedDelivery {
                delivery: Delivery {
                    journal: 0,
                    ..i.d.clone()
                },
                inflight: Some((i.pid, i.received)),
                expires_ms: expires(&i.d),
            });
        }
        for d in &self.queue {
            saved.push(persist::SavedDelivery {
                delivery: Delivery {
                    journal: 0,
                    ..d.clone()
                },
                inflight: None,
                expires_ms: expires(d),
            });
        }
        let inbound_qos2 = self
            .inbound_qos2
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .copied()
            .collect();
        // A session that ends with its connection is not handed over but taken over: its will
        // goes out as on one node.
        self.handed_over = self.expiry_secs > 0;
        self.close_link(CloseReason::SessionTakenOver);
        ctx.stop();
        MessageResult(Handed {
            expiry_secs: self.expiry_secs,
            saved,
            inbound_qos2,
        })
    }
}
