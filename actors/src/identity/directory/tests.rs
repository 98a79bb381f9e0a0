use super::*;
use crate::identity::AttrValue;
use crate::identity::cert::tests::{self as certs, CA, NOW_MS, OTHER_CA, leaf, self_signed};
use crate::identity::jwt::tests::{ISSUER_PEM, NOW_S, claims, token};
use serde_json::json;

fn client(name: &str, auth: &str, pw: Option<&str>, cert: CertValidation) -> ClientDef {
    let mut attributes = Attributes::new();
    attributes.insert("floor".into(), AttrValue::Int(3));
    attributes.insert("site".into(), AttrValue::Str("berlin".into()));
    ClientDef {
        name: name.into(),
        auth_name: auth.into(),
        enabled: true,
        attributes,
        cert,
        password: pw.map(|p| PasswordHash::with_iterations(p.as_bytes(), [9; 16], 1000)),
    }
}

fn dir() -> Directory {
    let l = leaf();
    let defs = [
        client(
            "dev1",
            "Device-1",
            Some("pw1"),
            CertValidation::SubjectMatches,
        ),
        client(
            "dns",
            "device-1.example.com",
            None,
            CertValidation::DnsMatches,
        ),
        client("uri", "urn:device:1", None, CertValidation::UriMatches),
        client("ip", "10.0.0.7", None, CertValidation::IpMatches),
        client(
            "mail",
            "device-1@example.com",
            None,
            CertValidation::EmailMatches,
        ),
        client(
            "thumb",
            "thumb-1",
            None,
            CertValidation::Thumbprints(vec![l.thumbprint.clone()]),
        ),
        client(
            "sha1",
            "sha1-1",
            None,
            CertValidation::Thumbprints(vec![certs::sha1_hex(certs::LEAF)]),
        ),
        client("selfie", "self-1", None, CertValidation::SubjectMatches),
        client(
            "certonly",
            "cert-only",
            None,
            CertValidation::SubjectMatches,
        ),
        ClientDef {
            enabled: false,
            ..client("off", "off-1", Some("pw"), CertValidation::SubjectMatches)
        },
    ];
    Directory {
        clients: defs
            .into_iter()
            .map(|d| {
                (
                    crate::identity::fold(&d.auth_name).into_owned(),
                    Arc::new(d),
                )
            })
            .collect(),
        ca_certs: vec![certs::ca("ca", CA)],
        ..Default::default()
    }
}

fn creds<'a>() -> Credentials<'a> {
    Credentials {
        client_id: "cid",
        ..Default::default()
    }
}

fn accepted(d: Decision) -> Identity {
    match d {
        Decision::Accept(id) => id,
        other => panic!("not accepted: {other:?}"),
    }
}

fn bad(d: &Decision) -> bool {
    matches!(d, Decision::Deny(Denied::BadCredentials(_)))
}

fn not_auth(d: &Decision) -> bool {
    matches!(d, Decision::Deny(Denied::NotAuthorized(_)))
}

// --- passwords ---

#[test]
fn password_accept_and_reject() {
    let d = dir();
    let c = Credentials {
        username: Some("DEVICE-1"),
        password: Some(b"pw1"),
        ..creds()
    };
    let id = accepted(d.authenticate(&c, false, NOW_MS));
    assert_eq!(id.auth_name, "Device-1", "configured case");
    assert_eq!(id.client.as_deref(), Some("dev1"));
    assert_eq!(id.method, AuthMethod::Password);
    assert_eq!(id.attributes["floor"], AttrValue::Int(3));
    let c = Credentials {
        username: Some("device-1"),
        password: Some(b"pw2"),
        ..creds()
    };
    assert!(bad(&d.authenticate(&c, true, NOW_MS)));
    // Disabled: right password, not authorized; wrong password, bad credentials.
    let c = Credentials {
        username: Some("off-1"),
        password: Some(b"pw"),
        ..creds()
    };
    assert!(not_auth(&d.authenticate(&c, true, NOW_MS)));
    let c = Credentials {
        username: Some("off-1"),
        password: Some(b"x"),
        ..creds()
    };
    assert!(bad(&d.authenticate(&c, true, NOW_MS)));
}

