//! The shared, pure vocabulary of the core: what crosses the boundary between the edges, the MQTT
//! engine, the event grid and delivery.
//!
//! Owns the event model ([`event::CloudEvent`]), the date and duration formats ([`time`]), the one
//! source of time ([`clock`]), access keys ([`keys`]: generation and constant-time comparison,
//! the only copy) and the one [`Shutdown`] message every resource actor understands. Must never
//! start an actor, touch the store or do I/O beyond reading the OS clock and randomness in the
//! two functions that say so.

pub mod clock;
pub mod event;
pub mod keys;
pub mod time;

/// Asks a resource actor (a topic or a subscription) to stop once its mailbox is drained: its
/// resource was deleted, or the process is shutting down.
#[derive(actix::Message)]
#[rtype(result = "()")]
pub struct Shutdown;
