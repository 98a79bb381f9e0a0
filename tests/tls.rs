//! MQTT over TLS and mutual TLS against the real binary with real clients (mosquitto_pub and
//! mosquitto_sub, openssl s_client): messages between TLS and TCP clients, client certificates
//! accepted and refused, bad input on both ports counted by reason, the handshake timeout, bad
//! files at start, and certificate reload with connections left open.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::raw::{Client, Opts};
use common::{Server, TempDir};
use evgrid::tls::dev::DevCa;

/// The certificates of a test: a CA with a server and a client certificate, and the clients
/// that must be refused (another CA's, an expired one, a self-signed one).
struct Pki {
    dir: TempDir,
    ca: DevCa,
}

impl Pki {
    fn new() -> Pki {
        let p = Pki {
            dir: TempDir::new("tls"),
            ca: DevCa::new("test CA").expect("ca"),
        };
        p.write("ca.pem", &p.ca.cert_pem());
        let (c, k) =
            p.ca.issue("localhost", &["localhost", "127.0.0.1"], false)
                .expect("server");
        p.write("server.pem", &c);
        p.write("server.key", &k);
        let (c, k) =
            p.ca.issue("device-1", &["device-1.example"], true)
                .expect("client");
        p.write("client.pem", &c);
        p.write("client.key", &k);
        let other = DevCa::new("other CA").expect("ca");
        let (c, k) = other.issue("device-1", &[], true).expect("client");
        p.write("other.pem", &c);
        p.write("other.key", &k);
        let (c, k) =
            p.ca.issue_with("device-1", &[], true, Some(((2020, 1, 1), (2021, 1, 1))))
                .expect("expired");
        p.write("expired.pem", &c);
        p.write("expired.key", &k);
        let selfsigned = DevCa::new("device-1").expect("self-signed");
        p.write("self.pem", &selfsigned.cert_pem());
        p.write("self.key", &selfsigned.key_pem());
        p
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.0.join(name)
    }

    fn p(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }

    fn write(&self, name: &str, text: &str) {
        std::fs::write(self.path(name), text).expect("write");
    }

    /// Replaces the server certificate with one from a new CA, written as `ca_name`.
    fn new_server_ca(&self, ca_name: &str) {
        let ca = DevCa::new(ca_name).expect("ca");
        let (c, k) = ca
            .issue("localhost", &["localhost", "127.0.0.1"], false)
            .expect("server");
        self.write(ca_name, &ca.cert_pem());
        // Through a rename, as deployment tools do: the watcher never reads half a file.
        self.write("server.key.new", &k);
        self.write("server.pem.new", &c);
        std::fs::rename(self.path("server.key.new"), self.path("server.key")).expect("mv");
        std::fs::rename(self.path("server.pem.new"), self.path("server.pem")).expect("mv");
    }

    /// evgrid with an MQTT TLS listener on these files, and `extra` settings.
    fn server(&self, extra: &[(&str, &str)]) -> Server {
        let (cert, key) = (self.p("server.pem"), self.p("server.key"));
        let mut env = vec![
            ("EVGRID_MQTT_TLS_BIND", "127.0.0.1:0"),
            ("EVGRID_MQTT_TLS_CERT_FILE", cert.as_str()),
            ("EVGRID_MQTT_TLS_KEY_FILE", key.as_str()),
        ];
        env.extend_from_slice(extra);
        Server::start(&env)
    }
}