#[test]
fn unknown_user_or_no_hash_falls_through() {
    let mut d = dir();
    let c = Credentials {
        username: Some("nobody"),
        password: Some(b"x"),
        ..creds()
    };
    assert!(bad(&d.authenticate(&c, true, NOW_MS)));
    let c2 = Credentials {
        username: Some("cert-only"),
        password: Some(b"x"),
        ..creds()
    };
    // A registered client without a hash cannot use a password at all.
    assert!(not_auth(&d.authenticate(&c2, true, NOW_MS)));
    d.auth.webhook = Some(WebhookSettings {
        endpoint_url: "http://h".into(),
    });
    assert_eq!(d.authenticate(&c, false, NOW_MS), Decision::AskWebhook);
    assert!(not_auth(&d.authenticate(&c2, false, NOW_MS)));
    // A registered user with a wrong password is refused, not handed to the webhook.
    let c3 = Credentials {
        username: Some("device-1"),
        password: Some(b"x"),
        ..creds()
    };
    assert!(bad(&d.authenticate(&c3, false, NOW_MS)));
    assert_eq!(d.authenticate(&creds(), true, NOW_MS), Decision::AskWebhook);
}

// --- anonymous ---

#[test]
fn anonymous() {
    let d = dir();
    let id = accepted(d.authenticate(&creds(), true, NOW_MS));
    assert_eq!(
        (id.auth_name.as_str(), id.client, id.method),
        ("cid", None, AuthMethod::Anonymous)
    );
    let c = Credentials {
        username: Some("guest"),
        ..creds()
    };
    assert_eq!(
        accepted(d.authenticate(&c, true, NOW_MS)).auth_name,
        "guest"
    );
    assert!(not_auth(&d.authenticate(&creds(), false, NOW_MS)));
    // A registered name without its credentials.
    let c = Credentials {
        username: Some("device-1"),
        ..creds()
    };
    assert_eq!(
        d.authenticate(&c, true, NOW_MS),
        Decision::Deny(Denied::BadCredentials("password required".into()))
    );
    let c = Credentials {
        username: Some("cert-only"),
        ..creds()
    };
    assert!(not_auth(&d.authenticate(&c, true, NOW_MS)));
    let c = Credentials {
        client_id: "THUMB-1",
        ..creds()
    };
    assert!(not_auth(&d.authenticate(&c, true, NOW_MS)));
}

// --- certificates ---

#[test]
fn certificate_schemes() {
    let d = dir();
    let l = leaf();
    for user in [
        "device-1",
        "device-1.example.com",
        "urn:device:1",
        "10.0.0.7",
        "DEVICE-1@example.com",
        "thumb-1",
        "sha1-1",
    ] {
        let c = Credentials {
            username: Some(user),
            cert: Some(&l),
            ..creds()
        };
        let id = accepted(d.authenticate(&c, false, NOW_MS));
        assert_eq!(id.method, AuthMethod::Certificate, "{user}");
        assert!(id.client.is_some());
    }
    // The leaf carries none of these names for the scheme.
    let mut d2 = dir();
    d2.clients.insert(
        "x".into(),
        Arc::new(client("x", "x", None, CertValidation::DnsMatches)),
    );
    let c = Credentials {
        username: Some("x"),
        cert: Some(&l),
        ..creds()
    };
    assert!(bad(&d2.authenticate(&c, false, NOW_MS)));
    // Thumbprint of another certificate.
    let s = self_signed();
    let c = Credentials {
        username: Some("thumb-1"),
        cert: Some(&s),
        ..creds()
    };
    assert!(bad(&d.authenticate(&c, false, NOW_MS)));
    // Self-signed, the right CN, no CA for it.
    let c = Credentials {
        username: Some("self-1"),
        cert: Some(&s),
        ..creds()
    };
    assert!(bad(&d.authenticate(&c, false, NOW_MS)));
    // Unknown and disabled clients.
    let c = Credentials {
        username: Some("nobody"),
        cert: Some(&l),
        ..creds()
    };
    assert!(not_auth(&d.authenticate(&c, false, NOW_MS)));
    let c = Credentials {
        username: Some("off-1"),
        cert: Some(&l),
        ..creds()
    };
    assert!(not_auth(&d.authenticate(&c, false, NOW_MS)));
    // Valid chain, but to an unregistered CA; expired.
    let mut d3 = dir();
    d3.ca_certs = vec![certs::ca("other", OTHER_CA)];
    let c = Credentials {
        username: Some("device-1"),
        cert: Some(&l),
        ..creds()
    };
    assert!(bad(&d3.authenticate(&c, false, NOW_MS)));
    assert!(bad(&d.authenticate(&c, false, 5_000_000_000_000)));
}

