//! Topic names, topic filters and the subscription trie.
//!
//! Owns the MQTT matching rules (`+`, `#`, `$`-topics, `$share/{group}/{filter}`): checking names
//! and filters against them, and a trie of subscriptions that answers "who gets this topic"
//! without scanning all subscriptions. Also owns the per-level child map both this trie and the
//! retained-message index ([`super::retained`]) are built from. Pure data structures: never an
//! actor, I/O, a clock or randomness (shared groups take turns by a counter, not by chance).

use std::collections::HashMap;

use crate::mqtt::message::SessionId;

/// Why a topic name or filter is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicError {
    Empty,
    TooLong,
    TooManyLevels,
    /// A wildcard in a topic name, or a misplaced wildcard in a filter.
    Wildcard,
    /// A `$share/` filter without a group name, with a wildcard in the group, or without a filter.
    SharedSyntax,
    NulChar,
}

/// Limits a deployment puts on names and filters.
#[derive(Debug, Clone, Copy)]
pub struct TopicLimits {
    pub max_len: usize,
    pub max_levels: usize,
}

impl TopicLimits {
    /// For re-parsing filters that an edge already checked against the configured limits.
    pub const UNLIMITED: TopicLimits = TopicLimits {
        max_len: usize::MAX,
        max_levels: usize::MAX,
    };
}

/// Checks a PUBLISH topic name [MQTT-3.3.2-2], [MQTT-4.7.3-1].
pub fn validate_topic(topic: &str, limits: TopicLimits) -> Result<(), TopicError> {
    if topic.is_empty() {
        return Err(TopicError::Empty);
    }
    if topic.len() > limits.max_len {
        return Err(TopicError::TooLong);
    }
    // One pass over the bytes: this runs for every PUBLISH, and `contains([..])` decodes chars.
    // All three bytes are ASCII, so they never occur inside a multi-byte UTF-8 sequence.
    let mut separators = 0usize;
    let mut wildcard = false;
    let mut nul = false;
    for &b in topic.as_bytes() {
        match b {
            b'/' => separators += 1,
            b'+' | b'#' => wildcard = true,
            0 => nul = true,
            _ => {}
        }
    }
    if wildcard {
        return Err(TopicError::Wildcard);
    }
    if nul {
        return Err(TopicError::NulChar);
    }
    if separators + 1 > limits.max_levels {
        return Err(TopicError::TooManyLevels);
    }
    Ok(())
}

/// A parsed subscription filter: the shared group (if any) and the filter proper.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicFilter<'a> {
    pub group: Option<&'a str>,
    pub filter: &'a str,
}

/// Parses and checks a SUBSCRIBE topic filter [MQTT-4.7.1], [MQTT-4.8.2].
pub fn parse_filter(raw: &str, limits: TopicLimits) -> Result<TopicFilter<'_>, TopicError> {
    if raw.is_empty() {
        return Err(TopicError::Empty);
    }
    if raw.len() > limits.max_len {
        return Err(TopicError::TooLong);
    }
    if raw.contains('\0') {
        return Err(TopicError::NulChar);
    }
    let (group, filter) = match raw.strip_prefix("$share/") {
        Some(rest) => {
            let (group, filter) = rest.split_once('/').ok_or(TopicError::SharedSyntax)?;
            if group.is_empty() || group.contains(['+', '#']) || filter.is_empty() {
                return Err(TopicError::SharedSyntax);
            }
            (Some(group), filter)
        }
        None => (None, raw),
    };
    let mut levels = 0;
    let mut iter = filter.split('/').peekable();
    while let Some(level) = iter.next() {
        levels += 1;
        match level {
            "+" => {}
            "#" if iter.peek().is_none() => {}
            l if l.contains(['+', '#']) => return Err(TopicError::Wildcard),
            _ => {}
        }
    }
    if levels > limits.max_levels {
        return Err(TopicError::TooManyLevels);
    }
    Ok(TopicFilter { group, filter })
}

