//! Open MQTT Benchmark suite scenario names.
//!
//! Names follow `[singlenode-]KIND-PUBLISHERS-SUBSCRIBERS-TOPICS-RATE` with
//! K/M suffixes (`fanout-5-1000-5-250K`, `p2p-50K-50K-50K-50K`,
//! `sharesub-50K-500-50K-50K`), and `[singlenode-]conn-tcp-CLIENTS-CONNRATE`
//! (`conn-tcp-1M-5K`). RATE is the suite's *expected total subscribe rate*
//! (deliveries per second); the publish rate is derived from it.

use crate::cli::Args;
use crate::mqtt::run::Scenario;

#[derive(Debug, Clone, PartialEq)]
pub enum Preset {
    Conn {
        clients: f64,
        conn_rate: f64,
    },
    Fanout {
        publishers: f64,
        subscribers: f64,
        topics: f64,
        rate: f64,
    },
    P2p {
        publishers: f64,
        subscribers: f64,
        topics: f64,
        rate: f64,
    },
    SharedSub {
        publishers: f64,
        subscribers: f64,
        topics: f64,
        rate: f64,
    },
}

/// "250K" -> 250000, "1M" -> 1000000, "2.5k" -> 2500.
pub fn parse_count(s: &str) -> Result<f64, String> {
    let t = s.trim();
    let (num, mult) = match t.chars().last() {
        Some('k' | 'K') => (&t[..t.len() - 1], 1e3),
        Some('m' | 'M') => (&t[..t.len() - 1], 1e6),
        _ => (t, 1.0),
    };
    let v: f64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a number like 50, 50K or 1M"))?;
    if !(v.is_finite() && v > 0.0) {
        return Err(format!("'{s}' must be positive"));
    }
    Ok(v * mult)
}

pub fn parse(name: &str) -> Result<Preset, String> {
    let n = name.trim().to_ascii_lowercase();
    let n = n.strip_prefix("singlenode-").unwrap_or(&n);
    let parts: Vec<&str> = n.split('-').collect();
    let usage = || {
        format!(
            "unknown preset '{name}': expected conn-tcp-N-RATE, fanout-P-S-T-RATE, p2p-P-S-T-RATE or sharesub-P-S-T-RATE (fanin-P-S-T-RATE), e.g. fanout-5-1000-5-250K"
        )
    };
    match parts.as_slice() {
        ["conn", "tcp", c, r] | ["conn", c, r] => Ok(Preset::Conn {
            clients: parse_count(c)?,
            conn_rate: parse_count(r)?,
        }),
        [kind, p, s, t, r] => {
            let (publishers, subscribers, topics, rate) = (
                parse_count(p)?,
                parse_count(s)?,
                parse_count(t)?,
                parse_count(r)?,
            );
            match *kind {
                "fanout" => Ok(Preset::Fanout {
                    publishers,
                    subscribers,
                    topics,
                    rate,
                }),
                "p2p" => Ok(Preset::P2p {
                    publishers,
                    subscribers,
                    topics,
                    rate,
                }),
                "sharesub" | "fanin" => Ok(Preset::SharedSub {
                    publishers,
                    subscribers,
                    topics,
                    rate,
                }),
                _ => Err(usage()),
            }
        }
        _ => Err(usage()),
    }
}

fn scaled(v: f64, f: f64) -> usize {
    ((v * f).round() as usize).max(1)
}

