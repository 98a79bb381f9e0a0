//! The MQTT load flow: the scenarios (`conn`, `sub`, `pub`, `fanin`, `fanout`, `p2p`, and the
//! Open MQTT Benchmark presets that map onto them), the plan each one builds, the orchestrator
//! that runs a plan, the per-connection client task, and the MQTT 3.1 / 3.1.1 / 5.0 codec.
//!
//! - `preset`: suite scenario names → a scenario and its flags.
//! - `run`: plans (who connects, subscribes and publishes what, how many deliveries to expect)
//!   and the four-phase run (connect, start, publish, drain) that produces a `report::Report`.
//! - `client`: one MQTT connection as one tokio task, batching its writes.
//! - `codec`: the packets, encoded into one buffer and decoded incrementally without copies.
//! - `payload`: the payload header (send stamp, publisher, sequence), topic templates and
//!   matching, the PRNG.
//!
//! It owns the broker connections and what goes over them: it never speaks HTTP (that is `http/`),
//! never formats or writes a report (it fills one in; `report/` owns the format), and never
//! links an evgrid crate — the generator measures any broker from the outside, over sockets.

pub mod client;
pub mod codec;
pub mod payload;
pub mod preset;
pub mod run;
