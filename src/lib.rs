//! evgrid: a self-hosted event grid in one binary.
//!
//! Module map: [`app`] (start-up and shutdown of both edges around the core in the
//! `evgrid-actors` crate), [`config`] (settings and validation, the only home of defaults),
//! [`mqtt`] (the MQTT edge on ntex-mqtt), [`http`] (the HTTP edge on actix-web), [`net`]
//! (listening sockets, shared by both edges), [`resource_file`] (the `--resources` file, applied
//! at start-up), [`tls`] (certificates and keys for every TLS listener and for push delivery's
//! `https://` webhooks, their reload, `evgrid cert dev`). The edges never import `app`; `app` wires them. `fuzzing` (hidden) holds the
//! harnesses of the `cargo fuzz` targets in `tests/fuzz/`.

pub mod app;
pub mod config;
#[doc(hidden)]
pub mod fuzzing;
pub mod http;
pub mod mqtt;
pub mod net;
pub mod resource_file;
pub mod tls;
