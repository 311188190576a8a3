//! `[influx]`: where readings go after the journal. The file has one flat table (`api`, `url`,
//! `org`, `database`, …); it is read into [`RawInflux`] and then parsed into
//! [`InfluxSettings`], whose [`InfluxApi`] holds only the settings of the chosen API version.
//! A key of the other version is an error that names it, never silently ignored.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use reqwest::Url;
use secrecy::SecretString;
use serde::{Deserialize, Deserializer};

use super::{
    at_least_one, empty_as_none, empty_path_as_none, load_tls, non_empty_secret, read_secret,
    without_credentials, Error,
};

/// `[influx]`, parsed.
#[derive(Debug)]
pub struct InfluxSettings {
    /// `None` (`url = ""`): no InfluxDB; readings stay in the journal.
    pub url: Option<InfluxUrl>,
    pub api: InfluxApi,
    pub batch_size: usize,
    pub flush_interval_ms: u64,
    pub timeout_ms: u64,
    pub retry_max_ms: u64,
    /// `ca_file`, `cert_file` and `key_file`, read and checked (used for `https://`).
    pub tls: crate::tls::ClientTls,
}

impl Default for InfluxSettings {
    fn default() -> Self {
        InfluxSettings {
            tls: crate::tls::ClientTls::default(),
            url: Some(InfluxUrl::parse("http://127.0.0.1:8086").expect("a valid default")),
            api: InfluxApi::V2(InfluxV2::default()),
            batch_size: 5000,
            flush_interval_ms: 1000,
            timeout_ms: 10_000,
            retry_max_ms: 30_000,
        }
    }
}

/// The write API (`influx.api`) with the settings that belong to it.
#[derive(Debug)]
pub enum InfluxApi {
    /// `api = "v1"`: `/write?db=&rp=` (InfluxDB 1.x).
    V1(InfluxV1),
    /// `api = "v2"`: `/api/v2/write` with org, bucket and token (InfluxDB 2.x, 3.x, compatible
    /// servers).
    V2(InfluxV2),
}

/// `api = "v1"` settings.
#[derive(Debug)]
pub struct InfluxV1 {
    /// Never empty.
    pub database: String,
    /// `None`: the database's default retention policy.
    pub retention_policy: Option<String>,
    /// `None`: no basic auth (a password without a username is not sent).
    pub username: Option<String>,
    /// From `password` or `password_file` (the file wins).
    pub password: Option<SecretString>,
}

impl Default for InfluxV1 {
    fn default() -> Self {
        InfluxV1 {
            database: "quantrac".into(),
            retention_policy: None,
            username: None,
            password: None,
        }
    }
}

/// `api = "v2"` settings.
#[derive(Debug)]
pub struct InfluxV2 {
    pub org: String,
    /// Never empty.
    pub bucket: String,
    /// From `token` or `token_file` (the file wins). `None`: no `Authorization` header.
    pub token: Option<SecretString>,
}

impl Default for InfluxV2 {
    fn default() -> Self {
        InfluxV2 {
            org: "quantrac".into(),
            bucket: "quantrac".into(),
            token: None,
        }
    }
}

/// InfluxDB's base URL: `http://` or `https://`, without credentials (those go in `token` or
/// `username`/`password`, which never reach a log line).
#[derive(Clone, PartialEq, Eq)]
pub struct InfluxUrl(Url);

impl InfluxUrl {
    /// Parses the URL; the error is a reason that names the URL with any credentials masked.
    pub fn parse(text: &str) -> Result<InfluxUrl, String> {
        let shown = || format!("{:?}", without_credentials(text));
        let url = Url::parse(text.trim()).map_err(|e| format!("{} is not a URL: {e}", shown()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("{} must start with http:// or https://", shown()));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(
                "put credentials in influx.token or influx.username/password, not in the URL"
                    .into(),
            );
        }
        Ok(InfluxUrl(url))
    }

    pub fn as_url(&self) -> &Url {
        &self.0
    }
}

impl FromStr for InfluxUrl {
    type Err = String;

    fn from_str(s: &str) -> Result<InfluxUrl, String> {
        InfluxUrl::parse(s)
    }
}

impl fmt::Display for InfluxUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.as_str())
    }
}

impl fmt::Debug for InfluxUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InfluxUrl({:?})", self.0.as_str())
    }
}

/// `influx.api` as written.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
enum Version {
    V1,
    #[default]
    V2,
}

impl Version {
    fn name(self) -> &'static str {
        match self {
            Version::V1 => "v1",
            Version::V2 => "v2",
        }
    }
}

