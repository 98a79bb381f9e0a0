//! The TLS client side (tokio-rustls, ring provider): the CA bundle and client certificate the
//! flags name, read once per run into one shared `ClientConfig`, and the server name each
//! connection verifies and sends as SNI. Errors name the flag and the file.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};

use super::flags::TlsFlags;

/// Where the system CA bundle is looked for when --cafile is not given (Debian/Ubuntu/Alpine,
/// Fedora/RHEL, macOS/BSD).
const SYSTEM_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
];

/// What every TLS connection of a run shares: the configuration and the server name.
#[derive(Clone)]
pub struct TlsClient {
    pub connector: TlsConnector,
    pub server_name: ServerName<'static>,
}

impl std::fmt::Debug for TlsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TlsClient({:?})", self.server_name)
    }
}

impl TlsClient {
    /// The client for `host` (a DNS name or an IP address, verified against the certificate's
    /// SANs), offering `alpn` (none for MQTT, http/1.1 for HTTPS and wss).
    pub fn new(flags: &TlsFlags, host: &str, alpn: &[&[u8]]) -> Result<TlsClient, String> {
        let roots = match &flags.cafile {
            Some(f) => read_roots("--cafile", f)?,
            None => system_roots()?,
        };
        // TLS 1.2 and 1.3 with the one provider built in (ring)
        let builder = ClientConfig::builder().with_root_certificates(roots);
        let mut cfg = match (&flags.cert, &flags.cert_key) {
            (Some(cert), Some(key)) => {
                let chain = read_certs("--cert", cert)?;
                let key = PrivateKeyDer::from_pem_file(key).map_err(|e| {
                    format!("--cert-key {}: no usable private key: {e}", key.display())
                })?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| format!("--cert/--cert-key: {e}"))?
            }
            _ => builder.with_no_client_auth(),
        };
        // a fleet of distinct devices: every connection pays the full handshake
        cfg.resumption = rustls::client::Resumption::disabled();
        cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let server_name = ServerName::try_from(host.to_string())
            .map_err(|_| format!("'{host}' is not a valid TLS server name"))?;
        Ok(TlsClient {
            connector: TlsConnector::from(Arc::new(cfg)),
            server_name,
        })
    }
}

fn read_certs(flag: &str, f: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(f)
        .map_err(|e| format!("{flag} {}: {e}", f.display()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{flag} {}: not PEM: {e}", f.display()))?;
    if certs.is_empty() {
        return Err(format!("{flag} {}: no certificate in it", f.display()));
    }
    Ok(certs)
}

fn read_roots(flag: &str, f: &Path) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    for c in read_certs(flag, f)? {
        roots
            .add(c)
            .map_err(|e| format!("{flag} {}: {e}", f.display()))?;
    }
    Ok(roots)
}

fn system_roots() -> Result<RootCertStore, String> {
    match SYSTEM_BUNDLES
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
    {
        Some(p) => read_roots("system CA bundle", &p),
        None => Err(format!(
            "no system CA bundle (looked for {}): give --cafile FILE",
            SYSTEM_BUNDLES.join(", ")
        )),
    }
}