/// Waits for `child` at most `secs`; kills it past that.
fn wait(mut child: Child, secs: u64) -> ExitStatus {
    let end = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(st) = child.try_wait().expect("wait") {
            return st;
        }
        if Instant::now() > end {
            let _ = child.kill();
            return child.wait().expect("wait");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// mosquitto_pub over TLS to `addr` (QoS 1: success means the PUBACK came back); `args` adds
/// --cafile, --cert, --key.
fn mosquitto_pub(addr: SocketAddr, args: &[&str], topic: &str, msg: &str) -> ExitStatus {
    let child = Command::new("mosquitto_pub")
        .args(["-h", "localhost", "-p", &addr.port().to_string()])
        .args(["-q", "1", "-t", topic, "-m", msg])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("mosquitto_pub");
    wait(child, 10)
}

/// A mosquitto_sub that stays connected, printing `topic payload` lines.
struct Sub {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Sub {
    fn start(addr: SocketAddr, args: &[&str], topic: &str) -> Sub {
        let mut child = Command::new("mosquitto_sub")
            .args(["-h", "localhost", "-p", &addr.port().to_string()])
            .args(["-q", "1", "-v", "-t", topic])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto_sub");
        let out = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines() {
                let Ok(l) = l else { return };
                if tx.send(l).is_err() {
                    return;
                }
            }
        });
        Sub { child, lines }
    }

    /// Publishes `msg` from a TCP client on the plain port until this subscriber prints it (its
    /// subscription may not be in yet when it starts).
    fn receives_from_tcp(&self, srv: &Server, topic: &str, msg: &str) {
        let mut p = Client::ok(srv.mqtt, Opts::v3(&format!("tcp-{msg}")));
        let want = format!("{topic} {msg}");
        let end = Instant::now() + Duration::from_secs(10);
        loop {
            p.pub_wait(topic, msg.as_bytes(), 1, false);
            match self.lines.recv_timeout(Duration::from_millis(300)) {
                Ok(l) if l == want => return,
                Ok(l) => panic!("unexpected line {l:?}"),
                Err(_) => assert!(Instant::now() < end, "{want:?} never arrived over TLS"),
            }
        }
    }
}

impl Drop for Sub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn failures(srv: &Server, listener: &str, reason: &str) -> f64 {
    srv.metric(&format!(
        "evgrid_tls_handshake_failures_total{{listener=\"{listener}\",reason=\"{reason}\"}}"
    ))
}

/// Polls `f` every 50 ms for at most 10 s.
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    common::wait_until(what, || {
        let ok = f();
        if !ok {
            std::thread::sleep(Duration::from_millis(30));
        }
        ok
    });
}

#[test]
fn tls_and_tcp_clients_exchange_messages() {
    let pki = Pki::new();
    let srv = pki.server(&[]);
    let tls = srv.listener("mqtt-tls");
    let ca = pki.p("ca.pem");
    // TCP → TLS.
    let sub = Sub::start(tls, &["--cafile", &ca], "x/1");
    sub.receives_from_tcp(&srv, "x/1", "from-tcp");
    // TLS → TCP.
    let mut s = Client::ok(srv.mqtt, Opts::v5("tcp-sub"));
    s.sub("x/2", 1);
    assert!(mosquitto_pub(tls, &["--cafile", &ca], "x/2", "from-tls").success());
    let m = s.next_msg();
    assert_eq!(
        (m.topic.as_str(), m.payload.as_slice()),
        ("x/2", &b"from-tls"[..])
    );
    // A client that does not trust the server's CA refuses it; evgrid serves on.
    let other = pki.p("other.pem");
    assert!(!mosquitto_pub(tls, &["--cafile", &other], "x/2", "no").success());
    assert!(srv.metric("evgrid_tls_handshakes_total{listener=\"mqtt\"}") >= 2.0);
    srv.assert_mqtt_alive();
}

#[test]
fn client_auth_required_accepts_the_ca_s_clients_only() {
    let pki = Pki::new();
    let ca = pki.p("ca.pem");
    let srv = pki.server(&[
        ("EVGRID_MQTT_TLS_CLIENT_AUTH", "required"),
        ("EVGRID_MQTT_TLS_CA_FILE", &ca),
    ]);
    let tls = srv.listener("mqtt-tls");
    let with = |cert: &str, key: &str| {
        let (c, k) = (pki.p(cert), pki.p(key));
        mosquitto_pub(tls, &["--cafile", &ca, "--cert", &c, "--key", &k], "m", "x")
    };
    assert!(
        with("client.pem", "client.key").success(),
        "the CA's client"
    );
    assert!(
        !with("other.pem", "other.key").success(),
        "another CA's client"
    );
    assert!(
        !with("expired.pem", "expired.key").success(),
        "an expired client"
    );
    assert!(
        !with("self.pem", "self.key").success(),
        "a self-signed client"
    );
    assert!(
        !mosquitto_pub(tls, &["--cafile", &ca], "m", "x").success(),
        "no certificate"
    );
    assert_eq!(failures(&srv, "mqtt", "bad_certificate"), 3.0);
    assert_eq!(failures(&srv, "mqtt", "no_certificate"), 1.0);
    srv.assert_mqtt_alive();
}