#[test]
fn certificate_name_sources() {
    let mut d = dir();
    let l = leaf();
    let c = Credentials {
        cert: Some(&l),
        ..creds()
    };
    assert!(
        not_auth(&d.authenticate(&c, false, NOW_MS)),
        "no user name, no name source"
    );
    d.auth.name_sources = vec![NameSource::Ip];
    assert_eq!(
        accepted(d.authenticate(&c, false, NOW_MS))
            .client
            .as_deref(),
        Some("ip")
    );
    d.auth.name_sources = vec![NameSource::Subject, NameSource::Ip];
    assert_eq!(
        accepted(d.authenticate(&c, false, NOW_MS))
            .client
            .as_deref(),
        Some("dev1")
    );
    let mut none = l.clone();
    none.common_name = None;
    none.sans.clear();
    let c = Credentials {
        cert: Some(&none),
        ..creds()
    };
    assert!(not_auth(&d.authenticate(&c, false, NOW_MS)));
}

// --- custom JWT ---

fn jwt_dir() -> Directory {
    let mut d = dir();
    d.auth.custom_jwt =
        Some(JwtSettings::new("https://issuer.example", "ns1.example", &[ISSUER_PEM]).unwrap());
    d
}

#[test]
fn custom_jwt() {
    let d = jwt_dir();
    let mut cl = claims("jwt-device");
    cl["floor"] = json!(7);
    let t = token(&cl);
    let c = Credentials {
        auth_method: Some("CUSTOM-JWT"),
        auth_data: Some(t.as_bytes()),
        ..creds()
    };
    let id = accepted(d.authenticate(&c, false, NOW_MS));
    assert_eq!(id.auth_name, "jwt-device");
    assert_eq!(id.client, None);
    assert_eq!(id.method, AuthMethod::CustomJwt);
    assert_eq!(id.expires_ms, Some((NOW_S + 3600) * 1000));
    assert_eq!(id.attributes["floor"], AttrValue::Int(7));
    // A registered sub: its attributes under the token's.
    let t = token(&{
        let mut c = claims("DEVICE-1");
        c["floor"] = json!(9);
        c
    });
    let c = Credentials {
        auth_method: Some("CUSTOM-JWT"),
        auth_data: Some(t.as_bytes()),
        ..creds()
    };
    let id = accepted(d.authenticate(&c, false, NOW_MS));
    assert_eq!(id.client.as_deref(), Some("dev1"));
    assert_eq!(id.auth_name, "Device-1", "configured case");
    assert_eq!(id.attributes["floor"], AttrValue::Int(9));
    assert_eq!(id.attributes["site"], AttrValue::Str("berlin".into()));
    let t = token(&claims("off-1"));
    let c = Credentials {
        auth_method: Some("CUSTOM-JWT"),
        auth_data: Some(t.as_bytes()),
        ..creds()
    };
    assert!(not_auth(&d.authenticate(&c, false, NOW_MS)));
    // Expired, missing data.
    let c = Credentials {
        auth_method: Some("CUSTOM-JWT"),
        auth_data: Some(t.as_bytes()),
        ..creds()
    };
    assert!(bad(&d.authenticate(&c, false, (NOW_S + 3600) * 1000)));
    let c = Credentials {
        auth_method: Some("CUSTOM-JWT"),
        ..creds()
    };
    assert!(bad(&d.authenticate(&c, false, NOW_MS)));
}

#[test]
fn other_methods_are_refused() {
    let d = jwt_dir();
    let c = Credentials {
        auth_method: Some("SCRAM-SHA-1"),
        username: Some("device-1"),
        password: Some(b"pw1"),
        ..creds()
    };
    assert_eq!(
        d.authenticate(&c, true, NOW_MS),
        Decision::Deny(Denied::BadCredentials(
            "unsupported authentication method 'SCRAM-SHA-1'".into()
        ))
    );
    let c = Credentials {
        auth_method: Some("CUSTOM-JWT"),
        auth_data: Some(b"x"),
        ..creds()
    };
    assert!(
        bad(&dir().authenticate(&c, true, NOW_MS)),
        "no JWT configured"
    );
}

