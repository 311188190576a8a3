//! The Ed25519 key that signs the journal's checkpoints (`journal.signing_key_file`).
//!
//! The file is PKCS#8 in PEM (`-----BEGIN PRIVATE KEY-----`), as `quantrac keygen` writes it
//! and as `openssl genpkey -algorithm ed25519` does. It is parsed when the configuration is
//! loaded, so a missing or wrong file stops `check-config` and `run` with the key named.
//! After that the key is a type whose private half never leaves `ring`: `Debug` shows the
//! public half only, and nothing can print or log the rest.

use std::fmt;
use std::path::Path;

use base64::Engine as _;
use ring::signature::{Ed25519KeyPair, KeyPair as _};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::PrivatePkcs8KeyDer;
use secrecy::{ExposeSecret, SecretSlice, SecretString};

/// An Ed25519 signing key, read from a PKCS#8 PEM file.
pub struct SigningKey(Ed25519KeyPair);

impl SigningKey {
    /// Reads and parses the key file; the error says what is wrong with it, never its content.
    pub fn load(path: &Path) -> Result<SigningKey, String> {
        let text: SecretSlice<u8> = std::fs::read(path)
            .map_err(|e| format!("cannot read the signing key: {e}"))?
            .into();
        SigningKey::from_pem(text.expose_secret())
    }

    /// Parses a PKCS#8 PEM document holding an Ed25519 key (with or without its public half,
    /// so keys made by OpenSSL work too).
    pub fn from_pem(pem: &[u8]) -> Result<SigningKey, String> {
        let der = PrivatePkcs8KeyDer::from_pem_slice(pem).map_err(|e| {
            format!("not a PKCS#8 PEM private key (-----BEGIN PRIVATE KEY-----): {e}")
        })?;
        Ed25519KeyPair::from_pkcs8_maybe_unchecked(der.secret_pkcs8_der())
            .map(SigningKey)
            .map_err(|e| format!("not an Ed25519 private key: {e}"))
    }

    /// A new random key, and its PKCS#8 PEM document to store (`quantrac keygen`).
    pub fn generate() -> Result<(SigningKey, SecretString), String> {
        let rng = ring::rand::SystemRandom::new();
        let doc = Ed25519KeyPair::generate_pkcs8(&rng)
            .map_err(|_| "the system random number generator failed".to_string())?;
        let pem = SecretString::from(pem("PRIVATE KEY", doc.as_ref()));
        let key = SigningKey::from_pem(pem.expose_secret().as_bytes())?;
        Ok((key, pem))
    }

    /// The 32-byte public key that verifies this key's signatures.
    pub fn public_key(&self) -> [u8; 32] {
        self.0
            .public_key()
            .as_ref()
            .try_into()
            .expect("an Ed25519 public key is 32 bytes")
    }

    /// The 64-byte Ed25519 signature of `message`.
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.0
            .sign(message)
            .as_ref()
            .try_into()
            .expect("an Ed25519 signature is 64 bytes")
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SigningKey(Ed25519, public {})",
            hex::encode(self.public_key())
        )
    }
}

/// `der` as a PEM block with `label`, lines of 64 characters.
pub fn pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 8032 §7.1, test 1: secret key 9d61b1…, public key d75a98…, and the signature of the
    /// empty message. The PEM is the RFC 8410 PKCS#8 v1 layout OpenSSL writes.
    const RFC8032_PEM: &str = "-----BEGIN PRIVATE KEY-----\n\
        MC4CAQAwBQYDK2VwBCIEIJ1hsZ3v/VpguoRK9JLsLMREScVpezJpGXA7rAMcrn9g\n\
        -----END PRIVATE KEY-----\n";

    #[test]
    fn reads_an_openssl_style_key_and_signs_as_rfc8032_says() {
        let key = SigningKey::from_pem(RFC8032_PEM.as_bytes()).unwrap();
        assert_eq!(
            hex::encode(key.public_key()),
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
        );
        assert_eq!(
            hex::encode(key.sign(b"")),
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155\
             5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
        );
    }

    #[test]
    fn generated_keys_round_trip_and_debug_shows_only_the_public_half() {
        let (key, pem) = SigningKey::generate().unwrap();
        let text = pem.expose_secret();
        assert!(text.starts_with("-----BEGIN PRIVATE KEY-----\n"), "{text}");
        let again = SigningKey::from_pem(text.as_bytes()).unwrap();
        assert_eq!(again.public_key(), key.public_key());
        let shown = format!("{key:?}");
        assert!(shown.contains(&hex::encode(key.public_key())), "{shown}");
        let body: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
        assert!(
            !shown.contains(&body) && !shown.contains(&body[..20]),
            "{shown}"
        );
    }

    #[test]
    fn a_file_that_is_not_an_ed25519_key_is_refused_without_echoing_it() {
        let err = SigningKey::from_pem(b"hunter2").unwrap_err();
        assert!(err.contains("PKCS#8") && !err.contains("hunter2"), "{err}");
        let public = "-----BEGIN PUBLIC KEY-----\n\
            MCowBQYDK2VwAyEA11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\n\
            -----END PUBLIC KEY-----\n";
        assert!(SigningKey::from_pem(public.as_bytes()).is_err());
    }
}
