//! A namespace's identity resources (docs/eventgrid.md §7.2–§7.5, §7.7, §7.9) against the real
//! binary over real HTTP: CRUD of clients, CA certificates, client groups (with the built-in
//! `$all`), topic spaces and permission bindings; their 400s with Event Grid error bodies; the
//! per-namespace limits; references between bindings, groups and spaces; the fixed
//! `authenticationName`; the password never shown; persistence across a restart and deletion
//! with the namespace; `topicSpacesConfiguration.clientAuthentication`, `quotas` and `hostname`;
//! the resource file; and `MQTTClientCreatedOrUpdated` / `MQTTClientDeleted` at a webhook of the
//! namespace's system topic.

mod common;

use std::path::Path;
use std::time::Duration;

use common::http::{Resp, mgmt_json};
use common::webhook::Hook;
use common::{Server, TempDir};
use serde_json::{Value, json};

const ADMIN: &str = "test-admin-key-0123456789";
const NS: &str = "/mgmt/namespaces/default";

fn env<'a>(extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut env = vec![("EVGRID_ADMIN_KEY", ADMIN), ("EVGRID_EVENTS_TICK_MS", "20")];
    env.extend_from_slice(extra);
    env
}

fn call(srv: &Server, method: &str, path: &str, body: &Value) -> Resp {
    mgmt_json(srv.http, ADMIN, method, path, body)
}

fn put(srv: &Server, path: &str, props: Value) -> Resp {
    call(srv, "PUT", path, &json!({ "properties": props }))
}

fn get(srv: &Server, path: &str) -> Resp {
    call(srv, "GET", path, &Value::Null)
}

fn delete(srv: &Server, path: &str) -> Resp {
    call(srv, "DELETE", path, &Value::Null)
}

fn bad(r: &Resp, want: &str) {
    assert_eq!(r.status, 400, "{r:?}");
    assert_eq!(r.code(), "BadRequest", "{r:?}");
    assert!(r.message().contains(want), "{want:?} not in {r:?}");
}

