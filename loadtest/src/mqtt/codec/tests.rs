//! Unit tests of the codec: round trips of every packet at every protocol level, the exact
//! bytes of CONNECT, incremental decoding.

use super::*;

fn one(b: &[u8], v5: bool) -> (Packet<'_>, usize) {
    decode(b, v5).expect("decodes").expect("complete")
}

#[test]
fn varint_round_trip() {
    for v in [
        0usize,
        1,
        127,
        128,
        16_383,
        16_384,
        2_097_151,
        2_097_152,
        MAX_REMAINING,
    ] {
        let mut b = BytesMut::new();
        put_varint(&mut b, v);
        assert_eq!(b.len(), varint_len(v));
        assert_eq!(get_varint(&b).unwrap(), Some((v, b.len())));
        // every strict prefix is incomplete
        for cut in 0..b.len() {
            assert_eq!(get_varint(&b[..cut]).unwrap(), None);
        }
    }
    assert!(get_varint(&[0xFF, 0xFF, 0xFF, 0xFF, 0x01]).is_err());
}

#[test]
fn publish_round_trip_all_versions_and_qos() {
    for v5 in [false, true] {
        for qos in 0..=2u8 {
            let payload: Vec<u8> = (0..300u32).map(|i| i as u8).collect();
            let props = if v5 {
                PubProps {
                    response_topic: Some(b"resp/7"),
                    correlation_data: Some(&[1, 2, 3, 4, 5, 6, 7, 8]),
                    topic_alias: None,
                }
            } else {
                PubProps::default()
            };
            let p = Publish {
                dup: qos > 0,
                qos,
                retain: true,
                topic: b"bench/1/x",
                pid: if qos > 0 { 4242 } else { 0 },
                props,
                payload: &payload,
            };
            let mut b = BytesMut::new();
            encode_publish(&mut b, v5, &p);
            assert_eq!(
                b.len(),
                publish_size(v5, p.topic.len(), qos, &props, payload.len())
            );
            let (got, n) = one(&b, v5);
            assert_eq!(n, b.len());
            assert_eq!(got, Packet::Publish(p));
        }
    }
}

#[test]
fn acks_round_trip() {
    for (k, expect) in [
        (kind::PUBACK, Packet::PubAck { pid: 7, reason: 0 }),
        (kind::PUBREC, Packet::PubRec { pid: 7, reason: 0 }),
        (kind::PUBREL, Packet::PubRel { pid: 7, reason: 0 }),
        (kind::PUBCOMP, Packet::PubComp { pid: 7, reason: 0 }),
    ] {
        let mut b = BytesMut::new();
        encode_ack(&mut b, k, 7);
        assert_eq!(one(&b, true).0, expect);
        assert_eq!(one(&b, false).0, expect);
    }
    // MQTT 5 ack with a failure reason code and a property block
    // property block: length 2 containing PAYLOAD_FORMAT(0x01)=0
    let raw = [0x40, 0x06, 0x00, 0x09, 0x97, 0x02, 0x01, 0x00];
    let (p, n) = one(&raw, true);
    assert_eq!(n, 8);
    assert_eq!(
        p,
        Packet::PubAck {
            pid: 9,
            reason: 0x97
        }
    );
}

#[test]
fn connect_encodes_expected_bytes() {
    let mut b = BytesMut::new();
    encode_connect(
        &mut b,
        &ConnectOpts {
            level: LEVEL_V311,
            client_id: "c1",
            keep_alive: 60,
            clean: true,
            username: Some("u"),
            password: Some(b"pw"),
            ..Default::default()
        },
    );
    let expect: &[u8] = &[
        0x10, 21, 0, 4, b'M', b'Q', b'T', b'T', 4, 0xC2, 0, 60, 0, 2, b'c', b'1', 0, 1, b'u', 0, 2,
        b'p', b'w',
    ];
    assert_eq!(&b[..], expect);
    assert_eq!(
        one(&b, false).0,
        Packet::Other {
            kind: kind::CONNECT
        }
    );

    let mut b = BytesMut::new();
    encode_connect(
        &mut b,
        &ConnectOpts {
            level: LEVEL_V31,
            client_id: "x",
            keep_alive: 10,
            clean: false,
            ..Default::default()
        },
    );
    assert_eq!(&b[2..10], &[0, 6, b'M', b'Q', b'I', b's', b'd', b'p']);
    assert_eq!(b[10], 3);
    assert_eq!(b[11], 0);

    let mut b = BytesMut::new();
    encode_connect(
        &mut b,
        &ConnectOpts {
            level: LEVEL_V5,
            client_id: "x",
            keep_alive: 10,
            clean: true,
            session_expiry: Some(300),
            ..Default::default()
        },
    );
    // props: len 5, 0x11, u32 300
    assert_eq!(&b[12..18], &[5, 0x11, 0, 0, 1, 44]);
}

