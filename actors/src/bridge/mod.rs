//! The bridge between the MQTT engine and the event grid: the only module of the core allowed to
//! name both [`crate::mqtt`] and [`crate::grid`].
//!
//! Empty today. It will own routing MQTT messages into namespace topics as CloudEvents, HTTP
//! publishes to MQTT topics, and MQTT client lifecycle events (docs/eventgrid.md §7.6–§7.8), so
//! neither side learns the other's types: the MQTT engine must never name the grid, and the grid
//! must never name the MQTT engine; what crosses goes through here, in batches.