/// Options of one subscription, as granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SubOpts {
    pub qos: u8,
    pub no_local: bool,
    pub retain_as_published: bool,
    /// 0: send retained at subscribe, 1: only if the subscription is new, 2: never.
    pub retain_handling: u8,
    pub sub_id: Option<u32>,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    session: SessionId,
    opts: SubOpts,
}

impl Entry {
    fn shared(self) -> Matched {
        Matched {
            session: self.session,
            opts: self.opts,
            shared: true,
        }
    }
}

#[derive(Debug, Default)]
struct Group {
    name: Box<str>,
    members: Vec<Entry>,
    next: usize,
}

#[derive(Debug, Default)]
struct Subs {
    direct: Vec<Entry>,
    groups: Vec<Group>,
}

impl Subs {
    fn is_empty(&self) -> bool {
        self.direct.is_empty() && self.groups.is_empty()
    }

    /// Inserts or replaces; returns true when the session already had this subscription.
    fn upsert(&mut self, group: Option<&str>, e: Entry) -> bool {
        let list = match group {
            None => &mut self.direct,
            Some(g) => match self.groups.iter().position(|x| &*x.name == g) {
                Some(i) => &mut self.groups[i].members,
                None => {
                    self.groups.push(Group {
                        name: g.into(),
                        members: Vec::new(),
                        next: 0,
                    });
                    &mut self.groups.last_mut().expect("just pushed").members
                }
            },
        };
        match list.iter_mut().find(|x| x.session == e.session) {
            Some(x) => {
                x.opts = e.opts;
                true
            }
            None => {
                list.push(e);
                false
            }
        }
    }

    fn remove(&mut self, group: Option<&str>, session: SessionId) -> bool {
        match group {
            None => {
                let before = self.direct.len();
                self.direct.retain(|x| x.session != session);
                before != self.direct.len()
            }
            Some(g) => {
                let Some(i) = self.groups.iter().position(|x| &*x.name == g) else {
                    return false;
                };
                let members = &mut self.groups[i].members;
                let before = members.len();
                members.retain(|x| x.session != session);
                let removed = before != members.len();
                if members.is_empty() {
                    self.groups.swap_remove(i);
                }
                removed
            }
        }
    }

    /// The next member of shared group `name` in turn.
    fn pick(&mut self, name: &str) -> Option<Entry> {
        let g = self.groups.iter_mut().find(|x| &*x.name == name)?;
        let i = g.next % g.members.len();
        g.next = g.next.wrapping_add(1);
        Some(g.members[i])
    }

    fn collect(&mut self, out: &mut Vec<Matched>) {
        for e in &self.direct {
            out.push(Matched {
                session: e.session,
                opts: e.opts,
                shared: false,
            });
        }
        for g in &mut self.groups {
            // Round-robin: each message to exactly one member of the group, evenly.
            let i = g.next % g.members.len();
            g.next = g.next.wrapping_add(1);
            let e = g.members[i];
            out.push(Matched {
                session: e.session,
                opts: e.opts,
                shared: true,
            });
        }
    }
}

/// A trie node's children by level name: a short vector while there are few, a hash map beyond.
/// Most levels of a fleet's filters have one child (`devices/<id>/commands/#`), and a one-entry
/// `HashMap` allocates room for four nodes plus control bytes: about 700 B per level per routing
/// shard, against one node's size here.
#[derive(Debug)]
pub(super) enum Children<N> {
    Few(Vec<(Box<str>, N)>),
    Many(HashMap<Box<str>, N>),
}

/// Beyond this many children a level switches to a hash map (a linear scan of short strings is
/// faster than hashing up to about here).
const FEW_CHILDREN: usize = 8;

impl<N> Default for Children<N> {
    fn default() -> Self {
        Children::Few(Vec::new())
    }
}

impl<N: Default> Children<N> {
    pub(super) fn is_empty(&self) -> bool {
        match self {
            Children::Few(v) => v.is_empty(),
            Children::Many(m) => m.is_empty(),
        }
    }

