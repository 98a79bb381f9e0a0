//! Event schemas: the conversions between Event Grid's and CloudEvents' forms of an event.
//!
//! Pure: no actors, no I/O, no clock. Must never fall back to a default when a conversion fails
//! (the caller refuses the publish instead).

pub mod convert;