fn names(r: &Resp) -> Vec<String> {
    assert_eq!(r.status, 200, "{r:?}");
    r.json()["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap().to_string())
        .collect()
}

/// A self-signed RSA certificate made with openssl (CN `cn`), as PEM.
fn rsa_cert(dir: &Path, cn: &str) -> String {
    common::jwt::rsa_self_signed(dir, cn, cn).1
}

#[test]
fn clients_crud_and_their_rules() {
    let srv = Server::start(&env(&[]));
    let r = put(
        &srv,
        &format!("{NS}/clients/dev-1"),
        json!({"authenticationName": "Device-1", "description": "first",
            "attributes": {"type": "sensor", "floor": 3, "tags": ["a"], "on": true},
            "password": "s3cret-pw"}),
    );
    assert_eq!(r.status, 201, "{r:?}");
    let doc = r.json();
    assert_eq!(
        doc["id"],
        "/providers/Microsoft.EventGrid/namespaces/default/clients/dev-1"
    );
    assert_eq!(doc["type"], "Microsoft.EventGrid/namespaces/clients");
    assert_eq!(doc["name"], "dev-1");
    let p = &doc["properties"];
    assert_eq!(p["authenticationName"], "Device-1");
    assert_eq!(p["state"], "Enabled");
    assert_eq!(
        p["clientCertificateAuthentication"]["validationScheme"],
        "SubjectMatchesAuthenticationName"
    );
    assert_eq!(p["attributes"]["floor"], 3);
    // The password never comes back, nor its hash.
    for r in [
        &r,
        &get(&srv, &format!("{NS}/clients/DEV-1")),
        &get(&srv, &format!("{NS}/clients")),
    ] {
        assert!(!r.body.contains("s3cret"), "{r:?}");
        assert!(!r.body.contains("pbkdf2"), "{r:?}");
        assert!(!r.body.contains("password"), "{r:?}");
    }
    assert_eq!(get(&srv, &format!("{NS}/clients/DEV-1")).json(), doc);

    // Update: 200; the authentication name is fixed once created.
    let r = put(
        &srv,
        &format!("{NS}/clients/dev-1"),
        json!({"state": "Disabled"}),
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json()["properties"]["state"], "Disabled");
    assert_eq!(r.json()["properties"]["authenticationName"], "Device-1");
    bad(
        &put(
            &srv,
            &format!("{NS}/clients/dev-1"),
            json!({"authenticationName": "other"}),
        ),
        "properties.authenticationName cannot be changed once the client exists: client 'dev-1' authenticates as 'Device-1'",
    );
    // Authentication names are unique per namespace, case-insensitively.
    let dup = put(
        &srv,
        &format!("{NS}/clients/dev-2"),
        json!({"authenticationName": "DEVICE-1"}),
    );
    assert_eq!(
        dup.message(),
        "The authenticationName 'DEVICE-1' is already used by client 'dev-1' in this namespace (authentication names are unique, case-insensitively)."
    );
    bad(&dup, "already used");
    // Validation errors with their sentences.
    bad(
        &put(&srv, &format!("{NS}/clients/x"), json!({})),
        "3 to 50 characters",
    );
    bad(
        &put(&srv, &format!("{NS}/clients/dev-3"), json!({"state": "On"})),
        "properties.state must be 'Enabled' or 'Disabled', got 'On'",
    );
    bad(
        &put(
            &srv,
            &format!("{NS}/clients/dev-3"),
            json!({"attributes": {"a-b": 1}}),
        ),
        "letters, digits and underscores",
    );
    bad(
        &put(
            &srv,
            &format!("{NS}/clients/dev-3"),
            json!({"clientCertificateAuthentication": {"validationScheme": "ThumbprintMatch"}}),
        ),
        "allowedThumbprints is required",
    );
    bad(
        &put(
            &srv,
            &format!("{NS}/clients/dev-3"),
            json!({"clientCertificateAuthentication": {"allowedThumbprints": ["AB"]}}),
        ),
        "only allowed with validationScheme 'ThumbprintMatch'",
    );
    let thumb = "ab".repeat(32);
    let r = put(
        &srv,
        &format!("{NS}/clients/dev-3"),
        json!({"clientCertificateAuthentication": {"validationScheme": "ThumbprintMatch",
            "allowedThumbprints": [thumb]}}),
    );
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(
        r.json()["properties"]["clientCertificateAuthentication"]["allowedThumbprints"][0],
        "AB".repeat(32)
    );
    assert_eq!(
        names(&get(&srv, &format!("{NS}/clients"))),
        ["dev-1", "dev-3"]
    );

    // Delete: 200, then 204; a GET is a 404 with an error body.
    assert_eq!(delete(&srv, &format!("{NS}/clients/dev-1")).status, 200);
    assert_eq!(delete(&srv, &format!("{NS}/clients/dev-1")).status, 204);
    let gone = get(&srv, &format!("{NS}/clients/dev-1"));
    assert_eq!(gone.status, 404, "{gone:?}");
    assert_eq!(gone.code(), "ResourceNotFound");
    // Its authentication name is free again.
    let r = put(
        &srv,
        &format!("{NS}/clients/dev-2"),
        json!({"authenticationName": "DEVICE-1"}),
    );
    assert_eq!(r.status, 201, "{r:?}");
    // Unknown namespace; no admin key.
    assert_eq!(get(&srv, "/mgmt/namespaces/nope/clients").status, 404);
    let r = common::http::request(srv.http, "GET", &format!("{NS}/clients"), &[], b"");
    assert_eq!(r.status, 401);
}

#[test]
fn groups_spaces_bindings_and_all() {
    let srv = Server::start(&env(&[]));
    // `$all` is built in: listed, readable, never edited.
    assert_eq!(names(&get(&srv, &format!("{NS}/clientGroups"))), ["$all"]);
    let all = get(&srv, &format!("{NS}/clientGroups/$all"));
    assert_eq!(all.status, 200, "{all:?}");
    assert_eq!(
        all.json()["type"],
        "Microsoft.EventGrid/namespaces/clientGroups"
    );
    for r in [
        put(
            &srv,
            &format!("{NS}/clientGroups/$all"),
            json!({"query": "attributes.a = 1"}),
        ),
        delete(&srv, &format!("{NS}/clientGroups/$all")),
    ] {
        assert_eq!(
            r.message(),
            "The client group '$all' is built in: it cannot be edited or deleted."
        );
        bad(&r, "cannot be edited or deleted");
    }

    // Groups parse their query at PUT.
    bad(
        &put(&srv, &format!("{NS}/clientGroups/sensors"), json!({})),
        "properties.query is required",
    );
    bad(
        &put(
            &srv,
            &format!("{NS}/clientGroups/sensors"),
            json!({"query": "attributes.type ="}),
        ),
        "properties.query is invalid: ",
    );
    let g = put(
        &srv,
        &format!("{NS}/clientGroups/sensors"),
        json!({"query": "attributes.type = 'sensor'", "description": "all sensors"}),
    );
    assert_eq!(g.status, 201, "{g:?}");
    assert_eq!(
        g.json()["properties"]["query"],
        "attributes.type = 'sensor'"
    );

    // Topic spaces parse their templates.
    bad(
        &put(
            &srv,
            &format!("{NS}/topicSpaces/telemetry"),
            json!({"topicTemplates": []}),
        ),
        "topicTemplates is required",
    );
    bad(
        &put(
            &srv,
            &format!("{NS}/topicSpaces/telemetry"),
            json!({"topicTemplates": ["a/${client.nope}"]}),
        ),
        "topicTemplates[0] 'a/${client.nope}' is invalid",
    );
    bad(
        &put(
            &srv,
            &format!("{NS}/topicSpaces/telemetry"),
            json!({"topicTemplates": vec!["a"; 11]}),
        ),
        "at most 10",
    );
    let s = put(
        &srv,
        &format!("{NS}/topicSpaces/telemetry"),
        json!({"topicTemplates": ["devices/${client.authenticationName}/telemetry"]}),
    );
    assert_eq!(s.status, 201, "{s:?}");
    assert_eq!(
        s.json()["id"],
        "/providers/Microsoft.EventGrid/namespaces/default/topicSpaces/telemetry"
    );

    // Bindings name groups and spaces that exist.
    let b = |group: &str, space: &str| json!({"clientGroupName": group, "topicSpaceName": space, "permission": "Publisher"});
    bad(
        &put(
            &srv,
            &format!("{NS}/permissionBindings/bind-1"),
            b("nope", "telemetry"),
        ),
        "properties.clientGroupName names the client group 'nope', which does not exist in this namespace",
    );
    bad(
        &put(
            &srv,
            &format!("{NS}/permissionBindings/bind-1"),
            b("sensors", "nope"),
        ),
        "properties.topicSpaceName names the topic space 'nope', which does not exist",
    );
    bad(
        &put(
            &srv,
            &format!("{NS}/permissionBindings/bind-1"),
            json!({"clientGroupName": "sensors", "topicSpaceName": "telemetry", "permission": "Owner"}),
        ),
        "'Publisher' or 'Subscriber', got 'Owner'",
    );
    let r = put(
        &srv,
        &format!("{NS}/permissionBindings/bind-1"),
        b("Sensors", "TELEMETRY"),
    );
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(
        r.json()["type"],
        "Microsoft.EventGrid/namespaces/permissionBindings"
    );
    let r = put(
        &srv,
        &format!("{NS}/permissionBindings/bind-2"),
        b("$all", "telemetry"),
    );
    assert_eq!(r.status, 201, "{r:?}");

    // A bound group or space cannot be deleted; once unbound it can.
    bad(
        &delete(&srv, &format!("{NS}/clientGroups/sensors")),
        "The client group 'sensors' is used by the permission binding 'bind-1'",
    );
    bad(
        &delete(&srv, &format!("{NS}/topicSpaces/telemetry")),
        "used by the permission binding",
    );
    assert_eq!(
        delete(&srv, &format!("{NS}/permissionBindings/bind-1")).status,
        200
    );
    assert_eq!(
        delete(&srv, &format!("{NS}/clientGroups/sensors")).status,
        200
    );
    assert_eq!(
        delete(&srv, &format!("{NS}/permissionBindings/bind-2")).status,
        200
    );
    assert_eq!(
        delete(&srv, &format!("{NS}/topicSpaces/telemetry")).status,
        200
    );
    // Paths are case-insensitive, like the rest of the API.
    assert_eq!(names(&get(&srv, &format!("{NS}/CLIENTGROUPS"))), ["$all"]);
}

#[test]
fn limits_per_namespace() {
    let dir = TempDir::new("idlimits");
    let srv = Server::start(&env(&[]));
    for i in 0..10 {
        let r = put(
            &srv,
            &format!("{NS}/clientGroups/g{i:02}"),
            json!({"query": "attributes.a = 1"}),
        );
        assert_eq!(r.status, 201, "{r:?}");
        let r = put(
            &srv,
            &format!("{NS}/topicSpaces/s{i:02}"),
            json!({"topicTemplates": ["t"]}),
        );
        assert_eq!(r.status, 201, "{r:?}");
    }
    let r = put(
        &srv,
        &format!("{NS}/clientGroups/g10"),
        json!({"query": "attributes.a = 1"}),
    );
    assert_eq!(
        r.message(),
        "The namespace already has 10 client groups, the most it may have besides the built-in '$all' (limit 10); delete one first."
    );
    bad(&r, "limit 10");
    // Updating one at the limit is fine.
    let r = put(
        &srv,
        &format!("{NS}/clientGroups/g00"),
        json!({"query": "attributes.a = 2"}),
    );
    assert_eq!(r.status, 200, "{r:?}");
    bad(
        &put(
            &srv,
            &format!("{NS}/topicSpaces/s10"),
            json!({"topicTemplates": ["t"]}),
        ),
        "10 topic spaces",
    );
    for i in 0..100 {
        let r = put(
            &srv,
            &format!("{NS}/permissionBindings/b{i:03}"),
            json!({"clientGroupName": format!("g{:02}", i % 10), "topicSpaceName": "s00", "permission": "Subscriber"}),
        );
        assert_eq!(r.status, 201, "{r:?}");
    }
    bad(
        &put(
            &srv,
            &format!("{NS}/permissionBindings/b100"),
            json!({"clientGroupName": "g00", "topicSpaceName": "s00", "permission": "Subscriber"}),
        ),
        "100 permission bindings",
    );
    let pem = rsa_cert(&dir.0, "ca");
    for i in 0..10 {
        let r = put(
            &srv,
            &format!("{NS}/caCertificates/ca{i:02}"),
            json!({"encodedCertificate": pem}),
        );
        assert_eq!(r.status, 201, "{r:?}");
    }
    bad(
        &put(
            &srv,
            &format!("{NS}/caCertificates/ca10"),
            json!({"encodedCertificate": pem}),
        ),
        "10 CA certificates",
    );
}

#[test]
fn ca_certificates() {
    let dir = TempDir::new("idca");
    let srv = Server::start(&env(&[]));
    let pem = rsa_cert(&dir.0, "root");
    let r = put(
        &srv,
        &format!("{NS}/caCertificates/root-ca"),
        json!({"encodedCertificate": pem, "description": "d"}),
    );
    assert_eq!(r.status, 201, "{r:?}");
    let doc = r.json();
    assert_eq!(doc["type"], "Microsoft.EventGrid/namespaces/caCertificates");
    assert_eq!(doc["properties"]["encodedCertificate"], pem.as_str());
    // openssl made it valid for 2 days: its expiry is shown, read-only.
    let exp = doc["properties"]["expiryTimeInUtc"].as_str().unwrap();
    assert!(exp.ends_with('Z') && exp.len() == 24, "{exp}");
    assert_eq!(
        get(&srv, &format!("{NS}/caCertificates/root-ca")).json(),
        doc
    );
    bad(
        &put(&srv, &format!("{NS}/caCertificates/other"), json!({})),
        "encodedCertificate is required",
    );
    bad(
        &put(
            &srv,
            &format!("{NS}/caCertificates/other"),
            json!({"encodedCertificate": "nope"}),
        ),
        "properties.encodedCertificate: ",
    );
    assert_eq!(
        delete(&srv, &format!("{NS}/caCertificates/root-ca")).status,
        200
    );
    assert!(names(&get(&srv, &format!("{NS}/caCertificates"))).is_empty());
}

#[test]
fn client_authentication_quotas_and_hostname() {
    let dir = TempDir::new("idauth");
    let srv = Server::start(&env(&[("EVGRID_MQTT_HOSTNAME", "mqtt.example.net")]));
    let pem = rsa_cert(&dir.0, "issuer");
    let file = dir.0.join("issuer.pem");
    let ts = json!({
        "clientAuthentication": {
            "alternativeAuthenticationNameSources": ["ClientCertificateDns", "ClientCertificateEmail"],
            "customJwtAuthentication": {
                "tokenIssuer": "https://issuer.example",
                "issuerCertificates": [
                    {"certificateUrl": format!("file://{}", file.display())},
                    {"encodedCertificate": pem},
                ],
            },
            "webHookAuthentication": {"endpointUrl": "http://127.0.0.1:9/auth", "identity": {"type": "SystemAssigned"}},
        },
        "quotas": {"sessionMessagesPerSecond": 1000, "sessionBytesPerSecond": 1000000, "connectsPerSecond": null},
        "maximumClientSessionsPerAuthenticationName": 2,
    });
    let r = put(
        &srv,
        "/mgmt/namespaces/auth-ns",
        json!({"topicSpacesConfiguration": ts}),
    );
    assert_eq!(r.status, 201, "{r:?}");
    let got = get(&srv, "/mgmt/namespaces/auth-ns").json();
    let t = &got["properties"]["topicSpacesConfiguration"];
    assert_eq!(t["hostname"], "mqtt.example.net");
    let ca = &t["clientAuthentication"];
    assert_eq!(
        ca["alternativeAuthenticationNameSources"],
        json!(["ClientCertificateDns", "ClientCertificateEmail"])
    );
    // The file's certificate was read at PUT and is kept with its URL.
    let certs = &ca["customJwtAuthentication"]["issuerCertificates"];
    assert_eq!(certs[0]["encodedCertificate"], pem.as_str());
    assert!(
        certs[0]["certificateUrl"]
            .as_str()
            .unwrap()
            .starts_with("file://")
    );
    assert_eq!(
        ca["webHookAuthentication"]["endpointUrl"],
        "http://127.0.0.1:9/auth"
    );
    assert_eq!(t["quotas"]["sessionMessagesPerSecond"], 1000);
    assert_eq!(t["quotas"]["connectsPerSecond"], Value::Null);
    // The default namespace shows the host name too.
    assert_eq!(
        get(&srv, NS).json()["properties"]["topicSpacesConfiguration"]["hostname"],
        "mqtt.example.net"
    );

    let p = |ca: Value| json!({"topicSpacesConfiguration": {"clientAuthentication": ca}});
    bad(
        &put(
            &srv,
            "/mgmt/namespaces/auth-ns",
            p(json!({"customJwtAuthentication": {
            "tokenIssuer": "i", "issuerCertificates": [{"certificateUrl": "https://vault/cert"}]}})),
        ),
        "certificateUrl 'https://vault/cert' cannot be fetched by evgrid",
    );
    bad(
        &put(
            &srv,
            "/mgmt/namespaces/auth-ns",
            p(json!({"customJwtAuthentication": {
            "tokenIssuer": "i", "issuerCertificates": [{"certificateUrl": "file:///no/such/file.pem"}]}})),
        ),
        "'file:///no/such/file.pem' cannot be read",
    );
    bad(
        &put(
            &srv,
            "/mgmt/namespaces/auth-ns",
            p(json!({"webHookAuthentication": {"endpointUrl": "ftp://x"}})),
        ),
        "must be an http:// or https:// URL",
    );
    bad(
        &put(
            &srv,
            "/mgmt/namespaces/auth-ns",
            p(json!({"alternativeAuthenticationNameSources": ["Dns"]})),
        ),
        "'Dns' is not one of ClientCertificateSubject",
    );
    bad(
        &put(
            &srv,
            "/mgmt/namespaces/auth-ns",
            json!({"topicSpacesConfiguration": {"quotas": {"connectsPerSecond": 0}}}),
        ),
        "quotas.connectsPerSecond must be a whole number from 1 to 1000000000",
    );
    // A refused PUT changed nothing.
    assert_eq!(get(&srv, "/mgmt/namespaces/auth-ns").json(), got);
}

#[test]
fn identity_survives_a_restart_and_goes_with_its_namespace() {
    let dir = TempDir::new("idrestart");
    let data = dir.0.join("data");
    let pem = rsa_cert(&dir.0, "ca");
    let ns = "/mgmt/namespaces/fleet";
    let mut docs = Vec::new();
    {
        let mut srv = Server::start_in(&data, &env(&[]));
        assert_eq!(put(&srv, ns, json!({})).status, 201);
        for (path, props) in [
            ("caCertificates/Root-CA", json!({"encodedCertificate": pem})),
            (
                "clients/Dev-1",
                json!({"authenticationName": "dev-one", "password": "pw-1", "attributes": {"a": 1}}),
            ),
            ("clientGroups/Sensors", json!({"query": "attributes.a = 1"})),
            (
                "topicSpaces/Telemetry",
                json!({"topicTemplates": ["d/${client.authenticationName}"]}),
            ),
            (
                "permissionBindings/Pub",
                json!({"clientGroupName": "sensors", "topicSpaceName": "telemetry", "permission": "Publisher"}),
            ),
        ] {
            let r = put(&srv, &format!("{ns}/{path}"), props);
            assert_eq!(r.status, 201, "{path}: {r:?}");
            docs.push((path, r.json()));
        }
        assert!(srv.terminate().success());
    }
    let srv = Server::start_in(&data, &env(&[]));
    for (path, doc) in &docs {
        let r = get(&srv, &format!("{ns}/{}", path.to_lowercase()));
        assert_eq!(&r.json(), doc, "{path}");
        assert!(!r.body.contains("pw-1"));
    }
    // References still hold after the restart.
    bad(
        &delete(&srv, &format!("{ns}/clientGroups/sensors")),
        "permission binding 'Pub'",
    );
    // The authentication name is still taken and still fixed.
    bad(
        &put(
            &srv,
            &format!("{ns}/clients/dev-2"),
            json!({"authenticationName": "DEV-ONE"}),
        ),
        "already used",
    );
    // A client PUT without a password keeps the stored one (not shown either way).
    let r = put(
        &srv,
        &format!("{ns}/clients/dev-1"),
        json!({"attributes": {"a": 2}}),
    );
    assert_eq!(r.status, 200, "{r:?}");
    // Deleting the namespace deletes its identity resources.
    assert_eq!(delete(&srv, ns).status, 200);
    assert_eq!(put(&srv, ns, json!({})).status, 201);
    for kind in [
        "clients",
        "caCertificates",
        "topicSpaces",
        "permissionBindings",
    ] {
        assert!(
            names(&get(&srv, &format!("{ns}/{kind}"))).is_empty(),
            "{kind}"
        );
    }
    assert_eq!(names(&get(&srv, &format!("{ns}/clientGroups"))), ["$all"]);
}

#[test]
fn the_resource_file_declares_identity_resources() {
    let dir = TempDir::new("idfile");
    let res = dir.0.join("resources.toml");
    let pem = rsa_cert(&dir.0, "fleet-ca");
    std::fs::write(
        &res,
        format!(
            r#"
[[namespaces]]
name = "fleet"
properties = {{ topicSpacesConfiguration = {{ quotas = {{ connectsPerSecond = 50 }} }} }}

[[namespaces.caCertificates]]
name = "fleet-ca"
properties = {{ encodedCertificate = """{pem}""" }}

[[namespaces.clients]]
name = "device-17"
properties = {{ authenticationName = "device-17", attributes = {{ type = "sensor" }}, password = "s3cret" }}

[[namespaces.clientGroups]]
name = "sensors"
properties = {{ query = "attributes.type = 'sensor'" }}

[[namespaces.topicSpaces]]
name = "telemetry"
properties = {{ topicTemplates = ["devices/${{client.authenticationName}}/telemetry"] }}

[[namespaces.permissionBindings]]
name = "sensors-publish"
properties = {{ clientGroupName = "sensors", topicSpaceName = "telemetry", permission = "Publisher" }}
"#
        ),
    )
    .unwrap();
    let data = dir.0.join("data");
    let res_s = res.to_str().unwrap();
    let check = |srv: &Server| {
        let ns = "/mgmt/namespaces/fleet";
        let ca = get(srv, &format!("{ns}/caCertificates/fleet-ca"));
        assert_eq!(ca.json()["properties"]["encodedCertificate"], pem.as_str());
        let c = get(srv, &format!("{ns}/clients/device-17"));
        assert_eq!(c.status, 200, "{c:?}");
        assert_eq!(c.json()["properties"]["attributes"]["type"], "sensor");
        assert!(!c.body.contains("s3cret"));
        assert_eq!(
            names(&get(srv, &format!("{ns}/clientGroups"))),
            ["$all", "sensors"]
        );
        assert_eq!(
            names(&get(srv, &format!("{ns}/topicSpaces"))),
            ["telemetry"]
        );
        assert_eq!(
            names(&get(srv, &format!("{ns}/permissionBindings"))),
            ["sensors-publish"]
        );
        let n = get(srv, ns).json();
        assert_eq!(
            n["properties"]["topicSpacesConfiguration"]["quotas"]["connectsPerSecond"],
            50
        );
    };
    let mut srv = Server::start_in(&data, &env(&[("EVGRID_RESOURCES", res_s)]));
    check(&srv);
    assert!(srv.terminate().success());
    // Applied again on the same data: nothing changes.
    let srv = Server::start_in(&data, &env(&[("EVGRID_RESOURCES", res_s)]));
    check(&srv);

    // A bad declaration stops the start with a message naming it.
    std::fs::write(
        &res,
        "[[namespaces]]\nname = \"fleet\"\n[[namespaces.permissionBindings]]\nname = \"bind-1\"\nproperties = { clientGroupName = \"nope\", topicSpaceName = \"telemetry\", permission = \"Publisher\" }\n",
    )
    .unwrap();
    let out = Server::command(&dir.0.join("data2"))
        .env("EVGRID_RESOURCES", res_s)
        .env("EVGRID_ADMIN_KEY", ADMIN)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("permission binding fleet/bind-1"), "{err}");
    assert!(err.contains("client group 'nope'"), "{err}");
}

