//! `[uplink]`: the provincial department's FTP server, where quantrac sends one Circular
//! 10/2021 file per station and period (Circular 10/2021/TT-BTNMT art. 39; Decree 08/2022
//! art. 97–98). Absent = off.

use std::path::PathBuf;

use secrecy::SecretString;
use serde::{Deserialize, Deserializer};

use crate::model::file_template::FileTemplate;

use super::{empty_as_none, empty_path_as_none, secret, Error};

/// What a file's value of a parameter is.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum UplinkValue {
    /// The period's last reading of the parameter, with its status (as dataloggers send).
    #[default]
    Last,
    /// The mean of the period's status-`00` readings; the last reading when there is none.
    Mean,
}

/// `ftp://host[:port][/base]` or `ftps://…` (explicit TLS: `AUTH TLS` on the same port).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UplinkUrl {
    pub tls: bool,
    pub host: String,
    pub port: u16,
    /// The folder every file goes below (`""` = the FTP user's root), without slashes at
    /// either end.
    pub base: String,
}

impl UplinkUrl {
    pub fn parse(s: &str) -> Result<UplinkUrl, String> {
        let (tls, rest) = if let Some(r) = s.strip_prefix("ftp://") {
            (false, r)
        } else if let Some(r) = s.strip_prefix("ftps://") {
            (true, r)
        } else if s.starts_with("sftp://") {
            return Err("sftp:// is not supported: use ftp:// or ftps:// (explicit TLS)".into());
        } else {
            return Err(format!(
                "{:?} must start with ftp:// or ftps://",
                super::without_credentials(s)
            ));
        };
        let (authority, base) = rest.split_once('/').unwrap_or((rest, ""));
        if authority.contains('@') {
            return Err(format!(
                "{:?}: no credentials in the URL (use uplink.username and uplink.password_file)",
                super::without_credentials(s)
            ));
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) => (
                h,
                p.parse::<u16>()
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or_else(|| format!("{s:?}: {p:?} is not a port"))?,
            ),
            None => (authority, 21),
        };
        if host.is_empty() {
            return Err(format!("{s:?}: the host is missing"));
        }
        let base = base.trim_matches('/');
        if base.split('/').any(|p| p == "..") {
            return Err(format!("{s:?}: no '..' in the path"));
        }
        Ok(UplinkUrl {
            tls,
            host: host.to_owned(),
            port,
            base: base.to_owned(),
        })
    }
}

impl std::fmt::Display for UplinkUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.tls { "ftps" } else { "ftp" };
        write!(f, "{scheme}://{}:{}/{}", self.host, self.port, self.base)
    }
}

fn uplink_url<'de, D: Deserializer<'de>>(d: D) -> Result<Option<UplinkUrl>, D::Error> {
    use serde::de::Error as _;
    match empty_as_none(d)? {
        None => Ok(None),
        Some(s) => UplinkUrl::parse(&s).map(Some).map_err(D::Error::custom),
    }
}

#[derive(Debug, Deserialize, Clone)]
#[serde(default, deny_unknown_fields)]
pub struct UplinkSettings {
    /// The department's server. Required.
    #[serde(deserialize_with = "uplink_url")]
    pub url: Option<UplinkUrl>,
    /// Required.
    pub username: String,
    /// From `password`, or read from `password_file` at load (the file wins).
    #[serde(deserialize_with = "secret")]
    pub password: Option<SecretString>,
    pub password_file: Option<PathBuf>,
    /// PEM CA certificate(s) of an `ftps://` server with a private CA; none: system roots.
    #[serde(deserialize_with = "empty_path_as_none")]
    pub ca_file: Option<PathBuf>,
    /// `ca_file`, read and checked at load.
    #[serde(skip)]
    pub tls: crate::tls::ClientTls,
    /// Length of a period (one file per station each); at least 1.
    pub period_s: u64,
    /// How long after a period's end its file is made: readings of the period still on their
    /// way get in.
    pub delay_s: u64,
    pub province: String,
    pub facility: String,
    pub file_name: String,
    pub dir: String,
    pub value: UplinkValue,
    /// Passive mode (the client opens the data connections); `false`: active.
    pub passive: bool,
    /// A period with no reading still makes a file (with no line).
    pub send_empty: bool,
}