#[test]
fn client_auth_optional_lets_clients_without_a_certificate_in() {
    let pki = Pki::new();
    let ca = pki.p("ca.pem");
    let srv = pki.server(&[
        ("EVGRID_MQTT_TLS_CLIENT_AUTH", "optional"),
        ("EVGRID_MQTT_TLS_CA_FILE", &ca),
    ]);
    let tls = srv.listener("mqtt-tls");
    assert!(mosquitto_pub(tls, &["--cafile", &ca], "m", "x").success());
    let (c, k) = (pki.p("other.pem"), pki.p("other.key"));
    let other = ["--cafile", &ca, "--cert", &c, "--key", &k];
    assert!(!mosquitto_pub(tls, &other, "m", "x").success());
    assert_eq!(failures(&srv, "mqtt", "bad_certificate"), 1.0);
}

/// The connection is handed what the handshake verified: its debug line shows the client
/// certificate's subject, SAN and thumbprint, and the server name the client asked for.
#[test]
fn the_client_certificate_reaches_the_connection() {
    let pki = Pki::new();
    let ca = pki.p("ca.pem");
    let (cert, key) = (pki.p("server.pem"), pki.p("server.key"));
    let (srv, log) = Server::start_capturing_stderr(&[
        ("EVGRID_MQTT_TLS_BIND", "127.0.0.1:0"),
        ("EVGRID_MQTT_TLS_CERT_FILE", &cert),
        ("EVGRID_MQTT_TLS_KEY_FILE", &key),
        ("EVGRID_MQTT_TLS_CLIENT_AUTH", "required"),
        ("EVGRID_MQTT_TLS_CA_FILE", &ca),
        ("RUST_LOG", "warn,evgrid::mqtt::tls=debug"),
    ]);
    let (c, k) = (pki.p("client.pem"), pki.p("client.key"));
    let tls = srv.listener("mqtt-tls");
    let st = mosquitto_pub(tls, &["--cafile", &ca, "--cert", &c, "--key", &k], "m", "x");
    assert!(st.success());
    let pem = std::fs::read(pki.path("client.pem")).expect("read");
    let der = {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;
        CertificateDer::from_pem_slice(&pem).expect("pem")
    };
    let thumb = evgrid::tls::peer::thumbprint(&der);
    eventually("the connection's debug line", || {
        let l = strip_ansi(&log.lock().unwrap());
        l.lines().any(|l| {
            l.contains("mqtt tls client")
                && l.contains(&thumb)
                && l.contains("O=evgrid development, CN=device-1")
                && l.contains("DNS:device-1.example")
                && l.contains("sni=\"localhost\"")
        })
    });
}

/// `s` without terminal colour sequences (ESC [ ... m).
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut esc = false;
    for c in s.chars() {
        match (esc, c) {
            (false, '\x1b') => esc = true,
            (true, 'm') => esc = false,
            (true, _) => {}
            (false, c) => out.push(c),
        }
    }
    out
}

#[test]
fn bad_input_on_either_port_is_refused_counted_and_harmless() {
    let pki = Pki::new();
    let srv = pki.server(&[]);
    let tls = srv.listener("mqtt-tls");
    let ca = pki.p("ca.pem");
    // Plain MQTT on the TLS port: closed, no CONNACK.
    let mut s = TcpStream::connect(tls).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"\x10\x10\x00\x04MQTT\x04\x02\x00\x3c\x00\x04abcd")
        .expect("write");
    let mut buf = [0u8; 16];
    assert_eq!(s.read(&mut buf).unwrap_or(0), 0, "closed without an answer");
    eventually("not_tls counted", || {
        failures(&srv, "mqtt", "not_tls") == 1.0
    });
    // TLS on the plain port: refused, counted on the plain listener.
    assert!(!mosquitto_pub(srv.mqtt, &["--cafile", &ca], "m", "x").success());
    eventually("tls_on_plain_port counted", || {
        failures(&srv, "mqtt_plain", "tls_on_plain_port") == 1.0
    });
    // A TLS 1.1-only client (OpenSSL needs security level 0 to offer it at all).
    let child = Command::new("openssl")
        .args(["s_client", "-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0"])
        .args(["-connect", &tls.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("openssl");
    assert!(!wait(child, 10).success());
    eventually("protocol_version counted", || {
        failures(&srv, "mqtt", "protocol_version") == 1.0
    });
    // None of it touched anyone else.
    assert!(mosquitto_pub(tls, &["--cafile", &ca], "m", "x").success());
    srv.assert_mqtt_alive();
}

#[test]
fn a_handshake_that_never_finishes_is_closed_after_the_timeout() {
    let pki = Pki::new();
    let srv = pki.server(&[("EVGRID_MQTT_TLS_HANDSHAKE_TIMEOUT_MS", "600")]);
    let tls = srv.listener("mqtt-tls");
    let ca = pki.p("ca.pem");
    let start = Instant::now();
    let silent = TcpStream::connect(tls).expect("connect");
    let mut half = TcpStream::connect(tls).expect("connect");
    // The first bytes of a ClientHello record announcing 512 bytes.
    half.write_all(&[
        0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
    ])
    .expect("write");
    // Meanwhile another client connects and publishes.
    assert!(mosquitto_pub(tls, &["--cafile", &ca], "m", "x").success());
    for mut s in [silent, half] {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 16];
        assert_eq!(s.read(&mut buf).unwrap_or(0), 0, "closed");
    }
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(500) && took < Duration::from_secs(4),
        "closed after {took:?}"
    );
    eventually("timeouts counted", || {
        failures(&srv, "mqtt", "timeout") == 2.0
    });
}

