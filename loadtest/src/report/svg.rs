//! Hand-written SVG report: latency by percentile and throughput over time.

use crate::report::Report;
use crate::report::stats::LatencySummary;
use std::fmt::Write as _;

const W: f64 = 1040.0;
const PANEL_H: f64 = 300.0;
const ML: f64 = 80.0;
const MR: f64 = 230.0;
const COLORS: &[&str] = &["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd"];

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// x position of a percentile on the usual "nines" scale: log10(1/(1-p)).
fn nines(p: f64) -> f64 {
    let q = (1.0 - p / 100.0).max(1e-6);
    (1.0 / q).log10()
}

/// Rounds `v` up to 1, 2 or 5 times a power of ten.
fn nice_ceil(v: f64) -> f64 {
    if v <= 0.0 {
        return 1.0;
    }
    let e = v.log10().floor();
    let b = 10f64.powf(e);
    for m in [1.0, 2.0, 5.0, 10.0] {
        if v <= m * b + 1e-9 {
            return m * b;
        }
    }
    10.0 * b
}

fn fmt_num(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.1}k", v / 1e3)
    } else if v >= 10.0 || v == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

fn latency_panel(s: &mut String, y0: f64, series: &[(&str, &LatencySummary)]) {
    let pw = W - ML - MR;
    let _ = writeln!(
        s,
        r#"<text x="{ML}" y="{}" font-size="15" font-weight="bold">Latency by percentile (µs, log scale)</text>"#,
        y0 - 10.0
    );
    let _ = writeln!(
        s,
        r##"<rect x="{ML}" y="{y0}" width="{pw}" height="{PANEL_H}" fill="none" stroke="#888"/>"##
    );
    let vals: Vec<f64> = series
        .iter()
        .flat_map(|(_, l)| l.percentiles.iter().map(|&(_, v)| v))
        .filter(|v| *v > 0.0)
        .collect();
    if vals.is_empty() {
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" font-size="13">no latency samples</text>"#,
            ML + 20.0,
            y0 + PANEL_H / 2.0
        );
        return;
    }
    let lo = vals.iter().cloned().fold(f64::MAX, f64::min).max(0.1);
    let hi = vals.iter().cloned().fold(0.0, f64::max).max(lo * 10.0);
    let lmin = lo.log10().floor();
    let lmax = hi.log10().ceil();
    let xmax = 6.0;
    let px = |p: f64| ML + nines(p).min(xmax) / xmax * pw;
    let py = |v: f64| y0 + PANEL_H - ((v.max(0.1).log10() - lmin) / (lmax - lmin)) * PANEL_H;
    // grid
    let mut e = lmin;
    while e <= lmax + 1e-9 {
        let y = py(10f64.powf(e));
        let _ = writeln!(
            s,
            r##"<line x1="{ML}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" font-size="11" text-anchor="end">{}</text>"##,
            ML + pw,
            ML - 6.0,
            y + 4.0,
            fmt_num(10f64.powf(e))
        );
        e += 1.0;
    }
    for (p, label) in [
        (0.0, "0%"),
        (90.0, "90%"),
        (99.0, "99%"),
        (99.9, "99.9%"),
        (99.99, "99.99%"),
        (99.999, "99.999%"),
        (99.9999, "max"),
    ] {
        let x = px(p);
        let _ = writeln!(
            s,
            r##"<line x1="{x:.1}" y1="{y0}" x2="{x:.1}" y2="{:.1}" stroke="#ddd"/><text x="{x:.1}" y="{:.1}" font-size="11" text-anchor="middle">{label}</text>"##,
            y0 + PANEL_H,
            y0 + PANEL_H + 16.0
        );
    }
    for (i, (name, l)) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let pts: Vec<String> = l
            .percentiles
            .iter()
            .map(|&(p, v)| {
                let p = if p >= 100.0 { 99.9999 } else { p };
                format!("{:.1},{:.1}", px(p), py(v))
            })
            .collect();
        let _ = writeln!(
            s,
            r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{}"/>"#,
            pts.join(" ")
        );
        let ly = y0 + 20.0 + i as f64 * 34.0;
        let _ = writeln!(
            s,
            r##"<rect x="{:.1}" y="{:.1}" width="12" height="12" fill="{color}"/><text x="{:.1}" y="{:.1}" font-size="12">{} (n={})</text><text x="{:.1}" y="{:.1}" font-size="11" fill="#555">p50 {} p99 {} max {}</text>"##,
            ML + pw + 10.0,
            ly - 10.0,
            ML + pw + 26.0,
            ly,
            esc(name),
            l.count,
            ML + pw + 10.0,
            ly + 15.0,
            fmt_num(l.p50_us),
            fmt_num(l.p99_us),
            fmt_num(l.max_us)
        );
    }
}

