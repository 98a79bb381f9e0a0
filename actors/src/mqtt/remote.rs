//! The seam between this node's MQTT engine and the other nodes of a cluster.
//!
//! Owns the [`Remote`] trait only: what the broker and its routing shards tell the cluster link
//! (messages published here, filters subscribed here, client ids connecting here). The link
//! (`crate::cluster`) implements it and routes what other nodes publish with
//! [`crate::mqtt::broker::Broker::route_remote`]. Nothing here knows NATS. Single-node evgrid
//! has no `Remote` and none of these calls happen.

use ntex_bytes::ByteString;

use crate::mqtt::message::AppMessage;

/// Resolves once messages handed to [`Remote::forward`] have been handed to the cluster (or the
/// link gave up on them: it counts those; a publish never fails for the cluster's sake).
pub type Forwarded = tokio::sync::oneshot::Receiver<()>;

/// What this node tells the rest of the cluster. Every method returns at once: the work is done
/// by the link's own thread, so routing shards and connections never wait on the network here.
pub trait Remote: Send + Sync + 'static {
    /// Messages accepted on this node, in the publisher's order, for the other nodes'
    /// subscribers. `wait`: answer with a [`Forwarded`] (QoS 1/2 acknowledgements wait for it).
    fn forward(&self, msgs: &[AppMessage], wait: bool) -> Option<Forwarded>;
    /// A local session subscribed (`added`) or unsubscribed topic filter `filter` (as the
    /// client sent it, `$share/{group}/` prefix included).
    fn interest(&self, filter: &ByteString, added: bool);
    /// A client connected here with `client_id` at `at_ms` (ms since the epoch): its session on
    /// any other node ends (takeover), unless that one is newer.
    fn claim(&self, client_id: &ByteString, at_ms: u64);
    /// Resolves once every [`Remote::interest`] change made before it is in force at the
    /// cluster (a SUBACK waits for it, so messages published elsewhere after it arrive).
    fn settled(&self) -> Option<Forwarded>;
}
