//! The cluster link's gauges and counters (`cluster.urls`): whether this node is connected to
//! NATS, MQTT messages carried out and in, what could not be carried, and client-id takeovers
//! across nodes. Rendered on every node, clustered or not (all zero on a single node). Like every
//! counter, must never block or allocate on the bump path.

use super::{Counter, Gauge, single};

/// `evgrid_cluster_*`.
#[derive(Debug)]
pub struct ClusterMetrics {
    /// 1 while connected to a NATS server.
    pub connected: Gauge,
    /// MQTT messages published here and handed to NATS for the other nodes.
    pub forwarded: Counter,
    /// MQTT messages from other nodes routed to this node's subscribers.
    pub received: Counter,
    /// MQTT messages published here that the link could not take (its queue full while NATS
    /// was slow or unreachable): not carried to the other nodes.
    pub not_forwarded: Counter,
    /// Messages from NATS that were not evgrid's format: ignored.
    pub undecodable: Counter,
    /// Sessions here ended because their client id connected to another node.
    pub takeovers: Counter,
    /// Retained messages published here that the cluster's bucket did not take (JetStream
    /// unreachable): other nodes' later subscribers will not see them.
    pub retained_not_kept: Counter,
    /// Persistent sessions taken over from another node with what they held.
    pub sessions_moved_in: Counter,
    /// Persistent sessions handed to another node with what they held.
    pub sessions_moved_out: Counter,
}

pub static CLUSTER: ClusterMetrics = ClusterMetrics {
    connected: Gauge::new(),
    forwarded: Counter::new(),
    received: Counter::new(),
    not_forwarded: Counter::new(),
    undecodable: Counter::new(),
    takeovers: Counter::new(),
    retained_not_kept: Counter::new(),
    sessions_moved_in: Counter::new(),
    sessions_moved_out: Counter::new(),
};

impl ClusterMetrics {
    pub(super) fn render(&self, s: &mut String) {
        single(
            s,
            "gauge",
            "evgrid_cluster_connected",
            "1 while this node is connected to the NATS cluster (cluster mode only).",
            self.connected.get(),
        );
        let rows: [(&str, &str, &Counter); 8] = [
            (
                "evgrid_cluster_mqtt_forwarded_total",
                "MQTT messages published on this node and handed to NATS for the other nodes.",
                &self.forwarded,
            ),
            (
                "evgrid_cluster_mqtt_received_total",
                "MQTT messages from other nodes routed to this node's subscribers.",
                &self.received,
            ),
            (
                "evgrid_cluster_mqtt_not_forwarded_total",
                "MQTT messages published here that the cluster link could not take (NATS slow or unreachable).",
                &self.not_forwarded,
            ),
            (
                "evgrid_cluster_undecodable_total",
                "Messages on evgrid's NATS subjects that were not in evgrid's format, ignored.",
                &self.undecodable,
            ),
            (
                "evgrid_cluster_mqtt_takeovers_total",
                "MQTT sessions on this node ended because their client id connected to another node.",
                &self.takeovers,
            ),
            (
                "evgrid_cluster_mqtt_retained_not_kept_total",
                "Retained MQTT messages published here that the cluster's bucket did not take (JetStream unreachable).",
                &self.retained_not_kept,
            ),
            (
                "evgrid_cluster_mqtt_sessions_moved_in_total",
                "Persistent MQTT sessions taken over from another node with what they held.",
                &self.sessions_moved_in,
            ),
            (
                "evgrid_cluster_mqtt_sessions_moved_out_total",
                "Persistent MQTT sessions handed to another node with what they held.",
                &self.sessions_moved_out,
            ),
        ];
        for (name, help, c) in rows {
            single(s, "counter", name, help, c.get());
        }
    }
}
