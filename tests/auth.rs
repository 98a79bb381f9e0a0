//! Authentication and authorization of MQTT clients over real sockets (docs/eventgrid.md
//! §7.1–§7.5): `mqtt.allow_anonymous` meaning "clients without credentials are accepted",
//! registered passwords, the webhook authenticator, publish/subscribe/will authorization from
//! permission bindings built through the management API, revocation disconnecting connected
//! clients, sessions per authentication name; v3.1.1 and v5 reason codes.

mod common;

use std::time::Duration;

use common::http::{Resp, mgmt_json, request};
use common::raw::{Client, Opts};
use common::webhook::{Hook, Reply};
use common::{Server, wait_until};
use serde_json::{Value, json};

const ADMIN: &str = "test-admin-key-0123456789";
const NS: &str = "/mgmt/namespaces/default";

const PUBACK: u8 = 4;
const PUBREC: u8 = 5;
const SUBACK: u8 = 9;
const DISCONNECT: u8 = 14;
const PINGRESP: u8 = 13;

fn start(extra: &[(&str, &str)]) -> Server {
    let mut env = vec![("EVGRID_ADMIN_KEY", ADMIN), ("EVGRID_EVENTS_TICK_MS", "20")];
    env.extend_from_slice(extra);
    Server::start(&env)
}

fn put(srv: &Server, path: &str, props: Value) -> Resp {
    let r = mgmt_json(
        srv.http,
        ADMIN,
        "PUT",
        path,
        &json!({ "properties": props }),
    );
    assert!(r.status == 200 || r.status == 201, "PUT {path}: {r:?}");
    r
}

fn delete(srv: &Server, path: &str) {
    let r = mgmt_json(srv.http, ADMIN, "DELETE", path, &Value::Null);
    assert!(r.status == 200 || r.status == 204, "DELETE {path}: {r:?}");
}

fn client(srv: &Server, name: &str, password: &str, attrs: Value) {
    put(
        srv,
        &format!("{NS}/clients/{name}"),
        json!({"authenticationName": name, "password": password, "attributes": attrs}),
    );
}

fn metrics(srv: &Server) -> String {
    request(srv.http, "GET", "/metrics", &[], b"").body
}

fn metric(srv: &Server, line: &str) -> u64 {
    let m = metrics(srv);
    m.lines()
        .find_map(|l| l.strip_prefix(line)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("{line} not in metrics"))
}

fn code(srv: &Server, o: Opts) -> u8 {
    Client::connect(srv.mqtt, o).1.code
}

/// `mqtt.allow_anonymous = false`: no credentials, or a user name alone, is not authorized; a
/// wrong password is bad credentials; the right one connects. v5 and v3.1.1 codes.
#[test]
fn without_anonymous_access_credentials_are_required() {
    let (srv, log) = Server::start_capturing_stderr(&[
        ("EVGRID_ADMIN_KEY", ADMIN),
        ("EVGRID_MQTT_ALLOW_ANONYMOUS", "false"),
        ("RUST_LOG", "warn,evgrid::mqtt::auth=info"),
    ]);
    client(&srv, "dev-1", "s3cret-pw", json!({}));
    for v5 in [true, false] {
        let o = |id: &str| if v5 { Opts::v5(id) } else { Opts::v3(id) };
        let (not_authorized, bad) = if v5 { (0x87, 0x86) } else { (5, 4) };
        assert_eq!(
            code(&srv, o("c1")),
            not_authorized,
            "no credentials, v5 {v5}"
        );
        assert_eq!(
            code(&srv, o("c1").user("stranger")),
            not_authorized,
            "user name only, v5 {v5}"
        );
        assert_eq!(
            code(&srv, o("c1").user("dev-1").password(b"wrong")),
            bad,
            "wrong password, v5 {v5}"
        );
        // The registered name without its password.
        assert_eq!(code(&srv, o("c1").user("dev-1")), bad, "v5 {v5}");
        let c = Client::ok(srv.mqtt, o("c1").user("dev-1").password(b"s3cret-pw"));
        c.disconnect();
    }
    assert!(
        metric(
            &srv,
            "evgrid_mqtt_connects_total{method=\"password\",outcome=\"accepted\"}"
        ) >= 2
    );
    assert!(
        metric(
            &srv,
            "evgrid_mqtt_connects_total{method=\"password\",outcome=\"bad_credentials\"}"
        ) >= 4
    );
    assert!(
        metric(
            &srv,
            "evgrid_mqtt_connects_total{method=\"anonymous\",outcome=\"not_authorized\"}"
        ) >= 2
    );
    // One line per refusal naming the client, the method and the reason; never the password.
    let log = log.lock().unwrap().clone();
    let refused: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("mqtt connect refused"))
        .collect();
    assert_eq!(refused.len(), 8, "{log}");
    assert!(
        refused
            .iter()
            .any(|l| l.contains("c1") && l.contains("password") && l.contains("bad user name")),
        "{log}"
    );
    assert!(!log.contains("wrong") && !log.contains("s3cret"), "{log}");
}

