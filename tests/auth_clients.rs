//! Identity with real clients (issue 18's test list): `mosquitto_pub`/`mosquitto_sub` with client
//! certificates that chain to a registered CA certificate (right and wrong) and with user names
//! and passwords (right and wrong); paho-mqtt MQTT 5 with `CUSTOM-JWT` (valid, expired, wrong
//! audience, wrong issuer, wrong key); paho-mqtt 3.1.1 and 5 refused a subscription to
//! `test/nosubscribe` by a policy that does not grant it — the case of the Eclipse Paho
//! interoperability suite's `test_subscribe_failure`. The test command installs mosquitto-clients,
//! openssl and paho-mqtt 2.1.0 (`target/sdk-venv`).

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::http::mgmt_json;
use common::{Server, TempDir, wait_until};
use evgrid::tls::dev::DevCa;
use serde_json::{Value, json};

const ADMIN: &str = "test-admin-key-0123456789";
const NS: &str = "/mgmt/namespaces/default";

fn put(srv: &Server, path: &str, props: Value) {
    let r = mgmt_json(
        srv.http,
        ADMIN,
        "PUT",
        path,
        &json!({ "properties": props }),
    );
    assert!(r.status == 200 || r.status == 201, "PUT {path}: {r:?}");
}

/// Files in a temporary directory.
struct Files(TempDir);

impl Files {
    fn new(tag: &str) -> Files {
        Files(TempDir::new(tag))
    }
    fn write(&self, name: &str, text: &str) -> String {
        let p = self.0.0.join(name);
        std::fs::write(&p, text).expect("write");
        p.display().to_string()
    }
    fn dir(&self) -> &Path {
        &self.0.0
    }
}

/// Runs a mosquitto client to completion (10 s at most); whether it succeeded.
fn mosquitto(tool: &str, args: &[&str]) -> bool {
    let child = Command::new(tool)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{tool}: {e} (the test command installs mosquitto-clients)"));
    finish(child, Duration::from_secs(10)).is_some_and(|o| o.status.success())
}

