use super::*;
use clap::CommandFactory;

#[test]
fn cli_is_consistent() {
    Cli::command().debug_assert();
}

#[test]
fn durations() {
    assert_eq!(parse_duration("10").unwrap(), 10.0);
    assert_eq!(parse_duration("10s").unwrap(), 10.0);
    assert_eq!(parse_duration("500ms").unwrap(), 0.5);
    assert_eq!(parse_duration("2m").unwrap(), 120.0);
    assert_eq!(parse_duration("1h").unwrap(), 3600.0);
    assert!(parse_duration("x").is_err());
    assert!(parse_duration("-1").is_err());
}

#[test]
fn dash_h_is_host() {
    let c = Cli::try_parse_from([
        "evgrid-loadtest",
        "pub",
        "-h",
        "127.0.0.1",
        "-p",
        "1999",
        "-V",
        "4",
        "-C",
        "false",
    ])
    .unwrap();
    let Cmd::Pub(a) = c.cmd else {
        panic!("not pub")
    };
    assert_eq!(a.host, "127.0.0.1");
    assert_eq!(a.port, 1999);
    assert_eq!(a.version, Some(4));
    assert!(!a.clean);
    assert!(Cli::try_parse_from(["evgrid-loadtest", "pub", "-V", "6"]).is_err());
}

#[test]
fn http_modes() {
    let c = Cli::try_parse_from([
        "evgrid-loadtest",
        "http-publish",
        "--url",
        "http://127.0.0.1:18090/namespaces/default",
        "--topic",
        "t",
        "--key",
        "k",
        "--connections",
        "32",
        "--rate",
        "5000",
    ])
    .unwrap();
    let Cmd::HttpPublish(a) = c.cmd else {
        panic!("not http-publish")
    };
    assert_eq!((a.connections, a.batch, a.size), (32, 100, 1024));
    assert_eq!(a.rate, Some(5000.0));
    assert_eq!(a.http.duration, "10s");
    let c = Cli::try_parse_from([
        "evgrid-loadtest",
        "pull",
        "--topic",
        "t",
        "--subscription",
        "s",
        "--key",
        "k",
        "--consumers",
        "4",
    ])
    .unwrap();
    let Cmd::Pull(a) = c.cmd else {
        panic!("not pull")
    };
    assert_eq!((a.consumers, a.max_events, a.max_wait), (4, 100, 10));
    assert!(
        Cli::try_parse_from(["evgrid-loadtest", "pull", "--topic", "t", "--key", "k"]).is_err(),
        "--subscription is required"
    );
}

#[test]
fn transport_flags() {
    let c = Cli::try_parse_from([
        "evgrid-loadtest",
        "fanin",
        "--tls",
        "--cafile",
        "ca.pem",
        "--cert",
        "c.pem",
        "--cert-key",
        "c.key",
        "--ws",
        "--ws-path",
        "/m",
    ])
    .unwrap();
    let Cmd::Fanin(a) = c.cmd else {
        panic!("not fanin")
    };
    let t = &a.transport;
    assert!(t.tls.tls && t.ws);
    assert_eq!(t.kind().name(), "wss");
    assert_eq!(
        t.tls.cafile.as_deref(),
        Some(std::path::Path::new("ca.pem"))
    );
    assert_eq!(t.ws_path.as_deref(), Some("/m"));
    let bad = |args: &[&str]| {
        let mut v = vec!["evgrid-loadtest", "fanin"];
        v.extend_from_slice(args);
        Cli::try_parse_from(v).is_err()
    };
    assert!(
        bad(&["--tls", "--cert", "c.pem"]),
        "--cert needs --cert-key"
    );
    assert!(
        bad(&["--tls", "--cert-key", "c.key"]),
        "--cert-key needs --cert"
    );
    assert!(bad(&["--ws-path", "/m"]), "--ws-path needs --ws");
    // e2e takes the access key (--key) and the client key (--cert-key) side by side
    let c = Cli::try_parse_from([
        "evgrid-loadtest",
        "e2e",
        "--url",
        "https://localhost:8443/namespaces/default",
        "--key",
        "K",
        "--tls",
        "--cert",
        "c.pem",
        "--cert-key",
        "c.key",
    ])
    .unwrap();
    let Cmd::E2e(e) = c.cmd else {
        panic!("not e2e")
    };
    assert_eq!(e.ns.key.as_deref(), Some("K"));
    assert!(e.mqtt.transport.tls.cert_key.is_some());
    let c = Cli::try_parse_from([
        "evgrid-loadtest",
        "pull",
        "--url",
        "https://h/namespaces/n",
        "--topic",
        "t",
        "--subscription",
        "s",
        "--cafile",
        "ca.pem",
    ])
    .unwrap();
    let Cmd::Pull(p) = c.cmd else {
        panic!("not pull")
    };
    assert!(p.http.tls.cafile.is_some() && !p.http.tls.tls);
}
