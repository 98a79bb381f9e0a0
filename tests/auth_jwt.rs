//! MQTT 5 `CUSTOM-JWT` at the edge (docs/eventgrid.md §7.4 item 4), over real sockets: the token
//! in the CONNECT's Authentication Data, its expiry disconnecting the client (DISCONNECT 0x87),
//! re-authentication with AUTH 0x19 extending it (AUTH 0x00), a bad re-authentication
//! disconnecting; an anonymous client cannot pass for a token's name. Tokens are RS256, signed
//! with openssl.

mod common;

use std::path::Path;
use std::time::Duration;

use common::http::mgmt_json;
use common::raw::{Client, Opts, Prop, bytes, props};
use common::{Server, TempDir};
use serde_json::{Value, json};

const ADMIN: &str = "test-admin-key-0123456789";
const ISSUER: &str = "https://issuer.test";
const AUTH: u8 = 15;
const DISCONNECT: u8 = 14;
const PINGRESP: u8 = 13;

fn issuer(dir: &Path) -> (std::path::PathBuf, String) {
    common::jwt::rsa_issuer(dir, "iss")
}

fn token(dir: &Path, key: &Path, claims: Value) -> Vec<u8> {
    common::jwt::token(dir, key, &claims).into_bytes()
}

fn claims(sub: &str, aud: &str, exp: u64) -> Value {
    json!({"iss": ISSUER, "sub": sub, "aud": aud, "exp": exp, "nbf": common::jwt::now_s() - 10, "role": "sensor"})
}

fn jwt_opts(id: &str, tok: Vec<u8>) -> Opts {
    Opts::v5(id)
        .prop(Prop::Bytes(0x15, b"CUSTOM-JWT".to_vec()))
        .prop(Prop::Bytes(0x16, tok))
}

fn reauth(c: &mut Client, tok: Vec<u8>) {
    let mut body = vec![0x19];
    body.extend(props(&[
        Prop::Bytes(0x15, b"CUSTOM-JWT".to_vec()),
        Prop::Bytes(0x16, tok),
    ]));
    c.send(AUTH << 4, &body);
}

/// A server whose namespace trusts `pem`'s tokens for audience `mqtt.test`.
fn jwt_server(pem: &str, anonymous: bool) -> Server {
    let srv = Server::start(&[
        ("EVGRID_ADMIN_KEY", ADMIN),
        (
            "EVGRID_MQTT_ALLOW_ANONYMOUS",
            if anonymous { "true" } else { "false" },
        ),
        ("EVGRID_MQTT_HOSTNAME", "mqtt.test"),
    ]);
    let r = mgmt_json(
        srv.http,
        ADMIN,
        "PUT",
        "/mgmt/namespaces/default",
        &json!({"properties": {"topicSpacesConfiguration": {"state": "Enabled",
            "clientAuthentication": {"customJwtAuthentication": {"tokenIssuer": ISSUER,
                "issuerCertificates": [{"encodedCertificate": pem}]}}}}}),
    );
    assert!(r.status == 200 || r.status == 201, "{r:?}");
    srv
}

#[test]
fn custom_jwt_connect_expiry_and_reauthentication() {
    let dir = TempDir::new("jwt");
    let (key, pem) = issuer(&dir.0);
    let srv = jwt_server(&pem, false);

    // Wrong audience, expired: bad credentials.
    let bad = token(
        &dir.0,
        &key,
        claims("dev-1", "elsewhere", common::jwt::now_s() + 60),
    );
    assert_eq!(Client::connect(srv.mqtt, jwt_opts("j0", bad)).1.code, 0x86);
    let old = token(
        &dir.0,
        &key,
        claims("dev-1", "mqtt.test", common::jwt::now_s() - 60),
    );
    assert_eq!(Client::connect(srv.mqtt, jwt_opts("j0", old)).1.code, 0x86);

    // A token that expires in 2 s ends the connection then.
    let short = token(
        &dir.0,
        &key,
        claims("dev-1", "mqtt.test", common::jwt::now_s() + 2),
    );
    let mut c = Client::ok(srv.mqtt, jwt_opts("j1", short));
    c.set_timeout(Duration::from_secs(6));
    let p = c.expect(DISCONNECT);
    assert_eq!(c.disconnect_reason(&p), 0x87);

    // Re-authenticated before it expires: AUTH 0x00, and still connected after the first exp.
    let short = token(
        &dir.0,
        &key,
        claims("dev-1", "mqtt.test", common::jwt::now_s() + 2),
    );
    let mut c = Client::ok(srv.mqtt, jwt_opts("j2", short));
    let long = token(
        &dir.0,
        &key,
        claims("dev-1", "mqtt.test", common::jwt::now_s() + 600),
    );
    reauth(&mut c, long);
    let p = c.expect(AUTH);
    assert_eq!(p.body.first().copied().unwrap_or(0), 0, "AUTH success");
    std::thread::sleep(Duration::from_secs(4));
    c.ping();
    c.expect(PINGRESP);

    // A re-authentication that does not verify (another name): DISCONNECT 0x87.
    let other = token(
        &dir.0,
        &key,
        claims("dev-2", "mqtt.test", common::jwt::now_s() + 600),
    );
    reauth(&mut c, other);
    let p = c.expect(DISCONNECT);
    assert_eq!(c.disconnect_reason(&p), 0x87);
    assert!(c.closed());
}

/// With anonymous access on beside custom JWTs, a client without credentials that gives a
/// token holder's name as its user name may neither take that holder's session over nor pass
/// for its name while it holds a session; the CONNACK to a CUSTOM-JWT CONNECT names the method
/// [MQTT-4.12.0-5].
#[test]
fn anonymous_clients_cannot_pass_for_a_token_holder() {
    let dir = TempDir::new("jwt-anon");
    let (key, pem) = issuer(&dir.0);
    let srv = jwt_server(&pem, true);
    let tok = token(
        &dir.0,
        &key,
        claims("bob", "mqtt.test", common::jwt::now_s() + 600),
    );
    // A persistent session (expiry 300 s).
    let (bob, ack) = Client::connect(srv.mqtt, jwt_opts("c1", tok).prop(Prop::Num(0x11, 300)));
    assert_eq!(ack.code, 0);
    assert_eq!(bytes(&ack.props, 0x15).as_deref(), Some(&b"CUSTOM-JWT"[..]));
    let anon = |id: &str, user: &str| Client::connect(srv.mqtt, Opts::v5(id).user(user)).1.code;
    assert_eq!(
        anon("c1", "bob"),
        0x87,
        "took the token holder's session over"
    );
    assert_eq!(
        anon("c2", "BOB"),
        0x87,
        "passed for the token holder's name"
    );
    assert_eq!(
        anon("c3", "alice"),
        0,
        "anonymous access itself still works"
    );
    // Still refused once bob is offline: the session it left holds the name.
    bob.disconnect();
    assert_eq!(anon("c1", "bob"), 0x87);
    assert_eq!(anon("c4", "bob"), 0x87);
}
