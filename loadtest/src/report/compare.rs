//! `compare`: the same scenario against brokers A and B, alternating.

use crate::report::Report;
use serde::Serialize;
use std::fmt::Write as _;

#[derive(Debug, Clone, Serialize)]
pub struct Stat {
    pub min: f64,
    pub median: f64,
    pub max: f64,
}

impl Stat {
    pub fn of(v: &[f64]) -> Option<Stat> {
        if v.is_empty() {
            return None;
        }
        let mut s = v.to_vec();
        s.sort_by(f64::total_cmp);
        let n = s.len();
        let median = if n % 2 == 1 {
            s[n / 2]
        } else {
            (s[n / 2 - 1] + s[n / 2]) / 2.0
        };
        Some(Stat {
            min: s[0],
            median,
            max: s[n - 1],
        })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Metric {
    pub name: String,
    pub a: Option<Stat>,
    pub b: Option<Stat>,
    /// median(A) / median(B)
    pub ratio_a_over_b: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Run {
    pub broker: String,
    pub round: usize,
    pub report: Option<Report>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub scenario: String,
    /// what both brokers were reached over (tcp, tls, ws, wss): the same flags for both
    pub transport: String,
    pub a: String,
    pub b: String,
    pub rounds: usize,
    pub metrics: Vec<Metric>,
    pub runs: Vec<Run>,
}

type Extract = fn(&Report) -> f64;

fn metric_defs(scenario: &str) -> Vec<(&'static str, Extract)> {
    let mut v: Vec<(&'static str, Extract)> = Vec::new();
    if scenario != "conn" {
        v.push(("msgs/s received", |r| r.throughput.received_per_s));
        v.push(("msgs/s sent", |r| r.throughput.sent_per_s));
    }
    let (p50, p99, p999): (&'static str, &'static str, &'static str) = match scenario {
        "p2p" => ("p50 rtt us", "p99 rtt us", "p999 rtt us"),
        "pub" | "pub-qos1" => ("p50 puback us", "p99 puback us", "p999 puback us"),
        "conn" => ("p50 connack us", "p99 connack us", "p999 connack us"),
        _ => ("p50 e2e us", "p99 e2e us", "p999 e2e us"),
    };
    v.push((p50, |r| r.main_latency().p50_us));
    v.push((p99, |r| r.main_latency().p99_us));
    v.push((p999, |r| r.main_latency().p999_us));
    if scenario == "conn" {
        v.push(("connections ok", |r| r.connections.succeeded as f64));
        v.push(("connections failed", |r| r.connections.failed as f64));
    } else {
        v.push(("loss fraction", |r| r.messages.acct.loss_fraction));
    }
    v.push(("generator cpu s", |r| r.cpu.generator.cpu_seconds));
    v
}

/// Builds the comparison from the runs.
pub fn summarize(scenario: &str, a: &str, b: &str, rounds: usize, runs: Vec<Run>) -> Comparison {
    let metrics = metric_defs(scenario)
        .into_iter()
        .map(|(name, f)| {
            let vals = |who: &str| -> Vec<f64> {
                runs.iter()
                    .filter(|r| r.broker == who)
                    .filter_map(|r| r.report.as_ref().map(f))
                    .collect()
            };
            let sa = Stat::of(&vals("A"));
            let sb = Stat::of(&vals("B"));
            let ratio = match (&sa, &sb) {
                (Some(x), Some(y)) if y.median != 0.0 => Some(x.median / y.median),
                _ => None,
            };
            Metric {
                name: name.to_string(),
                a: sa,
                b: sb,
                ratio_a_over_b: ratio,
            }
        })
        .collect();
    let transport = runs
        .iter()
        .find_map(|r| r.report.as_ref().map(|r| r.transport.clone()))
        .unwrap_or_default();
    Comparison {
        scenario: scenario.to_string(),
        transport,
        a: a.to_string(),
        b: b.to_string(),
        rounds,
        metrics,
        runs,
    }
}

fn f(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else if v.abs() < 0.01 {
        format!("{v:.2e}")
    } else if v.abs() < 100.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.0}")
    }
}

impl Comparison {
    /// Side-by-side table.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "\n== compare {} over {}: A = {}, B = {}, {} rounds each (A B A B ...) ==",
            self.scenario, self.transport, self.a, self.b, self.rounds
        );
        let _ = writeln!(
            s,
            "{:<20} {:>10} {:>10} {:>10} | {:>10} {:>10} {:>10} | {:>8}",
            "metric", "A min", "A median", "A max", "B min", "B median", "B max", "A/B"
        );
        let cell = |st: &Option<Stat>| match st {
            Some(x) => format!("{:>10} {:>10} {:>10}", f(x.min), f(x.median), f(x.max)),
            None => format!("{:>10} {:>10} {:>10}", "-", "-", "-"),
        };
        for m in &self.metrics {
            let _ = writeln!(
                s,
                "{:<20} {} | {} | {:>8}",
                m.name,
                cell(&m.a),
                cell(&m.b),
                m.ratio_a_over_b
                    .map_or("-".to_string(), |r| format!("{r:.3}"))
            );
        }
        let failed: Vec<&Run> = self.runs.iter().filter(|r| r.error.is_some()).collect();
        for r in failed {
            let _ = writeln!(
                s,
                "run {} round {} failed: {}",
                r.broker,
                r.round + 1,
                r.error.as_deref().unwrap_or("")
            );
        }
        s
    }
}

/// Splits HOST:PORT (IPv6 as [::1]:1883).
pub fn split_host_port(s: &str) -> Result<(String, u16), String> {
    let (h, p) = s
        .rsplit_once(':')
        .ok_or_else(|| format!("'{s}': expected HOST:PORT"))?;
    let port: u16 = p.parse().map_err(|_| format!("'{s}': bad port '{p}'"))?;
    let host = h.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(format!("'{s}': empty host"));
    }
    Ok((host.to_string(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_and_ratio() {
        let s = Stat::of(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.min, s.median, s.max), (1.0, 2.0, 3.0));
        assert_eq!(Stat::of(&[1.0, 4.0]).unwrap().median, 2.5);
        assert!(Stat::of(&[]).is_none());
        let mk = |who: &str, rps: f64| Run {
            broker: who.into(),
            round: 0,
            report: Some({
                let mut r = Report {
                    scenario: "fanin".into(),
                    ..Default::default()
                };
                r.throughput.received_per_s = rps;
                r
            }),
            error: None,
        };
        let c = summarize(
            "fanin",
            "a:1",
            "b:2",
            2,
            vec![mk("A", 100.0), mk("B", 50.0), mk("A", 300.0), mk("B", 50.0)],
        );
        let m = &c.metrics[0];
        assert_eq!(m.name, "msgs/s received");
        assert_eq!(m.ratio_a_over_b, Some(4.0));
        assert!(c.table().contains("msgs/s received"));
        let names: Vec<&str> = c.metrics.iter().map(|m| m.name.as_str()).collect();
        for tail in ["p50 e2e us", "p99 e2e us", "p999 e2e us"] {
            assert!(names.contains(&tail), "{names:?}");
        }
        assert_eq!(
            split_host_port("127.0.0.1:1883").unwrap(),
            ("127.0.0.1".into(), 1883)
        );
        assert_eq!(split_host_port("[::1]:1884").unwrap(), ("::1".into(), 1884));
        assert!(split_host_port("nohost").is_err());
    }
}
