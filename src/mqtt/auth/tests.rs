use super::*;
use evgrid_actors::identity::AuthMethod;
use evgrid_actors::mqtt::message::{CloseReason, ConnId, Out};
use evgrid_actors::mqtt::outbox::outbox;
use std::collections::HashSet;

fn id(name: &str, expires_ms: Option<u64>) -> Identity {
    Identity {
        auth_name: name.into(),
        client: Some(name.into()),
        attributes: Default::default(),
        claims: Default::default(),
        method: AuthMethod::Password,
        expires_ms,
    }
}

fn c(s: &str) -> ByteString {
    ByteString::from(s.to_string())
}

/// docs/eventgrid.md §7.1: a name holds at most `max` sessions (connected or not); its own
/// session is a takeover; another name may not use a session name that exists.
#[test]
fn sessions_per_authentication_name() {
    let r = Registry::default();
    let alive = std::cell::RefCell::new(HashSet::<String>::new());
    let exists = |s: &str| alive.borrow().contains(s);
    assert_eq!(r.claim(&c("a1"), "Dev", Some(1), exists), Ok(()));
    alive.borrow_mut().insert("a1".into());
    // The same name, the same session: a takeover.
    assert_eq!(r.claim(&c("a1"), "dev", Some(1), exists), Ok(()));
    // A second session beyond the maximum (case-insensitive names).
    assert_eq!(
        r.claim(&c("a2"), "DEV", Some(1), exists),
        Err(Refused::Quota)
    );
    assert_eq!(r.claim(&c("a2"), "dev", Some(2), exists), Ok(()));
    alive.borrow_mut().insert("a2".into());
    // Another name on an existing session of "dev".
    assert!(matches!(
        r.claim(&c("a1"), "other", Some(5), exists),
        Err(Refused::Denied(Denied::NotAuthorized(_)))
    ));
    // Once the session is gone, its name is free, and so is its slot.
    alive.borrow_mut().remove("a1");
    assert_eq!(r.claim(&c("a1"), "other", Some(5), exists), Ok(()));
    assert_eq!(r.claim(&c("a3"), "dev", Some(2), exists), Ok(()));
    // A maximum of 0 (an unset directory) still lets one session in.
    assert_eq!(r.claim(&c("z"), "zed", Some(0), |_| false), Ok(()));
}

/// What the registry records of sessions goes when the sessions go: a client coming back
/// under ever new client ids or names leaves nothing behind.
#[test]
fn sweep_forgets_sessions_that_ended() {
    let r = Registry::default();
    let alive = std::cell::RefCell::new(HashSet::<String>::new());
    let exists = |s: &str| alive.borrow().contains(s);
    for i in 0..100 {
        let cid = c(&format!("c{i}"));
        assert_eq!(r.claim(&cid, &format!("name-{i}"), Some(1), exists), Ok(()));
        r.lock().subs.entry(cid).or_default().insert(c("t/#"));
    }
    alive.borrow_mut().insert("c7".into());
    r.sweep(exists);
    let g = r.lock();
    assert_eq!(g.by_client.len(), 1);
    assert_eq!(g.by_auth.len(), 1);
    assert_eq!(g.subs.len(), 1);
    assert!(g.subs.contains_key("c7"));
}

/// Reason codes per docs/eventgrid.md §7.4 and the table.
#[test]
fn refusals_map_to_reason_codes() {
    use ntex_mqtt::v3::codec::ConnectAckReason as V3;
    use ntex_mqtt::v5::codec::ConnectAckReason as V5;
    let bad = Refused::Denied(Denied::BadCredentials("x".into()));
    let not = Refused::Denied(Denied::NotAuthorized("x".into()));
    let unav = Refused::Denied(Denied::Unavailable("x".into()));
    assert_eq!(u8::from(bad.v5()), 0x86);
    assert_eq!(u8::from(not.v5()), 0x87);
    assert_eq!(u8::from(unav.v5()), 0x88);
    assert_eq!(u8::from(Refused::Quota.v5()), 0x97);
    assert_eq!(u8::from(Refused::Will.v5()), 0x87);
    assert!(matches!(bad.v3(), V3::BadUserNameOrPassword));
    assert!(matches!(not.v3(), V3::NotAuthorized));
    assert!(matches!(unav.v3(), V3::ServiceUnavailable));
    assert!(matches!(Refused::Quota.v3(), V3::ServiceUnavailable));
    assert!(matches!(Refused::Will.v3(), V3::NotAuthorized));
    let _ = V5::Success;
}