/// evgrid with a TLS listener on `cert`/`key`: its exit code and standard error.
fn start_with_files(cert: &Path, key: &Path) -> (Option<i32>, String) {
    let dir = TempDir::new("badfile");
    let mut child = Server::command(&dir.0)
        .env("EVGRID_MQTT_TLS_BIND", "127.0.0.1:0")
        .env("EVGRID_MQTT_TLS_CERT_FILE", cert)
        .env("EVGRID_MQTT_TLS_KEY_FILE", key)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("evgrid");
    let mut err = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut err)
        .expect("read");
    let st = wait(child, 10);
    (st.code(), err)
}

#[test]
fn a_bad_certificate_or_key_file_at_start_exits_2_naming_it() {
    let pki = Pki::new();
    let (cert, key) = (pki.path("server.pem"), pki.path("server.key"));
    pki.write("garbage.pem", "this is not PEM\n");
    let garbage = pki.path("garbage.pem");
    let missing = pki.path("missing.pem");
    // Root reads any file whatever its mode: a directory stands for a file that cannot be read.
    let unreadable = pki.path("a-directory");
    std::fs::create_dir_all(&unreadable).expect("mkdir");
    let cases: [(&Path, &Path, &Path, &str); 6] = [
        (&missing, &key, &missing, "No such file"),
        (&cert, &missing, &missing, "No such file"),
        (&unreadable, &key, &unreadable, "directory"),
        (&garbage, &key, &garbage, "certificate"),
        (&cert, &garbage, &garbage, "PEM"),
        (
            &cert,
            &pki.path("client.key"),
            &pki.path("client.key"),
            "does not match",
        ),
    ];
    for (c, k, named, reason) in cases {
        let (code, err) = start_with_files(c, k);
        assert_eq!(code, Some(2), "{c:?} {k:?}: {err}");
        assert!(
            err.contains(&named.display().to_string()) && err.contains(reason),
            "{c:?} {k:?}: stderr names {named:?} and {reason:?}: {err}"
        );
    }
}

#[test]
fn reload_swaps_the_certificate_and_keeps_open_connections() {
    let pki = Pki::new();
    let srv = pki.server(&[]);
    let tls = srv.listener("mqtt-tls");
    let (ca1, ca2, ca3) = (pki.p("ca.pem"), pki.p("ca2.pem"), pki.p("ca3.pem"));
    let sub = Sub::start(tls, &["--cafile", &ca1], "r");
    sub.receives_from_tcp(&srv, "r", "before");
    // SIGHUP: new handshakes verify with the new CA only; the open connection stays.
    pki.new_server_ca("ca2.pem");
    // SAFETY: kill only sends a signal to the child process.
    assert_eq!(unsafe { libc::kill(srv.pid() as i32, libc::SIGHUP) }, 0);
    eventually("the new certificate after SIGHUP", || {
        mosquitto_pub(tls, &["--cafile", &ca2], "m", "x").success()
    });
    assert!(!mosquitto_pub(tls, &["--cafile", &ca1], "m", "x").success());
    sub.receives_from_tcp(&srv, "r", "after-sighup");
    // A file change without a signal (polled every 2 s).
    pki.new_server_ca("ca3.pem");
    eventually("the new certificate after the file changed", || {
        mosquitto_pub(tls, &["--cafile", &ca3], "m", "x").success()
    });
    assert!(srv.metric("evgrid_tls_reloads_total{outcome=\"ok\"}") >= 2.0);
    // A broken file is refused and the certificate in use kept.
    pki.write("server.pem", "broken\n");
    assert_eq!(unsafe { libc::kill(srv.pid() as i32, libc::SIGHUP) }, 0);
    eventually("the refused reload", || {
        srv.metric("evgrid_tls_reloads_total{outcome=\"refused\"}") >= 1.0
    });
    assert!(mosquitto_pub(tls, &["--cafile", &ca3], "m", "x").success());
    sub.receives_from_tcp(&srv, "r", "after-refused");
    srv.assert_mqtt_alive();
}

