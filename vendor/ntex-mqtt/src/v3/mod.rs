//! MQTT 3.1.1 Client/Server framework
pub mod client;
pub mod codec;
mod connect;
pub mod control;
mod default;
mod dispatcher;
mod publish;
mod router;
mod server;
mod shared;
mod sink;

pub type Session<St> = crate::Session<MqttSink, St>;

pub use self::connect::{Connect, ConnectAck};
pub use self::control::{ProtocolMessage, ProtocolMessageAck};
pub use self::publish::Publish;
pub use self::router::Router;
pub use self::server::MqttServer;
pub use self::sink::{MqttSink, PublishBuilder, SubscribeBuilder, UnsubscribeBuilder};

pub use crate::error::{self, MqttError};
pub use crate::topic::{TopicFilter, TopicFilterError};
pub use crate::types::QoS;