    pub(super) fn get(&self, name: &str) -> Option<&N> {
        match self {
            Children::Few(v) => v.iter().find(|(k, _)| &**k == name).map(|(_, n)| n),
            Children::Many(m) => m.get(name),
        }
    }

    pub(super) fn get_mut(&mut self, name: &str) -> Option<&mut N> {
        match self {
            Children::Few(v) => v.iter_mut().find(|(k, _)| &**k == name).map(|(_, n)| n),
            Children::Many(m) => m.get_mut(name),
        }
    }

    pub(super) fn get_or_default(&mut self, name: &str) -> &mut N {
        if let Children::Few(v) = self
            && v.len() >= FEW_CHILDREN
            && !v.iter().any(|(k, _)| &**k == name)
        {
            *self = Children::Many(std::mem::take(v).into_iter().collect());
        }
        match self {
            Children::Few(v) => {
                let i = match v.iter().position(|(k, _)| &**k == name) {
                    Some(i) => i,
                    None => {
                        // Grow one at a time: a level rarely has more than a few children, and
                        // the default growth would reserve four.
                        v.reserve_exact(1);
                        v.push((name.into(), N::default()));
                        v.len() - 1
                    }
                };
                &mut v[i].1
            }
            Children::Many(m) => m.entry(name.into()).or_default(),
        }
    }

    pub(super) fn remove(&mut self, name: &str) {
        match self {
            Children::Few(v) => {
                if let Some(i) = v.iter().position(|(k, _)| &**k == name) {
                    v.swap_remove(i);
                    v.shrink_to_fit();
                }
            }
            Children::Many(m) => {
                m.remove(name);
            }
        }
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = (&str, &N)> {
        let (few, many) = match self {
            Children::Few(v) => (Some(v.iter().map(|(k, n)| (&**k, n))), None),
            Children::Many(m) => (None, Some(m.iter().map(|(k, n)| (&**k, n)))),
        };
        few.into_iter().flatten().chain(many.into_iter().flatten())
    }
}

#[derive(Debug, Default)]
struct Node {
    children: Children<Node>,
    plus: Option<Box<Node>>,
    /// Subscriptions whose filter ends in `#` right below this node.
    hash: Subs,
    /// Subscriptions whose filter ends exactly at this node.
    end: Subs,
}

impl Node {
    fn is_empty(&self) -> bool {
        self.children.is_empty()
            && self.plus.is_none()
            && self.hash.is_empty()
            && self.end.is_empty()
    }
}

/// One match of a topic against the trie.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Matched {
    pub session: SessionId,
    pub opts: SubOpts,
    pub shared: bool,
}

/// Every subscription of every session, indexed by filter level.
#[derive(Debug, Default)]
pub struct SubTrie {
    root: Node,
    count: usize,
}

impl SubTrie {
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Adds or updates a subscription; returns true when it existed before (then it is replaced).
    pub fn insert(&mut self, filter: TopicFilter<'_>, session: SessionId, opts: SubOpts) -> bool {
        let mut node = &mut self.root;
        let mut levels = filter.filter.split('/').peekable();
        let e = Entry { session, opts };
        while let Some(level) = levels.next() {
            if level == "#" && levels.peek().is_none() {
                let existed = node.hash.upsert(filter.group, e);
                self.count += usize::from(!existed);
                return existed;
            }
            node = if level == "+" {
                node.plus.get_or_insert_with(Default::default)
            } else {
                node.children.get_or_default(level)
            };
        }
        let existed = node.end.upsert(filter.group, e);
        self.count += usize::from(!existed);
        existed
    }

