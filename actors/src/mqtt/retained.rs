//! The retained-message index: the last retained message of each topic, by topic level.
//!
//! Owns which retained messages a subscription filter matches [MQTT-3.3.1-6..7], walking only the
//! levels the filter names instead of scanning every retained message, and the one retained
//! message of a topic name with the time it was set ([`RetainedIndex::get`], for HTTP's retained
//! read API, docs/eventgrid.md §7.8). Each routing shard holds the retained messages of its own
//! topics. Pure data structure: never an actor, I/O or a clock call; expiry is judged against the
//! `now` the caller passes in, and the time a message was set is the caller's too.

use std::sync::Arc;
use std::time::Instant;

use crate::mqtt::message::AppMessage;
use crate::mqtt::trie::Children;

#[derive(Debug, Default)]
struct RetainNode {
    children: Children<RetainNode>,
    msg: Option<Arc<AppMessage>>,
    /// When `msg` was set, in ms since the Unix epoch (8 bytes per node; read by
    /// [`RetainedIndex::get`] only).
    modified_ms: u64,
}

/// One topic's retained message and when it was set.
#[derive(Debug, Clone)]
pub struct RetainedMessage {
    pub msg: Arc<AppMessage>,
    /// Milliseconds since the Unix epoch, as the router's clock said when it stored `msg`.
    pub modified_ms: u64,
}

/// Retained messages by topic level, so a filter finds its matches by walking only what it names.
#[derive(Debug, Default)]
pub struct RetainedIndex {
    root: RetainNode,
    count: usize,
}

impl RetainedIndex {
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Stores (or, with an empty payload, clears) the retained message of its topic
    /// [MQTT-3.3.1-6..7], set at `now_ms` (ms since the Unix epoch). Returns the change in the
    /// number of retained messages (-1, 0 or +1).
    pub fn set(&mut self, msg: Arc<AppMessage>, now_ms: u64) -> isize {
        let levels: Vec<&str> = msg.topic.split('/').collect();
        if msg.payload.is_empty() {
            let removed = Self::clear(&mut self.root, &levels);
            self.count -= usize::from(removed);
            -isize::from(removed)
        } else {
            let mut node = &mut self.root;
            for l in &levels {
                node = node.children.get_or_default(l);
            }
            let added = node.msg.replace(msg).is_none();
            node.modified_ms = now_ms;
            self.count += usize::from(added);
            isize::from(added)
        }
    }

    fn clear(node: &mut RetainNode, levels: &[&str]) -> bool {
        match levels {
            [] => node.msg.take().is_some(),
            [first, rest @ ..] => {
                let Some(child) = node.children.get_mut(first) else {
                    return false;
                };
                let removed = Self::clear(child, rest);
                if child.msg.is_none() && child.children.is_empty() {
                    node.children.remove(first);
                }
                removed
            }
        }
    }

    /// The live retained message of topic name `topic` (no wildcards: `+` and `#` are taken
    /// literally), with when it was set.
    pub fn get(&self, topic: &str, now: Instant) -> Option<RetainedMessage> {
        let mut node = &self.root;
        for l in topic.split('/') {
            node = node.children.get(l)?;
        }
        let msg = node.msg.as_ref().filter(|m| !m.is_expired(now))?;
        Some(RetainedMessage {
            msg: msg.clone(),
            modified_ms: node.modified_ms,
        })
    }

    /// Appends the live retained messages matching `filter` (already parsed, without `$share`).
    pub fn matches(&self, filter: &str, now: Instant, out: &mut Vec<Arc<AppMessage>>) {
        let levels: Vec<&str> = filter.split('/').collect();
        Self::walk(&self.root, &levels, true, now, out);
    }

    fn walk(
        node: &RetainNode,
        levels: &[&str],
        root: bool,
        now: Instant,
        out: &mut Vec<Arc<AppMessage>>,
    ) {
        match levels {
            [] => {
                if let Some(m) = &node.msg
                    && !m.is_expired(now)
                {
                    out.push(m.clone());
                }
            }
            ["#"] => {
                // "a/#" includes "a" itself.
                if !root
                    && let Some(m) = &node.msg
                    && !m.is_expired(now)
                {
                    out.push(m.clone());
                }
                for (name, child) in node.children.iter() {
                    if root && name.starts_with('$') {
                        continue;
                    }
                    Self::all(child, now, out);
                }
            }
            ["+", rest @ ..] => {
                for (name, child) in node.children.iter() {
                    if root && name.starts_with('$') {
                        continue;
                    }
                    Self::walk(child, rest, false, now, out);
                }
            }
            [first, rest @ ..] => {
                if let Some(child) = node.children.get(first) {
                    Self::walk(child, rest, false, now, out);
                }
            }
        }
    }

