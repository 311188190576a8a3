//! Why a TLS handshake failed, in the words an operator acts on. rustls reports a refused
//! certificate either as its own verdict on the server's certificate
//! ([`rustls::Error::InvalidCertificate`]) or as the alert the server sent about ours
//! ([`rustls::Error::AlertReceived`]); clients wrap it in `std::io::Error`s and their own
//! error types. [`Handshake::find`] digs it out of any of them.

use std::fmt;

use rustls::{AlertDescription as A, CertificateError as C};

/// The reason a handshake failed: the `reason` label of
/// `quantrac_tls_handshake_failures_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Failure {
    /// A certificate is signed by a CA the other side does not trust.
    UnknownCa,
    /// A certificate has expired (or is not valid yet).
    Expired,
    /// A certificate was refused for another reason (revoked, wrong purpose, malformed).
    BadCertificate,
    /// The server requires a client certificate and none was presented.
    CertificateRequired,
    /// The server's certificate is not for the host name in the URL.
    NameMismatch,
    /// Anything else: no common protocol version or cipher suite, a broken handshake.
    Handshake,
}

impl Failure {
    pub const ALL: [Failure; 6] = [
        Failure::UnknownCa,
        Failure::Expired,
        Failure::BadCertificate,
        Failure::CertificateRequired,
        Failure::NameMismatch,
        Failure::Handshake,
    ];

    pub fn as_label(self) -> &'static str {
        match self {
            Failure::UnknownCa => "unknown_ca",
            Failure::Expired => "expired",
            Failure::BadCertificate => "bad_certificate",
            Failure::CertificateRequired => "certificate_required",
            Failure::NameMismatch => "name_mismatch",
            Failure::Handshake => "handshake",
        }
    }
}

/// A failed TLS handshake: the reason and a sentence that says whose certificate was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Handshake {
    pub failure: Failure,
    pub detail: String,
}

impl fmt::Display for Handshake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "TLS handshake failed ({}): {}",
            self.failure.as_label(),
            self.detail
        )
    }
}

impl std::error::Error for Handshake {}

impl Handshake {
    /// The TLS failure inside `e` (or one of its causes), if there is one.
    pub fn find(e: &(dyn std::error::Error + 'static)) -> Option<Handshake> {
        let mut next = Some(e);
        while let Some(err) = next {
            if let Some(r) = err.downcast_ref::<rustls::Error>() {
                return Some(Handshake::from_rustls(r));
            }
            // `io::Error::source` skips the error it wraps: look inside it.
            if let Some(inner) = err
                .downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
            {
                if let Some(found) = Handshake::find(inner) {
                    return Some(found);
                }
            }
            next = err.source();
        }
        None
    }

    /// Sorts a rustls error.
    pub fn from_rustls(e: &rustls::Error) -> Handshake {
        let (failure, detail) = match e {
            rustls::Error::InvalidCertificate(c) => match c {
                C::UnknownIssuer => (
                    Failure::UnknownCa,
                    "the server's certificate is not signed by a trusted CA (check ca_file)".into(),
                ),
                C::Expired | C::ExpiredContext { .. } => (
                    Failure::Expired,
                    "the server's certificate has expired".into(),
                ),
                C::NotValidYet | C::NotValidYetContext { .. } => (
                    Failure::Expired,
                    "the server's certificate is not valid yet (check the clocks)".into(),
                ),
                C::NotValidForName | C::NotValidForNameContext { .. } => (
                    Failure::NameMismatch,
                    "the server's certificate is not for the host name in the URL".into(),
                ),
                other => (
                    Failure::BadCertificate,
                    format!("the server's certificate was refused: {other:?}"),
                ),
            },
            rustls::Error::AlertReceived(alert) => match alert {
                A::UnknownCA => (
                    Failure::UnknownCa,
                    "the server does not trust the CA that signed our certificate (cert_file)"
                        .into(),
                ),
                A::CertificateExpired => (
                    Failure::Expired,
                    "the server refused our certificate (cert_file) as expired".into(),
                ),
                A::CertificateRequired => (
                    Failure::CertificateRequired,
                    "the server requires a client certificate (set cert_file and key_file)".into(),
                ),
                A::BadCertificate
                | A::UnsupportedCertificate
                | A::CertificateRevoked
                | A::CertificateUnknown
                | A::AccessDenied
                | A::DecryptError => (
                    Failure::BadCertificate,
                    format!("the server refused our certificate (cert_file): {alert:?}"),
                ),
                other => (
                    Failure::Handshake,
                    format!("the server ended the handshake: {other:?} (under TLS 1.2 this is also how a server asks for a client certificate)"),
                ),
            },
            other => (Failure::Handshake, other.to_string()),
        };
        Handshake { failure, detail }
    }
}
