//! The conversation with the department's FTP server (`suppaftp`, tokio, rustls): log in,
//! make the folders, send a file to a temporary name, rename it to its final name. The file
//! counts as delivered only once the server answered the rename: the department never sees a
//! half file under a final name, and a file sent again after a crash replaces its temporary
//! copy, then its own complete copy, never adds a second one.
//!
//! Every step has [`STEP_TIMEOUT`]. Failures are sorted by what the driver does next
//! ([`Failure`]): a refused file waits, anything else waits for the server.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use secrecy::ExposeSecret;
use suppaftp::tokio::{AsyncRustlsConnector, AsyncRustlsFtpStream};
use suppaftp::types::FileType;
use suppaftp::FtpError;
use tokio::io::AsyncWriteExt;

use crate::config::{UplinkSettings, UplinkUrl};

/// The longest any one exchange with the server may take.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(30);

/// Suffix of the temporary name a file is sent under before its rename.
pub const TEMP_SUFFIX: &str = ".tmp";

/// Why an exchange failed, by what the driver does next.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// Not reached, the connection broke, a step timed out, or the server is busy (4xx):
    /// everything waits and is tried again.
    #[error("{0}")]
    Unreachable(String),
    /// The TLS handshake failed (`ftps://`): certificate, CA or name.
    #[error("TLS: {0}")]
    Tls(String),
    /// The server refused the user name or password (530).
    #[error("login refused: {0}")]
    Login(String),
    /// The server refused this file for good (a 5xx reply: permission denied, bad path, no
    /// space for this user): the file waits with a long backoff, the others go on.
    #[error("refused: {0}")]
    Refused(String),
}

impl Failure {
    /// The `result` label of `quantrac_uplink_files_total` for a file that failed this way.
    pub fn as_label(&self) -> &'static str {
        match self {
            Failure::Refused(_) => "refused",
            Failure::Login(_) => "login",
            Failure::Tls(_) => "tls",
            Failure::Unreachable(_) => "unreachable",
        }
    }

    /// Only a refusal concerns one file; the rest concern the server.
    pub fn is_per_file(&self) -> bool {
        matches!(self, Failure::Refused(_))
    }
}

/// A logged-in session.
pub struct Session {
    ftp: AsyncRustlsFtpStream,
    base: String,
    /// Folders made (or found) in this session.
    made: HashSet<String>,
}

/// A server reply as text: code and message.
fn reply(e: &FtpError) -> String {
    match e {
        FtpError::UnexpectedResponse(r) => format!(
            "{} {}",
            r.status.code(),
            String::from_utf8_lossy(&r.body).trim()
        ),
        other => other.to_string(),
    }
}

/// Sorts a failure of a step that concerns one file (`MKD`, `STOR`, `RNFR`/`RNTO`).
fn file_failure(e: FtpError) -> Failure {
    match &e {
        FtpError::UnexpectedResponse(r) => match r.status.code() {
            530 => Failure::Login(reply(&e)),
            500..=599 => Failure::Refused(reply(&e)),
            _ => Failure::Unreachable(reply(&e)),
        },
        FtpError::SecureError(m) => Failure::Tls(m.clone()),
        _ => Failure::Unreachable(reply(&e)),
    }
}

/// Sorts a failure while connecting and logging in.
fn session_failure(e: FtpError) -> Failure {
    match &e {
        FtpError::UnexpectedResponse(r) if r.status.code() == 530 => Failure::Login(reply(&e)),
        FtpError::SecureError(m) => Failure::Tls(m.clone()),
        _ => Failure::Unreachable(reply(&e)),
    }
}

async fn step<T>(
    what: &str,
    f: impl std::future::Future<Output = Result<T, FtpError>>,
    sort: fn(FtpError) -> Failure,
) -> Result<T, Failure> {
    match tokio::time::timeout(STEP_TIMEOUT, f).await {
        Ok(r) => r.map_err(sort),
        Err(_) => Err(Failure::Unreachable(format!(
            "{what}: no answer within {}s",
            STEP_TIMEOUT.as_secs()
        ))),
    }
}

/// `a/b` from parts, skipping empty ones.
pub fn join(parts: &[&str]) -> String {
    parts
        .iter()
        .flat_map(|p| p.split('/'))
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join("/")
}