#[test]
fn connack_v5_properties() {
    // CONNACK, flags 0, reason 0, props: receive max 20, max qos 1, assigned id "ab", reason string "ok"
    let props: &[u8] = &[
        0x21, 0, 20, 0x24, 1, 0x12, 0, 2, b'a', b'b', 0x1F, 0, 2, b'o', b'k', 0x26, 0, 1, b'k', 0,
        1, b'v',
    ];
    let mut raw = vec![0x20, (2 + 1 + props.len()) as u8, 0, 0, props.len() as u8];
    raw.extend_from_slice(props);
    let (p, _) = one(&raw, true);
    let Packet::ConnAck { code, props, .. } = p else {
        panic!("not a connack: {p:?}");
    };
    assert_eq!(code, 0);
    assert_eq!(props.receive_maximum, Some(20));
    assert_eq!(props.maximum_qos, Some(1));
    assert_eq!(props.assigned_client_id.as_deref(), Some("ab"));
    assert_eq!(props.reason_string.as_deref(), Some("ok"));
    // v3 CONNACK
    let (p, _) = one(&[0x20, 2, 1, 5], false);
    assert_eq!(
        p,
        Packet::ConnAck {
            session_present: true,
            code: 5,
            props: ConnAckProps::default()
        }
    );
}

#[test]
fn suback_and_misc() {
    assert_eq!(
        one(&[0x90, 4, 0, 1, 0, 0x80], false).0,
        Packet::SubAck {
            pid: 1,
            codes: &[0, 0x80]
        }
    );
    assert_eq!(
        one(&[0x90, 4, 0, 1, 0, 1], true).0,
        Packet::SubAck {
            pid: 1,
            codes: &[1]
        }
    );
    assert_eq!(one(&[0xD0, 0], true).0, Packet::PingResp);
    assert_eq!(one(&[0xE0, 0], true).0, Packet::Disconnect { reason: 0 });
    assert_eq!(
        one(&[0xE0, 1, 0x8B], true).0,
        Packet::Disconnect { reason: 0x8B }
    );
    assert!(decode(&[0x00, 0], false).is_err());
    assert!(decode(&[0x36, 2, 0, 0], false).is_err(), "QoS 3");
    assert!(
        decode(&[0x30, 1, 0], false).is_err(),
        "truncated topic length"
    );
    let mut b = BytesMut::new();
    encode_subscribe(&mut b, true, 3, &[("a/#", 1), ("$share/g/b/+", 2)]);
    assert_eq!(
        one(&b, true).0,
        Packet::Other {
            kind: kind::SUBSCRIBE
        }
    );
    assert_eq!(b[0], 0x82);
    let mut b = BytesMut::new();
    encode_pingreq(&mut b);
    encode_disconnect(&mut b);
    assert_eq!(&b[..], &[0xC0, 0, 0xE0, 0]);
}

#[test]
fn split_reads_decode_incrementally() {
    // Build a stream of many packets, then feed it in chunks of every size
    // from 1 byte up, decoding as data arrives like the client loop does.
    let mut stream = BytesMut::new();
    let payload = vec![0xAB; 200];
    let mut expected = 0;
    for i in 0..50u16 {
        let p = Publish {
            dup: false,
            qos: (i % 3) as u8,
            retain: false,
            topic: b"t/x",
            pid: if i % 3 > 0 { i + 1 } else { 0 },
            props: PubProps {
                response_topic: Some(b"r"),
                correlation_data: Some(&[9; 8]),
                topic_alias: None,
            },
            payload: &payload,
        };
        encode_publish(&mut stream, true, &p);
        encode_ack(&mut stream, kind::PUBACK, i);
        expected += 2;
    }
    // a large packet that needs a 2-byte remaining length
    let big = vec![1u8; 70_000];
    encode_publish(
        &mut stream,
        true,
        &Publish {
            dup: false,
            qos: 0,
            retain: false,
            topic: b"big",
            pid: 0,
            props: PubProps::default(),
            payload: &big,
        },
    );
    expected += 1;
    for chunk in [1usize, 2, 3, 7, 64, 1000, 65_536] {
        let mut buf = BytesMut::new();
        let mut got = 0;
        for piece in stream.chunks(chunk) {
            buf.extend_from_slice(piece);
            let mut off = 0;
            while let Some((pkt, n)) = decode(&buf[off..], true).unwrap() {
                if let Packet::Publish(p) = pkt {
                    assert!(p.payload.len() == 200 || p.payload.len() == 70_000);
                }
                off += n;
                got += 1;
            }
            let _ = buf.split_to(off);
        }
        assert_eq!(got, expected, "chunk size {chunk}");
        assert!(buf.is_empty());
    }
}
