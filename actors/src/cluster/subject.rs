//! NATS subjects for MQTT topic names and client ids, and the cover set a node subscribes to.
//!
//! Owns the reversible escaping of MQTT topic levels into NATS tokens and the "covers": the
//! fewest non-overlapping subject subscriptions that bring a node every message its local
//! filters could match, and each such message exactly once. Pure: no NATS, no actors, no clock.
//!
//! Escaping: a topic level becomes one token. Bytes `[A-Za-z0-9_-]` stay as they are; every other
//! byte (`.`, `*`, `>`, spaces and the rest NATS gives a meaning or refuses, `$`, and `=` itself)
//! becomes `=XX` (upper-case hex); an empty level becomes a lone `=`. Tokens are joined with `.`.
//! The result is also a valid JetStream KV key.

use std::collections::{BTreeMap, HashMap};

/// Appends the token for one MQTT topic level.
fn push_token(out: &mut String, level: &str) {
    if level.is_empty() {
        out.push('=');
        return;
    }
    for b in level.bytes() {
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' {
            out.push(b as char);
        } else {
            const HEX: &[u8; 16] = b"0123456789ABCDEF";
            out.push('=');
            out.push(HEX[(b >> 4) as usize] as char);
            out.push(HEX[(b & 15) as usize] as char);
        }
    }
}

/// The tokens for MQTT topic name (or client id) `topic`, levels split at `/`.
pub fn escape(topic: &str) -> String {
    let mut out = String::with_capacity(topic.len() + 8);
    for (i, level) in topic.split('/').enumerate() {
        if i > 0 {
            out.push('.');
        }
        push_token(&mut out, level);
    }
    out
}

/// The tokens for `id` as a single level (client ids may hold `/`).
pub fn escape_one(id: &str) -> String {
    let mut out = String::with_capacity(id.len() + 8);
    push_token(&mut out, id);
    out
}

