//! The TLS client configuration of push delivery: what an `https://` webhook's certificate is
//! verified against (the system's roots plus `push.tls.ca_file`).
//!
//! Owns building the rustls `ClientConfig` the delivery shards connect with. Must never build a
//! verifier that accepts what it cannot verify: a certificate that does not chain to these roots
//! is a delivery failure (outcome `CertificateError`), never a reason to try plaintext.

use std::sync::Arc;

use rustls::{ClientConfig, RootCertStore};

use super::{PushTls, TlsError};

/// The roots: every certificate of the system's trust store that rustls accepts (one it cannot
/// parse is skipped, as browsers do), then those of `push.tls.ca_file` (which must all load).
pub fn push_roots(cfg: &PushTls) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for e in &native.errors {
        tracing::debug!(error = %e, "a system trust store entry could not be read");
    }
    let (added, skipped) = roots.add_parsable_certificates(native.certs);
    tracing::debug!(added, skipped, "system roots for https webhooks");
    if !cfg.ca_file.as_os_str().is_empty() {
        let extra = super::read_roots("push.tls", &cfg.ca_file)?;
        roots.roots.extend(extra.roots);
    }
    Ok(roots)
}

/// The configuration every delivery shard's HTTP client connects to `https://` webhooks with:
/// TLS 1.2 and 1.3, HTTP/1.1 (the shards speak nothing else), no client certificate.
pub fn push_client_config(cfg: &PushTls) -> Result<Arc<ClientConfig>, TlsError> {
    let roots = push_roots(cfg)?;
    let mut config = ClientConfig::builder_with_protocol_versions(&[
        &rustls::version::TLS13,
        &rustls::version::TLS12,
    ])
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_extra_ca_joins_the_system_roots_and_a_bad_file_is_named() {
        let d = std::env::temp_dir().join(format!("evgrid-tls-client-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let system = push_roots(&PushTls::default()).unwrap().len();
        let ca = d.join("ca.pem");
        let dev = super::super::dev::DevCa::new("test CA").unwrap();
        std::fs::write(&ca, dev.cert_pem()).unwrap();
        let with = PushTls {
            ca_file: ca.clone(),
        };
        assert_eq!(push_roots(&with).unwrap().len(), system + 1);
        let cfg = push_client_config(&with).unwrap();
        assert_eq!(cfg.alpn_protocols, vec![b"http/1.1".to_vec()]);

        let junk = d.join("junk.pem");
        std::fs::write(&junk, "not a certificate").unwrap();
        let e = push_client_config(&PushTls { ca_file: junk }).unwrap_err();
        assert_eq!(e.section, "push.tls");
        assert!(e.to_string().contains("junk.pem"), "{e}");
        let _ = std::fs::remove_dir_all(&d);
    }
}