/// `mqtt.allow_anonymous = true` (the default) accepts clients without credentials, with or
/// without a user name, but credentials that are presented are still checked.
#[test]
fn anonymous_access_accepts_only_clients_without_credentials() {
    let srv = start(&[]);
    client(&srv, "dev-1", "s3cret-pw", json!({}));
    for v5 in [true, false] {
        let o = |id: &str| if v5 { Opts::v5(id) } else { Opts::v3(id) };
        let bad = if v5 { 0x86 } else { 4 };
        assert_eq!(code(&srv, o("a1")), 0, "no credentials, v5 {v5}");
        assert_eq!(code(&srv, o("a2").user("someone")), 0, "user name, v5 {v5}");
        assert_eq!(
            code(&srv, o("a3").user("someone").password(b"pw")),
            bad,
            "a password for nobody, v5 {v5}"
        );
        assert_eq!(
            code(&srv, o("a4").user("dev-1").password(b"wrong")),
            bad,
            "v5 {v5}"
        );
        assert_eq!(
            code(&srv, o("a5").user("dev-1").password(b"s3cret-pw")),
            0,
            "v5 {v5}"
        );
    }
    // An authentication method other than CUSTOM-JWT: 0x8C.
    let o = Opts::v5("m1").prop(common::raw::Prop::Bytes(0x15, b"SCRAM-SHA-1".to_vec()));
    assert_eq!(code(&srv, o), 0x8C);
}