#[test]
fn sighup_without_a_tls_listener_stops_nothing() {
    let srv = Server::start(&[]);
    // SAFETY: kill only sends a signal to the child process.
    assert_eq!(unsafe { libc::kill(srv.pid() as i32, libc::SIGHUP) }, 0);
    std::thread::sleep(Duration::from_millis(300));
    srv.assert_mqtt_alive();
    assert!(srv.listeners.is_empty(), "{:?}", srv.listeners);
}

/// `mqtt.tcp_enabled = false`: MQTT only over TLS (no plain listener announced or open), so
/// `client_auth = required` cannot be bypassed on the plain port.
#[test]
fn tls_only_without_the_plain_listener() {
    let pki = Pki::new();
    let ca = pki.p("ca.pem");
    let srv = pki.server(&[
        ("EVGRID_MQTT_TCP_ENABLED", "false"),
        ("EVGRID_MQTT_TLS_CLIENT_AUTH", "required"),
        ("EVGRID_MQTT_TLS_CA_FILE", &ca),
    ]);
    assert_eq!(srv.mqtt.port(), 0, "no plain MQTT listener announced");
    let tls = srv.listener("mqtt-tls");
    let (c, k) = (pki.p("client.pem"), pki.p("client.key"));
    let sub = Sub::start(
        tls,
        &["--cafile", &ca, "--cert", &c, "--key", &k],
        "only/tls",
    );
    // The subscription may not be in yet when the first publish goes out: publish until it is.
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let args = ["--cafile", &ca, "--cert", &c, "--key", &k];
        assert!(mosquitto_pub(tls, &args, "only/tls", "hi").success());
        match sub.lines.recv_timeout(Duration::from_millis(300)) {
            Ok(l) => {
                assert_eq!(l, "only/tls hi");
                break;
            }
            Err(_) => assert!(Instant::now() < end, "never arrived over TLS"),
        }
    }
    // Nothing else at all: the setting refuses to start without any MQTT listener.
    let dir = TempDir::new("no-mqtt");
    let out = Server::command(&dir.0)
        .env("EVGRID_MQTT_TCP_ENABLED", "false")
        .output()
        .expect("evgrid");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("mqtt.tcp_enabled"), "{err}");
}

/// With client certificates required and the plain listener open beyond loopback, evgrid says
/// at start that clients can connect there without one.
#[test]
fn required_client_certificates_beside_an_open_plain_port_are_warned_about() {
    let pki = Pki::new();
    let dir = TempDir::new("warn");
    let (cert, key, ca) = (pki.p("server.pem"), pki.p("server.key"), pki.p("ca.pem"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_evgrid"))
        .args([
            "--mqtt-bind",
            "0.0.0.0:0",
            "--http-bind",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(&dir.0)
        .env("RUST_LOG", "warn")
        .env("EVGRID_MQTT_TLS_BIND", "127.0.0.1:0")
        .env("EVGRID_MQTT_TLS_CERT_FILE", &cert)
        .env("EVGRID_MQTT_TLS_KEY_FILE", &key)
        .env("EVGRID_MQTT_TLS_CLIENT_AUTH", "required")
        .env("EVGRID_MQTT_TLS_CA_FILE", &ca)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("evgrid");
    let out = BufReader::new(child.stdout.take().expect("stdout"));
    for line in out.lines() {
        if line.expect("line").starts_with("evgrid: http listening on") {
            break;
        }
    }
    let _ = child.kill();
    let mut err = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut err)
        .expect("read");
    let _ = child.wait();
    assert!(
        err.contains("plain MQTT listener takes clients without a certificate"),
        "{err}"
    );
}