// --- still_valid ---

#[test]
fn still_valid() {
    let d = dir();
    let c = Credentials {
        username: Some("device-1"),
        password: Some(b"pw1"),
        ..creds()
    };
    let id = accepted(d.authenticate(&c, false, NOW_MS));
    assert_eq!(d.still_valid(&id), Ok(()));
    let mut gone = d.clone();
    gone.clients.remove("device-1");
    assert!(gone.still_valid(&id).unwrap_err().contains("any more"));
    let mut off = d.clone();
    let mut def = (*off.clients["device-1"]).clone();
    def.enabled = false;
    off.clients.insert("device-1".into(), Arc::new(def.clone()));
    assert!(off.still_valid(&id).unwrap_err().contains("disabled"));
    def.enabled = true;
    def.name = "other".into();
    off.clients.insert("device-1".into(), Arc::new(def));
    assert!(off.still_valid(&id).unwrap_err().contains("belongs to"));
    let anon = accepted(d.authenticate(&creds(), true, NOW_MS));
    assert_eq!(gone.still_valid(&anon), Ok(()));
}

// --- policy ---

fn authz_dir() -> Directory {
    let mut d = dir();
    d.groups = vec![
        GroupDef {
            name: "Floor3".into(),
            query: Query::parse("attributes.floor = 3").unwrap(),
        },
        GroupDef {
            name: "admins".into(),
            query: Query::parse("authenticationName = 'root'").unwrap(),
        },
    ];
    let tpl = |ts: &[&str]| ts.iter().map(|t| Template::parse(t).unwrap()).collect();
    d.spaces = vec![
        SpaceDef {
            name: "Own".into(),
            templates: tpl(&[
                "dev/${client.authenticationName}/#",
                "site/${client.attributes.site}/+",
            ]),
        },
        SpaceDef {
            name: "all".into(),
            templates: tpl(&["#"]),
        },
        SpaceDef {
            name: "news".into(),
            templates: tpl(&["news/+", "dev/${client.authenticationName}/#"]),
        },
    ];
    let b = |group: &str, space: &str, permission| BindingDef {
        name: format!("{group}-{space}"),
        group: group.into(),
        space: space.into(),
        permission,
    };
    d.bindings = vec![
        b("$all", "own", Permission::Publisher),
        b("$all", "news", Permission::Subscriber),
        b("$all", "own", Permission::Subscriber),
        b("floor3", "news", Permission::Publisher),
        b("admins", "all", Permission::Subscriber),
        b("$all", "missing", Permission::Subscriber),
    ];
    d
}

fn identity(name: &str, client: Option<&str>, attrs: Attributes, method: AuthMethod) -> Identity {
    Identity {
        auth_name: name.into(),
        client: client.map(Into::into),
        attributes: attrs.clone(),
        claims: attrs,
        method,
        expires_ms: None,
    }
}

#[test]
fn policy_modes() {
    let id = identity("x", None, Attributes::new(), AuthMethod::Anonymous);
    assert!(
        dir().policy(&id, AuthzMode::Auto).allow_all,
        "auto with no bindings"
    );
    let p = dir().policy(&id, AuthzMode::Bindings);
    assert!(!p.allow_all && p.publish.is_empty() && p.subscribe.is_empty());
    assert!(authz_dir().policy(&id, AuthzMode::Off).allow_all);
    assert!(!authz_dir().policy(&id, AuthzMode::Auto).allow_all);
}

