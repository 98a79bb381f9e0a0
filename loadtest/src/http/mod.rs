//! The HTTP flow against Event Grid data planes: `http-publish` (to namespace topics and
//! basic-tier topic endpoints) and `pull` (receive and acknowledge on a namespace
//! subscription), and the wire pieces they and the webhook sink share.
//!
//! - `h1`: minimal HTTP/1.1 on tokio — a keep-alive client connection, and the request and
//!   response framing the webhook sink uses from the server side. Frames messages only.
//! - `egwire`: Event Grid wire details a publisher writes itself: the SAS token it signs
//!   (docs/eventgrid.md §3) and RFC 3339 timestamps. Pure: no clock, no socket.
//! - `routed`: MQTT messages routed into a namespace topic as CloudEvents, read back as far as
//!   the generator's payload header (pure).
//! - `load`: the two modes — the connections, event batches, the per-second series and the
//!   JSON report of an HTTP run.
//!
//! It never speaks MQTT, never verifies what a server would (signatures, schemas): the generator
//! only has to send what an SDK sends and measure the answers. Plain `http://` only, and no
//! evgrid crate: the server is measured from the outside.

pub mod egwire;
pub mod h1;
pub mod load;
pub mod routed;
