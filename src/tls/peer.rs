//! What a TLS handshake tells about the client: the server name it asked for (SNI) and the
//! certificate chain it presented, verified, with the fields client authentication matches on
//! (docs/eventgrid.md §7.3, §7.4: subject or thumbprint).
//!
//! Owns the shapes and their derivation from DER. Pure: no I/O, no clock. Must never be built from
//! a chain rustls did not verify (the listeners build it only after the handshake succeeded).

use rustls::pki_types::CertificateDer;
use sha2::{Digest, Sha256};

/// A verified client certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCert {
    /// The chain as the client sent it, leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    /// SHA-256 of the leaf's DER, uppercase hex (how Event Grid shows thumbprints).
    pub thumbprint: String,
    /// The leaf's subject, `O=…, CN=…` in the certificate's order (RFC 4514 escaping).
    pub subject: String,
    /// The subject's common name (the last CN), when it has one.
    pub common_name: Option<String>,
    /// The leaf's subject alternative names: `DNS:…`, `IP:…`, `URI:…`, `email:…`.
    pub sans: Vec<String>,
}

/// What the TLS layer knows about the peer of a connection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerTls {
    /// The server name the client asked for (SNI), when it sent one.
    pub sni: Option<String>,
    /// The client's verified certificate, when it presented one.
    pub client_cert: Option<ClientCert>,
}

/// SHA-256 of `der`, uppercase hex.
pub fn thumbprint(der: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let digest = Sha256::digest(der);
    let mut s = String::with_capacity(64);
    for b in digest.iter() {
        s.push(char::from(HEX[usize::from(b >> 4)]));
        s.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    s
}

impl ClientCert {
    /// The certificate of `chain` (leaf first); `None` when it is empty or its leaf does not
    /// parse (rustls verified it, so that does not happen with a certificate it accepted).
    pub fn from_chain(chain: Vec<CertificateDer<'static>>) -> Option<ClientCert> {
        let leaf = chain.first()?;
        let (subject, common_name) = super::der::subject(leaf)?;
        let sans = super::der::subject_alt_names(leaf)?;
        Some(ClientCert {
            thumbprint: thumbprint(leaf),
            subject,
            common_name,
            sans,
            chain,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::dev::DevCa;

    fn chain(pem: &str) -> Vec<CertificateDer<'static>> {
        use rustls::pki_types::pem::PemObject;
        CertificateDer::pem_slice_iter(pem.as_bytes())
            .collect::<Result<_, _>>()
            .expect("pem")
    }

    #[test]
    fn a_dev_client_certificate_shows_subject_sans_and_thumbprint() {
        let ca = DevCa::new("test CA").expect("ca");
        let (pem, _) = ca
            .issue("device-1", &["device-1.example", "10.1.2.3", "::1"], true)
            .expect("issue");
        let c = ClientCert::from_chain(chain(&pem)).expect("parses");
        assert_eq!(c.subject, "O=evgrid development, CN=device-1");
        assert_eq!(c.common_name.as_deref(), Some("device-1"));
        assert_eq!(
            c.sans,
            ["DNS:device-1.example", "IP:10.1.2.3", "IP:::1"],
            "in the certificate's order"
        );
        // What `openssl x509 -fingerprint -sha256` prints, without the colons.
        assert_eq!(c.thumbprint.len(), 64);
        assert_eq!(c.thumbprint, c.thumbprint.to_uppercase());
        assert_eq!(c.thumbprint, thumbprint(&c.chain[0]));
        let (other, _) = ca.issue("device-1", &[], true).expect("issue");
        let o = ClientCert::from_chain(chain(&other)).expect("parses");
        assert_ne!(
            o.thumbprint, c.thumbprint,
            "a thumbprint is per certificate"
        );
        assert!(o.sans.is_empty());
    }

    #[test]
    fn thumbprint_is_uppercase_sha256_hex() {
        assert_eq!(
            thumbprint(b"abc"),
            "BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD"
        );
    }

    #[test]
    fn the_ca_itself_parses_and_an_empty_chain_is_none() {
        let ca = DevCa::new("Some, CA").expect("ca");
        let c = ClientCert::from_chain(chain(&ca.cert_pem())).expect("parses");
        assert_eq!(c.subject, "O=evgrid development, CN=Some\\, CA");
        assert_eq!(c.common_name.as_deref(), Some("Some, CA"));
        assert_eq!(ClientCert::from_chain(Vec::new()), None);
        assert_eq!(
            ClientCert::from_chain(vec![CertificateDer::from(vec![0x30, 0x00])]),
            None
        );
    }
}
