//! Why a TLS handshake was refused, from the error rustls or the I/O layer gave: the reason label
//! of `evgrid_tls_handshake_failures_total` for every TLS listener (MQTT, secure WebSockets,
//! HTTPS).
//!
//! Owns the mapping only. Must never decide anything else from an error (a refusal is already
//! final when it is classified).

use std::io;

use evgrid_actors::metrics::HandshakeFailure;

/// Why a handshake failed, from the error the TLS filter gave: rustls's own error inside an
/// `InvalidData` error, or the I/O condition that ended it.
pub fn classify(e: &io::Error) -> HandshakeFailure {
    use io::ErrorKind as K;
    if let Some(r) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        return classify_rustls(r);
    }
    match e.kind() {
        K::TimedOut => HandshakeFailure::Timeout,
        K::NotConnected
        | K::UnexpectedEof
        | K::ConnectionReset
        | K::ConnectionAborted
        | K::BrokenPipe => HandshakeFailure::PeerClosed,
        _ => HandshakeFailure::Other,
    }
}

/// Why rustls refused a handshake.
pub fn classify_rustls(e: &rustls::Error) -> HandshakeFailure {
    use rustls::{Error as E, InvalidMessage as M, PeerIncompatible as P};
    match e {
        // The first bytes are no TLS record: plain MQTT (0x10, CONNECT) or HTTP on the TLS port.
        E::InvalidMessage(M::InvalidContentType | M::UnknownProtocolVersion) => {
            HandshakeFailure::NotTls
        }
        // TLS 1.0/1.1 only (evgrid accepts 1.2 and 1.3). rustls looks for the signature
        // algorithms extension, which TLS 1.2 brought, before it compares versions: a 1.0/1.1
        // ClientHello ends there.
        E::PeerIncompatible(
            P::Tls12NotOffered
            | P::Tls12NotOfferedOrEnabled
            | P::SupportedVersionsExtensionRequired
            | P::SignatureAlgorithmsExtensionRequired,
        ) => HandshakeFailure::ProtocolVersion,
        // Unknown issuer (another CA, self-signed), expired, bad signature, wrong usage...
        E::InvalidCertificate(_) => HandshakeFailure::BadCertificate,
        E::NoCertificatesPresented => HandshakeFailure::NoCertificate,
        // The client gave up (it did not trust evgrid's certificate, say) and said so.
        E::AlertReceived(_) => HandshakeFailure::PeerClosed,
        _ => HandshakeFailure::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::{CertificateError, Error as E, InvalidMessage, PeerIncompatible};

    #[test]
    fn handshake_errors_are_classified() {
        let wrap = |e: E| io::Error::new(io::ErrorKind::InvalidData, e);
        let cases = [
            (
                wrap(E::InvalidMessage(InvalidMessage::InvalidContentType)),
                HandshakeFailure::NotTls,
            ),
            (
                wrap(E::PeerIncompatible(PeerIncompatible::Tls12NotOffered)),
                HandshakeFailure::ProtocolVersion,
            ),
            (
                wrap(E::PeerIncompatible(
                    PeerIncompatible::SignatureAlgorithmsExtensionRequired,
                )),
                HandshakeFailure::ProtocolVersion,
            ),
            (
                wrap(E::InvalidCertificate(CertificateError::UnknownIssuer)),
                HandshakeFailure::BadCertificate,
            ),
            (
                wrap(E::InvalidCertificate(CertificateError::Expired)),
                HandshakeFailure::BadCertificate,
            ),
            (
                wrap(E::NoCertificatesPresented),
                HandshakeFailure::NoCertificate,
            ),
            (
                wrap(E::AlertReceived(rustls::AlertDescription::UnknownCA)),
                HandshakeFailure::PeerClosed,
            ),
            (wrap(E::DecryptError), HandshakeFailure::Other),
            (
                io::Error::new(io::ErrorKind::TimedOut, "rustls handshake timeout"),
                HandshakeFailure::Timeout,
            ),
            (
                io::Error::new(io::ErrorKind::NotConnected, "disconnected"),
                HandshakeFailure::PeerClosed,
            ),
            (io::Error::other("?"), HandshakeFailure::Other),
        ];
        for (e, want) in cases {
            assert_eq!(classify(&e), want, "{e}");
        }
    }
}
