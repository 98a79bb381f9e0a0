//! The MQTT payload header, topic templates and matching, and a tiny PRNG.
//!
//! Every payload starts with a 24-byte header (all fields big-endian):
//!
//! | offset | size | field |
//! |-------:|-----:|-------|
//! | 0  | 8 | send timestamp, ns since the run epoch (the scheduled send time in open-loop mode) |
//! | 8  | 4 | publisher id |
//! | 12 | 8 | per-publisher sequence number, starting at 0 |
//! | 20 | 4 | reserved, written as 0 |
//!
//! The run epoch is the Unix epoch sampled once when the process starts and
//! advanced with the monotonic clock after that (see [`Clock`](crate::clock::Clock)), so
//! timestamps are monotonic within a run and comparable between two
//! generator processes on the same host (a `sub` in one shell, a `pub` in
//! another).

use bytes::{BufMut, BytesMut};

pub const HEADER_LEN: usize = 24;

/// Decoded payload header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub ts_ns: u64,
    pub publisher: u32,
    pub seq: u64,
}

/// Appends a header and `size - 24` bytes of zero padding.
pub fn put_payload(buf: &mut BytesMut, size: usize, ts_ns: u64, publisher: u32, seq: u64) {
    buf.put_u64(ts_ns);
    buf.put_u32(publisher);
    buf.put_u64(seq);
    buf.put_u32(0);
    if size > HEADER_LEN {
        buf.put_bytes(0, size - HEADER_LEN);
    }
}

/// Reads the header at the start of a payload; `None` if it is too short.
pub fn read_header(p: &[u8]) -> Option<Header> {
    if p.len() < HEADER_LEN {
        return None;
    }
    let ts_ns = u64::from_be_bytes(p[0..8].try_into().ok()?);
    let publisher = u32::from_be_bytes(p[8..12].try_into().ok()?);
    let seq = u64::from_be_bytes(p[12..20].try_into().ok()?);
    Some(Header {
        ts_ns,
        publisher,
        seq,
    })
}

/// xorshift64* — enough randomness for `%rand_N` topics and jitter.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        // splitmix64 of the seed so that consecutive seeds diverge quickly
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        Rng(if z == 0 { 0x1234_5678 } else { z })
    }
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in 1..=n (n >= 1).
    pub fn one_to(&mut self, n: u64) -> u64 {
        1 + self.next_u64() % n.max(1)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Lit(String),
    Seq,
    Rand(u64),
}

/// Per-client values substituted into a topic template.
#[derive(Debug, Clone, Copy)]
pub struct ClientVars<'a> {
    /// `%i`: the client sequence number (start index + position).
    pub seq: u64,
    /// `%c`: the client id.
    pub client_id: &'a str,
    /// `%u`: the username (empty when none).
    pub username: &'a str,
}

/// A topic with the per-client placeholders (`%i`, `%c`, `%u`) resolved and
/// the per-message ones (`%s`, `%rand_N`) kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicGen {
    parts: Vec<Part>,
    fixed: Option<Vec<u8>>,
    scratch: Vec<u8>,
}

impl TopicGen {
    /// Parses `template` for one client.
    pub fn new(template: &str, vars: ClientVars<'_>) -> Result<Self, String> {
        let mut parts: Vec<Part> = Vec::new();
        let mut lit = String::new();
        let mut rest = template;
        while let Some(pos) = rest.find('%') {
            lit.push_str(&rest[..pos]);
            let after = &rest[pos + 1..];
            let mut consumed = 1;
            if let Some(r) = after.strip_prefix("rand_") {
                let digits: String = r.chars().take_while(|c| c.is_ascii_digit()).collect();
                let n: u64 = digits.parse().map_err(|_| {
                    format!("topic '{template}': %rand_ needs a number, e.g. %rand_100")
                })?;
                if n == 0 {
                    return Err(format!(
                        "topic '{template}': %rand_0 is empty, use %rand_N with N >= 1"
                    ));
                }
                if !lit.is_empty() {
                    parts.push(Part::Lit(std::mem::take(&mut lit)));
                }
                parts.push(Part::Rand(n));
                consumed = 5 + digits.len();
            } else {
                match after.chars().next() {
                    Some('i') => lit.push_str(&vars.seq.to_string()),
                    Some('c') => lit.push_str(vars.client_id),
                    Some('u') => lit.push_str(vars.username),
                    Some('s') => {
                        if !lit.is_empty() {
                            parts.push(Part::Lit(std::mem::take(&mut lit)));
                        }
                        parts.push(Part::Seq);
                    }
                    _ => {
                        lit.push('%');
                        consumed = 0;
                    }
                }
            }
            rest = &after[consumed..];
        }
        lit.push_str(rest);
        if !lit.is_empty() {
            parts.push(Part::Lit(lit));
        }
        let fixed = if parts.iter().all(|p| matches!(p, Part::Lit(_))) {
            let s: String = parts
                .iter()
                .map(|p| match p {
                    Part::Lit(s) => s.as_str(),
                    _ => "",
                })
                .collect();
            Some(s.into_bytes())
        } else {
            None
        };
        let t = TopicGen {
            parts,
            fixed,
            scratch: Vec::new(),
        };
        if let Some(f) = &t.fixed {
            if f.is_empty() {
                return Err("topic must not be empty".into());
            }
            if f.len() > u16::MAX as usize {
                return Err("topic longer than 65535 bytes".into());
            }
        }
        Ok(t)
    }