    /// The next member in turn of the shared subscription `filter` (`$share/{group}/{f}`), for a
    /// message that matched `f` elsewhere (a cluster's other node chose this one); `None` if no
    /// session here holds it, or `filter` has no group.
    pub fn pick_shared(&mut self, filter: TopicFilter<'_>) -> Option<Matched> {
        let group = filter.group?;
        let mut node = &mut self.root;
        let mut levels = filter.filter.split('/').peekable();
        while let Some(level) = levels.next() {
            if level == "#" && levels.peek().is_none() {
                return node.hash.pick(group).map(|e| e.shared());
            }
            node = if level == "+" {
                node.plus.as_deref_mut()?
            } else {
                node.children.get_mut(level)?
            };
        }
        node.end.pick(group).map(|e| e.shared())
    }

    /// The options `session` subscribed `filter` with, if it did.
    pub fn opts_of(&self, filter: TopicFilter<'_>, session: SessionId) -> Option<SubOpts> {
        let mut node = &self.root;
        let mut levels = filter.filter.split('/').peekable();
        let mut subs = None;
        while let Some(level) = levels.next() {
            if level == "#" && levels.peek().is_none() {
                subs = Some(&node.hash);
                break;
            }
            node = if level == "+" {
                node.plus.as_deref()?
            } else {
                node.children.get(level)?
            };
        }
        let subs = subs.unwrap_or(&node.end);
        let list = match filter.group {
            None => &subs.direct,
            Some(g) => &subs.groups.iter().find(|x| &*x.name == g)?.members,
        };
        list.iter().find(|e| e.session == session).map(|e| e.opts)
    }

    /// Removes a subscription; returns true when it existed.
    pub fn remove(&mut self, filter: TopicFilter<'_>, session: SessionId) -> bool {
        let levels: Vec<&str> = filter.filter.split('/').collect();
        let removed = Self::remove_at(&mut self.root, &levels, filter.group, session);
        self.count -= usize::from(removed);
        removed
    }

    fn remove_at(node: &mut Node, levels: &[&str], group: Option<&str>, s: SessionId) -> bool {
        match levels {
            [] => node.end.remove(group, s),
            ["#"] => node.hash.remove(group, s),
            [first, rest @ ..] => {
                if *first == "+" {
                    let Some(child) = node.plus.as_deref_mut() else {
                        return false;
                    };
                    let removed = Self::remove_at(child, rest, group, s);
                    if child.is_empty() {
                        node.plus = None;
                    }
                    removed
                } else {
                    let Some(child) = node.children.get_mut(first) else {
                        return false;
                    };
                    let removed = Self::remove_at(child, rest, group, s);
                    if child.is_empty() {
                        node.children.remove(first);
                    }
                    removed
                }
            }
        }
    }

    /// Appends every subscription matching `topic` to `out` (one entry per matching filter; shared
    /// groups contribute the one member picked for this message).
    pub fn matches(&mut self, topic: &str, out: &mut Vec<Matched>) {
        // [MQTT-4.7.2-1]: a leading wildcard does not match a topic that starts with '$'.
        let dollar = topic.starts_with('$');
        let mut levels = topic.split('/');
        let first = levels.next().unwrap_or("");
        Self::walk(&mut self.root, first, levels, true, dollar, out);
    }

    fn walk<'t>(
        node: &mut Node,
        level: &'t str,
        rest: std::str::Split<'t, char>,
        root: bool,
        dollar: bool,
        out: &mut Vec<Matched>,
    ) {
        let wild_ok = !(root && dollar);
        if wild_ok {
            node.hash.collect(out);
        }
        let mut after = rest.clone();
        let next = after.next();
        if let Some(child) = node.children.get_mut(level) {
            match next {
                None => {
                    child.end.collect(out);
                    // "a/#" also matches "a" [MQTT-4.7.1-2].
                    child.hash.collect(out);
                }
                Some(n) => Self::walk(child, n, after.clone(), false, dollar, out),
            }
        }
        if wild_ok && let Some(child) = node.plus.as_deref_mut() {
            match next {
                None => {
                    child.end.collect(out);
                    child.hash.collect(out);
                }
                Some(n) => Self::walk(child, n, after, false, dollar, out),
            }
        }
    }
}

#[cfg(test)]
mod tests;