fn throughput_panel(s: &mut String, y0: f64, r: &Report) {
    let pw = W - ML - MR;
    let conn_mode = r.scenario == "conn";
    let title = if conn_mode {
        "Connected clients over time"
    } else {
        "Throughput over time (msgs/s per 1 s bucket)"
    };
    let _ = writeln!(
        s,
        r#"<text x="{ML}" y="{}" font-size="15" font-weight="bold">{title}</text>"#,
        y0 - 10.0
    );
    let _ = writeln!(
        s,
        r##"<rect x="{ML}" y="{y0}" width="{pw}" height="{PANEL_H}" fill="none" stroke="#888"/>"##
    );
    let buckets: Vec<_> = r.timeseries.iter().filter(|b| b.secs > 0.0).collect();
    if buckets.is_empty() {
        return;
    }
    let rate = |v: u64, secs: f64| v as f64 / secs.max(1e-9);
    let lines: Vec<(&str, Vec<(f64, f64)>)> = if conn_mode {
        vec![(
            "connected",
            buckets
                .iter()
                .map(|b| (b.t_s + b.secs, b.connected as f64))
                .collect(),
        )]
    } else {
        vec![
            (
                "sent/s",
                buckets
                    .iter()
                    .map(|b| (b.t_s + b.secs / 2.0, rate(b.sent, b.secs)))
                    .collect(),
            ),
            (
                "received/s",
                buckets
                    .iter()
                    .map(|b| (b.t_s + b.secs / 2.0, rate(b.received, b.secs)))
                    .collect(),
            ),
        ]
    };
    let tmax = buckets.iter().map(|b| b.t_s + b.secs).fold(1.0, f64::max);
    let vmax = nice_ceil(
        lines
            .iter()
            .flat_map(|(_, v)| v.iter().map(|p| p.1))
            .fold(1.0, f64::max),
    );
    let px = |t: f64| ML + t / tmax * pw;
    let py = |v: f64| y0 + PANEL_H - v / vmax * PANEL_H;
    for i in 0..=5 {
        let v = vmax * i as f64 / 5.0;
        let y = py(v);
        let _ = writeln!(
            s,
            r##"<line x1="{ML}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" font-size="11" text-anchor="end">{}</text>"##,
            ML + pw,
            ML - 6.0,
            y + 4.0,
            fmt_num(v)
        );
    }
    let step = nice_ceil(tmax / 10.0);
    let mut t = 0.0;
    while t <= tmax + 1e-9 {
        let x = px(t);
        let _ = writeln!(
            s,
            r##"<line x1="{x:.1}" y1="{y0}" x2="{x:.1}" y2="{:.1}" stroke="#eee"/><text x="{x:.1}" y="{:.1}" font-size="11" text-anchor="middle">{}s</text>"##,
            y0 + PANEL_H,
            y0 + PANEL_H + 16.0,
            fmt_num(t)
        );
        t += step;
    }
    for (i, (name, pts)) in lines.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let p: Vec<String> = pts
            .iter()
            .map(|&(t, v)| format!("{:.1},{:.1}", px(t), py(v)))
            .collect();
        let _ = writeln!(
            s,
            r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{}"/>"#,
            p.join(" ")
        );
        let ly = y0 + 20.0 + i as f64 * 22.0;
        let _ = writeln!(
            s,
            r#"<rect x="{:.1}" y="{:.1}" width="12" height="12" fill="{color}"/><text x="{:.1}" y="{:.1}" font-size="12">{name}</text>"#,
            ML + pw + 10.0,
            ly - 10.0,
            ML + pw + 26.0,
            ly
        );
    }
}

