//! Reading the PEM files of one client: the CA certificates, the client certificate chain and
//! its private key. Errors say what is wrong and name the key; a key file's content never
//! appears in one (it is held as a secret from the moment it is read).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use secrecy::{ExposeSecret as _, SecretSlice};

/// A file of a TLS key that cannot be used: which key, which file, why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {}: {reason}", path.display())]
pub struct KeyError {
    /// `section.key`, such as `mqtt.cert_file`.
    pub key: String,
    pub path: PathBuf,
    pub reason: String,
}

impl KeyError {
    pub(super) fn new(section: &str, key: &str, path: &Path, reason: impl Into<String>) -> Self {
        KeyError {
            key: format!("{section}.{key}"),
            path: path.to_owned(),
            reason: reason.into(),
        }
    }
}

/// Every certificate in a PEM file; at least one.
pub(super) fn certificates(
    path: &Path,
    section: &str,
    key: &str,
) -> Result<Vec<CertificateDer<'static>>, KeyError> {
    let bad = |reason: String| KeyError::new(section, key, path, reason);
    let bytes = std::fs::read(path).map_err(|e| bad(format!("cannot read the file: {e}")))?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(format!("not a PEM certificate file: {e}")))?;
    if certs.is_empty() {
        return Err(bad(
            "no certificate in the file (expected -----BEGIN CERTIFICATE-----)".into(),
        ));
    }
    for c in &certs {
        x509_parser::parse_x509_certificate(c)
            .map_err(|e| bad(format!("a certificate in the file cannot be parsed: {e}")))?;
    }
    Ok(certs)
}

/// A client certificate (with the rest of its chain) and its private key, checked to belong
/// together and to be valid when loaded.
pub struct Identity {
    chain: Vec<CertificateDer<'static>>,
    key: Arc<PrivateKeyDer<'static>>,
    /// The certificate's subject, for log lines.
    pub subject: String,
    /// Validity, Unix seconds.
    pub not_before: i64,
    pub not_after: i64,
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("subject", &self.subject)
            .field("not_after", &date(self.not_after))
            .finish_non_exhaustive()
    }
}

impl Identity {
    /// Reads `cert` and `key` of `section` and checks them (`now`: Unix seconds).
    pub(super) fn load(
        section: &str,
        cert: &Path,
        key: &Path,
        now: i64,
    ) -> Result<Identity, KeyError> {
        let chain = certificates(cert, section, "cert_file")?;
        let bad_cert = |reason: String| KeyError::new(section, "cert_file", cert, reason);
        let bad_key = |reason: String| KeyError::new(section, "key_file", key, reason);

        let (_, parsed) = x509_parser::parse_x509_certificate(&chain[0])
            .map_err(|e| bad_cert(format!("cannot be parsed: {e}")))?;
        let validity = parsed.validity();
        let (not_before, not_after) = (
            validity.not_before.timestamp(),
            validity.not_after.timestamp(),
        );
        let subject = parsed.subject().to_string();
        if now > not_after {
            return Err(bad_cert(format!(
                "the certificate ({subject}) expired on {}",
                date(not_after)
            )));
        }
        if now < not_before {
            return Err(bad_cert(format!(
                "the certificate ({subject}) is not valid before {}",
                date(not_before)
            )));
        }

        let text: SecretSlice<u8> = std::fs::read(key)
            .map_err(|e| bad_key(format!("cannot read the file: {e}")))?
            .into();
        let private = PrivateKeyDer::from_pem_slice(text.expose_secret()).map_err(|_| {
            bad_key(
                "not a PEM private key (expected -----BEGIN PRIVATE KEY-----, RSA PRIVATE KEY or EC PRIVATE KEY)"
                    .into(),
            )
        })?;
        let provider = rustls::crypto::ring::default_provider();
        let signer = provider
            .key_provider
            .load_private_key(private.clone_key())
            .map_err(|e| bad_key(format!("the private key cannot be used: {e}")))?;
        match rustls::sign::CertifiedKey::new(chain.clone(), signer).keys_match() {
            Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
            Err(_) => {
                return Err(bad_key(format!(
                    "this private key does not belong to the certificate in {} ({subject})",
                    cert.display()
                )))
            }
        }
        Ok(Identity {
            chain,
            key: Arc::new(private),
            subject,
            not_before,
            not_after,
        })
    }

    pub(super) fn chain(&self) -> &[CertificateDer<'static>] {
        &self.chain
    }

    pub(super) fn key(&self) -> PrivateKeyDer<'static> {
        self.key.clone_key()
    }

    /// Days left until the certificate expires at `now` (Unix seconds), rounded down.
    pub fn days_left(&self, now: i64) -> i64 {
        (self.not_after - now).div_euclid(86_400)
    }

    /// "expires on …, in N days" when fewer than [`super::EXPIRY_WARNING_DAYS`] are left at
    /// `now` (Unix seconds); `None` otherwise.
    pub fn expiry_warning(&self, now: i64) -> Option<String> {
        let days = self.days_left(now);
        (days < super::EXPIRY_WARNING_DAYS).then(|| {
            format!(
                "the certificate ({}) expires on {}, in {days} days",
                self.subject,
                self.expires()
            )
        })
    }

    /// The expiry date, for messages.
    pub fn expires(&self) -> String {
        date(self.not_after)
    }
}

/// `2026-12-30 12:00:00 UTC`.
fn date(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0)
        .map(|d| d.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| unix.to_string())
}
