//! A recording webhook server for push-delivery tests: real sockets, HTTP/1.1 keep-alive, one
//! thread per connection, every request kept (method, path, headers, body, the status it was
//! answered with), and a script deciding each answer.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub answered: u16,
    pub at: Instant,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
    pub fn is_notification(&self) -> bool {
        self.method == "POST" && self.header("aeg-event-type") == Some("Notification")
    }
    /// The events of a delivery: the array, or the single CloudEvent object.
    pub fn events(&self) -> Vec<Value> {
        match self.json() {
            Value::Array(a) => a,
            Value::Null => vec![],
            v => vec![v],
        }
    }
}

pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn status(status: u16) -> Reply {
        Reply {
            status,
            headers: vec![],
            body: vec![],
        }
    }
}

/// Answers both validation handshakes the way a cooperating endpoint does; `None` for anything
/// else.
pub fn handshake(r: &Recorded) -> Option<Reply> {
    if r.method == "OPTIONS" {
        let origin = r
            .header("WebHook-Request-Origin")
            .unwrap_or("*")
            .to_string();
        return Some(Reply {
            status: 200,
            headers: vec![
                ("WebHook-Allowed-Origin".into(), origin),
                ("Allow".into(), "POST".into()),
            ],
            body: vec![],
        });
    }
    if r.header("aeg-event-type") == Some("SubscriptionValidation") {
        let code = r.json()[0]["data"]["validationCode"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        return Some(Reply {
            status: 200,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: serde_json::json!({ "validationResponse": code })
                .to_string()
                .into_bytes(),
        });
    }
    None
}

type Script = Box<dyn FnMut(&Recorded) -> Reply + Send>;

struct Shared {
    reqs: Mutex<Vec<Recorded>>,
    changed: Condvar,
    script: Mutex<Script>,
}

pub struct Hook {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
}

impl Hook {
    /// Passes the handshakes, answers every delivery with 200.
    pub fn ok() -> Hook {
        Hook::start(|r| handshake(r).unwrap_or(Reply::status(200)))
    }

    pub fn start(script: impl FnMut(&Recorded) -> Reply + Send + 'static) -> Hook {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let shared = Arc::new(Shared {
            reqs: Mutex::new(Vec::new()),
            changed: Condvar::new(),
            script: Mutex::new(Box::new(script)),
        });
        let s = shared.clone();
        std::thread::spawn(move || {
            for c in l.incoming().flatten() {
                let s = s.clone();
                std::thread::spawn(move || serve(c, s));
            }
        });
        Hook { addr, shared }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Replaces the script (e.g. an endpoint that recovers).
    pub fn set_script(&self, script: impl FnMut(&Recorded) -> Reply + Send + 'static) {
        *self.shared.script.lock().unwrap() = Box::new(script);
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.reqs.lock().unwrap().clone()
    }

    pub fn notifications(&self) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(Recorded::is_notification)
            .collect()
    }

    /// Events of the deliveries answered with 2xx, in arrival order.
    pub fn delivered(&self) -> Vec<Value> {
        self.notifications()
            .iter()
            .filter(|r| (200..=204).contains(&r.answered))
            .flat_map(Recorded::events)
            .collect()
    }

    /// Waits until `done` holds for the recorded requests; panics after `timeout`.
    pub fn wait(
        &self,
        timeout: Duration,
        what: &str,
        done: impl Fn(&[Recorded]) -> bool,
    ) -> Vec<Recorded> {
        let deadline = Instant::now() + timeout;
        let mut g = self.shared.reqs.lock().unwrap();
        loop {
            if done(&g) {
                return g.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                panic!(
                    "timed out waiting for {what}; got {} requests: {:?}",
                    g.len(),
                    g.iter()
                        .map(|r| (&r.method, r.header("aeg-event-type"), r.answered))
                        .collect::<Vec<_>>()
                );
            }
            g = self.shared.changed.wait_timeout(g, left).unwrap().0;
        }
    }

    /// Waits until `n` events were delivered (answered 2xx).
    pub fn wait_delivered(&self, n: usize, timeout: Duration) -> Vec<Value> {
        self.wait(timeout, &format!("{n} delivered events"), |rs| {
            rs.iter()
                .filter(|r| r.is_notification() && (200..=204).contains(&r.answered))
                .map(|r| r.events().len())
                .sum::<usize>()
                >= n
        });
        self.delivered()
    }
}

fn serve(c: TcpStream, s: Arc<Shared>) {
    let _ = c.set_read_timeout(Some(Duration::from_secs(120)));
    let mut w = c.try_clone().unwrap();
    let mut r = BufReader::new(c);
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let (method, path) = (
            parts.next().unwrap_or_default().to_string(),
            parts.next().unwrap_or_default().to_string(),
        );
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            if r.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.push((k.trim().to_string(), v.trim().to_string()));
            }
        }
        let len = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.parse::<usize>().ok())
            .unwrap_or(0);
        let mut body = vec![0; len];
        if r.read_exact(&mut body).is_err() {
            return;
        }
        let mut rec = Recorded {
            method,
            path,
            headers,
            body,
            answered: 0,
            at: Instant::now(),
        };
        let reply = (s.script.lock().unwrap())(&rec);
        rec.answered = reply.status;
        let mut head = format!(
            "HTTP/1.1 {} X\r\nContent-Length: {}\r\n",
            reply.status,
            reply.body.len()
        );
        for (k, v) in &reply.headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        // Recorded before the answer is written, so a test that sees the answer sees the record.
        {
            s.reqs.lock().unwrap().push(rec);
            s.changed.notify_all();
        }
        if w.write_all(head.as_bytes()).is_err() || w.write_all(&reply.body).is_err() {
            return;
        }
    }
}