/// The namespace's authentication webhook decides for clients the registry does not know:
/// allow (with the name it gives), deny (0x87 / 0x05), no answer within 5 s (0x88 / 0x03). The
/// request carries the configured bearer token and the CONNECT's fields.
#[test]
fn webhook_authentication() {
    let hook = Hook::start(|r| {
        let id = r.json()["clientId"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if id.starts_with("slow") {
            std::thread::sleep(Duration::from_secs(7));
        }
        let body = if id.starts_with("steal") {
            json!({"decision": "allow", "clientAuthenticationName": "dev-1"})
        } else if id.starts_with("allow") {
            json!({"decision": "allow", "clientAuthenticationName": "hooked",
                "attributes": {"type": "sensor"}})
        } else {
            json!({"decision": "deny", "errorReason": "not on the list"})
        };
        Reply {
            status: 200,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: body.to_string().into_bytes(),
        }
    });
    let srv = start(&[
        ("EVGRID_MQTT_ALLOW_ANONYMOUS", "false"),
        ("EVGRID_MQTT_WEBHOOK_AUTH_TOKEN", "hook-token"),
    ]);
    put(
        &srv,
        NS,
        json!({"topicSpacesConfiguration": {"state": "Enabled",
            // Every allowed client is "hooked": no session limit in the way.
            "maximumClientSessionsPerAuthenticationName": 100,
            "clientAuthentication": {
            "webHookAuthentication": {"endpointUrl": hook.url("/auth")}}}}),
    );
    // The webhook's attributes select the client's group.
    put(
        &srv,
        &format!("{NS}/clientGroups/sensors"),
        json!({"query": "attributes.type = 'sensor'"}),
    );
    put(
        &srv,
        &format!("{NS}/topicSpaces/own"),
        json!({"topicTemplates": ["devices/${client.authenticationName}/telemetry"]}),
    );
    put(
        &srv,
        &format!("{NS}/permissionBindings/pub"),
        json!({"clientGroupName": "sensors", "topicSpaceName": "own", "permission": "Publisher"}),
    );
    let mut c = Client::ok(srv.mqtt, Opts::v5("allow-0").user("u"));
    assert_eq!(c.pub_wait("devices/hooked/telemetry", b"x", 1, false), 0);
    assert_eq!(c.pub_wait("devices/other/telemetry", b"x", 1, false), 0x87);
    c.disconnect();
    assert_eq!(code(&srv, Opts::v5("allow-1").user("u").password(b"pw")), 0);
    assert_eq!(code(&srv, Opts::v3("allow-2").user("u")), 0);
    assert_eq!(code(&srv, Opts::v5("deny-1").user("u")), 0x87);
    // The webhook may not vouch for a registered client's name.
    client(&srv, "dev-1", "pw-1", json!({}));
    assert_eq!(code(&srv, Opts::v5("steal-1").user("u")), 0x87);
    assert_eq!(code(&srv, Opts::v3("deny-2").user("u")), 5);
    let reqs = hook.requests();
    let first = reqs
        .iter()
        .find(|r| r.json()["clientId"] == "allow-1")
        .expect("asked");
    assert_eq!(first.method, "POST");
    assert_eq!(first.header("authorization"), Some("Bearer hook-token"));
    assert_eq!(first.json()["userName"], "u");
    assert_eq!(first.json()["password"], "cHc=");
    // Timeouts last: the recording server answers one request at a time.
    let t = std::time::Instant::now();
    assert_eq!(code(&srv, Opts::v5("slow-1").user("u")), 0x88);
    assert!(t.elapsed() < Duration::from_secs(7), "{:?}", t.elapsed());
    assert!(
        metric(
            &srv,
            "evgrid_mqtt_connects_total{method=\"webhook\",outcome=\"accepted\"}"
        ) >= 2
    );
    assert_eq!(
        metric(
            &srv,
            "evgrid_mqtt_connects_total{method=\"webhook\",outcome=\"not_authorized\"}"
        ),
        3
    );
    assert_eq!(
        metric(
            &srv,
            "evgrid_mqtt_connects_total{method=\"webhook\",outcome=\"unavailable\"}"
        ),
        1
    );
}

/// Two sensors, each allowed to publish and subscribe on `devices/${client.authenticationName}/
/// telemetry` through a group selected by attribute.
fn policy(srv: &Server) {
    // Reconnects under a new client id must not wait for the previous session to end.
    put(
        srv,
        NS,
        json!({"topicSpacesConfiguration": {"state": "Enabled",
            "maximumClientSessionsPerAuthenticationName": 10}}),
    );
    client(srv, "dev-1", "pw-1", json!({"type": "sensor"}));
    client(srv, "dev-2", "pw-2", json!({"type": "sensor"}));
    client(srv, "admin-1", "pw-a", json!({"type": "console"}));
    put(
        srv,
        &format!("{NS}/clientGroups/sensors"),
        json!({"query": "attributes.type = 'sensor'"}),
    );
    put(
        srv,
        &format!("{NS}/topicSpaces/own"),
        json!({"topicTemplates": ["devices/${client.authenticationName}/telemetry"]}),
    );
    for (b, perm) in [("pub", "Publisher"), ("sub", "Subscriber")] {
        put(
            srv,
            &format!("{NS}/permissionBindings/{b}"),
            json!({"clientGroupName": "sensors", "topicSpaceName": "own", "permission": perm}),
        );
    }
}

fn login(v5: bool, id: &str, user: &str, pw: &str) -> Opts {
    let o = if v5 { Opts::v5(id) } else { Opts::v3(id) };
    o.user(user).password(pw.as_bytes())
}

/// docs/eventgrid.md §7.5: PUBLISH outside the client's topic spaces gets PUBACK/PUBREC 0x87
/// (v5; QoS 0 dropped and counted) or a disconnect (v3.1.1); SUBSCRIBE outside them 0x87 /
/// 0x80; a will to such a topic refuses the CONNECT; a group the client is not in grants
/// nothing.
#[test]
fn publish_subscribe_and_will_authorization() {
    let srv = start(&[]);
    policy(&srv);
    let mut d1 = Client::ok(srv.mqtt, login(true, "d1", "dev-1", "pw-1"));
    let acks = d1.subscribe(1, &[("devices/dev-1/telemetry", 1), ("#", 1)], &[]);
    assert_eq!(acks, vec![1, 0x87]);
    let acks = d1.subscribe(2, &[("devices/dev-2/telemetry", 0)], &[]);
    assert_eq!(acks, vec![0x87]);
    assert_eq!(d1.pub_wait("devices/dev-1/telemetry", b"ok", 1, false), 0);
    assert_eq!(d1.next_msg().payload, b"ok");
    assert_eq!(
        d1.pub_wait("devices/dev-2/telemetry", b"no", 1, false),
        0x87
    );
    assert_eq!(
        d1.pub_wait("devices/dev-2/telemetry", b"no", 2, false),
        0x87
    );
    let before = metric(
        &srv,
        "evgrid_mqtt_authorization_denials_total{kind=\"publish\"}",
    );
    d1.publish("devices/dev-2/telemetry", b"dropped", 0, false, 0, &[]);
    wait_until("the QoS 0 denial counted", || {
        metric(
            &srv,
            "evgrid_mqtt_authorization_denials_total{kind=\"publish\"}",
        ) > before
    });
    // Still connected.
    d1.ping();
    d1.expect(PINGRESP);

    // A client outside the group (auto mode with bindings present): nothing.
    let mut a = Client::ok(srv.mqtt, login(true, "a1", "admin-1", "pw-a"));
    assert_eq!(
        a.subscribe(1, &[("devices/dev-1/telemetry", 0)], &[]),
        vec![0x87]
    );
    assert_eq!(a.pub_wait("devices/dev-1/telemetry", b"x", 1, false), 0x87);

    // v3.1.1: SUBACK 0x80; a PUBLISH out of bounds disconnects.
    let mut d2 = Client::ok(srv.mqtt, login(false, "d2", "dev-2", "pw-2"));
    assert_eq!(
        d2.subscribe(1, &[("#", 0), ("devices/dev-2/telemetry", 0)], &[]),
        vec![0x80, 0]
    );
    d2.publish("devices/dev-1/telemetry", b"no", 1, false, 7, &[]);
    assert!(d2.closed(), "v3.1.1 publisher disconnected");
    d1.expect_silence(Duration::from_millis(300));

    // A will to a topic the client may not publish to refuses the CONNECT.
    let o =
        login(true, "d2w", "dev-2", "pw-2").will("devices/dev-1/telemetry", b"x", 0, false, vec![]);
    assert_eq!(code(&srv, o), 0x87);
    let o = login(false, "d2w", "dev-2", "pw-2").will(
        "devices/dev-1/telemetry",
        b"x",
        0,
        false,
        vec![],
    );
    assert_eq!(code(&srv, o), 5);
    let o =
        login(true, "d2w", "dev-2", "pw-2").will("devices/dev-2/telemetry", b"x", 0, false, vec![]);
    assert_eq!(code(&srv, o), 0);
    assert!(
        metric(
            &srv,
            "evgrid_mqtt_authorization_denials_total{kind=\"will\"}"
        ) >= 2
    );
    let _ = (PUBACK, PUBREC, SUBACK);
}

/// docs/eventgrid.md §7.4: disabling or deleting a connected client disconnects it (v5 0x87,
/// v3.1.1 closed); narrowing its permissions below a subscription it holds disconnects it too.
#[test]
fn revocation_disconnects_connected_clients() {
    let srv = start(&[]);
    policy(&srv);
    let mut d1 = Client::ok(srv.mqtt, login(true, "d1", "dev-1", "pw-1"));
    let mut d2 = Client::ok(srv.mqtt, login(false, "d2", "dev-2", "pw-2"));
    put(
        &srv,
        &format!("{NS}/clients/dev-1"),
        json!({"authenticationName": "dev-1", "state": "Disabled", "attributes": {"type": "sensor"}}),
    );
    let p = d1.expect(DISCONNECT);
    assert_eq!(d1.disconnect_reason(&p), 0x87);
    assert_eq!(code(&srv, login(true, "d1", "dev-1", "pw-1")), 0x87);
    delete(&srv, &format!("{NS}/clients/dev-2"));
    assert!(d2.closed(), "deleted client disconnected");

    // Narrowed: a subscription no longer covered.
    client(&srv, "dev-3", "pw-3", json!({"type": "sensor"}));
    let mut d3 = Client::ok(srv.mqtt, login(true, "d3", "dev-3", "pw-3"));
    assert_eq!(
        d3.subscribe(1, &[("devices/dev-3/telemetry", 0)], &[]),
        vec![0]
    );
    let mut idle = Client::ok(srv.mqtt, login(true, "d4", "admin-1", "pw-a"));
    delete(&srv, &format!("{NS}/permissionBindings/sub"));
    let p = d3.expect(DISCONNECT);
    assert_eq!(d3.disconnect_reason(&p), 0x87);
    // A client that held nothing the change took stays.
    idle.ping();
    idle.expect(PINGRESP);
    // Publish rights taken away (its attributes leave the group): the policy is swapped in
    // place, no subscription being at stake.
    client(&srv, "dev-4", "pw-4", json!({"type": "sensor"}));
    let mut d4 = Client::ok(srv.mqtt, login(true, "d4p", "dev-4", "pw-4"));
    assert_eq!(d4.pub_wait("devices/dev-4/telemetry", b"x", 1, false), 0);
    client(&srv, "dev-4", "pw-4", json!({"type": "retired"}));
    wait_until("the narrower policy applied", || {
        d4.pub_wait("devices/dev-4/telemetry", b"x", 1, false) == 0x87
    });
    d4.ping();
    d4.expect(PINGRESP);
    assert!(
        metric(
            &srv,
            "evgrid_mqtt_auth_disconnects_total{reason=\"revoked\"}"
        ) >= 2
    );
    assert!(
        metric(
            &srv,
            "evgrid_mqtt_auth_disconnects_total{reason=\"narrowed\"}"
        ) >= 1
    );
}

/// A subscription revoked while its client was offline does not come back with the session:
/// resuming it is refused (v3.1.1 0x05, v5 0x87); a clean start connects, without it.
#[test]
fn a_revoked_subscription_does_not_come_back_with_the_session() {
    let srv = start(&[]);
    policy(&srv);
    client(&srv, "dev-5", "pw-5", json!({"type": "sensor"}));
    let mut c = Client::ok(srv.mqtt, login(false, "d5", "dev-5", "pw-5").clean(false));
    assert_eq!(
        c.subscribe(1, &[("devices/dev-5/telemetry", 1)], &[]),
        vec![1]
    );
    c.disconnect();
    delete(&srv, &format!("{NS}/permissionBindings/sub"));
    wait_until("the resumed session refused", || {
        code(&srv, login(false, "d5", "dev-5", "pw-5").clean(false)) == 5
    });
    assert_eq!(
        code(
            &srv,
            login(true, "d5", "dev-5", "pw-5")
                .prop(common::raw::Prop::Num(0x11, 300))
                .clean(false)
        ),
        0x87
    );
    // A clean start drops the session and its subscription.
    let mut c = Client::ok(srv.mqtt, login(false, "d5", "dev-5", "pw-5"));
    assert_eq!(
        c.subscribe(1, &[("devices/dev-5/telemetry", 1)], &[]),
        vec![0x80]
    );
    c.ping();
    c.expect(PINGRESP);
}

/// `maximumClientSessionsPerAuthenticationName` (default 1) over live sessions, connected or
/// not; the same name takes its own session over; another name may not use it (§7.1).
#[test]
fn sessions_per_authentication_name() {
    let srv = start(&[]);
    client(&srv, "dev-1", "pw-1", json!({}));
    client(&srv, "dev-2", "pw-2", json!({}));
    let _c1 = Client::ok(srv.mqtt, login(true, "s1", "dev-1", "pw-1"));
    assert_eq!(code(&srv, login(true, "s2", "dev-1", "pw-1")), 0x97);
    assert_eq!(code(&srv, login(false, "s2", "dev-1", "pw-1")), 3);
    // Takeover by the same name.
    let _c1b = Client::ok(srv.mqtt, login(true, "s1", "dev-1", "pw-1"));
    // Another name on that session.
    assert_eq!(code(&srv, login(true, "s1", "dev-2", "pw-2")), 0x87);
    assert_eq!(code(&srv, login(false, "s1", "dev-2", "pw-2")), 5);
    // A persistent session still counts once its connection is gone.
    let p = Client::ok(srv.mqtt, login(false, "p1", "dev-2", "pw-2").clean(false));
    p.disconnect();
    assert_eq!(code(&srv, login(true, "p2", "dev-2", "pw-2")), 0x97);
    assert!(
        metric(
            &srv,
            "evgrid_mqtt_connects_total{method=\"password\",outcome=\"quota\"}"
        ) >= 3
    );
    // Raised through the namespace.
    put(
        &srv,
        NS,
        json!({"topicSpacesConfiguration": {"state": "Enabled",
            "maximumClientSessionsPerAuthenticationName": 2}}),
    );
    wait_until("the new maximum applied", || {
        code(&srv, login(true, "p2", "dev-2", "pw-2")) == 0
    });
}

/// mosquitto_pub over TLS at QoS 1 (success: the PUBACK came back), with `args`.
fn mosquitto_pub(addr: std::net::SocketAddr, args: &[&str]) -> bool {
    let mut child = std::process::Command::new("mosquitto_pub")
        .args(["-h", "localhost", "-p", &addr.port().to_string()])
        .args(["-q", "1", "-t", "devices/x", "-m", "hi", "-i", "tls-pub"])
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("mosquitto_pub");
    let end = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(st) = child.try_wait().expect("wait") {
            return st.success();
        }
        if std::time::Instant::now() > end {
            let _ = child.kill();
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `mqtt.tls.client_auth = "request"`: any certificate passes the handshake (no `ca_file`), and
/// the CONNECT authenticates it against the registry: a registered thumbprint connects, another
/// self-signed certificate with the same name is bad credentials.
#[test]
fn requested_client_certificates_authenticate_by_thumbprint() {
    use evgrid::tls::dev::DevCa;
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let dir = common::TempDir::new("authtls");
    let w = |name: &str, text: &str| {
        let p = dir.0.join(name);
        std::fs::write(&p, text).expect("write");
        p.display().to_string()
    };
    let ca = DevCa::new("server CA").expect("ca");
    let ca_file = w("ca.pem", &ca.cert_pem());
    let (c, k) = ca
        .issue("localhost", &["localhost", "127.0.0.1"], false)
        .expect("server");
    let (server_cert, server_key) = (w("server.pem", &c), w("server.key", &k));
    let device = DevCa::new("device-1").expect("self-signed");
    let (dev_cert, dev_key) = (
        w("dev.pem", &device.cert_pem()),
        w("dev.key", &device.key_pem()),
    );
    let other = DevCa::new("device-1").expect("self-signed");
    let (oth_cert, oth_key) = (
        w("oth.pem", &other.cert_pem()),
        w("oth.key", &other.key_pem()),
    );
    let der = CertificateDer::from_pem_slice(device.cert_pem().as_bytes()).expect("pem");
    let thumb = evgrid::tls::peer::thumbprint(&der);
    let srv = start(&[
        ("EVGRID_MQTT_ALLOW_ANONYMOUS", "false"),
        ("EVGRID_MQTT_TLS_BIND", "127.0.0.1:0"),
        ("EVGRID_MQTT_TLS_CERT_FILE", &server_cert),
        ("EVGRID_MQTT_TLS_KEY_FILE", &server_key),
        ("EVGRID_MQTT_TLS_CLIENT_AUTH", "request"),
    ]);
    put(
        &srv,
        &format!("{NS}/clients/device-1"),
        json!({"authenticationName": "device-1", "clientCertificateAuthentication":
            {"validationScheme": "ThumbprintMatch", "allowedThumbprints": [thumb]}}),
    );
    let tls = srv.listener("mqtt-tls");
    let with = |cert: &str, key: &str| {
        mosquitto_pub(
            tls,
            &[
                "--cafile", &ca_file, "--cert", cert, "--key", key, "-u", "device-1",
            ],
        )
    };
    assert!(with(&dev_cert, &dev_key), "registered thumbprint connects");
    assert!(!with(&oth_cert, &oth_key), "another certificate is refused");
    assert!(
        !mosquitto_pub(tls, &["--cafile", &ca_file, "-u", "device-1"]),
        "no certificate, no password: refused"
    );
    assert!(
        metric(
            &srv,
            "evgrid_mqtt_connects_total{method=\"certificate\",outcome=\"accepted\"}"
        ) >= 1
    );
    assert!(
        metric(
            &srv,
            "evgrid_mqtt_connects_total{method=\"certificate\",outcome=\"bad_credentials\"}"
        ) >= 1
    );
}

/// The Disconnected lifecycle events of revoked clients say why (docs/eventgrid.md §7.7):
/// `ClientAuthenticationError` for a disabled client, `ClientAuthorizationError` for a
/// subscription the new permissions no longer cover; both name the registered authentication
/// name.
#[test]
fn revocations_reach_the_lifecycle_events() {
    let srv = start(&[("EVGRID_PUSH_RETRY_SCHEDULE_MS", "200,300,400")]);
    policy(&srv);
    let hook = Hook::ok();
    let r = mgmt_json(
        srv.http,
        ADMIN,
        "PUT",
        "/mgmt/systemTopics/devices",
        &json!({"properties": {"source": "/providers/Microsoft.EventGrid/namespaces/default",
            "topicType": "Microsoft.EventGrid.Namespaces"}}),
    );
    assert_eq!(r.status, 201, "{r:?}");
    let r = mgmt_json(
        srv.http,
        ADMIN,
        "PUT",
        "/mgmt/systemTopics/devices/eventSubscriptions/ops",
        &json!({"properties": {"destination": {"endpointType": "WebHook",
            "properties": {"endpointUrl": hook.url("/eg")}},
            "filter": {"includedEventTypes": ["Microsoft.EventGrid.MQTTClientSessionDisconnected"]}}}),
    );
    assert_eq!(r.status, 201, "{r:?}");
    let mut d1 = Client::ok(srv.mqtt, login(true, "d1", "dev-1", "pw-1"));
    let mut d2 = Client::ok(srv.mqtt, login(true, "d2", "dev-2", "pw-2"));
    assert_eq!(
        d2.subscribe(1, &[("devices/dev-2/telemetry", 0)], &[]),
        vec![0]
    );
    put(
        &srv,
        &format!("{NS}/clients/dev-1"),
        json!({"authenticationName": "dev-1", "state": "Disabled", "attributes": {"type": "sensor"}}),
    );
    d1.expect(DISCONNECT);
    delete(&srv, &format!("{NS}/permissionBindings/sub"));
    d2.expect(DISCONNECT);
    let reason_of = |session: &str| {
        let reqs = hook.wait(Duration::from_secs(20), session, |rs| {
            rs.iter()
                .flat_map(|r| r.events())
                .any(|e| e["data"]["clientSessionName"] == session)
        });
        let e = reqs
            .iter()
            .flat_map(|r| r.events())
            .find(|e| e["data"]["clientSessionName"] == session)
            .unwrap();
        (
            e["data"]["clientAuthenticationName"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            e["data"]["disconnectionReason"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        )
    };
    assert_eq!(
        reason_of("d1"),
        ("dev-1".into(), "ClientAuthenticationError".into())
    );
    assert_eq!(
        reason_of("d2"),
        ("dev-2".into(), "ClientAuthorizationError".into())
    );
}

/// `mqtt.authorization`: `bindings` allows nothing without a binding (Event Grid's rule); `off`
/// ignores the bindings a namespace has.
#[test]
fn authorization_modes() {
    let srv = start(&[("EVGRID_MQTT_AUTHORIZATION", "bindings")]);
    let mut c = Client::ok(srv.mqtt, Opts::v5("m1"));
    assert_eq!(c.pub_wait("a/b", b"x", 1, false), 0x87);
    assert_eq!(c.subscribe(1, &[("a/#", 1)], &[]), vec![0x87]);
    drop(srv);
    let srv = start(&[("EVGRID_MQTT_AUTHORIZATION", "off")]);
    policy(&srv);
    let mut c = Client::ok(srv.mqtt, login(true, "d1", "dev-1", "pw-1"));
    assert_eq!(c.pub_wait("devices/dev-2/telemetry", b"x", 1, false), 0);
    assert_eq!(c.subscribe(1, &[("#", 1)], &[]), vec![1]);
}
