//! Interoperability with a widely used Rust MQTT client crate (rumqttc), v3.1.1 and v5.

mod common;

use std::time::Duration;

use common::Server;

async fn v3_roundtrip(port: u16, qos: rumqttc::QoS) {
    use rumqttc::{AsyncClient, Event, MqttOptions, Packet};
    let mut so = MqttOptions::new("rs-sub3", "127.0.0.1", port);
    so.set_keep_alive(Duration::from_secs(10));
    let (sub, mut sub_loop) = AsyncClient::new(so, 64);
    sub.subscribe("rs/v3/#", qos).await.unwrap();
    // Drive the subscriber until SUBACK.
    loop {
        if let Event::Incoming(Packet::SubAck(_)) = sub_loop.poll().await.unwrap() {
            break;
        }
    }
    let (publ, mut pub_loop) = AsyncClient::new(MqttOptions::new("rs-pub3", "127.0.0.1", port), 64);
    for i in 0..10 {
        publ.publish(format!("rs/v3/{i}"), qos, false, format!("m{i}"))
            .await
            .unwrap();
    }
    tokio::spawn(async move { while pub_loop.poll().await.is_ok() {} });
    let mut got = Vec::new();
    while got.len() < 10 {
        if let Event::Incoming(Packet::Publish(p)) = sub_loop.poll().await.unwrap() {
            assert_eq!(p.qos, qos);
            got.push(String::from_utf8(p.payload.to_vec()).unwrap());
        }
    }
    assert_eq!(got, (0..10).map(|i| format!("m{i}")).collect::<Vec<_>>());
}

async fn v5_roundtrip(port: u16, qos: rumqttc::v5::mqttbytes::QoS) {
    use rumqttc::v5::mqttbytes::v5::{Packet, PublishProperties};
    use rumqttc::v5::{AsyncClient, Event, MqttOptions};
    let (sub, mut sub_loop) = AsyncClient::new(MqttOptions::new("rs-sub5", "127.0.0.1", port), 64);
    sub.subscribe("rs/v5/#", qos).await.unwrap();
    loop {
        if let Event::Incoming(Packet::SubAck(_)) = sub_loop.poll().await.unwrap() {
            break;
        }
    }
    let (publ, mut pub_loop) = AsyncClient::new(MqttOptions::new("rs-pub5", "127.0.0.1", port), 64);
    let props = PublishProperties {
        response_topic: Some("rs/reply".into()),
        correlation_data: Some(bytes::Bytes::from_static(b"corr-1")),
        user_properties: vec![("k".into(), "v".into())],
        ..Default::default()
    };
    publ.publish_with_properties("rs/v5/req", qos, false, "hello", props)
        .await
        .unwrap();
    tokio::spawn(async move { while pub_loop.poll().await.is_ok() {} });
    loop {
        if let Event::Incoming(Packet::Publish(p)) = sub_loop.poll().await.unwrap() {
            assert_eq!(&p.payload[..], b"hello");
            let pp = p.properties.expect("properties forwarded");
            assert_eq!(pp.response_topic.as_deref(), Some("rs/reply"));
            assert_eq!(pp.correlation_data.as_deref(), Some(&b"corr-1"[..]));
            assert_eq!(pp.user_properties, vec![("k".to_string(), "v".to_string())]);
            break;
        }
    }
}

#[test]
fn rumqttc_v3_and_v5_pub_sub() {
    let srv = Server::start(&[]);
    let port = srv.mqtt.port();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(20), async {
            v3_roundtrip(port, rumqttc::QoS::AtMostOnce).await;
            v3_roundtrip(port, rumqttc::QoS::AtLeastOnce).await;
            v3_roundtrip(port, rumqttc::QoS::ExactlyOnce).await;
            v5_roundtrip(port, rumqttc::v5::mqttbytes::QoS::AtLeastOnce).await;
            v5_roundtrip(port, rumqttc::v5::mqttbytes::QoS::ExactlyOnce).await;
        })
        .await
        .expect("rumqttc round trips within 20 s");
    });
}