/// Turns a preset into a scenario and arguments. Values the user gave on the
/// command line win over the preset's.
pub fn apply(p: &Preset, scale: f64, user: &Args) -> Result<(Scenario, Args, String), String> {
    if !(scale.is_finite() && scale > 0.0) {
        return Err(format!("--scale {scale}: must be a positive number"));
    }
    let mut a = user.clone();
    // suite defaults: MQTT 3.1.1 (5.0 where a feature needs it), keep alive
    // 300 s, clean session, QoS 1, 16-byte payloads (24 here: the header)
    a.qos = a.qos.or(Some(1));
    a.size = a.size.or(Some(24));
    a.duration = a.duration.or(Some("60s".into()));
    let desc;
    let scenario = match *p {
        Preset::Conn { clients, conn_rate } => {
            a.version = a.version.or(Some(4));
            let c = scaled(clients, scale);
            let r = (conn_rate * scale).max(1.0);
            a.count = a.count.or(Some(c));
            if a.conn_rate.is_none() && a.interval.is_none() {
                a.conn_rate = Some(r);
            }
            desc = format!(
                "conn: {c} clients at {r:.0} conn/s, held for {}",
                a.duration.as_deref().unwrap_or("")
            );
            Scenario::Conn
        }
        Preset::Fanout {
            publishers,
            subscribers,
            topics,
            rate,
        } => {
            a.version = a.version.or(Some(4));
            let (np, ns, nt) = (
                scaled(publishers, scale),
                scaled(subscribers, scale),
                scaled(topics, scale),
            );
            let deliveries = rate * scale;
            // every subscriber takes every topic: publish rate = deliveries / S
            let publish_rate = deliveries / ns as f64;
            a.publishers = a.publishers.or(Some(np));
            a.subscribers = a.subscribers.or(Some(ns));
            a.topics = a.topics.or(Some(nt));
            if a.rate.is_none() && a.pub_interval.is_none() && !a.max_rate {
                a.rate = Some(publish_rate);
            }
            desc = format!(
                "fanout: {np} publishers -> {nt} topics -> {ns} subscribers (each on all topics), publish {publish_rate:.1} msgs/s, deliver {deliveries:.0} msgs/s"
            );
            Scenario::Fanout
        }
        Preset::P2p {
            publishers,
            subscribers,
            topics: _,
            rate,
        } => {
            // request/response needs MQTT 5
            a.version = a.version.or(Some(5));
            let n = scaled(publishers.min(subscribers), scale);
            let r = rate * scale;
            a.pairs = a.pairs.or(Some(n));
            if a.rate.is_none() && a.pub_interval.is_none() && !a.max_rate {
                a.rate = Some(r);
            }
            desc = format!(
                "p2p: {n} request/response pairs, {n} request topics, {r:.0} requests/s (each also answered: {:.0} msgs/s through the broker)",
                2.0 * r
            );
            Scenario::P2p
        }
        Preset::SharedSub {
            publishers,
            subscribers,
            topics,
            rate,
        } => {
            a.version = a.version.or(Some(5));
            let np = scaled(publishers, scale);
            let ns = scaled(subscribers, scale);
            let nt = scaled(topics, scale);
            let r = rate * scale;
            a.publishers = a.publishers.or(Some(np));
            a.shared = a.shared.or(Some(ns));
            if a.group == "g" {
                a.group = "benchmark".into();
            }
            if a.topic.is_none() {
                // publisher i publishes to test/(i mod T)+1 like the suite's test/1..test/N
                a.topic = Some(if nt >= np {
                    "test/%i".into()
                } else {
                    format!("test/%rand_{nt}")
                });
            }
            a.sub_topic = a.sub_topic.or(Some("test/#".into()));
            if a.start == 0 && nt >= np {
                a.start = 1;
            }
            if a.rate.is_none() && a.pub_interval.is_none() && !a.max_rate {
                a.rate = Some(r);
            }
            desc = format!(
                "sharesub: {np} publishers on {nt} topics -> $share/{}/test/# with {ns} members, {r:.0} msgs/s",
                a.group
            );
            Scenario::Fanin
        }
    };
    Ok((scenario, a, desc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_suite_names() {
        assert_eq!(parse_count("250K").unwrap(), 250_000.0);
        assert_eq!(parse_count("1M").unwrap(), 1_000_000.0);
        assert_eq!(parse_count("2.5k").unwrap(), 2_500.0);
        assert!(parse_count("x").is_err());
        assert_eq!(
            parse("fanout-5-1000-5-250K").unwrap(),
            Preset::Fanout {
                publishers: 5.0,
                subscribers: 1000.0,
                topics: 5.0,
                rate: 250_000.0
            }
        );
        assert!(matches!(
            parse("singlenode-p2p-50K-50K-50K-50K").unwrap(),
            Preset::P2p { .. }
        ));
        assert!(matches!(
            parse("sharesub-50K-500-50K-50K").unwrap(),
            Preset::SharedSub { .. }
        ));
        assert_eq!(
            parse("singlenode-conn-tcp-1M-5K").unwrap(),
            Preset::Conn {
                clients: 1e6,
                conn_rate: 5e3
            }
        );
        assert!(parse("bogus-1-2").is_err());
        assert!(parse("fanout-1-2-3").is_err());
    }

    #[test]
    fn scaling() {
        let user = Args {
            group: "g".into(),
            ..Default::default()
        };
        let (s, a, _) = apply(&parse("fanout-5-1000-5-250K").unwrap(), 0.01, &user).unwrap();
        assert_eq!(s, Scenario::Fanout);
        assert_eq!(a.publishers, Some(1)); // 0.05 rounds up to at least 1
        assert_eq!(a.subscribers, Some(10));
        assert_eq!(a.topics, Some(1));
        assert_eq!(a.rate, Some(250.0)); // 2,500 deliveries/s over 10 subscribers
        assert_eq!(a.qos, Some(1));
        let (s, a, _) = apply(&parse("p2p-50K-50K-50K-50K").unwrap(), 0.001, &user).unwrap();
        assert_eq!(s, Scenario::P2p);
        assert_eq!(a.pairs, Some(50));
        assert_eq!(a.rate, Some(50.0));
        let (_, a, _) = apply(&parse("sharesub-50K-500-50K-50K").unwrap(), 0.001, &user).unwrap();
        assert_eq!(a.publishers, Some(50));
        assert_eq!(a.shared, Some(1));
        assert_eq!(a.group, "benchmark");
        // the user's explicit values win
        let user2 = Args {
            rate: Some(7.0),
            qos: Some(0),
            ..user.clone()
        };
        let (_, a, _) = apply(&parse("fanout-5-1000-5-250K").unwrap(), 1.0, &user2).unwrap();
        assert_eq!(a.rate, Some(7.0));
        assert_eq!(a.qos, Some(0));
        assert!(apply(&parse("fanout-5-1000-5-250K").unwrap(), 0.0, &user).is_err());
    }
}
