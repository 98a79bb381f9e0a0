//! MQTT over WebSockets (`mqtt.ws_bind`, `mqtt.wss_bind`) against the real binary: paho-mqtt's
//! WebSocket transport (tests/ws/exchange.py) over `ws` and `wss` exchanging messages with a
//! TCP client (v3.1.1 and v5, QoS 0 and 1, a 200 KB message each way); a raw WebSocket client
//! that splits a packet across frames (with a ping between the fragments) and puts two
//! packets in one frame; refused upgrades (no `mqtt` subprotocol, wrong version, wrong path,
//! garbage, a slowloris head) and refused frames (text, unmasked, reserved bits, too large),
//! each with its answer, while other clients carry on; `wss` with client certificates required.
//!
//! Needs paho-mqtt 2.1.0 in the SDK venv (`SDK_PYTHON`, else `target/sdk-venv/bin/python`),
//! which `./scripts/test` installs. Without it this test fails (it never passes silently).

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::raw::{self, Client, Opts};
use common::{Server, TempDir};

/// The handshake timeout the servers here run with (`mqtt.tls.handshake_timeout_ms`).
const HANDSHAKE_MS: u64 = 1500;

/// A CA and a server certificate for localhost, as files.
struct Certs {
    _dir: TempDir,
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

fn certs() -> Certs {
    let dir = TempDir::new("ws-certs");
    let ca = evgrid::tls::dev::DevCa::new("evgrid ws test CA").unwrap();
    let (cert, key) = ca
        .issue("localhost", &["localhost", "127.0.0.1"], false)
        .unwrap();
    let p = |n: &str| dir.0.join(n);
    std::fs::write(p("ca.pem"), ca.cert_pem()).unwrap();
    std::fs::write(p("server.pem"), cert).unwrap();
    std::fs::write(p("server.key"), key).unwrap();
    Certs {
        ca: p("ca.pem"),
        cert: p("server.pem"),
        key: p("server.key"),
        _dir: dir,
    }
}

fn server(c: &Certs) -> Server {
    let timeout = HANDSHAKE_MS.to_string();
    Server::start(&[
        ("EVGRID_MQTT_WS_BIND", "127.0.0.1:0"),
        ("EVGRID_MQTT_WSS_BIND", "127.0.0.1:0"),
        ("EVGRID_MQTT_TLS_CERT_FILE", c.cert.to_str().unwrap()),
        ("EVGRID_MQTT_TLS_KEY_FILE", c.key.to_str().unwrap()),
        ("EVGRID_MQTT_TLS_HANDSHAKE_TIMEOUT_MS", &timeout),
    ])
}

const MASK: [u8; 4] = [0xa1, 0x07, 0x5c, 0xe3];

/// A client frame (masked unless `masked` is false).
fn frame(fin: bool, opcode: u8, payload: &[u8], masked: bool) -> Vec<u8> {
    let mut f = vec![if fin { 0x80 } else { 0 } | opcode];
    let m = if masked { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => f.push(m | n as u8),
        n if n <= 0xffff => {
            f.push(m | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(m | 127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    if masked {
        f.extend_from_slice(&MASK);
        f.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
    } else {
        f.extend_from_slice(payload);
    }
    f
}

fn upgrade(path: &str, headers: &[&str]) -> String {
    let mut r = format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    );
    for h in headers {
        r.push_str(h);
        r.push_str("\r\n");
    }
    r + "\r\n"
}

const V13: &str = "Sec-WebSocket-Version: 13";

/// A raw WebSocket connection: frames out, frames and MQTT packets in.
struct Ws {
    s: TcpStream,
    buf: Vec<u8>,
    mqtt: Vec<u8>,
}

impl Ws {
    /// Upgrades with subprotocols `mqtt` (and `chat` first, which must be passed over).
    fn open(addr: SocketAddr) -> Ws {
        let mut s = Client::tcp(addr);
        let req = upgrade("/mqtt", &[V13, "Sec-WebSocket-Protocol: chat, mqtt"]);
        s.write_all(req.as_bytes()).unwrap();
        let mut ws = Ws {
            s,
            buf: Vec::new(),
            mqtt: Vec::new(),
        };
        let head = ws.head().expect("an upgrade response");
        assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
        assert!(
            head.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"),
            "{head}"
        );
        assert!(head.contains("Sec-WebSocket-Protocol: mqtt\r\n"), "{head}");
        ws
    }

    fn fill(&mut self) -> bool {
        let mut b = [0u8; 16 * 1024];
        match self.s.read(&mut b) {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&b[..n]);
                true
            }
        }
    }

    /// The HTTP response head (through its blank line), or None if the connection ended first.
    fn head(&mut self) -> Option<String> {
        loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head: Vec<u8> = self.buf.drain(..i + 4).collect();
                return Some(String::from_utf8(head).unwrap());
            }
            if !self.fill() {
                return None;
            }
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.s.write_all(bytes).unwrap();
    }

    /// The next server frame (opcode, payload); None at the end of the connection.
    fn frame(&mut self) -> Option<(u8, Vec<u8>)> {
        loop {
            if self.buf.len() >= 2 {
                assert_eq!(self.buf[0] & 0x70, 0, "reserved bits from the server");
                assert_eq!(self.buf[1] & 0x80, 0, "server frames are never masked");
                let (len, at) = match self.buf[1] & 0x7f {
                    126 if self.buf.len() >= 4 => {
                        (u16::from_be_bytes([self.buf[2], self.buf[3]]) as usize, 4)
                    }
                    127 if self.buf.len() >= 10 => {
                        let mut b = [0u8; 8];
                        b.copy_from_slice(&self.buf[2..10]);
                        (u64::from_be_bytes(b) as usize, 10)
                    }
                    126 | 127 => (usize::MAX, 0),
                    n => (n as usize, 2),
                };
                if len != usize::MAX && self.buf.len() >= at + len {
                    assert_eq!(self.buf[0] & 0x80, 0x80, "server frames are final");
                    let op = self.buf[0] & 0x0f;
                    let payload = self.buf[at..at + len].to_vec();
                    self.buf.drain(..at + len);
                    return Some((op, payload));
                }
            }
            if !self.fill() {
                return None;
            }
        }
    }

    /// The next MQTT packet (type, body) carried in binary frames.
    fn packet(&mut self) -> (u8, Vec<u8>) {
        loop {
            if let Some((ty, body, used)) = split_packet(&self.mqtt) {
                self.mqtt.drain(..used);
                return (ty, body);
            }
            let (op, payload) = self.frame().expect("a frame");
            assert_eq!(op, 0x2, "a binary frame, got opcode {op}");
            self.mqtt.extend_from_slice(&payload);
        }
    }

    /// Expects a close frame with `code`, then the end of the connection.
    fn expect_close(&mut self, code: u16) {
        let (op, payload) = self.frame().expect("a close frame");
        assert_eq!(op, 0x8, "a close frame, got opcode {op}: {payload:?}");
        assert_eq!(payload, code.to_be_bytes(), "close status");
        assert!(self.frame().is_none(), "nothing after the close frame");
    }
}

/// The first whole MQTT packet in `b`: (type, body, bytes used).
fn split_packet(b: &[u8]) -> Option<(u8, Vec<u8>, usize)> {
    let (mut len, mut mul, mut i) = (0usize, 1usize, 1usize);
    loop {
        let byte = *b.get(i)?;
        len += usize::from(byte & 0x7f) * mul;
        mul *= 128;
        i += 1;
        if byte & 0x80 == 0 {
            break;
        }
    }
    let body = b.get(i..i + len)?;
    Some((b[0] >> 4, body.to_vec(), i + len))
}

fn packet(first: u8, body: &[u8]) -> Vec<u8> {
    let mut p = vec![first];
    raw::varint(body.len(), &mut p);
    p.extend_from_slice(body);
    p
}

fn connect_v5(id: &str) -> Vec<u8> {
    let mut body = Vec::new();
    raw::string(b"MQTT", &mut body);
    body.extend_from_slice(&[5, 0x02, 0, 30, 0]);
    raw::string(id.as_bytes(), &mut body);
    packet(0x10, &body)
}

/// A v5 QoS 1 PUBLISH with packet id 1.
fn publish_v5(topic: &str, payload: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    raw::string(topic.as_bytes(), &mut body);
    body.extend_from_slice(&[0, 1, 0]);
    body.extend_from_slice(payload);
    packet(0x32, &body)
}

/// A connected v5 client over WebSocket, its CONNECT in one frame.
fn ws_client(addr: SocketAddr, id: &str) -> Ws {
    let mut ws = Ws::open(addr);
    ws.send(&frame(true, 2, &connect_v5(id), true));
    let (ty, body) = ws.packet();
    assert_eq!((ty, body[1]), (raw::CONNACK, 0), "CONNACK");
    ws
}

#[test]
fn paho_over_ws_and_wss_exchanges_with_tcp() {
    let py = common::paho_python();
    let c = certs();
    let srv = server(&c);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ws/exchange.py");
    let (ws, wss) = (srv.listener("mqtt-ws"), srv.listener("mqtt-wss"));
    let runs: [(SocketAddr, bool, &str, &str); 6] = [
        (ws, false, "3", "0"),
        (ws, false, "3", "1"),
        (ws, false, "5", "0"),
        (ws, false, "5", "1"),
        (wss, true, "3", "1"),
        (wss, true, "5", "0"),
    ];
    let children: Vec<_> = runs
        .iter()
        .map(|(addr, tls, v, q)| {
            let mut cmd = Command::new(&py);
            cmd.arg(&script)
                .args(["--ws-port", &addr.port().to_string()])
                .args(["--tcp-port", &srv.mqtt.port().to_string()])
                .args(["--version", v, "--qos", q]);
            if *tls {
                cmd.arg("--ca").arg(&c.ca);
            }
            (format!("{addr} tls={tls} v{v} qos {q}"), cmd.output())
        })
        .collect();
    for (what, out) in children {
        let out = out.expect("run exchange.py");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.starts_with("OK "),
            "{what}: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(
        srv.metric("evgrid_tls_handshakes_total{listener=\"mqtt_wss\"}"),
        2.0
    );
    assert_eq!(
        srv.metric("evgrid_mqtt_ws_upgrades_total{outcome=\"accepted\"}"),
        6.0
    );
}

/// Packets span frames (and a fragmented message, with a ping between its fragments), and
/// several packets share a frame; a TCP client on the other side sees exactly what was sent.
#[test]
fn packets_across_frames_and_frames_with_packets() {
    let c = certs();
    let srv = server(&c);
    let mut tcp = Client::ok(srv.mqtt, Opts::v3("tcp-side"));
    tcp.sub("raw/up", 1);
    let mut ws = Ws::open(srv.listener("mqtt-ws"));
    // CONNECT in three fragments of one message, a ping among them.
    let conn = connect_v5("raw-ws");
    ws.send(&frame(false, 0x2, &conn[..3], true));
    ws.send(&frame(true, 0x9, b"are you there", true));
    ws.send(&frame(false, 0x0, &conn[3..9], true));
    ws.send(&frame(true, 0x0, &conn[9..], true));
    assert_eq!(ws.frame(), Some((0xA, b"are you there".to_vec())), "pong");
    let (ty, body) = ws.packet();
    assert_eq!((ty, body[1]), (raw::CONNACK, 0));
    // SUBSCRIBE and the first half of a PUBLISH in one frame, the rest in the next (one byte at
    // a time on the socket).
    let mut sub = vec![0, 9, 0];
    raw::string(b"raw/down", &mut sub);
    sub.push(1);
    let mut sub_then_pub = packet(0x82, &sub);
    let payload: Vec<u8> = (0..3000u32).map(|i| (i % 253) as u8).collect();
    let publish = publish_v5("raw/up", &payload);
    sub_then_pub.extend_from_slice(&publish[..1000]);
    ws.send(&frame(true, 0x2, &sub_then_pub, true));
    for b in frame(true, 0x2, &publish[1000..], true) {
        ws.send(&[b]);
    }
    let (ty, body) = ws.packet();
    assert_eq!((ty, &body[..2], body[3]), (raw::SUBACK, &[0, 9][..], 1));
    let (ty, body) = ws.packet();
    assert_eq!((ty, &body[..2]), (raw::PUBACK, &[0, 1][..]));
    let m = tcp.next_msg();
    assert_eq!((m.topic.as_str(), m.payload), ("raw/up", payload));
    // TCP to WebSocket, QoS 1; the PUBACK and a PINGREQ in one frame.
    tcp.pub_wait("raw/down", b"to the browser", 1, false);
    let (ty, body) = ws.packet();
    assert_eq!(ty, raw::PUBLISH);
    assert!(body.ends_with(b"to the browser"));
    let pid = [body[10], body[11]];
    let mut two = packet(0x40, &pid);
    two.extend_from_slice(&[0xC0, 0]);
    ws.send(&frame(true, 0x2, &two, true));
    assert_eq!(ws.packet().0, raw::PINGRESP);
    // The client closes: the server answers with its close frame and ends the connection.
    ws.send(&frame(true, 0x8, &1000u16.to_be_bytes(), true));
    ws.expect_close(1000);
    srv.assert_mqtt_alive();
}

/// One request, its whole answer and the connection's end: (response head, body).
fn refused(addr: SocketAddr, req: &[u8]) -> (String, String) {
    let mut s = Client::tcp(addr);
    s.write_all(req).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).expect("the server closes");
    let text = String::from_utf8(out).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP response");
    (head.to_string(), body.to_string())
}

