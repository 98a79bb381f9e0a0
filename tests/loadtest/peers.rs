//! The peers the generator's TLS and WebSocket transports are tested against, independent of
//! evgrid's own listeners: certificates from `evgrid::tls::dev::DevCa`, a mosquitto with TLS and
//! mutual-TLS listeners, a WebSocket-to-TCP bridge in front of mosquitto (Debian's mosquitto
//! 2.0.11 is built without websockets), optionally over TLS, and a minimal HTTPS server that
//! answers every request 200.

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use evgrid::tls::dev::DevCa;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// CA, server (localhost, 127.0.0.1) and client certificates, and a client certificate of
/// another CA, written as PEM files (world-readable: mosquitto drops root privileges).
pub struct Certs {
    pub dir: PathBuf,
    pub ca: PathBuf,
    pub server: PathBuf,
    pub server_key: PathBuf,
    pub client: PathBuf,
    pub client_key: PathBuf,
    pub other_ca: PathBuf,
}

impl Certs {
    pub fn write(dir: &std::path::Path) -> Certs {
        let ca = DevCa::new("loadtest test CA").unwrap();
        let other = DevCa::new("another CA").unwrap();
        let (s, sk) = ca
            .issue("localhost", &["localhost", "127.0.0.1"], false)
            .unwrap();
        let (c, ck) = ca.issue("device-1", &[], true).unwrap();
        let w = |name: &str, pem: &str| {
            let p = dir.join(name);
            std::fs::write(&p, pem).unwrap();
            p
        };
        Certs {
            dir: dir.to_path_buf(),
            ca: w("ca.pem", &ca.cert_pem()),
            server: w("server.pem", &s),
            server_key: w("server.key", &sk),
            client: w("client.pem", &c),
            client_key: w("client.key", &ck),
            other_ca: w("other-ca.pem", &other.cert_pem()),
        }
    }

    /// The server side's rustls configuration (no client certificates).
    pub fn server_config(&self, alpn: &[&[u8]]) -> Arc<rustls::ServerConfig> {
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&self.server)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_file(&self.server_key).unwrap();
        let mut cfg = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(cfg)
    }
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_listening(port: u16, what: &str) {
    let t0 = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "{what} never listened on {port}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A mosquitto with a plain listener, a TLS listener and a mutual-TLS listener.
pub struct Mosquitto {
    child: Child,
    pub plain: u16,
    pub tls: u16,
    pub mtls: u16,
}

impl Mosquitto {
    pub fn start(c: &Certs) -> Mosquitto {
        let (plain, tls, mtls) = (free_port(), free_port(), free_port());
        let tls_files = format!(
            "cafile {}\ncertfile {}\nkeyfile {}\n",
            c.ca.display(),
            c.server.display(),
            c.server_key.display()
        );
        let conf = format!(
            "allow_anonymous true\nset_tcp_nodelay true\nlistener {plain} 127.0.0.1\n\
             listener {tls} 127.0.0.1\n{tls_files}\
             listener {mtls} 127.0.0.1\n{tls_files}require_certificate true\n"
        );
        let path = c.dir.join("mosquitto.conf");
        std::fs::write(&path, conf).unwrap();
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto (package mosquitto)");
        for p in [plain, tls, mtls] {
            wait_listening(p, "mosquitto");
        }
        Mosquitto {
            child,
            plain,
            tls,
            mtls,
        }
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

trait Io: Read + Write + Send {}
impl<T: Read + Write + Send> Io for T {}

/// Accepts on a fresh port; each connection, over TLS with `tls`, is served by `serve` on its
/// own thread. The blocking sockets read with a short timeout, so one thread can poll both
/// directions of a bridge.
fn listen(
    tls: Option<Arc<rustls::ServerConfig>>,
    serve: impl Fn(Box<dyn Io>) -> io::Result<()> + Send + Sync + 'static,
) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let serve = Arc::new(serve);
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            let (tls, serve) = (tls.clone(), serve.clone());
            std::thread::spawn(move || {
                let _ = s.set_nodelay(true);
                let _ = s.set_read_timeout(Some(Duration::from_millis(2)));
                let io: Box<dyn Io> = match tls {
                    None => Box::new(s),
                    Some(cfg) => Box::new(rustls::StreamOwned::new(
                        rustls::ServerConnection::new(cfg).unwrap(),
                        s,
                    )),
                };
                let _ = serve(io);
            });
        }
    });
    port
}

