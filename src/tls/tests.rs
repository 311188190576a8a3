use std::path::Path;

use quantrac_testkit::Pki;
use rustls::{AlertDescription, CertificateError};

use super::*;

fn files<'a>(ca: Option<&'a Path>, cert: Option<&'a Path>, key: Option<&'a Path>) -> Files<'a> {
    Files {
        section: "mqtt",
        ca_file: ca,
        cert_file: cert,
        key_file: key,
    }
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

#[test]
fn certificate_files_are_read_checked_and_refused_with_the_key_named() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::create(dir.path());

    // A private CA and a matching certificate and key: accepted, and a config can be built.
    let tls = ClientTls::load(
        files(Some(&pki.ca), Some(&pki.client_cert), Some(&pki.client_key)),
        now(),
    )
    .unwrap();
    assert!(tls.has_private_ca());
    let id = tls.identity().unwrap();
    assert!(id.subject.contains("quantrac"), "{}", id.subject);
    assert!(id.days_left(now()) > 300);
    tls.client_config().unwrap();
    // Debug shows no key material.
    let key_text = std::fs::read_to_string(&pki.client_key).unwrap();
    let body = key_text.lines().nth(1).unwrap();
    assert!(!format!("{tls:?}").contains(body));

    // No files at all: system roots, no client certificate.
    let plain = ClientTls::load(files(None, None, None), now()).unwrap();
    assert!(!plain.has_private_ca() && plain.identity().is_none());

    let refused = |f: Files<'_>| ClientTls::load(f, now()).unwrap_err();

    // A certificate without its key, and the other way round.
    let e = refused(files(None, Some(&pki.client_cert), None));
    assert_eq!(e.key, "mqtt.key_file", "{e}");
    let e = refused(files(None, None, Some(&pki.client_key)));
    assert_eq!(e.key, "mqtt.cert_file", "{e}");

    // Unreadable files.
    let missing = dir.path().join("missing.pem");
    let e = refused(files(Some(&missing), None, None));
    assert_eq!(e.key, "mqtt.ca_file");
    assert!(e.reason.contains("cannot read"), "{e}");
    let e = refused(files(None, Some(&pki.client_cert), Some(&missing)));
    assert_eq!(e.key, "mqtt.key_file");

    // Not PEM: a key where a certificate belongs, a certificate where the key belongs.
    let e = refused(files(Some(&pki.client_key), None, None));
    assert_eq!(e.key, "mqtt.ca_file");
    assert!(!e.to_string().contains(body), "no key material: {e}");
    let e = refused(files(None, Some(&pki.client_cert), Some(&pki.client_cert)));
    assert_eq!(e.key, "mqtt.key_file");
    assert!(e.reason.contains("not a PEM private key"), "{e}");

    // A key that belongs to another certificate.
    let e = refused(files(None, Some(&pki.client_cert), Some(&pki.soon_key)));
    assert_eq!(e.key, "mqtt.key_file");
    assert!(e.reason.contains("does not belong"), "{e}");
    assert!(!e.to_string().contains(body), "no key material: {e}");

    // Expired, and not valid yet (seen from 2019).
    let e = refused(files(None, Some(&pki.expired_cert), Some(&pki.expired_key)));
    assert_eq!(e.key, "mqtt.cert_file");
    assert!(e.reason.contains("expired on 2020-01-02"), "{e}");
    let e = ClientTls::load(
        files(None, Some(&pki.client_cert), Some(&pki.client_key)),
        1_546_300_800,
    )
    .unwrap_err();
    assert!(e.reason.contains("not valid before"), "{e}");

    // Expiring within the warning period: loaded, with the days left to say so.
    let soon = ClientTls::load(
        files(None, Some(&pki.soon_cert), Some(&pki.soon_key)),
        now(),
    )
    .unwrap();
    let id = soon.identity().unwrap();
    let days = id.days_left(now());
    assert!((0..EXPIRY_WARNING_DAYS).contains(&days), "{days}");
    let warning = id.expiry_warning(now()).unwrap();
    assert!(warning.contains(&format!("in {days} days")), "{warning}");
    assert_eq!(tls.identity().unwrap().expiry_warning(now()), None);
}

#[test]
fn tls_1_2_is_the_minimum_and_1_3_comes_first() {
    assert_eq!(PROTOCOL_VERSIONS.len(), 2);
    assert_eq!(
        PROTOCOL_VERSIONS[0].version,
        rustls::ProtocolVersion::TLSv1_3
    );
    assert_eq!(
        PROTOCOL_VERSIONS[1].version,
        rustls::ProtocolVersion::TLSv1_2
    );
}

// The README's security section lists the exact cipher suites and key exchange groups.
#[test]
fn the_readme_lists_the_cipher_suites_and_groups_in_use() {
    let tls = ClientTls {
        ca: Some(Vec::new()),
        identity: None,
    };
    let config = tls.client_config().unwrap();
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let provider = config.crypto_provider();
    assert_eq!(provider.cipher_suites.len(), 9);
    for suite in &provider.cipher_suites {
        let name = format!("`{:?}`", suite.suite());
        assert!(readme.contains(&name), "README does not list {name}");
    }
    for group in &provider.kx_groups {
        let name = format!("{:?}", group.name());
        assert!(readme.contains(&name), "README does not list {name}");
    }
}

#[test]
fn handshake_failures_are_sorted_into_reasons() {
    let of = |e: rustls::Error| Handshake::from_rustls(&e).failure;
    use rustls::Error::{AlertReceived, InvalidCertificate};
    assert_eq!(
        of(InvalidCertificate(CertificateError::UnknownIssuer)),
        Failure::UnknownCa
    );
    assert_eq!(
        of(InvalidCertificate(CertificateError::Expired)),
        Failure::Expired
    );
    assert_eq!(
        of(InvalidCertificate(CertificateError::NotValidForName)),
        Failure::NameMismatch
    );
    assert_eq!(
        of(InvalidCertificate(CertificateError::Revoked)),
        Failure::BadCertificate
    );
    assert_eq!(
        of(AlertReceived(AlertDescription::UnknownCA)),
        Failure::UnknownCa
    );
    assert_eq!(
        of(AlertReceived(AlertDescription::CertificateExpired)),
        Failure::Expired
    );
    assert_eq!(
        of(AlertReceived(AlertDescription::CertificateRequired)),
        Failure::CertificateRequired
    );
    assert_eq!(
        of(AlertReceived(AlertDescription::BadCertificate)),
        Failure::BadCertificate
    );
    assert_eq!(
        of(AlertReceived(AlertDescription::HandshakeFailure)),
        Failure::Handshake
    );
    let labels: Vec<_> = Failure::ALL.iter().map(|f| f.as_label()).collect();
    assert_eq!(
        labels,
        [
            "unknown_ca",
            "expired",
            "bad_certificate",
            "certificate_required",
            "name_mismatch",
            "handshake"
        ]
    );
}

#[test]
fn a_failure_is_found_inside_io_errors_and_their_wrappers() {
    #[derive(Debug, thiserror::Error)]
    #[error("connect: {0}")]
    struct Wrapper(#[source] std::io::Error);

    let io = std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer),
    );
    let found = Handshake::find(&Wrapper(io)).unwrap();
    assert_eq!(found.failure, Failure::UnknownCa);
    assert!(found
        .to_string()
        .starts_with("TLS handshake failed (unknown_ca)"));

    let plain = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
    assert_eq!(Handshake::find(&Wrapper(plain)), None);
}