/// Renders the report as a standalone SVG document.
pub fn render(r: &Report) -> String {
    let mut s = String::new();
    let h = 110.0 + 2.0 * (PANEL_H + 80.0);
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{h}" viewBox="0 0 {W} {h}" font-family="sans-serif">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let m = &r.messages;
    let _ = writeln!(
        s,
        r#"<text x="20" y="28" font-size="18" font-weight="bold">evgrid-loadtest {} → {}</text>"#,
        esc(&r.scenario),
        esc(&r.target)
    );
    let _ = writeln!(
        s,
        r#"<text x="20" y="50" font-size="12">MQTT {} over {} · QoS {} · {} B · {} · {} publishers, {} subscribers · {:.1} s{}</text>"#,
        r.mqtt_version,
        esc(&r.transport),
        r.qos,
        r.payload_bytes,
        esc(&r.mode),
        r.clients.publishers,
        r.clients.subscribers,
        r.publish_s,
        if r.interrupted { " · INTERRUPTED" } else { "" }
    );
    let _ = writeln!(
        s,
        r#"<text x="20" y="70" font-size="12">sent {} · received {} · expected {} · lost {} · dup {} · reordered {} · {:.0} recv/s · generator CPU {:.2} s</text>"#,
        m.sent,
        m.received,
        m.acct.expected,
        m.acct.lost,
        m.acct.duplicated,
        m.acct.reordered,
        r.throughput.received_per_s,
        r.cpu.generator.cpu_seconds
    );
    let l = &r.latency_us;
    let series: Vec<(&str, &LatencySummary)> = [
        (
            if r.scenario == "p2p" {
                "request one-way"
            } else {
                "end-to-end"
            },
            &l.e2e,
        ),
        ("round-trip", &l.rtt),
        ("PUBACK", &l.puback),
        ("SUBACK", &l.suback),
        ("CONNACK", &l.connack),
    ]
    .into_iter()
    .filter(|(_, l)| l.count > 0)
    .collect();
    latency_panel(&mut s, 110.0, &series);
    throughput_panel(&mut s, 110.0 + PANEL_H + 80.0, r);
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Bucket;

    #[test]
    fn renders_well_formed_svg() {
        let mut r = Report {
            scenario: "fanin".into(),
            target: "127.0.0.1:1883".into(),
            ..Default::default()
        };
        r.latency_us.e2e = LatencySummary {
            count: 3,
            p50_us: 50.0,
            p99_us: 90.0,
            max_us: 100.0,
            percentiles: vec![(0.0, 10.0), (50.0, 50.0), (99.0, 90.0), (100.0, 100.0)],
            ..Default::default()
        };
        r.timeseries = vec![
            Bucket {
                t_s: 0.0,
                secs: 1.0,
                sent: 100,
                received: 90,
                connected: 2,
            },
            Bucket {
                t_s: 1.0,
                secs: 1.0,
                sent: 100,
                received: 110,
                connected: 2,
            },
        ];
        let svg = render(&r);
        assert!(svg.starts_with("<svg"));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), 3);
        assert!(!svg.contains("NaN"));
        // an empty report still renders
        let empty = render(&Report::default());
        assert!(empty.contains("no latency samples"));
        assert_eq!(nice_ceil(730.0), 1000.0);
        assert_eq!(nice_ceil(120.0), 200.0);
    }
}
