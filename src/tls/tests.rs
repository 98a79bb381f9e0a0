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

/// A client certificate resolver that presents `chain` and signs with `key`, whatever they are
/// (rustls's own builder refuses a key that does not match the certificate).
#[derive(Debug)]
struct Present(Arc<rustls::sign::CertifiedKey>);

impl rustls::client::ResolvesClientCert for Present {
    fn resolve(
        &self,
        _: &[&[u8]],
        _: &[rustls::SignatureScheme],
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(self.0.clone())
    }
    fn has_certs(&self) -> bool {
        true
    }
}

/// Runs a handshake in memory; the server's verdict.
fn handshake(
    server: Arc<rustls::ServerConfig>,
    client: Arc<rustls::ClientConfig>,
) -> Result<Option<Vec<u8>>, rustls::Error> {
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut c = rustls::ClientConnection::new(client, name).unwrap();
    let mut s = rustls::ServerConnection::new(server).unwrap();
    for _ in 0..20 {
        let mut buf = Vec::new();
        while c.wants_write() {
            c.write_tls(&mut buf).unwrap();
        }
        if !buf.is_empty() {
            s.read_tls(&mut &buf[..]).unwrap();
            s.process_new_packets()?;
        }
        let mut buf = Vec::new();
        while s.wants_write() {
            s.write_tls(&mut buf).unwrap();
        }
        if !buf.is_empty() {
            c.read_tls(&mut &buf[..]).unwrap();
            let _ = c.process_new_packets();
        }
        if !s.is_handshaking() && !c.is_handshaking() {
            // TLS 1.3: the client's certificate and its signature arrive with its Finished.
            let mut buf = Vec::new();
            while c.wants_write() {
                c.write_tls(&mut buf).unwrap();
            }
            if !buf.is_empty() {
                s.read_tls(&mut &buf[..]).unwrap();
                s.process_new_packets()?;
            }
            return Ok(s
                .peer_certificates()
                .and_then(|c| c.first())
                .map(|c| c.to_vec()));
        }
    }
    panic!("handshake did not finish");
}

/// `client_auth = "request"`: no certificate, or any self-signed one, passes the handshake and
/// reaches the connection; a certificate presented without its key (the handshake signed with
/// another) is refused: the client must prove it holds the key.
#[test]
fn requested_client_certificates_must_be_signed_for() {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let d = scratch("request");
    let ca = DevCa::new("server CA").unwrap();
    let (c, k) = ca.issue("localhost", &["localhost"], false).unwrap();
    let mut l = listener(&write(&d, "s.pem", &c), &write(&d, "s.key", &k));
    l.client_auth = ClientAuth::Request;
    let server = ServerTls::load("mqtt.tls", &l, &[])
        .unwrap()
        .server_config();
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca.cert_pem().as_bytes()).unwrap())
        .unwrap();
    let provider = rustls::crypto::CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| {
            #[allow(deprecated)]
            Arc::new(rustls::crypto::ring::default_provider())
        });
    let client = |cert_of: &DevCa, key_of: &DevCa| {
        let chain = vec![CertificateDer::from_pem_slice(cert_of.cert_pem().as_bytes()).unwrap()];
        let key = PrivateKeyDer::from_pem_slice(key_of.key_pem().as_bytes()).unwrap();
        let key = provider.key_provider.load_private_key(key).unwrap();
        let ck = Arc::new(rustls::sign::CertifiedKey::new(chain, key));
        Arc::new(
            rustls::ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots.clone())
                .with_client_cert_resolver(Arc::new(Present(ck))),
        )
    };
    let anonymous = Arc::new(
        rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots.clone())
            .with_no_client_auth(),
    );
    assert_eq!(handshake(server.clone(), anonymous).unwrap(), None);
    let device = DevCa::new("device-1").unwrap();
    let leaf = CertificateDer::from_pem_slice(device.cert_pem().as_bytes()).unwrap();
    assert_eq!(
        handshake(server.clone(), client(&device, &device)).unwrap(),
        Some(leaf.to_vec()),
        "any self-signed certificate, signed for"
    );
    let thief = DevCa::new("thief").unwrap();
    let e = handshake(server, client(&device, &thief)).unwrap_err();
    assert!(
        matches!(
            e,
            rustls::Error::InvalidCertificate(rustls::CertificateError::BadSignature)
        ),
        "{e:?}"
    );
}
