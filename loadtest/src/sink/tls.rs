//! `webhook-sink --tls-cert/--tls-key`: the sink over HTTPS, so push delivery to `https://`
//! endpoints (certificate verification, connection reuse over TLS) can be measured.
//!
//! Owns loading the PEM files and the handshake of each accepted connection, bounded in time.
//! Must never serve plaintext on the TLS listener: a client that does not finish a handshake
//! is counted as an error and dropped.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// How long a client has to finish its handshake.
pub(super) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The acceptor of `cert` (chain, PEM, leaf first) and `key` (PEM); `Err` names the file.
pub(super) fn acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, String> {
    let named = |f: &Path, e: &dyn std::fmt::Display| format!("{}: {e}", f.display());
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| named(cert, &e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| named(cert, &e))?;
    if chain.is_empty() {
        return Err(named(cert, &"no certificate in the file"));
    }
    let key_file = key;
    let key = PrivateKeyDer::from_pem_file(key_file).map_err(|e| named(key_file, &e))?;
    // The process's provider: ring, the only one built in.
    let mut cfg = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| format!("{} with {}: {e}", cert.display(), key_file.display()))?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(cfg)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_and_non_pem_files_are_named() {
        let dir = std::env::temp_dir().join(format!("sink-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let junk = dir.join("junk.pem");
        std::fs::write(&junk, "not pem").unwrap();
        let missing = dir.join("missing.pem");
        let e = acceptor(&missing, &junk).err().unwrap();
        assert!(e.contains("missing.pem"), "{e}");
        let e = acceptor(&junk, &junk).err().unwrap();
        assert!(e.contains("junk.pem"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