impl Default for UplinkSettings {
    fn default() -> Self {
        UplinkSettings {
            url: None,
            username: String::new(),
            password: None,
            password_file: None,
            ca_file: None,
            tls: crate::tls::ClientTls::default(),
            period_s: 300,
            delay_s: 30,
            province: String::new(),
            facility: String::new(),
            file_name: FileTemplate::DEFAULT_NAME.to_owned(),
            dir: FileTemplate::DEFAULT_DIR.to_owned(),
            value: UplinkValue::Last,
            passive: true,
            send_empty: false,
        }
    }
}

impl UplinkSettings {
    /// The URL (checked at load: always set).
    pub fn url(&self) -> &UplinkUrl {
        self.url.as_ref().expect("uplink.url is checked at load")
    }

    /// Checks the section, reads the password file and the CA file.
    pub(super) fn resolve(
        mut self,
        bad: &impl Fn(&'static str, String) -> Error,
    ) -> Result<Self, Error> {
        let Some(url) = &self.url else {
            return Err(bad(
                "uplink.url",
                "is required: ftp://host:port/folder or ftps://… of the department's server".into(),
            ));
        };
        if self.username.is_empty() {
            return Err(bad(
                "uplink.username",
                "is required: the account the department gave".into(),
            ));
        }
        if self.period_s == 0 || self.period_s > 86_400 {
            return Err(bad(
                "uplink.period_s",
                format!("{} must be between 1 and 86400 seconds", self.period_s),
            ));
        }
        if self.delay_s >= 86_400 {
            return Err(bad(
                "uplink.delay_s",
                format!("{} must be below 86400 seconds", self.delay_s),
            ));
        }
        let name = FileTemplate::parse_file_name(&self.file_name)
            .map_err(|e| bad("uplink.file_name", e))?;
        let dir = FileTemplate::parse_dir(&self.dir).map_err(|e| bad("uplink.dir", e))?;
        for (key, value, used) in [
            (
                "uplink.province",
                &self.province,
                name.uses_province() || dir.uses_province(),
            ),
            (
                "uplink.facility",
                &self.facility,
                name.uses_facility() || dir.uses_facility(),
            ),
        ] {
            if used && value.is_empty() {
                return Err(bad(
                    key,
                    "is required: the file names use it (the department's code)".into(),
                ));
            }
            if value.contains(['/', ' ']) {
                return Err(bad(key, format!("{value:?}: no '/' or space")));
            }
        }
        super::read_secret(
            &mut self.password,
            &self.password_file,
            "uplink.password_file",
        )?;
        if url.tls {
            self.tls = super::load_tls(crate::tls::Files {
                section: "uplink",
                ca_file: self.ca_file.as_deref(),
                cert_file: None,
                key_file: None,
            })?;
        } else if self.ca_file.is_some() {
            return Err(bad(
                "uplink.ca_file",
                "a CA file needs TLS: use an ftps:// URL".into(),
            ));
        }
        Ok(self)
    }

    /// The file-name and folder templates (checked at load).
    pub fn templates(&self) -> (FileTemplate, FileTemplate) {
        (
            FileTemplate::parse_file_name(&self.file_name).expect("checked at load"),
            FileTemplate::parse_dir(&self.dir).expect("checked at load"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_the_server_port_and_base() {
        let u = UplinkUrl::parse("ftp://so-tnmt.example:2121/incoming/quantrac/").unwrap();
        assert_eq!(
            u,
            UplinkUrl {
                tls: false,
                host: "so-tnmt.example".into(),
                port: 2121,
                base: "incoming/quantrac".into()
            }
        );
        let u = UplinkUrl::parse("ftps://so-tnmt.example").unwrap();
        assert!(u.tls);
        assert_eq!((u.port, u.base.as_str()), (21, ""));
        assert!(UplinkUrl::parse("sftp://h/x").unwrap_err().contains("sftp"));
        let e = UplinkUrl::parse("ftp://user:hunter2@h/x").unwrap_err();
        assert!(!e.contains("hunter2") && e.contains("credentials"), "{e}");
        assert!(UplinkUrl::parse("ftp://h:0/").is_err());
        assert!(UplinkUrl::parse("http://h/").is_err());
        assert!(UplinkUrl::parse("ftp://h/../etc").is_err());
    }
}