impl Session {
    /// Connects (with `AUTH TLS` for `ftps://`), logs in, chooses binary transfers.
    pub async fn open(settings: &UplinkSettings) -> Result<Session, Failure> {
        let url: &UplinkUrl = settings.url();
        let addr = format!("{}:{}", url.host, url.port);
        let mut ftp = step(
            "connect",
            AsyncRustlsFtpStream::connect(addr.as_str()),
            session_failure,
        )
        .await?;
        if url.tls {
            let config = settings
                .tls
                .client_config()
                .map_err(|e| Failure::Tls(e.to_string()))?;
            let connector = AsyncRustlsConnector::from(suppaftp::tokio_rustls::TlsConnector::from(
                Arc::new(config),
            ));
            ftp = step(
                "AUTH TLS",
                ftp.into_secure(connector, &url.host),
                session_failure,
            )
            .await?;
        }
        if settings.passive {
            // Servers behind NAT announce an address nobody can reach: connect to the one the
            // control connection already reaches.
            ftp.set_passive_nat_workaround(true);
        } else {
            ftp = ftp.active_mode(STEP_TIMEOUT);
        }
        let password = settings
            .password
            .as_ref()
            .map(|p| p.expose_secret().to_owned())
            .unwrap_or_default();
        step(
            "login",
            ftp.login(settings.username.as_str(), password.as_str()),
            session_failure,
        )
        .await?;
        step(
            "TYPE I",
            ftp.transfer_type(FileType::Binary),
            session_failure,
        )
        .await?;
        Ok(Session {
            ftp,
            base: url.base.clone(),
            made: HashSet::new(),
        })
    }

    /// Sends `content` as `dir/name` below the base: the folders first (each made if
    /// missing), then `name.tmp`, then the rename. `Ok` only once the server confirmed the
    /// rename.
    pub async fn deliver(&mut self, dir: &str, name: &str, content: &[u8]) -> Result<(), Failure> {
        let folder = join(&[&self.base, dir]);
        self.make_dirs(&folder).await?;
        let path = join(&[&folder, name]);
        let temp = format!("{path}{TEMP_SUFFIX}");
        let mut data = step("STOR", self.ftp.put_with_stream(&temp), file_failure).await?;
        let write = async {
            data.write_all(content)
                .await
                .map_err(FtpError::ConnectionError)?;
            data.finish().await
        };
        step("STOR", write, file_failure).await?;
        step("RNFR/RNTO", self.ftp.rename(&temp, &path), file_failure).await?;
        Ok(())
    }

    /// Makes every folder of `folder` not made yet in this session. A refused `MKD` is taken
    /// as "exists" (servers say both with 550); if the folder is really missing, the upload
    /// into it is refused and says so.
    async fn make_dirs(&mut self, folder: &str) -> Result<(), Failure> {
        let parts: Vec<&str> = folder.split('/').filter(|p| !p.is_empty()).collect();
        for i in 1..=parts.len() {
            let prefix = parts[..i].join("/");
            if self.made.contains(&prefix) {
                continue;
            }
            match step("MKD", self.ftp.mkdir(&prefix), file_failure).await {
                Ok(()) | Err(Failure::Refused(_)) => {}
                Err(other) => return Err(other),
            }
            self.made.insert(prefix);
        }
        Ok(())
    }

    /// Says goodbye; errors do not matter any more.
    pub async fn close(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(5), self.ftp.quit()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_join_without_empty_parts() {
        assert_eq!(join(&["", "K1/2026/11/29"]), "K1/2026/11/29");
        assert_eq!(join(&["in/q", "", "a.txt"]), "in/q/a.txt");
        assert_eq!(join(&["", ""]), "");
    }

    #[test]
    fn only_refusals_concern_one_file() {
        use suppaftp::types::Response;
        use suppaftp::Status;
        let e = |status| {
            FtpError::UnexpectedResponse(Response {
                status,
                body: b"Permission denied.".to_vec(),
            })
        };
        let refused = file_failure(e(Status::FileUnavailable));
        assert_eq!(refused, Failure::Refused("550 Permission denied.".into()));
        assert!(refused.is_per_file());
        assert_eq!(file_failure(e(Status::NotLoggedIn)).as_label(), "login");
        assert_eq!(
            file_failure(e(Status::RequestFileActionIgnored)).as_label(),
            "unreachable"
        );
        assert_eq!(session_failure(e(Status::NotLoggedIn)).as_label(), "login");
        let io = FtpError::ConnectionError(std::io::ErrorKind::ConnectionRefused.into());
        assert!(!session_failure(io).is_per_file());
    }
}