#[test]
fn bad_upgrades_get_their_answer_and_others_carry_on() {
    let c = certs();
    let srv = server(&c);
    let addr = srv.listener("mqtt-ws");
    // A slowloris head, one header byte every 100 ms: cut at the handshake timeout.
    let slow = std::thread::spawn(move || {
        let mut s = Client::tcp(addr);
        s.write_all(b"GET /mqtt HTTP/1.1\r\nX-Slow: ").unwrap();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if s.write_all(b"a").is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
            let mut b = [0u8; 64];
            s.set_nonblocking(true).unwrap();
            let r = s.read(&mut b);
            s.set_nonblocking(false).unwrap();
            if matches!(r, Ok(0))
                || matches!(&r, Err(e) if e.kind() != std::io::ErrorKind::WouldBlock)
            {
                break;
            }
            assert!(
                r.is_err(),
                "no answer to an unfinished head: {:?}",
                &b[..r.unwrap()]
            );
        }
        start.elapsed()
    });
    let cases: [(String, &str, &str); 6] = [
        (upgrade("/mqtt", &[V13]), "HTTP/1.1 400 ", "must offer mqtt"),
        (
            upgrade("/mqtt", &[V13, "Sec-WebSocket-Protocol: chat, wamp"]),
            "HTTP/1.1 400 ",
            "none of the offered subprotocols",
        ),
        (
            upgrade(
                "/mqtt",
                &["Sec-WebSocket-Version: 8", "Sec-WebSocket-Protocol: mqtt"],
            ),
            "HTTP/1.1 426 ",
            "must be 13",
        ),
        (
            upgrade("/chat", &[V13, "Sec-WebSocket-Protocol: mqtt"]),
            "HTTP/1.1 404 ",
            "/mqtt",
        ),
        (
            String::from_utf8_lossy(&connect_v5("not-http")).into_owned(),
            "HTTP/1.1 400 ",
            "not an HTTP GET",
        ),
        // A wss client on the ws port: the start of a ClientHello (all ASCII, to fit the table).
        (
            "\u{16}\u{3}\u{1}\u{0}\u{5}\u{1}\u{0}\u{0}\u{1}\u{3}".to_string(),
            "HTTP/1.1 400 ",
            "a TLS handshake on the plain WebSocket port",
        ),
    ];
    for (req, status, reason) in &cases {
        let (head, body) = refused(addr, req.as_bytes());
        assert!(head.starts_with(status), "{req:?}: {head}");
        assert!(
            body.contains(reason) && body.ends_with('\n'),
            "{req:?}: {body}"
        );
        if status.contains("426") {
            assert!(head.contains("Sec-WebSocket-Version: 13"), "{head}");
        }
    }
    // Meanwhile a WebSocket client and a TCP client exchange messages.
    let mut ws = ws_client(addr, "healthy");
    let mut tcp = Client::ok(srv.mqtt, Opts::v5("healthy-tcp"));
    tcp.sub("healthy", 1);
    ws.send(&frame(true, 0x2, &publish_v5("healthy", b"ok"), true));
    assert_eq!(ws.packet().0, raw::PUBACK);
    assert_eq!(tcp.next_msg().payload, b"ok");
    let took = slow.join().unwrap();
    let limit = Duration::from_millis(HANDSHAKE_MS);
    assert!(
        took >= limit - Duration::from_millis(300) && took < limit + Duration::from_secs(3),
        "slowloris cut after {took:?}"
    );
    let count = |o: &str| srv.metric(&format!("evgrid_mqtt_ws_upgrades_total{{outcome=\"{o}\"}}"));
    assert_eq!(count("no_subprotocol"), 2.0);
    assert_eq!(count("bad_version"), 1.0);
    assert_eq!(count("not_found"), 1.0);
    assert_eq!(count("bad_request"), 2.0);
    assert_eq!(
        srv.metric(
            "evgrid_tls_handshake_failures_total{listener=\"mqtt_plain\",reason=\"tls_on_plain_port\"}"
        ),
        1.0,
        "the ClientHello on the ws port"
    );
    assert_eq!(count("timeout"), 1.0);
    assert_eq!(count("accepted"), 1.0);
    // Not TLS on the wss port: refused by TLS, counted there.
    let wss = srv.listener("mqtt-wss");
    let mut s = Client::tcp(wss);
    s.write_all(upgrade("/mqtt", &[V13, "Sec-WebSocket-Protocol: mqtt"]).as_bytes())
        .unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    assert!(
        !String::from_utf8_lossy(&out).contains("HTTP/1.1"),
        "no HTTP answer"
    );
    common::wait_until("the wss failure counted", || {
        srv.metric("evgrid_tls_handshake_failures_total{listener=\"mqtt_wss\",reason=\"not_tls\"}")
            == 1.0
    });
    srv.assert_mqtt_alive();
}

