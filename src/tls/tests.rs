use std::path::Path;

use super::dev::DevCa;
use super::*;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write");
    p
}

fn scratch(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("evgrid-tls-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("scratch dir");
    d
}

fn listener(cert: &Path, key: &Path) -> TlsListener {
    TlsListener {
        bind: "127.0.0.1:0".into(),
        cert_file: cert.to_path_buf(),
        key_file: key.to_path_buf(),
        ..TlsListener::default()
    }
}

#[test]
fn loads_a_chain_and_key_and_reloads_in_place() {
    let d = scratch("reload");
    let ca = DevCa::new("test CA").expect("ca");
    let (cert, key) = ca.issue("localhost", &["localhost"], false).expect("issue");
    let (c, k) = (write(&d, "s.pem", &cert), write(&d, "s.key", &key));
    let tls = ServerTls::load("mqtt.tls", &listener(&c, &k), &[]).expect("loads");
    let before = tls.current_chain();
    // A broken file keeps the certificate in use.
    std::fs::write(&c, "not pem").expect("write");
    let err = tls.reload().expect_err("broken file refused");
    assert_eq!(err.file, c);
    assert_eq!(tls.current_chain(), before);
    // A new valid pair replaces it.
    let (cert2, key2) = ca.issue("localhost", &["localhost"], false).expect("issue");
    std::fs::write(&c, cert2).expect("write");
    std::fs::write(&k, key2).expect("write");
    tls.reload().expect("reloads");
    assert_ne!(tls.current_chain(), before);
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn every_bad_file_is_named_with_its_reason() {
    let d = scratch("bad");
    let ca = DevCa::new("test CA").expect("ca");
    let (cert, key) = ca.issue("localhost", &["localhost"], false).expect("issue");
    let (_, other_key) = ca.issue("other", &["other"], false).expect("issue");
    let c = write(&d, "s.pem", &cert);
    let k = write(&d, "s.key", &key);
    let wrong = write(&d, "other.key", &other_key);
    let garbage = write(&d, "garbage.pem", "hello\n");
    let missing = d.join("missing.pem");

    let e = ServerTls::load("mqtt.tls", &listener(&missing, &k), &[])
        .err()
        .expect("missing");
    assert_eq!(e.file, missing);
    assert!(e.to_string().starts_with("mqtt.tls: "), "{e}");
    assert!(e.reason.contains("No such file"), "{}", e.reason);

    let e = ServerTls::load("mqtt.tls", &listener(&garbage, &k), &[])
        .err()
        .expect("garbage");
    assert_eq!(e.file, garbage);
    assert!(e.reason.contains("no certificate"), "{}", e.reason);

    let e = ServerTls::load("http.tls", &listener(&c, &garbage), &[])
        .err()
        .expect("no key");
    assert_eq!(
        (e.section.as_str(), e.file.as_path()),
        ("http.tls", garbage.as_path())
    );

    let e = ServerTls::load("mqtt.tls", &listener(&c, &wrong), &[])
        .err()
        .expect("mismatch");
    assert_eq!(e.file, wrong);
    assert!(e.reason.contains("does not match"), "{}", e.reason);

    // A client CA that is not there, when client certificates are asked for.
    let mut l = listener(&c, &k);
    l.client_auth = ClientAuth::Required;
    l.ca_file = missing.clone();
    let e = ServerTls::load("mqtt.tls", &l, &[]).err().expect("no CA");
    assert_eq!(e.file, missing);
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn listener_settings_are_checked_without_files() {
    let mut l = TlsListener::default();
    assert_eq!(l.validate("mqtt.tls", false), Ok(()), "disabled by default");
    l.bind = "nowhere".into();
    assert_eq!(
        l.validate("mqtt.tls", false).unwrap_err().0,
        "mqtt.tls.bind"
    );
    l.bind = "127.0.0.1:8883".into();
    assert_eq!(
        l.validate("mqtt.tls", false).unwrap_err().0,
        "mqtt.tls.cert_file"
    );
    l.cert_file = "c.pem".into();
    assert_eq!(
        l.validate("mqtt.tls", false).unwrap_err().0,
        "mqtt.tls.key_file"
    );
    l.key_file = "k.pem".into();
    l.client_auth = ClientAuth::Optional;
    assert_eq!(
        l.validate("mqtt.tls", false).unwrap_err().0,
        "mqtt.tls.ca_file"
    );
    l.ca_file = "ca.pem".into();
    assert_eq!(l.validate("mqtt.tls", false), Ok(()));
    // Off, but its settings used by another listener (wss): checked all the same.
    let mut off = TlsListener {
        client_auth: ClientAuth::Required,
        cert_file: "c.pem".into(),
        key_file: "k.pem".into(),
        ..TlsListener::default()
    };
    assert_eq!(off.validate("mqtt.tls", false), Ok(()));
    assert_eq!(
        off.validate("mqtt.tls", true).unwrap_err().0,
        "mqtt.tls.ca_file"
    );
    off.client_auth = ClientAuth::None;
    off.handshake_timeout_ms = 0;
    assert_eq!(
        off.validate("mqtt.tls", false).unwrap_err().0,
        "mqtt.tls.handshake_timeout_ms"
    );
}

#[test]
fn dev_writes_a_ca_a_server_and_a_client_certificate() {
    let d = scratch("dev");
    let files = dev::write(&d, "device-1").expect("writes");
    assert_eq!(files.len(), dev::FILES.len());
    let l = listener(&d.join("server.pem"), &d.join("server.key"));
    let mut l = l;
    l.client_auth = ClientAuth::Required;
    l.ca_file = d.join("ca.pem");
    ServerTls::load("mqtt.tls", &l, &[b"mqtt"]).expect("the server pair and CA load");
    read_certified_key("t", &d.join("client.pem"), &d.join("client.key")).expect("client pair");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(d.join("client.key"))
        .expect("key")
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0, "keys are the owner's only");
    let _ = std::fs::remove_dir_all(&d);
}
