//! The messages every resource actor of the event grid understands, whichever layer owns it:
//! today only [`Shutdown`], which topic actors (grid) and subscription actors (delivery) both
//! handle. Lives at the crate root, beside `metrics` and `budget`, because both layers send and
//! handle it and neither may name the other's modules for it; `model` stays free of actix.

/// Asks a resource actor (a topic or a subscription) to stop once its mailbox is drained: its
/// resource was deleted, or the process is shutting down.
#[derive(actix::Message)]
#[rtype(result = "()")]
pub struct Shutdown;
