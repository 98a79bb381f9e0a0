use super::ws::frame::{self, Decoder};
use super::*;
use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A server frame (unmasked) with `fin` and `opcode`.
fn server_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut v = vec![if fin { 0x80 } else { 0 } | opcode];
    match payload.len() {
        n if n < 126 => v.push(n as u8),
        n if n <= 0xffff => {
            v.push(126);
            v.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            v.push(127);
            v.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    v.extend_from_slice(payload);
    v
}

/// Parses one client frame as a server would: (fin, opcode, unmasked payload, length used).
fn parse_client_frame(b: &[u8]) -> Option<(bool, u8, Vec<u8>, usize)> {
    if b.len() < 2 {
        return None;
    }
    assert_eq!(b[1] & 0x80, 0x80, "client frames are masked");
    let (len, mut at) = match b[1] & 0x7f {
        126 => (u16::from_be_bytes([b[2], b[3]]) as usize, 4),
        127 => (
            u64::from_be_bytes(b[2..10].try_into().unwrap()) as usize,
            10,
        ),
        n => (n as usize, 2),
    };
    if b.len() < at + 4 + len {
        return None;
    }
    let mask: [u8; 4] = b[at..at + 4].try_into().unwrap();
    at += 4;
    let payload = b[at..at + len]
        .iter()
        .enumerate()
        .map(|(i, x)| x ^ mask[i % 4])
        .collect();
    Some((b[0] & 0x80 != 0, b[0] & 0x0f, payload, at + len))
}

fn decode_all(dec: &mut Decoder, input: &[u8]) -> Result<(Vec<u8>, BytesMut), String> {
    let mut raw = BytesMut::from(input);
    let (mut out, mut ctl, mut rng) = (Vec::new(), BytesMut::new(), 7u64);
    dec.decode(&mut raw, &mut out, &mut ctl, &mut rng)?;
    Ok((out, ctl))
}

#[test]
fn accept_key_is_rfc_6455s_example() {
    assert_eq!(
        frame::accept_for("dGhlIHNhbXBsZSBub25jZQ=="),
        "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    );
}

#[test]
fn client_frames_are_masked_with_the_right_length_encoding() {
    for len in [0usize, 1, 125, 126, 1000, 65_535, 65_536, 200_000] {
        let payload: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
        let mut out = BytesMut::new();
        frame::encode(&mut out, frame::OP_BINARY, &payload, [1, 2, 3, 0xfe]);
        let (fin, op, got, used) = parse_client_frame(&out).unwrap();
        assert!(fin);
        assert_eq!(op, frame::OP_BINARY);
        assert_eq!(used, out.len(), "len {len}");
        assert_eq!(got, payload, "len {len}");
        let header = match len {
            n if n < 126 => 2,
            n if n <= 0xffff => 4,
            _ => 10,
        };
        assert_eq!(out.len(), header + 4 + len);
    }
}

#[test]
fn masking_matches_the_bytewise_definition() {
    let mask = [0x12, 0x34, 0x56, 0x78];
    for len in 0..40 {
        let data: Vec<u8> = (0..len).map(|i| i as u8 ^ 0xa5).collect();
        let mut fast = data.clone();
        frame::apply_mask(&mut fast, mask);
        let slow: Vec<u8> = data
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ mask[i % 4])
            .collect();
        assert_eq!(fast, slow, "len {len}");
    }
    let mut s = 1u64;
    assert_ne!(frame::next_mask(&mut s), frame::next_mask(&mut s));
}

#[test]
fn server_frames_stream_through_even_a_byte_at_a_time() {
    let payload: Vec<u8> = (0..70_000).map(|i| (i % 251) as u8).collect();
    let mut wire = server_frame(true, frame::OP_BINARY, &payload);
    wire.extend(server_frame(true, frame::OP_BINARY, b"tail"));
    let mut dec = Decoder::default();
    let (mut raw, mut out, mut ctl, mut rng) = (BytesMut::new(), Vec::new(), BytesMut::new(), 1);
    for b in &wire {
        raw.extend_from_slice(&[*b]);
        dec.decode(&mut raw, &mut out, &mut ctl, &mut rng).unwrap();
    }
    assert_eq!(&out[..70_000], &payload[..]);
    assert_eq!(&out[70_000..], b"tail");
    assert!(raw.is_empty() && ctl.is_empty());
}

#[test]
fn fragments_join_and_pings_between_them_are_answered() {
    let mut wire = server_frame(false, frame::OP_BINARY, b"MQ");
    wire.extend(server_frame(true, frame::OP_PING, b"hi"));
    wire.extend(server_frame(false, frame::OP_CONTINUATION, b"TT"));
    wire.extend(server_frame(true, frame::OP_PONG, b""));
    wire.extend(server_frame(true, frame::OP_CONTINUATION, b" packet"));
    let mut dec = Decoder::default();
    let (out, ctl) = decode_all(&mut dec, &wire).unwrap();
    assert_eq!(out, b"MQTT packet");
    let (fin, op, body, used) = parse_client_frame(&ctl).unwrap();
    assert_eq!(
        (fin, op, body.as_slice(), used),
        (true, frame::OP_PONG, &b"hi"[..], ctl.len())
    );
    // a control frame waits until it is complete
    let ping = server_frame(true, frame::OP_PING, b"abc");
    let mut raw = BytesMut::from(&ping[..3]);
    let (mut out, mut ctl, mut rng) = (Vec::new(), BytesMut::new(), 3u64);
    assert_eq!(dec.decode(&mut raw, &mut out, &mut ctl, &mut rng), Ok(0));
    assert_eq!((raw.len(), ctl.len()), (3, 0));
    raw.extend_from_slice(&ping[3..]);
    dec.decode(&mut raw, &mut out, &mut ctl, &mut rng).unwrap();
    assert_eq!(parse_client_frame(&ctl).unwrap().2, b"abc");
}

#[test]
fn a_close_is_echoed_and_ends_the_stream() {
    let mut wire = server_frame(true, frame::OP_BINARY, b"last");
    wire.extend(server_frame(
        true,
        frame::OP_CLOSE,
        &[0x03, 0xe8, b'b', b'y', b'e'],
    ));
    wire.extend(server_frame(true, frame::OP_BINARY, b"ignored"));
    let mut dec = Decoder::default();
    let (out, ctl) = decode_all(&mut dec, &wire).unwrap();
    assert_eq!(out, b"last");
    assert!(dec.closed());
    let (_, op, body, _) = parse_client_frame(&ctl).unwrap();
    assert_eq!((op, body.as_slice()), (frame::OP_CLOSE, &[0x03, 0xe8][..]));
}

#[test]
fn protocol_violations_are_errors() {
    let masked = {
        let mut f = server_frame(true, frame::OP_BINARY, b"");
        f[1] |= 0x80;
        f.extend_from_slice(&[0; 4]);
        f
    };
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (masked, "masked"),
        (server_frame(true, frame::OP_TEXT, b"x"), "text"),
        (
            server_frame(true, frame::OP_CONTINUATION, b"x"),
            "continuation",
        ),
        (
            [
                server_frame(false, frame::OP_BINARY, b"a"),
                server_frame(true, frame::OP_BINARY, b"b"),
            ]
            .concat(),
            "inside a fragmented",
        ),
        (vec![0x80 | 0x40 | frame::OP_BINARY, 0], "reserved bits"),
        (server_frame(false, frame::OP_PING, b""), "control frame"),
        (
            server_frame(true, frame::OP_PING, &[0; 126]),
            "control frame",
        ),
        (server_frame(true, 0x3, b""), "reserved opcode"),
        (
            [vec![0x82, 127], (1u64 << 63).to_be_bytes().to_vec()].concat(),
            "top bit",
        ),
    ];
    for (wire, want) in cases {
        let e = decode_all(&mut Decoder::default(), &wire).unwrap_err();
        assert!(e.contains(want), "{want}: {e}");
    }
}

