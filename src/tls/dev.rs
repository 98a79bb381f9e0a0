//! `evgrid cert dev`: a local certificate authority with a server certificate for `localhost`
//! and `127.0.0.1` and a client certificate, so TLS and mutual TLS can be tried (and tested)
//! without an external tool.
//!
//! Owns certificate generation (rcgen, ECDSA P-256). Must never be used for anything but
//! development: the CA's key is written next to its certificate, unprotected.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

/// A date: (year, month, day).
pub type Ymd = (i32, u8, u8);

/// A certificate authority that issues certificates.
pub struct DevCa {
    cert: rcgen::Certificate,
    key: KeyPair,
}

fn name(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "evgrid development");
    dn.push(DnType::CommonName, cn);
    dn
}

impl DevCa {
    /// A new self-signed CA named `cn`.
    pub fn new(cn: &str) -> Result<DevCa, rcgen::Error> {
        let mut p = CertificateParams::new(Vec::<String>::new())?;
        p.distinguished_name = name(cn);
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate()?;
        let cert = p.self_signed(&key)?;
        Ok(DevCa { cert, key })
    }

    /// The CA's certificate, PEM.
    pub fn cert_pem(&self) -> String {
        self.cert.pem()
    }

    /// The CA's private key, PEM.
    pub fn key_pem(&self) -> String {
        self.key.serialize_pem()
    }

    /// A certificate for `cn` with the subject alternative names `sans` (DNS names or IP
    /// addresses), for a server or a client: (certificate PEM, key PEM).
    pub fn issue(
        &self,
        cn: &str,
        sans: &[&str],
        client: bool,
    ) -> Result<(String, String), rcgen::Error> {
        self.issue_with(cn, sans, client, None)
    }

    /// [`DevCa::issue`] with the validity period given, as (year, month, day) from and until
    /// (`None`: rcgen's default, 1975 to 4096): tests make expired certificates with it.
    pub fn issue_with(
        &self,
        cn: &str,
        sans: &[&str],
        client: bool,
        valid: Option<(Ymd, Ymd)>,
    ) -> Result<(String, String), rcgen::Error> {
        let mut p = CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())?;
        if let Some(((y0, m0, d0), (y1, m1, d1))) = valid {
            p.not_before = rcgen::date_time_ymd(y0, m0, d0);
            p.not_after = rcgen::date_time_ymd(y1, m1, d1);
        }
        p.distinguished_name = name(cn);
        p.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        p.extended_key_usages = vec![match client {
            true => ExtendedKeyUsagePurpose::ClientAuth,
            false => ExtendedKeyUsagePurpose::ServerAuth,
        }];
        let key = KeyPair::generate()?;
        let cert = p.signed_by(&key, &self.cert, &self.key)?;
        Ok((cert.pem(), key.serialize_pem()))
    }
}

/// The files [`write`] makes, in the order it lists them.
pub const FILES: [&str; 6] = [
    "ca.pem",
    "ca.key",
    "server.pem",
    "server.key",
    "client.pem",
    "client.key",
];

/// Writes a new CA, a server certificate for `localhost`/`127.0.0.1`/`::1` and a client
/// certificate whose common name is `client_name` into `out` (created if missing). Keys are
/// written readable by the owner only.
pub fn write(out: &Path, client_name: &str) -> std::io::Result<Vec<PathBuf>> {
    let gen_err = |e: rcgen::Error| std::io::Error::other(format!("generating certificates: {e}"));
    let ca = DevCa::new("evgrid development CA").map_err(gen_err)?;
    let (server, server_key) = ca
        .issue("localhost", &["localhost", "127.0.0.1", "::1"], false)
        .map_err(gen_err)?;
    let (client, client_key) = ca.issue(client_name, &[], true).map_err(gen_err)?;
    std::fs::create_dir_all(out)?;
    let contents = [
        ca.cert_pem(),
        ca.key_pem(),
        server,
        server_key,
        client,
        client_key,
    ];
    let mut written = Vec::new();
    for (file, text) in FILES.iter().zip(contents) {
        let path = out.join(file);
        write_file(&path, text.as_bytes(), file.ends_with(".key"))?;
        written.push(path);
    }
    Ok(written)
}

fn write_file(path: &Path, bytes: &[u8], secret: bool) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(if secret { 0o600 } else { 0o644 })
        .open(path)
        .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
    f.write_all(bytes)
}
