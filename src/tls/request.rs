//! `client_auth = "request"`: the server asks for a client certificate and takes any chain at the
//! TLS layer, leaving the decision to the MQTT CONNECT (a registered thumbprint, or a chain to
//! a namespace's registered `caCertificates`: docs/eventgrid.md §7.3, §7.4 items 1–2).
//!
//! Owns the verifier. It must still verify the handshake signature, so a client proves it holds
//! the key of the certificate it presented: a thumbprint alone would otherwise be a password
//! anyone who saw the certificate could replay.

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, Error, SignatureScheme};

/// Accepts any client certificate chain (or none); verifies the handshake signature with ring's
/// algorithms.
#[derive(Debug)]
pub(crate) struct AnyClientCert {
    algs: WebPkiSupportedAlgorithms,
}

impl AnyClientCert {
    pub fn new() -> AnyClientCert {
        // The process's provider when one is installed; else ring, the one evgrid builds with
        // (src/tls/mod.rs). Deprecated only for lacking post-quantum key exchange, which
        // signature verification does not use.
        let algs = match rustls::crypto::CryptoProvider::get_default() {
            Some(p) => p.signature_verification_algorithms,
            #[allow(deprecated)]
            None => rustls::crypto::ring::default_provider().signature_verification_algorithms,
        };
        AnyClientCert { algs }
    }
}

impl ClientCertVerifier for AnyClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls12_signature(message, cert, dss, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}
