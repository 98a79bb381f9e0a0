//! evgrid: a self-hosted event grid in one binary.
//!
//! Module map: [`config`] (settings and validation), [`mqtt`] (the MQTT edge on ntex-mqtt),
//! [`http`] (the HTTP edge on actix-web), [`resources`] (the resource file), [`server`] (start-up and shutdown of both edges around
//! the actor engine in the `evgrid-actors` crate).

pub mod config;
pub mod http;
pub mod mqtt;
pub mod resources;
pub mod server;