#[test]
fn policy_groups_templates_dedupe() {
    let d = authz_dir();
    let id = identity(
        "Device-1",
        Some("dev1"),
        Attributes::new(),
        AuthMethod::Password,
    );
    let p = d.policy(&id, AuthzMode::Bindings);
    // Registered: the directory's attributes (floor 3, berlin), not the identity's (empty).
    assert_eq!(p.publish, ["dev/Device-1/#", "site/berlin/+", "news/+"]);
    assert_eq!(p.subscribe, ["news/+", "dev/Device-1/#", "site/berlin/+"]);
    assert!(p.may_publish("dev/Device-1/x"));
    assert!(!p.may_publish("dev/other/x"));
    assert!(!p.may_subscribe("#"));

    // Anonymous: no attributes, so the site template grants nothing; not in Floor3.
    let anon = identity("guest", None, Attributes::new(), AuthMethod::Anonymous);
    let p = d.policy(&anon, AuthzMode::Bindings);
    assert_eq!(p.publish, ["dev/guest/#"]);
    assert_eq!(p.subscribe, ["news/+", "dev/guest/#"]);
    // Group membership by auth name, case-insensitively.
    let root = identity("ROOT", None, Attributes::new(), AuthMethod::Webhook);
    let p = d.policy(&root, AuthzMode::Bindings);
    assert!(p.subscribe.contains(&"#".to_string()));
    assert!(p.may_subscribe("anything/#"));
    // JWT attributes count for unregistered identities.
    let mut a = Attributes::new();
    a.insert("floor".into(), AttrValue::Int(3));
    let j = identity("j", None, a, AuthMethod::CustomJwt);
    assert!(d.policy(&j, AuthzMode::Bindings).may_publish("news/x"));
}

#[test]
fn one_fold_for_keys_lookup_and_matching() {
    use crate::identity::{eq_fold, fold};
    use std::borrow::Cow;
    assert!(matches!(fold("device-1"), Cow::Borrowed("device-1")));
    // A capital sigma folds to `σ` wherever it stands (no final-sigma rule).
    assert_eq!(fold("ΟΔΟΣ"), "οδοσ");
    assert!(eq_fold("ΟΔΟΣ", "οδοσ"));
    let mut d = Directory::default();
    let def = client("greek", "ΟΔΟΣ", Some("pw"), CertValidation::SubjectMatches);
    d.clients
        .insert(fold(&def.auth_name).into_owned(), Arc::new(def));
    assert_eq!(d.client("ΟΔΟΣ").map(|c| c.name.as_str()), Some("greek"));
    assert_eq!(d.client("οδοσ").map(|c| c.name.as_str()), Some("greek"));
}

fn with_webhook() -> Directory {
    let mut d = dir();
    d.auth.webhook = Some(WebhookSettings {
        endpoint_url: "http://h".into(),
    });
    d
}

#[test]
fn webhook_never_decides_for_a_registered_name() {
    let d = with_webhook();
    // A registered name without its credentials keeps that client's rules.
    let c = Credentials {
        username: Some("DEVICE-1"),
        ..creds()
    };
    let r = d.authenticate(&c, true, NOW_MS);
    assert_eq!(r, deny_bad("password required"));
    let c = Credentials {
        username: Some("cert-only"),
        ..creds()
    };
    assert!(not_auth(&d.authenticate(&c, true, NOW_MS)));
    let c = Credentials {
        client_id: "OFF-1",
        ..creds()
    };
    assert_eq!(
        d.authenticate(&c, true, NOW_MS),
        Decision::Deny(Denied::NotAuthorized("client 'off' is disabled".into()))
    );
    let c = Credentials {
        client_id: "device-1",
        ..creds()
    };
    assert!(not_auth(&d.authenticate(&c, true, NOW_MS)));
    // Unknown names still go to the webhook.
    let c = Credentials {
        username: Some("nobody"),
        ..creds()
    };
    assert_eq!(d.authenticate(&c, true, NOW_MS), Decision::AskWebhook);
}

#[test]
fn admit_webhook_refuses_a_registered_name() {
    let d = with_webhook();
    let id = |name: &str| Identity {
        auth_name: name.into(),
        client: None,
        attributes: Attributes::new(),
        claims: Attributes::new(),
        method: AuthMethod::Webhook,
        expires_ms: None,
    };
    let e = d.admit_webhook(id("device-1")).unwrap_err();
    assert_eq!(
        e,
        Denied::NotAuthorized("the webhook named a registered client ('Device-1')".into())
    );
    assert_eq!(d.admit_webhook(id("nobody")), Ok(id("nobody")));
}

#[test]
fn other_auth_methods_go_to_the_webhook() {
    let c = Credentials {
        auth_method: Some("SCRAM-SHA-256"),
        auth_data: Some(b"x"),
        username: Some("nobody"),
        ..creds()
    };
    assert!(bad(&dir().authenticate(&c, true, NOW_MS)));
    let d = with_webhook();
    assert_eq!(d.authenticate(&c, true, NOW_MS), Decision::AskWebhook);
    let c = Credentials {
        username: Some("device-1"),
        ..c
    };
    assert!(bad(&d.authenticate(&c, true, NOW_MS)));
}