#[test]
fn upgrade_answers_are_checked() {
    let key = "dGhlIHNhbXBsZSBub25jZQ==";
    let ok = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n";
    let with_frame = [ok.as_bytes(), &[0x82, 0]].concat();
    assert_eq!(frame::check_upgrade(&with_frame, key), Ok(Some(ok.len())));
    assert_eq!(frame::check_upgrade(&ok.as_bytes()[..40], key), Ok(None));
    let bad = [
        (
            ok.replace("101 Switching Protocols", "404 Not Found"),
            "refused: HTTP/1.1 404",
        ),
        (ok.replace("s3pP", "xxxx"), "wrong Sec-WebSocket-Accept"),
        (
            ok.replace("Sec-WebSocket-Protocol: mqtt\r\n", ""),
            "did not accept subprotocol",
        ),
        (ok.replace(": mqtt", ": mqttv3.1"), "chose subprotocol"),
        (ok.replace("Upgrade: websocket\r\n", ""), "without Upgrade"),
        ("SSH-2.0-x\r\n\r\n".to_string(), "not an HTTP answer"),
    ];
    for (answer, want) in bad {
        let e = frame::check_upgrade(answer.as_bytes(), key).unwrap_err();
        assert!(e.contains(want), "{want}: {e}");
    }
    let mut req = Vec::new();
    frame::upgrade_request(&mut req, "/mqtt", "h:1", key);
    let req = String::from_utf8(req).unwrap();
    assert!(
        req.starts_with("GET /mqtt HTTP/1.1\r\nHost: h:1\r\n"),
        "{req}"
    );
    assert!(
        req.contains("\r\nSec-WebSocket-Protocol: mqtt\r\n"),
        "{req}"
    );
    assert!(
        req.contains(&format!("\r\nSec-WebSocket-Key: {key}\r\n")),
        "{req}"
    );
}

