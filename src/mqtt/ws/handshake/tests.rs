use super::*;

fn request(path: &str, extra: &[&str]) -> String {
    let mut s = format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    );
    for h in extra {
        s.push_str(h);
        s.push_str("\r\n");
    }
    s.push_str("\r\n");
    s
}

const V13: &str = "Sec-WebSocket-Version: 13";

#[test]
fn rfc_example_key() {
    // RFC 6455 §1.3.
    assert_eq!(
        accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
        "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    );
}

#[test]
fn accepts_mqtt_and_picks_the_clients_first_choice() {
    let r = request(
        "/mqtt",
        &[V13, "Sec-WebSocket-Protocol: chat, mqtt, mqttv3.1"],
    );
    let a = check(r.as_bytes()).expect("accepted");
    assert_eq!(a.protocol, "mqtt");
    assert_eq!(a.accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    let r = request("/?x=1", &[V13, "sec-websocket-protocol: mqttv3.1"]);
    assert_eq!(check(r.as_bytes()).expect("accepted").protocol, "mqttv3.1");
    let resp = switching(&a);
    assert!(resp.starts_with("HTTP/1.1 101 "));
    assert!(resp.contains("Sec-WebSocket-Protocol: mqtt\r\n"));
    assert!(resp.ends_with("\r\n\r\n"));
}

#[test]
fn refusals() {
    let proto = "Sec-WebSocket-Protocol: mqtt";
    let cases = [
        (request("/mqtt", &[V13]), 400, WsUpgrade::NoSubprotocol),
        (
            request("/mqtt", &[V13, "Sec-WebSocket-Protocol: chat"]),
            400,
            WsUpgrade::NoSubprotocol,
        ),
        (
            request("/mqtt", &["Sec-WebSocket-Version: 8", proto]),
            426,
            WsUpgrade::BadVersion,
        ),
        (request("/mqtt", &[proto]), 426, WsUpgrade::BadVersion),
        (request("/ws", &[V13, proto]), 404, WsUpgrade::NotFound),
        (
            request("/mqtt", &[V13, proto]).replace("Upgrade: websocket\r\n", ""),
            400,
            WsUpgrade::BadRequest,
        ),
        (
            request("/mqtt", &[V13, proto]).replace("dGhlIHNhbXBsZSBub25jZQ==", "c2hvcnQ="),
            400,
            WsUpgrade::BadRequest,
        ),
        (
            request("/mqtt", &[V13, proto]).replace("HTTP/1.1", "HTTP/1.0"),
            400,
            WsUpgrade::BadRequest,
        ),
        (
            request("/mqtt", &[V13, proto, "no colon"]),
            400,
            WsUpgrade::BadRequest,
        ),
    ];
    for (req, status, outcome) in cases {
        let r = check(req.as_bytes()).expect_err(&req);
        assert_eq!((r.status, r.outcome), (status, outcome), "{req}");
        let resp = refusal(&r);
        assert!(resp.starts_with(&format!("HTTP/1.1 {status} ")), "{resp}");
        assert!(resp.ends_with(&format!("\r\n\r\n{}\n", r.reason)));
    }
    let r = check(request("/mqtt", &[proto]).as_bytes()).expect_err("v");
    assert!(refusal(&r).contains("Sec-WebSocket-Version: 13\r\n"));
}

#[test]
fn head_is_found_bounded_and_must_be_a_get() {
    let r = request("/mqtt", &[V13]);
    let mut with_more = r.clone().into_bytes();
    with_more.extend_from_slice(&[0x82, 0x80]);
    assert_eq!(head_len(&with_more), Ok(Some(r.len())));
    assert_eq!(head_len(&r.as_bytes()[..r.len() - 1]), Ok(None));
    assert_eq!(head_len(b""), Ok(None));
    assert_eq!(head_len(b"GE"), Ok(None));
    assert_eq!(
        head_len(b"\x10\x0c\x00\x04MQTT").map_err(|r| r.status),
        Err(400)
    );
    assert_eq!(head_len(b"POST /mqtt").map_err(|r| r.status), Err(400));
    let mut long = b"GET /mqtt HTTP/1.1\r\n".to_vec();
    long.resize(MAX_HEAD, b'a');
    assert_eq!(head_len(&long).map_err(|r| r.status), Err(400));
    assert_eq!(check(b"\xff\xfe").map_err(|r| r.status), Err(400));
}
