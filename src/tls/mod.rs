//! TLS for the listeners evgrid serves (MQTT over TLS, MQTT over secure WebSockets, HTTPS):
//! loading certificates and keys from PEM files, building the rustls server configuration every
//! listener shares, and swapping the certificate in place on reload.
//!
//! Owns the files' parsing and their errors (each names the file and the reason), and the one
//! place a listener's current certificate lives. Must never fall back to plaintext, and never
//! drop the certificate in use for a file that does not load: a reload that fails keeps it.
//!
//! rustls with its `ring` provider: the `aws-lc-rs` default needs cmake and a C build, and
//! ring is what actix-tls, ntex-tls and awc all accept, so the tree holds one TLS stack.

pub mod client;
pub mod config;
pub mod der;
pub mod dev;
pub mod failure;
pub mod peer;
pub mod reload;
mod request;

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig};

pub use config::{ClientAuth, PushTls, TlsListener};

/// A TLS file that cannot be used, with the reason: evgrid exits 2 with it at start, and keeps
/// the certificate it has when it happens on reload.
#[derive(Debug, thiserror::Error)]
#[error("{section}: {}: {reason}", file.display())]
pub struct TlsError {
    /// The configuration section (`mqtt.tls`).
    pub section: String,
    pub file: PathBuf,
    pub reason: String,
}

fn error(section: &str, file: &Path, reason: impl Into<String>) -> TlsError {
    TlsError {
        section: section.to_string(),
        file: file.to_path_buf(),
        reason: reason.into(),
    }
}

fn pem_reason(e: rustls::pki_types::pem::Error) -> String {
    use rustls::pki_types::pem::Error as E;
    match e {
        E::Io(e) => e.to_string(),
        E::NoItemsFound => "no PEM item of the expected kind in the file".into(),
        E::MissingSectionEnd { .. } | E::IllegalSectionStart { .. } => "not valid PEM".into(),
        E::Base64Decode(e) => format!("not valid PEM: {e}"),
        other => format!("not valid PEM: {other:?}"),
    }
}

/// Reads every certificate of a PEM file: at least one.
pub fn read_certs(section: &str, file: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(file)
        .map_err(|e| error(section, file, pem_reason(e)))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| error(section, file, pem_reason(e)))?;
    if certs.is_empty() {
        return Err(error(section, file, "no certificate in the file"));
    }
    Ok(certs)
}

/// Reads a certificate chain and its key, and checks they belong together.
pub fn read_certified_key(
    section: &str,
    cert_file: &Path,
    key_file: &Path,
) -> Result<Arc<CertifiedKey>, TlsError> {
    let chain = read_certs(section, cert_file)?;
    let key = PrivateKeyDer::from_pem_file(key_file)
        .map_err(|e| error(section, key_file, pem_reason(e)))?;
    let signer = rustls::crypto::ring::sign::any_supported_type(&key)
        .map_err(|e| error(section, key_file, format!("unusable private key: {e}")))?;
    let ck = CertifiedKey::new(chain, signer);
    ck.keys_match().map_err(|e| {
        error(
            section,
            key_file,
            format!(
                "the key does not match the certificate in {}: {e}",
                cert_file.display()
            ),
        )
    })?;
    Ok(Arc::new(ck))
}

/// A root store of the CA certificates in a PEM file.
pub fn read_roots(section: &str, file: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for c in read_certs(section, file)? {
        roots
            .add(c)
            .map_err(|e| error(section, file, format!("not a usable CA certificate: {e}")))?;
    }
    Ok(roots)
}

/// The certificate a listener presents, swappable while handshakes read it.
#[derive(Debug)]
struct Current(RwLock<Arc<CertifiedKey>>);

impl ResolvesServerCert for Current {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.read().unwrap_or_else(|p| p.into_inner()).clone())
    }
}

/// One TLS listener's configuration: what its acceptor is built from, and its reload.
#[derive(Clone)]
pub struct ServerTls {
    section: String,
    cfg: TlsListener,
    current: Arc<Current>,
    server: Arc<ServerConfig>,
}

impl ServerTls {
    /// Loads `cfg`'s files and builds the server configuration, TLS 1.2 and 1.3 only, offering
    /// `alpn` (empty: no ALPN). `section` names the configuration section in errors.
    pub fn load(section: &str, cfg: &TlsListener, alpn: &[&[u8]]) -> Result<ServerTls, TlsError> {
        let ck = read_certified_key(section, &cfg.cert_file, &cfg.key_file)?;
        let current = Arc::new(Current(RwLock::new(ck)));
        let builder = ServerConfig::builder_with_protocol_versions(&[
            &rustls::version::TLS13,
            &rustls::version::TLS12,
        ]);
        let builder = match cfg.client_auth {
            ClientAuth::None => builder.with_no_client_auth(),
            ClientAuth::Request => builder
                .with_client_cert_verifier(std::sync::Arc::new(request::AnyClientCert::new())),
            auth => {
                let roots = Arc::new(read_roots(section, &cfg.ca_file)?);
                let v = WebPkiClientVerifier::builder(roots);
                let v = match auth {
                    ClientAuth::Optional => v.allow_unauthenticated(),
                    _ => v,
                };
                let verifier = v
                    .build()
                    .map_err(|e| error(section, &cfg.ca_file, e.to_string()))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut server = builder.with_cert_resolver(current.clone());
        server.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(ServerTls {
            section: section.to_string(),
            cfg: cfg.clone(),
            current,
            server: Arc::new(server),
        })
    }

    /// The rustls configuration the listener's acceptor takes; it always presents the current
    /// certificate.
    pub fn server_config(&self) -> Arc<ServerConfig> {
        self.server.clone()
    }

    /// The configuration section it was loaded from (`mqtt.tls`).
    pub fn section(&self) -> &str {
        &self.section
    }

    /// The listener's settings.
    pub fn settings(&self) -> &TlsListener {
        &self.cfg
    }

    /// Reads the certificate and key files again; on success new handshakes present the new
    /// certificate (connections already open keep theirs). On error the current one stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let ck = read_certified_key(&self.section, &self.cfg.cert_file, &self.cfg.key_file)?;
        *self.current.0.write().unwrap_or_else(|p| p.into_inner()) = ck;
        Ok(())
    }

    /// The certificate presented now (its DER, leaf first).
    pub fn current_chain(&self) -> Vec<CertificateDer<'static>> {
        self.current
            .0
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .cert
            .clone()
    }
}

/// Loads every TLS file the configuration names (listeners enabled, push's extra CA), so a
/// missing, unreadable, mismatched or non-PEM file stops evgrid at start with its name.
pub fn check(cfg: &crate::config::Config) -> Result<(), TlsError> {
    for (section, l) in [("mqtt.tls", &cfg.mqtt.tls), ("http.tls", &cfg.http.tls)] {
        let wss = section == "mqtt.tls" && !cfg.mqtt.wss_bind.trim().is_empty();
        if l.enabled() || wss {
            ServerTls::load(section, l, &[])?;
        }
    }
    let ca = &cfg.push.tls.ca_file;
    if !ca.as_os_str().is_empty() {
        read_roots("push.tls", ca)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