#[test]
fn bad_frames_close_with_their_status() {
    let c = certs();
    let srv = server(&c);
    let addr = srv.listener("mqtt-ws");
    let mut reserved = frame(true, 0x2, b"x", true);
    reserved[0] |= 0x20;
    let mut too_big = vec![0x82, 0xff];
    too_big.extend_from_slice(&(2u64 << 20).to_be_bytes());
    too_big.extend_from_slice(&MASK);
    let cases: [(&str, Vec<u8>, u16); 6] = [
        ("text", frame(true, 0x1, b"{}", true), 1003),
        ("unmasked", frame(true, 0x2, &connect_v5("x"), false), 1002),
        ("reserved bits", reserved, 1002),
        ("large ping", frame(true, 0x9, &[0; 126], true), 1002),
        ("fragmented ping", frame(false, 0x9, b"", true), 1002),
        ("over max_packet_size", too_big, 1009),
    ];
    let mut keep = ws_client(addr, "bystander");
    for (what, bytes, code) in cases {
        // Before and after CONNECT.
        let mut ws = Ws::open(addr);
        ws.send(&bytes);
        ws.expect_close(code);
        let mut ws = ws_client(addr, what);
        ws.send(&bytes);
        ws.expect_close(code);
    }
    keep.send(&frame(true, 0x2, &[0xC0, 0], true));
    assert_eq!(
        keep.packet().0,
        raw::PINGRESP,
        "the bystander is still served"
    );
    srv.assert_mqtt_alive();
}