/// The MQTT topic name (or client id) `tokens` were made from; `None` if they are not the
/// output of [`escape`].
pub fn unescape(tokens: &str) -> Option<String> {
    let mut out = Vec::with_capacity(tokens.len());
    for (i, tok) in tokens.split('.').enumerate() {
        if i > 0 {
            out.push(b'/');
        }
        if tok == "=" {
            continue;
        }
        if tok.is_empty() {
            return None;
        }
        let b = tok.as_bytes();
        let mut j = 0;
        while j < b.len() {
            if b[j] == b'=' {
                let hex = std::str::from_utf8(b.get(j + 1..j + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                j += 3;
            } else {
                out.push(b[j]);
                j += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// The cover key of topic filter `filter` (without any `$share/{group}/` prefix): the escaped
/// levels before its first wildcard, `""` when it begins with one. Every topic the filter
/// matches has these levels first.
pub fn cover_of(filter: &str) -> String {
    let mut out = String::new();
    for (i, level) in filter.split('/').enumerate() {
        if level == "+" || level == "#" {
            break;
        }
        if i > 0 {
            out.push('.');
        }
        push_token(&mut out, level);
    }
    out
}

/// The subjects (after `prefix`) a cover key subscribes: the key's topic itself and everything
/// below it, or everything for the empty key.
pub fn cover_subjects(prefix: &str, key: &str) -> Vec<String> {
    if key.is_empty() {
        vec![format!("{prefix}.>")]
    } else {
        vec![format!("{prefix}.{key}"), format!("{prefix}.{key}.>")]
    }
}

/// The subjects (after `prefix`) that match exactly the topics MQTT filter `filter` (without a
/// `$share/{group}/` prefix) matches, but for `$` topics under a leading wildcard, which the
/// receiving node refuses: `+` is `*`, a trailing `#` is `>` plus its parent level.
pub fn filter_subjects(prefix: &str, filter: &str) -> Vec<String> {
    let levels: Vec<&str> = filter.split('/').collect();
    let (body, hash) = match levels.split_last() {
        Some((&"#", body)) => (body, true),
        _ => (&levels[..], false),
    };
    let mut base = String::from(prefix);
    for level in body {
        base.push('.');
        match *level {
            "+" => base.push('*'),
            l => push_token(&mut base, l),
        }
    }
    match (hash, body.is_empty()) {
        (false, _) => vec![base],
        (true, true) => vec![format!("{base}.>")],
        (true, false) => vec![base.clone(), format!("{base}.>")],
    }
}

/// Longest escaped name used as it is in a subject, a queue group or a KV key; longer ones are
/// hashed. A NATS server closes a connection whose protocol line passes 4,096 bytes, and
/// escaping can triple a name.
pub const MAX_NAME: usize = 256;

/// `name` if it is at most [`MAX_NAME`] bytes, else `=H` and the hex SHA-256 of it: still one
/// token, the same on every node, never the output of [`escape`] (which has no `=H`).
fn bounded(name: String) -> String {
    if name.len() <= MAX_NAME {
        return name;
    }
    let d = ring::digest::digest(&ring::digest::SHA256, name.as_bytes());
    let mut out = String::from("=H");
    for b in d.as_ref() {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// The NATS queue group of shared subscription `$share/{group}/{filter}`: the same on every
/// node, so NATS hands each message to one of them.
pub fn queue_group(group: &str, filter: &str) -> String {
    bounded(format!("{}.{}", escape_one(group), escape(filter)))
}

/// The token (subject, KV key) for client id `id`; a long id is hashed, so the id itself
/// travels in the message bodies.
pub fn client_key(id: &str) -> String {
    bounded(escape_one(id))
}

/// Whether cover key `a` is `b` or one of its ancestors (level-wise prefix).
fn covers(a: &str, b: &str) -> bool {
    a.is_empty() || a == b || (b.starts_with(a) && b.as_bytes()[a.len()] == b'.')
}

/// A change to the node's subscriptions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CoverChange {
    Subscribe(String),
    Unsubscribe(String),
}

/// Counts local subscriptions per filter and keeps the minimal set of cover keys: no key in it is
/// another's ancestor, so the subjects they subscribe never overlap and each message arrives once.
#[derive(Debug, Default)]
pub struct Covers {
    /// Local subscriptions per filter.
    filters: HashMap<String, usize>,
    /// Filters per cover key.
    keys: BTreeMap<String, usize>,
    /// The keys subscribed: those with no ancestor in `keys`.
    active: std::collections::BTreeSet<String>,
}

impl Covers {
    /// The keys currently subscribed.
    pub fn active(&self) -> impl Iterator<Item = &String> {
        self.active.iter()
    }

    /// Whether some key in `keys` other than `key` itself covers `key`.
    fn has_ancestor(&self, key: &str) -> bool {
        if key.is_empty() {
            return false;
        }
        if self.keys.contains_key("") {
            return true;
        }
        let mut end = 0;
        while let Some(i) = key[end..].find('.') {
            end += i;
            if self.keys.contains_key(&key[..end]) {
                return true;
            }
            end += 1;
        }
        false
    }

    /// Keys in `keys` strictly below `key`, in order.
    fn descendants(&self, key: &str) -> Vec<String> {
        if key.is_empty() {
            return self
                .keys
                .keys()
                .filter(|k| !k.is_empty())
                .cloned()
                .collect();
        }
        let from = format!("{key}.");
        self.keys
            .range(from.clone()..)
            .take_while(|(k, _)| k.starts_with(&from))
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// One more local subscription to `filter` (group prefix removed); answers what to
    /// subscribe and unsubscribe.
    pub fn add(&mut self, filter: &str) -> Vec<CoverChange> {
        let n = self.filters.entry(filter.to_string()).or_default();
        *n += 1;
        if *n > 1 {
            return Vec::new();
        }
        let key = cover_of(filter);
        let k = self.keys.entry(key.clone()).or_default();
        *k += 1;
        if *k > 1 || self.has_ancestor(&key) {
            return Vec::new();
        }
        // Subscribe the new key before the keys it replaces go: a message in between may come
        // twice, never not at all.
        let mut changes = vec![CoverChange::Subscribe(key.clone())];
        for d in self.descendants(&key) {
            if self.active.remove(&d) {
                changes.push(CoverChange::Unsubscribe(d));
            }
        }
        self.active.insert(key);
        changes
    }

    /// One local subscription to `filter` fewer.
    pub fn remove(&mut self, filter: &str) -> Vec<CoverChange> {
        let Some(n) = self.filters.get_mut(filter) else {
            return Vec::new();
        };
        *n -= 1;
        if *n > 0 {
            return Vec::new();
        }
        self.filters.remove(filter);
        let key = cover_of(filter);
        let Some(k) = self.keys.get_mut(&key) else {
            return Vec::new();
        };
        *k -= 1;
        if *k > 0 {
            return Vec::new();
        }
        self.keys.remove(&key);
        if !self.active.remove(&key) {
            return Vec::new();
        }
        let mut changes = Vec::new();
        let mut taken: Vec<String> = Vec::new();
        for d in self.descendants(&key) {
            if taken.iter().any(|t| covers(t, &d)) || self.has_ancestor(&d) {
                continue;
            }
            changes.push(CoverChange::Subscribe(d.clone()));
            self.active.insert(d.clone());
            taken.push(d);
        }
        changes.push(CoverChange::Unsubscribe(key));
        changes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_round_trips_and_avoids_nats_metacharacters() {
        for t in [
            "a/b/c",
            "",
            "/",
            "a//b",
            "$SYS/broker",
            "dots.in.level/star*/gt>",
            "sp ace/tab\t/=eq",
            "ünïcode/級",
            "_-/09",
        ] {
            let e = escape(t);
            assert!(
                !e.split('.').any(|tok| tok.is_empty()
                    || tok.contains(['*', '>', ' ', '\t'])
                    || tok.contains('$')),
                "{t:?} -> {e:?}"
            );
            assert!(
                e.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_=.".contains(&b)),
                "{e:?} is not a KV key"
            );
            assert_eq!(unescape(&e).as_deref(), Some(t), "{e}");
        }
        assert_eq!(escape("a.b/c"), "a=2Eb.c");
        assert_eq!(escape("a//b"), "a.=.b");
        assert_eq!(escape_one("x/y"), "x=2Fy");
        assert_eq!(unescape("a.=ZZ"), None);
        assert_eq!(unescape("a..b"), None);
    }

    #[test]
    fn a_filter_is_covered_by_its_literal_levels() {
        assert_eq!(cover_of("a/b/+/c"), "a.b");
        assert_eq!(cover_of("a/#"), "a");
        assert_eq!(cover_of("#"), "");
        assert_eq!(cover_of("+/x"), "");
        assert_eq!(cover_of("a/b"), "a.b");
        assert_eq!(cover_of("/x/#"), "=.x");
        assert_eq!(cover_subjects("evg.m", ""), vec!["evg.m.>"]);
        assert_eq!(
            cover_subjects("evg.m", "a.b"),
            vec!["evg.m.a.b", "evg.m.a.b.>"]
        );
    }

    #[test]
    fn a_filter_maps_onto_the_subjects_of_exactly_its_topics() {
        assert_eq!(filter_subjects("p", "a/+/c"), vec!["p.a.*.c"]);
        assert_eq!(filter_subjects("p", "a/#"), vec!["p.a", "p.a.>"]);
        assert_eq!(filter_subjects("p", "#"), vec!["p.>"]);
        assert_eq!(filter_subjects("p", "+/#"), vec!["p.*", "p.*.>"]);
        assert_eq!(filter_subjects("p", "+"), vec!["p.*"]);
        assert_eq!(filter_subjects("p", "a b/x.y"), vec!["p.a=20b.x=2Ey"]);
        assert_eq!(filter_subjects("p", "/a"), vec!["p.=.a"]);
        assert_eq!(queue_group("g 1", "a/+"), "g=201.a.=2B");
        // Long names are hashed into one bounded token, the same each time.
        let long = "x/".repeat(300);
        let q = queue_group("g", &long);
        assert!(
            q.starts_with("=H") && q.len() == 66 && !q.contains('.'),
            "{q}"
        );
        assert_eq!(q, queue_group("g", &long));
        assert_ne!(q, queue_group("h", &long));
        assert_eq!(client_key("dev 1"), "dev=201");
        let k = client_key(&"é".repeat(400));
        assert!(k.starts_with("=H") && k.len() == 66, "{k}");
    }

    fn active(c: &Covers) -> Vec<&str> {
        c.active().map(|s| s.as_str()).collect()
    }

    #[test]
    fn covers_never_overlap_and_follow_adds_and_removes() {
        use CoverChange::*;
        let mut c = Covers::default();
        assert_eq!(c.add("a/b/c"), vec![Subscribe("a.b.c".into())]);
        assert_eq!(c.add("a/b/c"), vec![]);
        assert_eq!(c.add("a/bb/+"), vec![Subscribe("a.bb".into())]);
        // `a/b/#` covers `a/b/c` but not `a/bb`.
        assert_eq!(
            c.add("a/b/#"),
            vec![Subscribe("a.b".into()), Unsubscribe("a.b.c".into())]
        );
        assert_eq!(active(&c), vec!["a.b", "a.bb"]);
        // A filter under an active key changes nothing.
        assert_eq!(c.add("a/b/d"), vec![]);
        // `#` covers everything.
        assert_eq!(
            c.add("#"),
            vec![
                Subscribe("".into()),
                Unsubscribe("a.b".into()),
                Unsubscribe("a.bb".into())
            ]
        );
        assert_eq!(active(&c), vec![""]);
        // Gone again: the highest keys below come back, each once.
        assert_eq!(
            c.remove("#"),
            vec![
                Subscribe("a.b".into()),
                Subscribe("a.bb".into()),
                Unsubscribe("".into())
            ]
        );
        assert_eq!(
            c.remove("a/b/#"),
            vec![
                Subscribe("a.b.c".into()),
                Subscribe("a.b.d".into()),
                Unsubscribe("a.b".into())
            ]
        );
        // One of two subscriptions to `a/b/c` goes: still subscribed.
        assert_eq!(c.remove("a/b/c"), vec![]);
        assert_eq!(c.remove("a/b/c"), vec![Unsubscribe("a.b.c".into())]);
        assert_eq!(c.remove("a/b/c"), vec![]);
        assert_eq!(active(&c), vec!["a.b.d", "a.bb"]);
        // Keys sharing a textual prefix but not a level are apart.
        assert_eq!(c.add("a/b-x/1"), vec![Subscribe("a.b-x.1".into())]);
        assert_eq!(
            c.add("a/b"),
            vec![Subscribe("a.b".into()), Unsubscribe("a.b.d".into())]
        );
        assert_eq!(active(&c), vec!["a.b", "a.b-x.1", "a.bb"]);
    }
}