/// Waits for `child` (killed after `within`); its output, or `None` when it had to be killed.
fn finish(mut child: Child, within: Duration) -> Option<std::process::Output> {
    let end = Instant::now() + within;
    loop {
        if child.try_wait().expect("wait").is_some() {
            return child.wait_with_output().ok();
        }
        if Instant::now() > end {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn port(a: SocketAddr) -> String {
    a.port().to_string()
}

/// A CA registered as `caCertificates/fleet-ca` signs device certificates whose subject names
/// the client (`SubjectMatchesAuthenticationName`, the default scheme): mosquitto_sub connects
/// over TLS with one and receives what mosquitto_pub, signed in with a user name and password,
/// publishes. A certificate from an unregistered CA, one naming another client, and a wrong
/// password are refused; with `alternativeAuthenticationNameSources` the certificate alone names
/// the client.
#[test]
fn mosquitto_clients_with_ca_signed_certificates_and_passwords() {
    let f = Files::new("authmosq");
    let server_ca = DevCa::new("server CA").expect("ca");
    let ca_file = f.write("server-ca.pem", &server_ca.cert_pem());
    let (c, k) = server_ca
        .issue("localhost", &["localhost", "127.0.0.1"], false)
        .expect("server certificate");
    let (server_cert, server_key) = (f.write("server.pem", &c), f.write("server.key", &k));
    let fleet = DevCa::new("fleet CA").expect("fleet ca");
    let rogue = DevCa::new("fleet CA").expect("rogue ca");
    let leaf = |ca: &DevCa, cn: &str, tag: &str| {
        let (c, k) = ca.issue(cn, &[], true).expect("device certificate");
        (
            f.write(&format!("{tag}.pem"), &c),
            f.write(&format!("{tag}.key"), &k),
        )
    };
    let good = leaf(&fleet, "sensor-7", "good");
    let forged = leaf(&rogue, "sensor-7", "forged");
    let other = leaf(&fleet, "sensor-8", "other");

    let srv = Server::start(&[
        ("EVGRID_ADMIN_KEY", ADMIN),
        ("EVGRID_MQTT_ALLOW_ANONYMOUS", "false"),
        ("EVGRID_MQTT_TLS_BIND", "127.0.0.1:0"),
        ("EVGRID_MQTT_TLS_CERT_FILE", &server_cert),
        ("EVGRID_MQTT_TLS_KEY_FILE", &server_key),
        ("EVGRID_MQTT_TLS_CLIENT_AUTH", "request"),
    ]);
    put(
        &srv,
        &format!("{NS}/caCertificates/fleet-ca"),
        json!({"encodedCertificate": fleet.cert_pem()}),
    );
    put(
        &srv,
        &format!("{NS}/clients/sensor-7"),
        json!({"authenticationName": "sensor-7"}),
    );
    put(
        &srv,
        &format!("{NS}/clients/app-1"),
        json!({"authenticationName": "app-1", "password": "app-secret"}),
    );
    let (tls, plain) = (port(srv.listener("mqtt-tls")), port(srv.mqtt));
    let tls_args = |(cert, key): &(String, String), user: Option<&str>| {
        let mut a = vec![
            "-h".to_string(),
            "localhost".into(),
            "-p".into(),
            tls.clone(),
            "--cafile".into(),
            ca_file.clone(),
            "--cert".into(),
            cert.clone(),
            "--key".into(),
            key.clone(),
        ];
        if let Some(u) = user {
            a.extend(["-u".to_string(), u.to_string()]);
        }
        a
    };
    let pub_tls = |cert: &(String, String), user: Option<&str>, id: &str| {
        let mut a = tls_args(cert, user);
        a.extend(["-i", id, "-q", "1", "-t", "devices/x", "-m", "m"].map(String::from));
        mosquitto(
            "mosquitto_pub",
            &a.iter().map(String::as_str).collect::<Vec<_>>(),
        )
    };
    assert!(
        pub_tls(&good, Some("sensor-7"), "p1"),
        "CA-signed, right name"
    );
    assert!(!pub_tls(&forged, Some("sensor-7"), "p2"), "unregistered CA");
    assert!(
        !pub_tls(&other, Some("sensor-7"), "p3"),
        "certificate names sensor-8"
    );
    assert!(
        !pub_tls(&other, Some("sensor-8"), "p4"),
        "sensor-8 is not a registered client"
    );
    assert!(
        !pub_tls(&good, None, "p5"),
        "no user name and no alternative name source"
    );
    let password = |user: &str, pw: &str, id: &str| {
        mosquitto(
            "mosquitto_pub",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &plain,
                "-i",
                id,
                "-u",
                user,
                "-P",
                pw,
                "-q",
                "1",
                "-t",
                "devices/y",
                "-m",
                "m",
            ],
        )
    };
    assert!(password("app-1", "app-secret", "p6"), "right password");
    assert!(!password("app-1", "wrong", "p7"), "wrong password");
    assert!(
        !mosquitto(
            "mosquitto_pub",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &plain,
                "-i",
                "p8",
                "-t",
                "devices/y",
                "-m",
                "m"
            ]
        ),
        "no credentials without anonymous access"
    );

    // The certificate alone, its subject naming the client.
    put(
        &srv,
        NS,
        json!({"topicSpacesConfiguration": {"clientAuthentication":
            {"alternativeAuthenticationNameSources": ["ClientCertificateSubject"]}}}),
    );
    let subs = srv.metric("evgrid_mqtt_subscriptions");
    let mut a = tls_args(&good, None);
    a.extend(
        [
            "-i",
            "s1",
            "-q",
            "1",
            "-t",
            "devices/sensor-7/#",
            "-C",
            "1",
            "-W",
            "15",
        ]
        .map(String::from),
    );
    let sub = Command::new("mosquitto_sub")
        .args(&a)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mosquitto_sub");
    wait_until("mosquitto_sub subscribed", || {
        srv.metric("evgrid_mqtt_subscriptions") > subs
    });
    assert!(mosquitto(
        "mosquitto_pub",
        &[
            "-h",
            "127.0.0.1",
            "-p",
            &plain,
            "-i",
            "p9",
            "-u",
            "app-1",
            "-P",
            "app-secret",
            "-q",
            "1",
            "-t",
            "devices/sensor-7/cmd",
            "-m",
            "from-app",
        ],
    ));
    let out = finish(sub, Duration::from_secs(15)).expect("mosquitto_sub ended");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "from-app");
    let connects = |outcome: &str| {
        srv.metric(&format!(
            "evgrid_mqtt_connects_total{{method=\"certificate\",outcome=\"{outcome}\"}}"
        ))
    };
    assert!(connects("accepted") >= 2.0);
    assert!(connects("bad_credentials") >= 1.0);
}

/// Runs `tests/auth/paho_client.py` with `args`; its JSON report.
fn paho(args: &[&str]) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/auth/paho_client.py");
    let child = Command::new(common::paho_python())
        .arg(script)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python");
    let out = finish(child, Duration::from_secs(40)).expect("paho client finished");
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:?}"))
}

