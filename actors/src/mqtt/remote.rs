//! The seam between this node's MQTT engine and the other nodes of a cluster.
//!
//! Owns the [`Remote`] trait only: what the broker and its routing shards tell the cluster link
//! (messages published here, filters subscribed here, client ids connecting here). The link
//! (`crate::cluster`) implements it and routes what other nodes publish with
//! [`crate::mqtt::broker::Broker::route_remote`]. Nothing here knows NATS. Single-node evgrid
//! has no `Remote` and none of these calls happen.

use std::future::Future;
use std::pin::Pin;

use ntex_bytes::ByteString;

use crate::mqtt::message::AppMessage;
use crate::mqtt::persist::SavedDelivery;
use crate::mqtt::router::SubReq;

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
    /// A client connected here with `client_id` at `at_us` (µs since the epoch): its session on
    /// any other node ends (takeover), unless that one is newer. `persistent`: the session
    /// outlives the connection, and this node is where the cluster finds it now.
    fn claim(&self, client_id: &ByteString, at_us: u64, persistent: bool);
    /// Asks the node that holds the persistent session of `client_id` (if another does) to hand
    /// it over; resolves with it, or `None` (no such session, or its node does not answer).
    fn fetch(&self, client_id: &ByteString) -> Pin<Box<dyn Future<Output = Option<Moved>> + Send>>;
    /// The persistent session of `client_id` ended here: the cluster no longer finds it here.
    fn released(&self, client_id: &ByteString);
    /// Whether the cluster is reachable now. While it is not, shared groups get this node's
    /// messages directly (the cluster cannot choose a node for them).
    fn connected(&self) -> bool;
    /// Resolves once every [`Remote::interest`] change made before it is in force at the
    /// cluster (a SUBACK waits for it, so messages published elsewhere after it arrive).
    fn settled(&self) -> Option<Forwarded>;
}

/// A persistent session handed from one node to another: what it held, to resume on the node
/// its client connected to.
#[derive(Debug, Default)]
pub struct Moved {
    pub expiry_secs: u32,
    pub subs: Vec<SubReq>,
    /// In flight (with their packet ids), then queued.
    pub saved: Vec<SavedDelivery>,
    pub inbound_qos2: Vec<u16>,
}
