//! evgrid's core. The map is written in ARCHITECTURE.md.

pub mod bridge;
pub mod budget;
pub mod delivery;
pub mod grid;
pub mod lifecycle;
pub mod metrics;
pub mod model;
pub mod mqtt;
pub mod store;
