//! TLS for every client quantrac opens (the MQTT broker, InfluxDB): one way to read the
//! certificate files, one way to build the rustls configuration, one way to say why a
//! handshake failed.
//!
//! - [`ClientTls::load`] reads `ca_file`, `cert_file` and `key_file` of one client when the
//!   configuration is loaded (for `run` and `check-config` alike) and refuses what cannot
//!   work: an unreadable file, a file that is not PEM, a key that does not belong to the
//!   certificate, a certificate that has expired or is not valid yet. Each error names the
//!   file's key; none shows the content of a key file.
//! - [`ClientTls::client_config`] builds the `rustls::ClientConfig`: ring (the one crypto
//!   provider), TLS 1.3 preferred and TLS 1.2 accepted, nothing older; the private CA or else
//!   the system's roots; the client certificate when one is configured.
//! - [`Failure`] sorts a failed handshake into the reasons an operator acts on (unknown CA,
//!   expired, bad certificate, certificate required, wrong host name).
//!
//! This module depends on nothing else in the crate: `config` uses it to load, the stages
//! use it to connect.

mod failure;
mod files;

use std::sync::Arc;

use rustls::pki_types::CertificateDer;

pub use failure::{Failure, Handshake};
pub use files::{Identity, KeyError};

/// A certificate that expires within this many days is warned about at start.
pub const EXPIRY_WARNING_DAYS: i64 = 30;

/// The TLS settings of one client, read and checked.
#[derive(Clone, Default)]
pub struct ClientTls {
    /// Certificates of the private CA (`ca_file`); `None`: the system's roots.
    ca: Option<Vec<CertificateDer<'static>>>,
    /// The certificate and key presented to the server (`cert_file`, `key_file`).
    identity: Option<Arc<Identity>>,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls")
            .field("ca_certificates", &self.ca.as_ref().map(Vec::len))
            .field("identity", &self.identity)
            .finish()
    }
}

/// The files of one client as configured; `section` is the configuration section
/// (`mqtt`, `influx`), used to name the keys in errors.
#[derive(Clone, Copy, Debug)]
pub struct Files<'a> {
    pub section: &'static str,
    pub ca_file: Option<&'a std::path::Path>,
    pub cert_file: Option<&'a std::path::Path>,
    pub key_file: Option<&'a std::path::Path>,
}

/// The rustls configuration cannot be built (the files were fine when loaded).
#[derive(Debug, thiserror::Error)]
#[error("TLS configuration: {0}")]
pub struct Error(String);

impl ClientTls {
    /// Reads and checks the files; `now` (Unix seconds) decides whether the certificate is
    /// valid.
    pub fn load(files: Files<'_>, now: i64) -> Result<ClientTls, KeyError> {
        let ca = files
            .ca_file
            .map(|path| files::certificates(path, files.section, "ca_file"))
            .transpose()?;
        let identity = match (files.cert_file, files.key_file) {
            (None, None) => None,
            (Some(cert), Some(key)) => Some(Arc::new(Identity::load(
                files.section,
                cert,
                key,
                now,
            )?)),
            (Some(cert), None) => {
                return Err(KeyError::new(
                    files.section,
                    "key_file",
                    cert,
                    "cert_file is set but key_file is not: the private key of the client certificate is needed too",
                ))
            }
            (None, Some(key)) => {
                return Err(KeyError::new(
                    files.section,
                    "cert_file",
                    key,
                    "key_file is set but cert_file is not: the client certificate is needed too",
                ))
            }
        };
        Ok(ClientTls { ca, identity })
    }

    /// The client certificate, if one is configured.
    pub fn identity(&self) -> Option<&Identity> {
        self.identity.as_deref()
    }

    /// Whether a private CA is configured (else the system's roots are trusted).
    pub fn has_private_ca(&self) -> bool {
        self.ca.is_some()
    }

    /// The rustls configuration for this client: TLS 1.3 or 1.2 with the ring provider, the
    /// private CA or the system's roots, the client certificate if any.
    pub fn client_config(&self) -> Result<rustls::ClientConfig, Error> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(PROTOCOL_VERSIONS)
            .map_err(|e| Error(e.to_string()))?;
        let mut roots = rustls::RootCertStore::empty();
        match &self.ca {
            Some(certs) => {
                for c in certs {
                    roots
                        .add(c.clone())
                        .map_err(|e| Error(format!("a CA certificate: {e}")))?;
                }
            }
            None => {
                let native = rustls_native_certs::load_native_certs();
                let (added, _ignored) = roots.add_parsable_certificates(native.certs);
                if added == 0 {
                    return Err(Error(
                        "no system CA certificates found (install ca-certificates, or set ca_file)"
                            .into(),
                    ));
                }
            }
        }
        let builder = builder.with_root_certificates(roots);
        let config = match &self.identity {
            Some(id) => builder
                .with_client_auth_cert(id.chain().to_vec(), id.key())
                .map_err(|e| Error(format!("the client certificate: {e}")))?,
            None => builder.with_no_client_auth(),
        };
        Ok(config)
    }
}

/// TLS 1.3 first (preferred when the server has it), then TLS 1.2; nothing older.
pub const PROTOCOL_VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

#[cfg(test)]
mod tests;