/// paho-mqtt over MQTT 5 with `CUSTOM-JWT` (docs/eventgrid.md §7.4 item 4): a token from the
/// configured issuer for this server's host name connects, and its claims are attributes a group
/// query selects on (the policy grants `devices/${client.authenticationName}/#` to
/// `attributes.role = 'sensor'`); expired, wrong audience, wrong issuer and a token signed by
/// another key are bad credentials (0x86).
#[test]
fn paho_mqtt5_custom_jwt() {
    let f = Files::new("authjwt");
    let (key, pem) = common::jwt::rsa_issuer(f.dir(), "issuer");
    let (other_key, _) = common::jwt::rsa_issuer(f.dir(), "other");
    let srv = Server::start(&[
        ("EVGRID_ADMIN_KEY", ADMIN),
        ("EVGRID_MQTT_ALLOW_ANONYMOUS", "false"),
        ("EVGRID_MQTT_HOSTNAME", "mqtt.example.test"),
    ]);
    put(
        &srv,
        NS,
        json!({"topicSpacesConfiguration": {"state": "Enabled",
            "clientAuthentication": {"customJwtAuthentication": {
                "tokenIssuer": "https://issuer.example.test",
                "issuerCertificates": [{"encodedCertificate": pem}]}}}}),
    );
    put(
        &srv,
        &format!("{NS}/clientGroups/sensors"),
        json!({"query": "attributes.role = 'sensor'"}),
    );
    put(
        &srv,
        &format!("{NS}/topicSpaces/own"),
        json!({"topicTemplates": ["devices/${client.authenticationName}/#"]}),
    );
    for (b, perm) in [("own-pub", "Publisher"), ("own-sub", "Subscriber")] {
        put(
            &srv,
            &format!("{NS}/permissionBindings/{b}"),
            json!({"clientGroupName": "sensors", "topicSpaceName": "own", "permission": perm}),
        );
    }
    let claims = |iss: &str, aud: &str, exp: u64| {
        json!({"iss": iss, "sub": "dev-42", "aud": [aud], "exp": exp, "nbf": common::jwt::now_s() - 5,
               "role": "sensor"})
    };
    let iss = "https://issuer.example.test";
    let p = port(srv.mqtt);
    let connect = |token: &str, extra: &[&str]| {
        let mut a = vec![
            "--port",
            &p,
            "--version",
            "5",
            "--id",
            "jwt-1",
            "--jwt",
            token,
        ];
        a.extend_from_slice(extra);
        paho(&a)
    };

    let good = common::jwt::token(
        f.dir(),
        &key,
        &claims(iss, "mqtt.example.test", common::jwt::now_s() + 300),
    );
    let r = connect(
        &good,
        &[
            "--sub",
            "devices/dev-42/#",
            "--pub",
            "devices/dev-42/t",
            "--expect",
            "1",
        ],
    );
    assert_eq!(r["connack"], 0, "{r}");
    assert_eq!(r["suback"], json!([1]), "{r}");
    assert_eq!(r["puback"], 0, "{r}");
    assert_eq!(r["received"], json!(["hello"]), "{r}");
    let denied = connect(
        &good,
        &["--sub", "devices/dev-43/#", "--pub", "devices/dev-43/t"],
    );
    assert_eq!(denied["suback"], json!([0x87]), "{denied}");
    assert_eq!(denied["puback"], 0x87, "{denied}");

    for (what, token) in [
        (
            "expired",
            common::jwt::token(
                f.dir(),
                &key,
                &claims(iss, "mqtt.example.test", common::jwt::now_s() - 60),
            ),
        ),
        (
            "wrong audience",
            common::jwt::token(
                f.dir(),
                &key,
                &claims(iss, "elsewhere.test", common::jwt::now_s() + 300),
            ),
        ),
        (
            "wrong issuer",
            common::jwt::token(
                f.dir(),
                &key,
                &claims(
                    "https://other.test",
                    "mqtt.example.test",
                    common::jwt::now_s() + 300,
                ),
            ),
        ),
        (
            "another key",
            common::jwt::token(
                f.dir(),
                &other_key,
                &claims(iss, "mqtt.example.test", common::jwt::now_s() + 300),
            ),
        ),
    ] {
        let r = connect(&token, &[]);
        assert_eq!(r["connack"], 0x86, "{what}: {r}");
    }
}

/// The Eclipse Paho interoperability suite's `test_subscribe_failure` subscribes to
/// `test/nosubscribe` and expects a failure return code. With a policy that grants the suite's
/// topics (`TopicA/#`) but not that one, paho-mqtt 3.1.1 gets SUBACK 0x80 and MQTT 5 gets 0x87
/// (Not authorized), while a granted filter gets its QoS.
#[test]
fn paho_subscribe_failure_under_a_policy() {
    let srv = Server::start(&[("EVGRID_ADMIN_KEY", ADMIN)]);
    put(
        &srv,
        &format!("{NS}/topicSpaces/interop"),
        json!({"topicTemplates": ["TopicA/#"]}),
    );
    for (b, perm) in [("all-pub", "Publisher"), ("all-sub", "Subscriber")] {
        put(
            &srv,
            &format!("{NS}/permissionBindings/{b}"),
            json!({"clientGroupName": "$all", "topicSpaceName": "interop", "permission": perm}),
        );
    }
    let p = port(srv.mqtt);
    for (version, refused) in [("3", 0x80), ("5", 0x87)] {
        let r = paho(&[
            "--port",
            &p,
            "--version",
            version,
            "--id",
            "myclientid",
            "--sub",
            "test/nosubscribe",
        ]);
        assert_eq!(r["connack"], 0, "v{version}: {r}");
        assert_eq!(r["suback"], json!([refused]), "v{version}: {r}");
        let ok = paho(&[
            "--port",
            &p,
            "--version",
            version,
            "--id",
            "myclientid2",
            "--sub",
            "TopicA/B",
        ]);
        assert_eq!(ok["suback"], json!([1]), "v{version}: {ok}");
    }
}