#[test]
fn tried_method_never_needs_a_secret() {
    let cert = CertInfo {
        chain: vec![],
        thumbprint: "AB".into(),
        subject: "CN=x".into(),
        common_name: Some("x".into()),
        sans: vec![],
    };
    let mut creds = Credentials {
        client_id: "c",
        ..Default::default()
    };
    assert_eq!(tried(&creds), Some("anonymous"));
    creds.username = Some("u");
    assert_eq!(tried(&creds), Some("password"));
    creds.cert = Some(&cert);
    assert_eq!(tried(&creds), Some("certificate"));
    creds.auth_method = Some(CUSTOM_JWT);
    assert_eq!(tried(&creds), Some("custom_jwt"));
    assert!(is_reauth(Some(CUSTOM_JWT), 0x19));
    assert!(!is_reauth(Some(CUSTOM_JWT), 0x18));
    assert!(!is_reauth(Some("SCRAM"), 0x19));
}

/// A token's expiry closes the connection (once), unless re-authentication moved it.
#[tokio::test]
async fn expiry_closes_a_connection_once() {
    let r = Arc::new(Registry::default());
    let (tx, mut rx) = outbox();
    let a = r.enter(
        ConnId(1),
        c("c1"),
        true,
        Admitted {
            id: id("dev", Some(1_000)),
            policy: ClientPolicy::allow_all(),
        },
        tx,
        None,
    );
    let (tx2, mut rx2) = outbox();
    let _b = r.enter(
        ConnId(2),
        c("c2"),
        true,
        Admitted {
            id: id("dev2", None),
            policy: ClientPolicy::allow_all(),
        },
        tx2,
        None,
    );
    r.expire(999);
    r.expire(1_000);
    r.expire(5_000);
    let mut got = Vec::new();
    let more = tokio::time::timeout(Duration::from_millis(50), rx.recv_all(&mut got)).await;
    assert!(matches!(more, Ok(true)));
    assert_eq!(got.len(), 1, "closed once");
    assert!(matches!(got[0], Out::Close(CloseReason::NotAuthenticated)));
    let mut none = Vec::new();
    let idle = tokio::time::timeout(Duration::from_millis(20), rx2.recv_all(&mut none)).await;
    assert!(idle.is_err(), "no expiry: never closed");
    // Unregistered with the connection.
    drop(a);
    assert_eq!(r.lock().live.len(), 1);
}

#[test]
fn cert_info_carries_the_handshake_fields() {
    use crate::tls::peer::ClientCert;
    let p = PeerTls {
        sni: None,
        client_cert: Some(ClientCert {
            chain: vec![rustls::pki_types::CertificateDer::from(vec![1u8, 2, 3])],
            thumbprint: "AA".into(),
            subject: "CN=dev1".into(),
            common_name: Some("dev1".into()),
            sans: vec!["DNS:dev1".into()],
        }),
    };
    let c = cert_info(&p).expect("certificate");
    assert_eq!(c.chain, vec![vec![1u8, 2, 3]]);
    assert_eq!(c.thumbprint, "AA");
    assert_eq!(c.common_name.as_deref(), Some("dev1"));
    assert_eq!(c.sans, vec!["DNS:dev1".to_string()]);
    assert!(cert_info(&PeerTls::default()).is_none());
}

/// A password that matched a hash is recognised again for that name and hash only: another
/// password, a changed hash (a new password stored) or another name misses.
#[test]
fn verified_passwords_hit_only_the_same_password_and_hash() {
    use evgrid_actors::identity::password::PasswordHash;
    let v = Verified::new();
    let h = PasswordHash("pbkdf2-sha256$1000$c2FsdHNhbHQ$aGFzaA".into());
    let other = PasswordHash("pbkdf2-sha256$1000$c2FsdHNhbHQ$b3RoZXI".into());
    assert!(!v.hit("dev-1", &h, b"pw"));
    v.record("Dev-1", &h, b"pw");
    assert!(v.hit("dev-1", &h, b"pw"), "names are case-insensitive");
    assert!(!v.hit("dev-1", &h, b"pw2"));
    assert!(!v.hit("dev-1", &h, b""));
    assert!(!v.hit("dev-1", &other, b"pw"));
    assert!(!v.hit("dev-2", &h, b"pw"));
}