/// `[influx]` as written: every key of both API versions, `None` where not given (a key given
/// as `""` is given: under the other version it is still an error).
#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawInflux {
    #[serde(deserialize_with = "url_or_none")]
    url: Option<InfluxUrl>,
    api: Version,
    org: Option<String>,
    bucket: Option<String>,
    token: Option<SecretString>,
    token_file: Option<PathBuf>,
    database: Option<String>,
    retention_policy: Option<String>,
    username: Option<String>,
    password: Option<SecretString>,
    password_file: Option<PathBuf>,
    #[serde(deserialize_with = "empty_path_as_none")]
    ca_file: Option<PathBuf>,
    #[serde(deserialize_with = "empty_path_as_none")]
    cert_file: Option<PathBuf>,
    #[serde(deserialize_with = "empty_path_as_none")]
    key_file: Option<PathBuf>,
    #[serde(deserialize_with = "at_least_one")]
    batch_size: usize,
    flush_interval_ms: u64,
    timeout_ms: u64,
    retry_max_ms: u64,
}

impl Default for RawInflux {
    fn default() -> Self {
        let d = InfluxSettings::default();
        RawInflux {
            url: d.url,
            api: Version::default(),
            org: None,
            bucket: None,
            token: None,
            token_file: None,
            database: None,
            retention_policy: None,
            username: None,
            password: None,
            password_file: None,
            ca_file: None,
            cert_file: None,
            key_file: None,
            batch_size: d.batch_size,
            flush_interval_ms: d.flush_interval_ms,
            timeout_ms: d.timeout_ms,
            retry_max_ms: d.retry_max_ms,
        }
    }
}

/// `""` means no InfluxDB.
fn url_or_none<'de, D: Deserializer<'de>>(d: D) -> Result<Option<InfluxUrl>, D::Error> {
    match empty_as_none(d)? {
        None => Ok(None),
        Some(text) => InfluxUrl::parse(&text)
            .map(Some)
            .map_err(serde::de::Error::custom),
    }
}

impl RawInflux {
    /// The keys only one version reads, whether each was given, and that version.
    fn version_keys(&self) -> [(&'static str, bool, Version); 8] {
        [
            ("influx.org", self.org.is_some(), Version::V2),
            ("influx.bucket", self.bucket.is_some(), Version::V2),
            ("influx.token", self.token.is_some(), Version::V2),
            ("influx.token_file", self.token_file.is_some(), Version::V2),
            ("influx.database", self.database.is_some(), Version::V1),
            (
                "influx.retention_policy",
                self.retention_policy.is_some(),
                Version::V1,
            ),
            ("influx.username", self.username.is_some(), Version::V1),
            (
                "influx.password",
                self.password.is_some() || self.password_file.is_some(),
                Version::V1,
            ),
        ]
    }

    /// Parses the table: keys of the other API version are refused, `*_file` secrets read,
    /// required values checked. `bad` makes the error for a key.
    pub(super) fn parse(
        self,
        bad: impl Fn(&'static str, String) -> Error,
    ) -> Result<InfluxSettings, Error> {
        let version = self.api;
        for (key, given, belongs_to) in self.version_keys() {
            if given && belongs_to != version {
                // `password_file` is reported under its own name.
                let key = if key == "influx.password" && self.password.is_none() {
                    "influx.password_file"
                } else {
                    key
                };
                return Err(bad(
                    key,
                    format!(
                        "not a {v} setting (api = \"{v}\"); it belongs to api = \"{other}\"",
                        v = version.name(),
                        other = belongs_to.name()
                    ),
                ));
            }
        }
        let text = |value: Option<String>| value.filter(|v| !v.is_empty());
        let api = match version {
            Version::V2 => {
                let d = InfluxV2::default();
                let bucket = self.bucket.unwrap_or(d.bucket);
                if bucket.is_empty() {
                    return Err(bad("influx.bucket", "the v2 API needs a bucket".into()));
                }
                let mut token = non_empty_secret(self.token);
                read_secret(&mut token, &self.token_file, "influx.token_file")?;
                InfluxApi::V2(InfluxV2 {
                    org: self.org.unwrap_or(d.org),
                    bucket,
                    token,
                })
            }
            Version::V1 => {
                let d = InfluxV1::default();
                let database = self.database.unwrap_or(d.database);
                if database.is_empty() {
                    return Err(bad("influx.database", "the v1 API needs a database".into()));
                }
                let mut password = non_empty_secret(self.password);
                read_secret(&mut password, &self.password_file, "influx.password_file")?;
                InfluxApi::V1(InfluxV1 {
                    database,
                    retention_policy: text(self.retention_policy),
                    username: text(self.username),
                    password,
                })
            }
        };
        let tls = load_tls(crate::tls::Files {
            section: "influx",
            ca_file: self.ca_file.as_deref(),
            cert_file: self.cert_file.as_deref(),
            key_file: self.key_file.as_deref(),
        })?;
        let https = self
            .url
            .as_ref()
            .is_some_and(|u| u.as_url().scheme() == "https");
        if !https && tls.identity().is_some() {
            return Err(bad(
                "influx.cert_file",
                "a client certificate needs TLS: use an https:// URL".into(),
            ));
        }
        Ok(InfluxSettings {
            tls,
            url: self.url,
            api,
            batch_size: self.batch_size,
            flush_interval_ms: self.flush_interval_ms,
            timeout_ms: self.timeout_ms,
            retry_max_ms: self.retry_max_ms,
        })
    }
}