/// `wss` with `mqtt.tls.client_auth = required`: paho with a client certificate from the CA
/// exchanges messages; without one its handshake is refused and counted (no_certificate).
#[test]
fn wss_with_client_certificates_required() {
    let py = common::paho_python();
    let dir = TempDir::new("ws-mtls");
    let ca = evgrid::tls::dev::DevCa::new("evgrid ws mtls CA").unwrap();
    let (cert, key) = ca
        .issue("localhost", &["localhost", "127.0.0.1"], false)
        .unwrap();
    let (ccert, ckey) = ca.issue("device-7", &[], true).unwrap();
    let p = |n: &str| dir.0.join(n);
    for (n, pem) in [
        ("ca.pem", ca.cert_pem()),
        ("server.pem", cert),
        ("server.key", key),
        ("client.pem", ccert),
        ("client.key", ckey),
    ] {
        std::fs::write(p(n), pem).unwrap();
    }
    let s = |n: &str| p(n).to_str().unwrap().to_string();
    let srv = Server::start(&[
        ("EVGRID_MQTT_WSS_BIND", "127.0.0.1:0"),
        ("EVGRID_MQTT_TLS_CERT_FILE", &s("server.pem")),
        ("EVGRID_MQTT_TLS_KEY_FILE", &s("server.key")),
        ("EVGRID_MQTT_TLS_CLIENT_AUTH", "required"),
        ("EVGRID_MQTT_TLS_CA_FILE", &s("ca.pem")),
    ]);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ws/exchange.py");
    let run = |extra: &[&str]| {
        let out = Command::new(&py)
            .arg(&script)
            .args(["--ws-port", &srv.listener("mqtt-wss").port().to_string()])
            .args(["--tcp-port", &srv.mqtt.port().to_string()])
            .args(["--ca", &s("ca.pem"), "--large", "1000"])
            .args(extra)
            .output()
            .expect("run exchange.py");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{extra:?}: {text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        text
    };
    let ok = run(&["--cert", &s("client.pem"), "--key", &s("client.key")]);
    assert!(ok.starts_with("OK "), "{ok}");
    let refused = run(&["--expect-refused"]);
    assert!(refused.starts_with("REFUSED"), "{refused}");
    common::wait_until("the refusal counted", || {
        srv.metric(
            "evgrid_tls_handshake_failures_total{listener=\"mqtt_wss\",reason=\"no_certificate\"}",
        ) == 1.0
    });
    assert_eq!(
        srv.metric("evgrid_tls_handshakes_total{listener=\"mqtt_wss\"}"),
        1.0
    );
}

/// A client that pings without reading cannot grow the server's memory: once earlier output is
/// unsent, pings go unanswered (RFC 6455 §5.5.3), so far fewer pongs come back than pings went
/// out, and the connection and a bystander are still served afterwards.
#[test]
fn a_ping_flood_that_never_reads_gets_bounded_pongs() {
    let c = certs();
    let srv = server(&c);
    let addr = srv.listener("mqtt-ws");
    let mut keep = ws_client(addr, "bystander");
    let mut ws = ws_client(addr, "flooder");
    let ping = frame(true, 0x9, &[7; 125], true);
    const PINGS: usize = 400_000; // 52 MB of pings; the kernel's socket buffers hold far less
    let mut flood = Vec::with_capacity(ping.len() * 10_000);
    for _ in 0..10_000 {
        flood.extend_from_slice(&ping);
    }
    for _ in 0..PINGS / 10_000 {
        ws.send(&flood);
    }
    // Still served: a PINGREQ after the flood is answered, after whatever pongs were queued.
    ws.send(&frame(true, 0x2, &[0xC0, 0], true));
    let mut pongs = 0usize;
    loop {
        let (op, payload) = ws.frame().expect("the connection stays up");
        match op {
            0xA => pongs += 1,
            0x2 => {
                assert_eq!(payload, [0xD0, 0], "PINGRESP");
                break;
            }
            _ => panic!("unexpected opcode {op}"),
        }
    }
    assert!(pongs < PINGS / 2, "{pongs} pongs for {PINGS} pings");
    keep.send(&frame(true, 0x2, &[0xC0, 0], true));
    assert_eq!(keep.packet().0, raw::PINGRESP, "the bystander is served");
}
