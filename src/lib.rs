//! evgrid: a self-hosted event grid in one binary.
//!
//! Module map: [`config`] (settings and validation), [`mqtt`] (the MQTT edge on ntex-mqtt),
//! [`http`] (the HTTP edge on actix-web), [`resources`] (the resource file), [`server`] (start-up and shutdown of both edges around
//! the actor engine in the `evgrid-actors` crate). `fuzzing` (hidden) holds the harnesses of the
//! `cargo fuzz` targets in `tests/fuzz/`.

pub mod config;
#[doc(hidden)]
pub mod fuzzing;
pub mod http;
pub mod mqtt;
pub mod resources;
pub mod server;