#[test]
fn a_password_for_no_hash_costs_one_verification() {
    use crate::identity::password::VERIFIES;
    let d = dir();
    for user in ["nobody", "cert-only", "device-1"] {
        VERIFIES.with(|v| v.set(0));
        let c = Credentials {
            username: Some(user),
            password: Some(b"x"),
            ..creds()
        };
        assert!(matches!(
            d.authenticate(&c, true, NOW_MS),
            Decision::Deny(_)
        ));
        assert_eq!(VERIFIES.with(|v| v.get()), 1, "{user}");
    }
}

#[test]
fn control_characters_in_reasons_are_escaped() {
    let d = dir();
    let l = leaf();
    let c = Credentials {
        username: Some("evil\nline"),
        cert: Some(&l),
        ..creds()
    };
    let Decision::Deny(e) = d.authenticate(&c, true, NOW_MS) else {
        panic!("accepted");
    };
    assert!(!e.reason().contains('\n'), "{e:?}");
    assert!(e.reason().contains("evil\\u{a}line"), "{e:?}");
}

#[test]
fn a_name_that_becomes_registered_ends_unregistered_sessions() {
    let d = with_webhook();
    let anon = identity("newcomer", None, Attributes::new(), AuthMethod::Anonymous);
    let hook = identity("newcomer", None, Attributes::new(), AuthMethod::Webhook);
    let jwt = identity("newcomer", None, Attributes::new(), AuthMethod::CustomJwt);
    for id in [&anon, &hook, &jwt] {
        assert_eq!(d.still_valid(id), Ok(()));
    }
    let mut later = d.clone();
    let def = client("nc", "NewComer", None, CertValidation::SubjectMatches);
    later
        .clients
        .insert("newcomer".into(), Arc::new(def.clone()));
    assert!(
        later
            .still_valid(&anon)
            .unwrap_err()
            .contains("now a registered")
    );
    assert!(
        later
            .still_valid(&hook)
            .unwrap_err()
            .contains("now a registered")
    );
    // A token's sub naming the client is that client, as at CONNECT.
    assert_eq!(later.still_valid(&jwt), Ok(()));
    let mut off = later.clone();
    off.clients.insert(
        "newcomer".into(),
        Arc::new(ClientDef {
            enabled: false,
            ..def
        }),
    );
    assert!(off.still_valid(&jwt).unwrap_err().contains("disabled"));
}

#[test]
fn registered_jwt_client_policy_follows_current_attributes() {
    let mut d = authz_dir();
    d.auth.custom_jwt = jwt_dir().auth.custom_jwt;
    let t = token(&{
        let mut c = claims("device-1");
        c["site"] = json!("paris");
        c
    });
    let c = Credentials {
        auth_method: Some("CUSTOM-JWT"),
        auth_data: Some(t.as_bytes()),
        ..creds()
    };
    let id = accepted(d.authenticate(&c, false, NOW_MS));
    assert_eq!(id.claims["site"], AttrValue::Str("paris".into()));
    assert!(!id.claims.contains_key("floor"));
    // floor 3 (the client's) puts it in Floor3; the token's site wins.
    let p = d.policy(&id, AuthzMode::Bindings);
    assert!(p.may_publish("news/x") && p.may_publish("site/paris/x"));
    // The client's floor changes: the recompiled policy follows.
    let mut def = (*d.clients["device-1"]).clone();
    def.attributes.insert("floor".into(), AttrValue::Int(4));
    d.clients.insert("device-1".into(), Arc::new(def));
    let p = d.policy(&id, AuthzMode::Bindings);
    assert!(!p.may_publish("news/x"));
    assert!(p.may_publish("site/paris/x"));
}

#[test]
fn thumbprint_clients_check_the_leaf_validity() {
    let d = dir();
    let l = leaf();
    let c = Credentials {
        username: Some("thumb-1"),
        cert: Some(&l),
        ..creds()
    };
    assert_eq!(
        accepted(d.authenticate(&c, false, NOW_MS))
            .client
            .as_deref(),
        Some("thumb")
    );
    assert_eq!(
        d.authenticate(&c, false, 9_000_000_000_000),
        deny_bad("the certificate is not valid now (notBefore/notAfter)")
    );
    assert!(bad(&d.authenticate(&c, false, 1_000)));
}