    fn all(node: &RetainNode, now: Instant, out: &mut Vec<Arc<AppMessage>>) {
        if let Some(m) = &node.msg
            && !m.is_expired(now)
        {
            out.push(m.clone());
        }
        for (_, child) in node.children.iter() {
            Self::all(child, now, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ntex_bytes::{ByteString, Bytes};

    fn msg(topic: &str, payload: &'static [u8]) -> Arc<AppMessage> {
        Arc::new(AppMessage {
            topic: ByteString::from(topic.to_string()),
            payload: Bytes::from_static(payload),
            qos: 0,
            retain: true,
            props: None,
            expires_at: None,
            publisher: None,
        })
    }

    fn retained(r: &RetainedIndex, filter: &str) -> Vec<String> {
        let mut out = Vec::new();
        r.matches(filter, Instant::now(), &mut out);
        let mut v: Vec<String> = out.iter().map(|m| m.topic.to_string()).collect();
        v.sort();
        v
    }

    #[test]
    fn retained_index() {
        let mut r = RetainedIndex::default();
        assert_eq!(r.set(msg("a/b", b"1"), 1), 1);
        assert_eq!(r.set(msg("a/b", b"2"), 7), 0);
        r.set(msg("a/c/d", b"x"), 7);
        r.set(msg("a", b"x"), 7);
        r.set(msg("$SYS/x", b"x"), 7);
        assert_eq!(r.len(), 4);
        assert_eq!(retained(&r, "a/#"), vec!["a", "a/b", "a/c/d"]);
        assert_eq!(retained(&r, "a/+"), vec!["a/b"]);
        assert_eq!(retained(&r, "#"), vec!["a", "a/b", "a/c/d"]);
        assert_eq!(retained(&r, "+/+"), vec!["a/b"]);
        assert_eq!(retained(&r, "$SYS/#"), vec!["$SYS/x"]);
        assert_eq!(retained(&r, "a/b"), vec!["a/b"]);
        assert_eq!(r.set(msg("a/b", b""), 7), -1);
        assert_eq!(retained(&r, "a/#"), vec!["a", "a/c/d"]);
        assert_eq!(r.set(msg("nope", b""), 7), 0);
        assert_eq!(r.len(), 3);
    }

    #[test]
    fn get_finds_one_topic_with_its_time() {
        let mut r = RetainedIndex::default();
        let now = Instant::now();
        assert!(r.get("a/b", now).is_none());
        r.set(msg("a/b", b"1"), 10);
        r.set(msg("a", b"x"), 11);
        r.set(msg("a/b", b"2"), 20);
        let got = r.get("a/b", now).unwrap();
        assert_eq!((&got.msg.payload[..], got.modified_ms), (&b"2"[..], 20));
        assert_eq!(r.get("a", now).unwrap().modified_ms, 11);
        // Names, not filters: a wildcard is a literal level, and so matches nothing here.
        assert!(r.get("a/+", now).is_none() && r.get("#", now).is_none());
        assert!(r.get("a/b/c", now).is_none() && r.get("", now).is_none());
        // An expired message is not returned.
        let mut m = (*msg("e", b"x")).clone();
        m.expires_at = Some(now);
        r.set(Arc::new(m), 30);
        assert!(r.get("e", now).is_none());
        let before = now
            .checked_sub(std::time::Duration::from_millis(1))
            .unwrap();
        assert!(r.get("e", before).is_some());
        r.set(msg("a/b", b""), 40);
        assert!(r.get("a/b", now).is_none());
    }

    #[test]
    fn wide_levels_keep_matching() {
        // 20 topics under one level: past the trie's few-children bound the level becomes a hash
        // map; every retained message must still match, clear, and leave an empty index behind.
        let mut r = RetainedIndex::default();
        for i in 0..20 {
            r.set(msg(&format!("fleet/dev{i}/state"), b"on"), 1);
        }
        assert_eq!(retained(&r, "fleet/+/state").len(), 20);
        assert_eq!(retained(&r, "fleet/dev7/state"), vec!["fleet/dev7/state"]);
        for i in 0..20 {
            r.set(msg(&format!("fleet/dev{i}/state"), b""), 2);
        }
        assert!(r.is_empty() && r.root.children.is_empty());
    }
}
