//! A private certificate authority made with the `openssl` command, as a park runs one: the
//! CA, a server certificate for `localhost`, client certificates (valid, expiring soon,
//! expired) and a second, unrelated CA. Keys are EC P-256 (quick to make); expired
//! certificates are signed with `openssl ca -startdate/-enddate`, so no fake clock is needed.

use std::path::{Path, PathBuf};

use crate::programs::run;

/// The files of a test PKI, all in one folder.
pub struct Pki {
    pub dir: PathBuf,
    /// The park's CA certificate (what `ca_file` names).
    pub ca: PathBuf,
    /// Server certificate and key for `localhost` and 127.0.0.1, signed by the CA.
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    /// A client certificate (CN=quantrac) valid for a year, and its key.
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    /// A client certificate that expires in 10 days.
    pub soon_cert: PathBuf,
    pub soon_key: PathBuf,
    /// A client certificate that expired on 2020-01-02.
    pub expired_cert: PathBuf,
    pub expired_key: PathBuf,
    /// A server certificate for `localhost` that expired on 2020-01-02.
    pub expired_server_cert: PathBuf,
    pub expired_server_key: PathBuf,
    /// Another CA, which signed none of the above.
    pub other_ca: PathBuf,
}

const SERVER_EXT: &str = "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n";
const CLIENT_EXT: &str = "extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n";

impl Pki {
    /// Makes every file in `dir` (which must exist).
    pub fn create(dir: &Path) -> Pki {
        let openssl = |args: &[&str]| {
            let out = run("openssl", "openssl", args, dir);
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];
        let ca = |name: &str, cn: &str| {
            let (key, pem) = (format!("{name}.key"), format!("{name}.pem"));
            let mut args = vec!["req", "-x509"];
            args.extend(ec);
            args.extend([
                "-nodes", "-keyout", &key, "-out", &pem, "-days", "3650", "-subj",
            ]);
            let subj = format!("/CN={cn}");
            args.push(&subj);
            openssl(&args);
        };
        ca("ca", "Park test CA");
        ca("other-ca", "Unrelated test CA");
        std::fs::write(dir.join("server.ext"), SERVER_EXT).unwrap();
        std::fs::write(dir.join("client.ext"), CLIENT_EXT).unwrap();
        std::fs::write(dir.join("index.txt"), "").unwrap();
        std::fs::write(dir.join("serial"), "1000\n").unwrap();
        std::fs::write(
            dir.join("ca.cnf"),
            "[ca]\ndefault_ca = test_ca\n[test_ca]\ndatabase = index.txt\nnew_certs_dir = .\n\
             serial = serial\ndefault_md = sha256\npolicy = any\nunique_subject = no\n\
             [any]\ncommonName = supplied\n\
             [server]\nsubjectAltName = DNS:localhost,IP:127.0.0.1\nextendedKeyUsage = serverAuth\nbasicConstraints = CA:FALSE\n\
             [client]\nextendedKeyUsage = clientAuth\nbasicConstraints = CA:FALSE\n",
        )
        .unwrap();
        let csr = |name: &str, cn: &str| {
            let mut args = vec!["req"];
            args.extend(ec);
            let (key, csr, subj) = (
                format!("{name}.key"),
                format!("{name}.csr"),
                format!("/CN={cn}"),
            );
            args.extend(["-nodes", "-keyout", &key, "-out", &csr, "-subj", &subj]);
            openssl(&args);
        };
        // Valid from now for `days`.
        let sign = |name: &str, cn: &str, ext: &str, days: &str| {
            csr(name, cn);
            let (csr, pem) = (format!("{name}.csr"), format!("{name}.pem"));
            openssl(&[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &pem,
                "-days",
                days,
                "-extfile",
                ext,
            ]);
        };
        // Valid only on 2020-01-01.
        let sign_expired = |name: &str, cn: &str, section: &str| {
            csr(name, cn);
            let (csr, pem) = (format!("{name}.csr"), format!("{name}.pem"));
            openssl(&[
                "ca",
                "-batch",
                "-notext",
                "-config",
                "ca.cnf",
                "-cert",
                "ca.pem",
                "-keyfile",
                "ca.key",
                "-extensions",
                section,
                "-startdate",
                "20200101000000Z",
                "-enddate",
                "20200102000000Z",
                "-in",
                &csr,
                "-out",
                &pem,
            ]);
        };
        sign("server", "localhost", "server.ext", "365");
        sign("client", "quantrac", "client.ext", "365");
        sign("soon", "quantrac", "client.ext", "10");
        sign_expired("expired", "quantrac", "client");
        sign_expired("expired-server", "localhost", "server");
        let f = |name: &str| dir.join(name);
        Pki {
            dir: dir.to_owned(),
            ca: f("ca.pem"),
            server_cert: f("server.pem"),
            server_key: f("server.key"),
            client_cert: f("client.pem"),
            client_key: f("client.key"),
            soon_cert: f("soon.pem"),
            soon_key: f("soon.key"),
            expired_cert: f("expired.pem"),
            expired_key: f("expired.key"),
            expired_server_cert: f("expired-server.pem"),
            expired_server_key: f("expired-server.key"),
            other_ca: f("other-ca.pem"),
        }
    }
}