#[test]
fn client_changes_reach_the_system_topic() {
    let hook = Hook::ok();
    let srv = Server::start(&env(&[]));
    let r = put(
        &srv,
        "/mgmt/systemTopics/lifecycle",
        json!({"source": "/providers/Microsoft.EventGrid/namespaces/default", "topicType": "Microsoft.EventGrid.Namespaces"}),
    );
    assert_eq!(r.status, 201, "{r:?}");
    let r = put(
        &srv,
        "/mgmt/systemTopics/lifecycle/eventSubscriptions/ops",
        json!({"destination": {"endpointType": "WebHook", "properties": {"endpointUrl": hook.url("/ops")}},
            "filter": {"includedEventTypes": ["Microsoft.EventGrid.MQTTClientCreatedOrUpdated", "Microsoft.EventGrid.MQTTClientDeleted"]}}),
    );
    assert_eq!(r.status, 201, "{r:?}");
    let r = put(
        &srv,
        &format!("{NS}/clients/dev-1"),
        json!({"authenticationName": "Dev-One", "attributes": {"floor": 3}, "password": "pw"}),
    );
    assert_eq!(r.status, 201);
    let r = put(
        &srv,
        &format!("{NS}/clients/dev-1"),
        json!({"state": "Disabled"}),
    );
    assert_eq!(r.status, 200);
    assert_eq!(delete(&srv, &format!("{NS}/clients/dev-1")).status, 200);
    let evs = hook.wait_delivered(3, Duration::from_secs(20));
    let types: Vec<&str> = evs
        .iter()
        .map(|e| e["eventType"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "Microsoft.EventGrid.MQTTClientCreatedOrUpdated",
            "Microsoft.EventGrid.MQTTClientCreatedOrUpdated",
            "Microsoft.EventGrid.MQTTClientDeleted",
        ]
    );
    let (created, updated, deleted) = (&evs[0], &evs[1], &evs[2]);
    assert_eq!(created["subject"], "clients/dev-1");
    assert_eq!(
        created["topic"],
        "/providers/Microsoft.EventGrid/namespaces/default"
    );
    let d = &created["data"];
    assert_eq!(d["namespaceName"], "default");
    assert_eq!(d["clientName"], "dev-1");
    assert_eq!(d["clientAuthenticationName"], "Dev-One");
    assert_eq!(d["state"], "Enabled");
    assert_eq!(d["attributes"], json!({"floor": 3}));
    assert_eq!(d["createdOn"], d["updatedOn"]);
    assert!(!created.to_string().contains("\"pw\""), "{created}");
    let u = &updated["data"];
    assert_eq!(u["state"], "Disabled");
    assert_eq!(u["createdOn"], d["createdOn"]);
    assert!(u["updatedOn"].as_str() >= d["updatedOn"].as_str());
    assert_eq!(
        deleted["data"],
        json!({"namespaceName": "default", "clientName": "dev-1", "clientAuthenticationName": "Dev-One"})
    );
    // Other identity resources send no event.
    let r = put(
        &srv,
        &format!("{NS}/topicSpaces/telemetry"),
        json!({"topicTemplates": ["t"]}),
    );
    assert_eq!(r.status, 201);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(hook.delivered().len(), 3);
}