fn idle(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// Reads an HTTP request head (up to the blank line); None if the peer gave up.
fn read_head(io: &mut dyn Io, buf: &mut Vec<u8>) -> Option<usize> {
    let t0 = Instant::now();
    loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            return Some(i + 4);
        }
        let mut b = [0u8; 4096];
        match io.read(&mut b) {
            Ok(0) => return None,
            Ok(n) => buf.extend_from_slice(&b[..n]),
            Err(e) if idle(&e) && t0.elapsed() < Duration::from_secs(5) => {}
            Err(_) => return None,
        }
    }
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// Sec-WebSocket-Accept, with the openssl command for the SHA-1 (evgrid has no SHA-1 crate).
fn accept_for(key: &str) -> String {
    let mut c = Command::new("openssl")
        .args(["dgst", "-sha1", "-binary"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("openssl");
    c.stdin
        .take()
        .unwrap()
        .write_all(format!("{key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11").as_bytes())
        .unwrap();
    let out = c.wait_with_output().unwrap();
    base64::engine::general_purpose::STANDARD.encode(out.stdout)
}

/// A server frame (unmasked).
fn frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
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

/// A WebSocket front for a TCP MQTT broker, at `/mqtt` with subprotocol `mqtt`: the client's
/// frames must be masked; what the broker sends goes back split in two fragments, with a ping
/// before every fifth write, so the client's reassembly and pong are exercised.
pub struct WsBridge {
    pub port: u16,
    pub pongs: Arc<AtomicU64>,
}

impl WsBridge {
    pub fn start(upstream: u16, tls: Option<Arc<rustls::ServerConfig>>) -> WsBridge {
        let pongs = Arc::new(AtomicU64::new(0));
        let p = pongs.clone();
        let port = listen(tls, move |mut io| bridge(&mut *io, upstream, &p));
        WsBridge { port, pongs }
    }
}

fn bridge(io: &mut dyn Io, upstream: u16, pongs: &AtomicU64) -> io::Result<()> {
    let mut inb = Vec::new();
    let Some(n) = read_head(io, &mut inb) else {
        return Ok(());
    };
    let head = String::from_utf8_lossy(&inb[..n]).to_string();
    inb.drain(..n);
    let protocol_ok = header(&head, "sec-websocket-protocol")
        .is_some_and(|p| p.split(',').any(|t| t.trim() == "mqtt"));
    if !head.starts_with("GET /mqtt HTTP/1.1\r\n") || !protocol_ok {
        io.write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n")?;
        return io.flush();
    }
    let key = header(&head, "sec-websocket-key").unwrap_or_default();
    let answer = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n",
        accept_for(key)
    );
    io.write_all(answer.as_bytes())?;
    io.flush()?;
    let mut up = TcpStream::connect(("127.0.0.1", upstream))?;
    up.set_nodelay(true)?;
    up.set_read_timeout(Some(Duration::from_millis(2)))?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut writes = 0u64;
    loop {
        match io.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => inb.extend_from_slice(&buf[..n]),
            Err(e) if idle(&e) => {}
            Err(e) => return Err(e),
        }
        // the client's frames
        while inb.len() >= 2 {
            assert_eq!(inb[1] & 0x80, 0x80, "a client frame without a mask");
            let (len, at) = match inb[1] & 0x7f {
                126 if inb.len() >= 4 => (u16::from_be_bytes([inb[2], inb[3]]) as usize, 4),
                127 if inb.len() >= 10 => (
                    u64::from_be_bytes(inb[2..10].try_into().unwrap()) as usize,
                    10,
                ),
                126 | 127 => break,
                n => (n as usize, 2),
            };
            if inb.len() < at + 4 + len {
                break;
            }
            let mask: [u8; 4] = inb[at..at + 4].try_into().unwrap();
            let payload: Vec<u8> = inb[at + 4..at + 4 + len]
                .iter()
                .enumerate()
                .map(|(i, b)| b ^ mask[i % 4])
                .collect();
            let opcode = inb[0] & 0x0f;
            inb.drain(..at + 4 + len);
            match opcode {
                0x0 | 0x2 => up.write_all(&payload)?,
                0xA => {
                    pongs.fetch_add(1, Ordering::Relaxed);
                }
                0x8 => {
                    io.write_all(&frame(true, 0x8, &payload))?;
                    return io.flush();
                }
                op => panic!("unexpected client opcode {op:#x}"),
            }
        }
        // the broker's bytes
        match up.read(&mut buf) {
            Ok(0) => {
                io.write_all(&frame(true, 0x8, &1000u16.to_be_bytes()))?;
                return io.flush();
            }
            Ok(n) => {
                let mut out = Vec::with_capacity(n + 32);
                if writes.is_multiple_of(5) {
                    out.extend(frame(true, 0x9, b"ping"));
                }
                writes += 1;
                let half = n / 2;
                out.extend(frame(false, 0x2, &buf[..half]));
                out.extend(frame(true, 0x0, &buf[half..n]));
                io.write_all(&out)?;
                io.flush()?;
            }
            Err(e) if idle(&e) => {}
            Err(e) => return Err(e),
        }
    }
}

/// An HTTPS server answering every request `200 OK` with an empty body; counts requests.
pub struct HttpsOk {
    pub port: u16,
    pub requests: Arc<AtomicU64>,
}

impl HttpsOk {
    pub fn start(tls: Arc<rustls::ServerConfig>) -> HttpsOk {
        let requests = Arc::new(AtomicU64::new(0));
        let r = requests.clone();
        let port = listen(Some(tls), move |mut io| {
            let mut buf = Vec::new();
            while let Some(n) = read_head(&mut *io, &mut buf) {
                let head = String::from_utf8_lossy(&buf[..n]).to_string();
                let len: usize = header(&head, "content-length").map_or(0, |v| v.parse().unwrap());
                let t0 = Instant::now();
                while buf.len() < n + len {
                    let mut b = [0u8; 16 * 1024];
                    match io.read(&mut b) {
                        Ok(0) => return Ok(()),
                        Ok(k) => buf.extend_from_slice(&b[..k]),
                        Err(e) if idle(&e) && t0.elapsed() < Duration::from_secs(5) => {}
                        Err(e) => return Err(e),
                    }
                }
                buf.drain(..n + len);
                r.fetch_add(1, Ordering::Relaxed);
                io.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")?;
                io.flush()?;
            }
            Ok(())
        });
        HttpsOk { port, requests }
    }
}