    /// The topic when it does not vary per message.
    pub fn fixed(&self) -> Option<&[u8]> {
        self.fixed.as_deref()
    }

    /// The topic for message number `seq`.
    pub fn topic(&mut self, seq: u64, rng: &mut Rng) -> &[u8] {
        if let Some(f) = &self.fixed {
            return f;
        }
        self.scratch.clear();
        for p in &self.parts {
            match p {
                Part::Lit(s) => self.scratch.extend_from_slice(s.as_bytes()),
                Part::Seq => self.scratch.extend_from_slice(seq.to_string().as_bytes()),
                Part::Rand(n) => self
                    .scratch
                    .extend_from_slice(rng.one_to(*n).to_string().as_bytes()),
            }
        }
        &self.scratch
    }

    /// Resolves every placeholder once (`%s` becomes 0); used for
    /// subscription filters.
    pub fn resolve_once(&mut self, rng: &mut Rng) -> String {
        String::from_utf8_lossy(self.topic(0, rng)).into_owned()
    }
}

/// Derives a subscription filter from a publish topic template: everything
/// up to the first level that contains a placeholder, followed by `#`.
/// `bench/%i` gives `bench/#`; a template without placeholders is returned
/// unchanged.
pub fn wildcard_for(template: &str) -> String {
    let levels: Vec<&str> = template.split('/').collect();
    match levels.iter().position(|l| l.contains('%')) {
        None => template.to_string(),
        Some(0) => "#".to_string(),
        Some(i) => format!("{}/#", levels[..i].join("/")),
    }
}

/// MQTT topic filter matching (`+`, `#`, and the rule that wildcards at the
/// first level do not match topics starting with `$`).
pub fn topic_matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let mut f = filter.split('/');
    let mut t = topic.split('/');
    loop {
        match (f.next(), t.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// Splits `$share/{group}/{filter}` into (group, filter).
pub fn split_shared(filter: &str) -> Option<(&str, &str)> {
    let rest = filter.strip_prefix("$share/")?;
    let (g, f) = rest.split_once('/')?;
    Some((g, f))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> ClientVars<'static> {
        ClientVars {
            seq: 7,
            client_id: "cli",
            username: "bob",
        }
    }

    #[test]
    fn header_round_trip_and_padding() {
        let mut b = BytesMut::new();
        put_payload(&mut b, 256, 123_456_789_000, 42, 99);
        assert_eq!(b.len(), 256);
        assert_eq!(
            read_header(&b),
            Some(Header {
                ts_ns: 123_456_789_000,
                publisher: 42,
                seq: 99
            })
        );
        assert!(b[24..].iter().all(|&x| x == 0));
        let mut b = BytesMut::new();
        put_payload(&mut b, 24, 1, 2, 3);
        assert_eq!(b.len(), 24);
        assert_eq!(read_header(&b[..23]), None);
    }

    #[test]
    fn templates() {
        let mut rng = Rng::new(1);
        let mut t = TopicGen::new("bench/%i/%c/%u", vars()).unwrap();
        assert_eq!(t.fixed(), Some(&b"bench/7/cli/bob"[..]));
        assert_eq!(t.topic(5, &mut rng), b"bench/7/cli/bob");
        let mut t = TopicGen::new("a/%s/b", vars()).unwrap();
        assert_eq!(t.fixed(), None);
        assert_eq!(t.topic(12, &mut rng), b"a/12/b");
        let mut t = TopicGen::new("r/%rand_3", vars()).unwrap();
        for _ in 0..100 {
            let s = String::from_utf8(t.topic(0, &mut rng).to_vec()).unwrap();
            let n: u64 = s.strip_prefix("r/").unwrap().parse().unwrap();
            assert!((1..=3).contains(&n));
        }
        let mut t = TopicGen::new("x/100%/%q/%", vars()).unwrap();
        assert_eq!(t.topic(0, &mut rng), b"x/100%/%q/%");
        assert!(TopicGen::new("r/%rand_x", vars()).is_err());
        assert!(TopicGen::new("r/%rand_0", vars()).is_err());
        assert!(TopicGen::new("", vars()).is_err());
    }

    #[test]
    fn wildcards_and_matching() {
        assert_eq!(wildcard_for("bench/%i"), "bench/#");
        assert_eq!(wildcard_for("a/b/%i/c"), "a/b/#");
        assert_eq!(wildcard_for("%c/x"), "#");
        assert_eq!(wildcard_for("fixed/t"), "fixed/t");
        assert!(topic_matches("bench/#", "bench/1"));
        assert!(topic_matches("bench/#", "bench"));
        assert!(topic_matches("bench/+", "bench/1"));
        assert!(!topic_matches("bench/+", "bench/1/2"));
        assert!(topic_matches("+/+/x", "a/b/x"));
        assert!(!topic_matches("a/b", "a/b/c"));
        assert!(topic_matches("a/b", "a/b"));
        assert!(!topic_matches("#", "$SYS/x"));
        assert!(topic_matches("$SYS/#", "$SYS/x"));
        assert_eq!(split_shared("$share/g/bench/#"), Some(("g", "bench/#")));
        assert_eq!(split_shared("bench/#"), None);
    }
}
