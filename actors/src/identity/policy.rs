//! A client's authorization decisions, compiled (docs/eventgrid.md §7.5): the topic filters it
//! may publish to and subscribe within, after substituting its values into the templates of the
//! topic spaces bound to its groups. Checking a topic never parses or substitutes anything.
//!
//! The filters are split into segments once, when the policy is built; a check walks the topic
//! or filter with `split('/')` and allocates nothing. Topics starting with `$` are matched only by
//! filters whose first segment is the same literal (MQTT's rule for wildcards at the first level).

/// What one connected client may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientPolicy {
    /// Everything allowed (authorization off, or the namespace has no permission binding under
    /// `mqtt.authorization = "auto"`).
    pub allow_all: bool,
    /// Filters a PUBLISH topic must match one of.
    pub publish: Vec<String>,
    /// Filters a SUBSCRIBE filter must be within one of.
    pub subscribe: Vec<String>,
    publish_segs: Vec<Vec<Seg>>,
    subscribe_segs: Vec<Vec<Seg>>,
}

/// One segment of a granted filter.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Lit(Box<str>),
    Plus,
    Hash,
}

fn compile(filter: &str) -> Vec<Seg> {
    filter
        .split('/')
        .map(|s| match s {
            "+" => Seg::Plus,
            "#" => Seg::Hash,
            s => Seg::Lit(s.into()),
        })
        .collect()
}

impl ClientPolicy {
    pub fn allow_all() -> ClientPolicy {
        ClientPolicy {
            allow_all: true,
            publish: Vec::new(),
            subscribe: Vec::new(),
            publish_segs: Vec::new(),
            subscribe_segs: Vec::new(),
        }
    }

    /// A policy granting exactly these filters (substituted templates).
    pub fn new(publish: Vec<String>, subscribe: Vec<String>) -> ClientPolicy {
        ClientPolicy {
            allow_all: false,
            publish_segs: publish.iter().map(|f| compile(f)).collect(),
            subscribe_segs: subscribe.iter().map(|f| compile(f)).collect(),
            publish,
            subscribe,
        }
    }

    /// Whether a PUBLISH (or will) to topic name `topic` is allowed.
    pub fn may_publish(&self, topic: &str) -> bool {
        self.allow_all || self.publish_segs.iter().any(|g| matches_topic(g, topic))
    }

    /// Whether a SUBSCRIBE to `filter` is allowed: `filter` matches only topics some granted
    /// filter matches (`$share/{group}/` stripped first).
    pub fn may_subscribe(&self, filter: &str) -> bool {
        if self.allow_all {
            return true;
        }
        let filter = match filter.strip_prefix("$share/") {
            Some(rest) => match rest.split_once('/') {
                Some((group, f)) if !group.is_empty() && !f.is_empty() => f,
                _ => return false,
            },
            None => filter,
        };
        self.subscribe_segs.iter().any(|g| covers(g, filter))
    }
}

/// Whether granted filter `g` matches topic name `topic`.
fn matches_topic(g: &[Seg], topic: &str) -> bool {
    let dollar = topic.starts_with('$');
    let mut t = topic.split('/');
    for (i, seg) in g.iter().enumerate() {
        if i == 0 && dollar && !matches!(seg, Seg::Lit(_)) {
            return false;
        }
        match seg {
            // `a/#` matches `a` too (the parent level).
            Seg::Hash => return true,
            Seg::Plus => {
                if t.next().is_none() {
                    return false;
                }
            }
            Seg::Lit(l) => {
                if t.next() != Some(&**l) {
                    return false;
                }
            }
        }
    }
    t.next().is_none()
}

/// Whether every topic `filter` can match is matched by granted filter `g`.
fn covers(g: &[Seg], filter: &str) -> bool {
    let mut f = filter.split('/');
    for (i, seg) in g.iter().enumerate() {
        let next = f.next();
        if i == 0 && !matches!(seg, Seg::Lit(_)) {
            // A wildcard at the first level matches no `$` topic, and `+`/`#` there in the
            // requested filter match no `$` topic either; a literal `$…` is not covered.
            if matches!(next, Some(s) if s.starts_with('$')) {
                return false;
            }
        }
        match seg {
            // Also when the requested filter ended: `a` is matched by `a/#` (parent level).
            Seg::Hash => return true,
            Seg::Plus => match next {
                Some("#") | None => return false,
                Some(_) => {}
            },
            Seg::Lit(l) => match next {
                Some(s) if s == &**l => {}
                _ => return false,
            },
        }
    }
    f.next().is_none()
}

#[cfg(test)]
mod tests;
