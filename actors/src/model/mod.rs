//! The shared, pure vocabulary of the core: what crosses the boundary between the edges, the MQTT
//! engine, the event grid and delivery.
//!
//! Owns the event model ([`event::CloudEvent`]) and the CloudEvents 1.0 rules both edges and the
//! bridge share: one structured-mode JSON object validated ([`structured`]), events built in one
//! buffer and binary content mode ([`binding`]), JSON helpers and the nesting limit ([`json`]);
//! the date and duration formats ([`time`]), the one source of time ([`clock`]) and access keys
//! ([`keys`]: generation and constant-time comparison, the only copy).
//!
//! Must never start an actor, touch the store, or do I/O; the only impure reads in evgrid's core
//! of the OS clocks and of OS randomness are the few functions of [`clock`] and [`keys`] that say
//! so, so everything else can take its time and its random numbers as arguments.

pub mod binding;
pub mod clock;
pub mod event;
pub mod json;
pub mod keys;
pub mod structured;
pub mod time;