/// The stream over a real socket: upgrade, a batch out as one masked frame, the answer back in
/// fragments with a ping between them (answered), then the server's close (EOF).
#[tokio::test]
async fn websocket_stream_over_a_socket() {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let mut buf = Vec::new();
        while !buf.ends_with(b"\r\n\r\n") {
            let mut b = [0u8; 1];
            s.read_exact(&mut b).await.unwrap();
            buf.push(b[0]);
        }
        let req = String::from_utf8(buf).unwrap();
        assert!(req.starts_with("GET /ws/x HTTP/1.1\r\n"), "{req}");
        let key = req
            .lines()
            .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
            .unwrap();
        let answer = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\
             Sec-WebSocket-Accept: {}\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n",
            frame::accept_for(key)
        );
        s.write_all(answer.as_bytes()).await.unwrap();
        let mut got = Vec::new();
        let frame = loop {
            if let Some(f) = parse_client_frame(&got) {
                break f;
            }
            let mut b = [0u8; 4096];
            let n = s.read(&mut b).await.unwrap();
            got.extend_from_slice(&b[..n]);
        };
        assert_eq!(
            (frame.0, frame.1, frame.2.as_slice()),
            (true, frame::OP_BINARY, &b"hello broker"[..])
        );
        let mut out = server_frame(false, frame::OP_BINARY, b"hello ");
        out.extend(server_frame(true, frame::OP_PING, b"p"));
        out.extend(server_frame(true, frame::OP_CONTINUATION, b"client"));
        s.write_all(&out).await.unwrap();
        got.drain(..frame.3);
        let pong = loop {
            if let Some(f) = parse_client_frame(&got) {
                break f;
            }
            let mut b = [0u8; 4096];
            let n = s.read(&mut b).await.unwrap();
            got.extend_from_slice(&b[..n]);
        };
        assert_eq!((pong.1, pong.2.as_slice()), (frame::OP_PONG, &b"p"[..]));
        s.write_all(&server_frame(true, frame::OP_CLOSE, &1000u16.to_be_bytes()))
            .await
            .unwrap();
    });
    let flags = TransportFlags {
        ws: true,
        ws_path: Some("/ws/x".into()),
        ..Default::default()
    };
    let t = Transport::new(&flags, "127.0.0.1", addr.port()).unwrap();
    assert_eq!(t.kind().name(), "ws");
    let tcp = TcpStream::connect(addr).await.unwrap();
    let deadline = Instant::now() + std::time::Duration::from_secs(5);
    let mut s = t.establish(tcp, deadline).await.unwrap();
    s.write_all(b"hello broker").await.unwrap();
    let mut got = BytesMut::new();
    while got.len() < 12 {
        assert!(s.read_buf(&mut got).await.unwrap() > 0);
    }
    assert_eq!(&got[..], b"hello client");
    got.clear();
    assert_eq!(
        s.read_buf(&mut got).await.unwrap(),
        0,
        "the close ends the stream"
    );
    server.await.unwrap();
}

#[test]
fn transport_kinds_and_ws_paths() {
    assert_eq!(Kind::of(false, false).name(), "tcp");
    assert_eq!(Kind::of(true, false).name(), "tls");
    assert_eq!(Kind::of(false, true).name(), "ws");
    assert_eq!(Kind::of(true, true).name(), "wss");
    let f = TransportFlags {
        ws: true,
        ws_path: Some("mqtt".into()),
        ..Default::default()
    };
    assert!(
        Transport::new(&f, "h", 1)
            .unwrap_err()
            .contains("--ws-path")
    );
    let f = TransportFlags {
        tls: TlsFlags {
            tls: true,
            cafile: Some("/nonexistent/ca.pem".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    let e = Transport::new(&f, "h", 1).unwrap_err();
    assert!(e.contains("--cafile /nonexistent/ca.pem"), "{e}");
    let f = TlsFlags {
        cafile: Some("ca.pem".into()),
        ..Default::default()
    };
    assert!(
        f.check_used(false, "add --tls")
            .unwrap_err()
            .contains("--cafile")
    );
    assert!(f.check_used(true, "").is_ok());
}
