//! Configuration: `quantrac.toml` layered with the `config` crate (defaults ← file ←
//! `QUANTRAC__SECTION__KEY` environment variables), `*_file` secrets, `stations.toml`, and the
//! optional parameters file of operator-defined parameters ([`params`]).
//!
//! Every struct denies unknown keys: a typo in a config file is an error that names the key,
//! never a silently ignored setting. Defaults live once, in each `impl Default`.

mod broker_url;
mod influx;
mod journal;
mod metrics;
pub mod params;
mod signing_key;
mod stations;
mod uplink;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use chrono_tz::Tz;
use secrecy::{ExposeSecret, SecretString};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer};

use crate::model::file_name::FilePattern;
use crate::model::Params;

pub use broker_url::BrokerUrl;
pub use influx::{InfluxApi, InfluxSettings, InfluxUrl, InfluxV1, InfluxV2};
pub use journal::JournalSettings;
pub use metrics::{MetricsDetail, MetricsSettings};
pub use signing_key::{pem, SigningKey};
pub use stations::{PermitLimit, Station, StationDefaults, Stations, WindowSpec};
pub use uplink::{UplinkSettings, UplinkUrl, UplinkValue};

/// Configuration errors. Each names where the value came from (a file, or the environment
/// variable), and why it was refused; a refused value also names its key.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file cannot be read, or is not TOML.
    #[error("{path}: {reason}")]
    File { path: String, reason: String },
    /// A key whose value quantrac does not accept, or that is not a key at all.
    #[error("{file}: {key}: {reason}")]
    Invalid {
        file: String,
        /// `section.key` (`influx.org`, `station[0].limits.Benzene`); the section alone for an
        /// unknown key (the reason names it); `(top level)` for an unknown section.
        key: String,
        reason: String,
    },
}

impl Error {
    /// The key the error is about, when it is about one.
    pub fn key(&self) -> Option<&str> {
        match self {
            Error::File { .. } => None,
            Error::Invalid { key, .. } => Some(key),
        }
    }
}

/// The whole configuration, parsed: every value has its type (a [`BrokerUrl`], a
/// [`SocketAddr`], an [`InfluxApi`] with the settings of one API version), secrets from
/// `*_file` keys are read, and later code never checks a value again. [`Settings::load`] is
/// the one way in, for `run`, `check-config` and every other subcommand alike.
#[derive(Debug, Default)]
pub struct Settings {
    pub mqtt: MqttSettings,
    pub influx: InfluxSettings,
    pub http: HttpSettings,
    pub stations: StationsSettings,
    pub journal: JournalSettings,
    pub compliance: ComplianceSettings,
    pub metrics: MetricsSettings,
    /// `[inbox]`: Circular 10/2021 files pushed by dataloggers; `None` (no section) = off.
    pub inbox: Option<InboxSettings>,
    /// `[uplink]`: files sent to the provincial department; `None` (no section) = off.
    pub uplink: Option<UplinkSettings>,
}

/// The configuration as the layers give it, before `[influx]` is split by API version and
/// secret files are read.
#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct RawSettings {
    mqtt: MqttSettings,
    influx: influx::RawInflux,
    http: HttpSettings,
    stations: StationsSettings,
    journal: JournalSettings,
    compliance: ComplianceSettings,
    metrics: MetricsSettings,
    inbox: Option<InboxSettings>,
    uplink: Option<UplinkSettings>,
}

/// MQTT protocol version spoken to the broker.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    #[default]
    #[serde(rename = "v5")]
    V5,
    #[serde(rename = "v3.1.1")]
    V311,
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MqttSettings {
    /// `mqtt://host:port` or `mqtts://host:port` (TLS), without credentials.
    pub url: BrokerUrl,
    /// Never empty.
    #[serde(deserialize_with = "client_id")]
    pub client_id: String,
    /// At least one, each a valid topic template.
    #[serde(deserialize_with = "topic_templates")]
    pub topics: Vec<String>,
    pub protocol: Protocol,
    /// `None` (`""`): connect without credentials.
    #[serde(deserialize_with = "empty_as_none")]
    pub username: Option<String>,
    /// From `password`, or read from `password_file` at load (the file wins).
    #[serde(deserialize_with = "secret")]
    pub password: Option<SecretString>,
    pub password_file: Option<PathBuf>,
    /// PEM file of the CA that signed the broker's certificate (else the system's roots).
    #[serde(deserialize_with = "empty_path_as_none")]
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate (with its chain) presented to the broker (mutual TLS); needs
    /// `key_file`.
    #[serde(deserialize_with = "empty_path_as_none")]
    pub cert_file: Option<PathBuf>,
    /// PEM private key of `cert_file`: a secret, read at load and never shown.
    #[serde(deserialize_with = "empty_path_as_none")]
    pub key_file: Option<PathBuf>,
    /// The three files above, read and checked at load (for `mqtts://` only).
    #[serde(skip)]
    pub tls: crate::tls::ClientTls,
    #[serde(deserialize_with = "at_least_one")]
    pub max_payload_bytes: usize,
    pub keep_alive_s: u64,
    /// Most unacknowledged messages the broker may send us (v5 receive maximum); at least 1.
    #[serde(deserialize_with = "at_least_one")]
    pub receive_maximum: u16,
    /// How long the broker keeps our session and queue while we are away (v5).
    pub session_expiry_s: u32,
    pub reconnect_min_ms: u64,
    pub reconnect_max_ms: u64,
}

impl Default for MqttSettings {
    fn default() -> Self {
        MqttSettings {
            url: BrokerUrl {
                tls: false,
                host: "127.0.0.1".into(),
                port: 1883,
            },
            client_id: "quantrac".into(),
            topics: vec!["env/{park}/{site}/{station}".into()],
            protocol: Protocol::V5,
            username: None,
            password: None,
            password_file: None,
            ca_file: None,
            cert_file: None,
            key_file: None,
            tls: crate::tls::ClientTls::default(),
            max_payload_bytes: 65_536,
            keep_alive_s: 30,
            receive_maximum: 1000,
            session_expiry_s: 7 * 24 * 3600,
            reconnect_min_ms: 200,
            reconnect_max_ms: 30_000,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpSettings {
    /// `/metrics`, `/healthz`, `/readyz`. Port 0 picks a free port (logged at start).
    #[serde(deserialize_with = "socket_addr")]
    pub listen: SocketAddr,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            listen: SocketAddr::from(([127, 0, 0, 1], 9787)),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StationsSettings {
    pub file: PathBuf,
    /// IANA time zone for payload times without offset and for daily windows.
    #[serde(deserialize_with = "timezone")]
    pub timezone: Tz,
    /// Parameters the operator defines (`[[param]]` entries); `None`: the built-in ones only.
    #[serde(deserialize_with = "empty_path_as_none")]
    pub params_file: Option<PathBuf>,
    /// What to do with readings of a station that is not in the stations file.
    pub unknown: UnknownStations,
    /// With `unknown = "accept"`: at most this many different unknown stations are accepted;
    /// readings of further ones are rejected, so memory and `/metrics` stay bounded whatever a
    /// publisher sends.
    pub max_unknown_stations: usize,
}

impl Default for StationsSettings {
    fn default() -> Self {
        StationsSettings {
            file: "config/stations.toml".into(),
            timezone: chrono_tz::Asia::Ho_Chi_Minh,
            params_file: None,
            unknown: UnknownStations::Reject,
            max_unknown_stations: 100,
        }
    }
}

/// `[inbox]`: a folder where an FTP server (run by the operator) drops the Circular 10/2021
/// files dataloggers push. Each complete file is journaled whole, like an MQTT message, then
/// moved to `done_dir`, or to `rejected_dir` when nothing in it could be accepted.
#[derive(Debug, Deserialize, Clone)]
#[serde(default, deny_unknown_fields)]
pub struct InboxSettings {
    /// Where uploads land (the FTP user's home). Required.
    pub dir: PathBuf,
    /// The file name, naming the station by its `uplink_code` (see
    /// [`FilePattern`]); checked at load.
    pub pattern: String,
    /// When set, a file's `{province}` / `{facility}` must be this (ignoring case).
    #[serde(deserialize_with = "empty_as_none")]
    pub province: Option<String>,
    #[serde(deserialize_with = "empty_as_none")]
    pub facility: Option<String>,
    /// How often the folder is scanned; at least 1.
    #[serde(deserialize_with = "at_least_one")]
    pub poll_ms: u64,
    /// A file is taken once its size and modification time have not changed for this long
    /// (an upload in progress keeps changing them; a file renamed into place after its upload
    /// is complete at once, and waits only this long).
    pub settle_ms: u64,
    /// Where journaled files go; `<dir>/done` unless set.
    pub done_dir: PathBuf,
    /// Where files with nothing accepted go (they are dead letters too); `<dir>/rejected`
    /// unless set.
    pub rejected_dir: PathBuf,
}

impl Default for InboxSettings {
    fn default() -> Self {
        InboxSettings {
            dir: PathBuf::new(),
            pattern: FilePattern::DEFAULT.to_owned(),
            province: None,
            facility: None,
            poll_ms: 1000,
            settle_ms: 10_000,
            done_dir: PathBuf::new(),
            rejected_dir: PathBuf::new(),
        }
    }
}

impl InboxSettings {
    /// Fills in the folders left to their defaults and checks the rest.
    fn resolve(mut self, bad: &impl Fn(&'static str, String) -> Error) -> Result<Self, Error> {
        if self.dir.as_os_str().is_empty() {
            return Err(bad(
                "inbox.dir",
                "is required: the folder uploads land in".into(),
            ));
        }
        FilePattern::parse(&self.pattern).map_err(|e| bad("inbox.pattern", e))?;
        if self.done_dir.as_os_str().is_empty() {
            self.done_dir = self.dir.join("done");
        }
        if self.rejected_dir.as_os_str().is_empty() {
            self.rejected_dir = self.dir.join("rejected");
        }
        if self.done_dir == self.dir || self.rejected_dir == self.dir {
            return Err(bad(
                "inbox.done_dir",
                "done_dir and rejected_dir must differ from dir".into(),
            ));
        }
        if self.done_dir == self.rejected_dir {
            return Err(bad(
                "inbox.rejected_dir",
                "rejected_dir must differ from done_dir".into(),
            ));
        }
        Ok(self)
    }
}

/// `stations.unknown`.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum UnknownStations {
    /// Rejected with reason `unknown_station`, kept as a dead letter (replayable once the
    /// station is added), no per-station series anywhere.
    Reject,
    /// Stored and counted with no verdict, up to `max_unknown_stations` stations.
    Accept,
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ComplianceSettings {
    /// Averaging windows for every station and parameter unless `stations.toml` says otherwise.
    #[serde(deserialize_with = "windows")]
    pub windows: Vec<WindowSpec>,
    /// Share of expected samples a window needs to be valid, 0–1.
    #[serde(deserialize_with = "share")]
    pub min_capture: f64,
    /// Identical values for this long mark an analyser as stuck.
    pub stuck_after_s: u64,
}

impl Default for ComplianceSettings {
    fn default() -> Self {
        ComplianceSettings {
            windows: ["1h", "24h"]
                .iter()
                .map(|w| WindowSpec::parse(w).expect("valid default windows"))
                .collect(),
            min_capture: 0.75,
            stuck_after_s: 3600,
        }
    }
}

impl ComplianceSettings {
    pub fn station_defaults(&self) -> StationDefaults {
        StationDefaults {
            windows: self.windows.clone(),
            min_capture: self.min_capture,
            stuck_after_s: self.stuck_after_s,
        }
    }
}

// Field parsers. Their errors reach the user through `config`, which adds the key.

fn string_or_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => s
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect(),
        OneOrMany::Many(v) => v,
    })
}

/// The templates the decoder will use, checked by the decoder's own parser.
fn topic_templates<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let topics = string_or_list(d)?;
    if topics.is_empty() {
        return Err(D::Error::custom("at least one topic template is needed"));
    }
    crate::model::topic::parse_all(&topics).map_err(D::Error::custom)?;
    Ok(topics)
}

fn client_id<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let id = String::deserialize(d)?;
    if id.is_empty() {
        return Err(D::Error::custom(
            "a stable, non-empty client id keeps the broker session",
        ));
    }
    Ok(id)
}

fn windows<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<WindowSpec>, D::Error> {
    string_or_list(d)?
        .iter()
        .map(|w| WindowSpec::parse(w).map_err(D::Error::custom))
        .collect()
}

fn timezone<'de, D: Deserializer<'de>>(d: D) -> Result<Tz, D::Error> {
    let s = String::deserialize(d)?;
    s.parse::<Tz>()
        .map_err(|_| D::Error::custom(format!("unknown time zone {s:?}")))
}

fn socket_addr<'de, D: Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
    let s = String::deserialize(d)?;
    s.trim().parse().map_err(|_| {
        D::Error::custom(format!(
            "{s:?} is not an IP address and port such as 127.0.0.1:9787"
        ))
    })
}

/// A count that must not be 0.
fn at_least_one<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default + PartialEq,
{
    let n = T::deserialize(d)?;
    if n == T::default() {
        return Err(D::Error::custom("must be at least 1"));
    }
    Ok(n)
}

fn share<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    let x = f64::deserialize(d)?;
    if !(0.0..=1.0).contains(&x) {
        return Err(D::Error::custom("must be in 0–1"));
    }
    Ok(x)
}

/// `""` means none, as in the TOML files (TOML has no null).
fn empty_as_none<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<String>::deserialize(d)?.filter(|s| !s.is_empty()))
}

fn empty_path_as_none<'de, D: Deserializer<'de>>(d: D) -> Result<Option<PathBuf>, D::Error> {
    Ok(empty_as_none(d)?.map(PathBuf::from))
}

fn secret<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SecretString>, D::Error> {
    Ok(non_empty_secret(Option::<SecretString>::deserialize(d)?))
}

fn non_empty_secret(s: Option<SecretString>) -> Option<SecretString> {
    s.filter(|s| !s.expose_secret().is_empty())
}

/// `url` for an error message: anything between the scheme and the last `@` is masked, so a
/// password written into a URL does not reach a terminal or a log.
fn without_credentials(url: &str) -> String {
    let start = url.find("://").map_or(0, |i| i + 3);
    match url[start..].rfind('@') {
        Some(at) => format!("{}***{}", &url[..start], &url[start + at..]),
        None => url.to_owned(),
    }
}

impl Settings {
    /// Loads defaults ← `path` ← environment, and parses the result. `path_given`: the user
    /// named the file, so it must exist. `env` is the environment to read (tests pass their
    /// own map).
    pub fn load(
        path: &Path,
        path_given: bool,
        env: Option<HashMap<String, String>>,
    ) -> Result<Settings, Error> {
        let file_name = path.display().to_string();
        if path_given && !path.exists() {
            return Err(Error::File {
                path: file_name,
                reason: "no such file".into(),
            });
        }
        let mut environment = config::Environment::with_prefix("QUANTRAC")
            .prefix_separator("__")
            .separator("__");
        if let Some(env) = env {
            environment = environment.source(Some(env));
        }
        let built = config::Config::builder()
            .add_source(config::File::from(path).required(false))
            .add_source(environment)
            .build()
            .map_err(|e| Error::File {
                path: file_name.clone(),
                reason: e.to_string(),
            })?;
        let raw: RawSettings = built
            .clone()
            .try_deserialize()
            .map_err(|e| deserialize_error(e, &built, &file_name))?;
        raw.parse(|key, reason| Error::Invalid {
            file: source_of(&built, key, &file_name),
            key: key.into(),
            reason,
        })
    }

    /// Loads `stations.params_file` (when set) and `stations.file`, relative to the working
    /// directory.
    pub fn load_stations(&self) -> Result<Stations, Error> {
        Stations::load_with(
            &self.stations.file,
            &self.compliance.station_defaults(),
            self.load_params()?,
        )
    }

    /// The parameter table: built-in, plus `stations.params_file` when set.
    pub fn load_params(&self) -> Result<Params, Error> {
        match &self.stations.params_file {
            Some(path) => params::load(path),
            None => Ok(Params::builtin()),
        }
    }
}

impl RawSettings {
    /// What `config` cannot do alone: `[influx]` by API version, secret files, the CA file.
    fn parse(self, bad: impl Fn(&'static str, String) -> Error) -> Result<Settings, Error> {
        let RawSettings {
            mut mqtt,
            influx,
            http,
            stations,
            mut journal,
            compliance,
            metrics,
            inbox,
            uplink,
        } = self;
        if let Some(path) = &journal.signing_key_file {
            let key = SigningKey::load(path).map_err(|reason| Error::Invalid {
                file: path.display().to_string(),
                key: "journal.signing_key_file".into(),
                reason,
            })?;
            journal.signing_key = Some(std::sync::Arc::new(key));
        }
        read_secret(
            &mut mqtt.password,
            &mqtt.password_file,
            "mqtt.password_file",
        )?;
        if mqtt.url.tls {
            mqtt.tls = load_tls(crate::tls::Files {
                section: "mqtt",
                ca_file: mqtt.ca_file.as_deref(),
                cert_file: mqtt.cert_file.as_deref(),
                key_file: mqtt.key_file.as_deref(),
            })?;
        } else if mqtt.cert_file.is_some() || mqtt.key_file.is_some() {
            let key = if mqtt.cert_file.is_some() {
                "mqtt.cert_file"
            } else {
                "mqtt.key_file"
            };
            return Err(bad(
                key,
                "a client certificate needs TLS: use an mqtts:// URL".into(),
            ));
        }
        let inbox = inbox.map(|i| i.resolve(&bad)).transpose()?;
        let uplink = uplink.map(|u| u.resolve(&bad)).transpose()?;
        Ok(Settings {
            mqtt,
            influx: influx.parse(&bad)?,
            http,
            stations,
            journal,
            compliance,
            metrics,
            inbox,
            uplink,
        })
    }
}

/// The error of `try_deserialize`, with the key `config` attached to it.
fn deserialize_error(e: config::ConfigError, built: &config::Config, file: &str) -> Error {
    use config::ConfigError as E;
    let (key, reason) = match e {
        E::Type {
            unexpected,
            expected,
            key: Some(key),
            ..
        } => (
            key,
            format!("invalid type: {unexpected}, expected {expected}"),
        ),
        E::At {
            error,
            key: Some(key),
            ..
        } => (key, error.to_string()),
        other => ("(top level)".to_owned(), other.to_string()),
    };
    Error::Invalid {
        file: source_of(built, &key, file),
        key,
        reason,
    }
}

/// Where the value of `key` came from: the environment variable, else the file.
fn source_of(built: &config::Config, key: &str, file: &str) -> String {
    let (section, field) = key.split_once('.').unwrap_or((key, ""));
    let field = field.split(['.', '[']).next().unwrap_or_default();
    let origin = built
        .get_table(section)
        .ok()
        .and_then(|t| t.get(field).and_then(|v| v.origin().map(str::to_owned)));
    match origin.as_deref() {
        Some("the environment") => format!(
            "environment QUANTRAC__{}__{}",
            section.to_uppercase(),
            field.to_uppercase()
        ),
        Some(_) => file.to_owned(),
        None => format!("{file} (or QUANTRAC__* environment)"),
    }
}

/// Reads and checks the TLS files of one client; the error names the key and the file.
fn load_tls(files: crate::tls::Files<'_>) -> Result<crate::tls::ClientTls, Error> {
    crate::tls::ClientTls::load(files, chrono::Utc::now().timestamp()).map_err(|e| Error::Invalid {
        file: e.path.display().to_string(),
        key: e.key,
        reason: e.reason,
    })
}

fn read_secret(
    secret: &mut Option<SecretString>,
    file: &Option<PathBuf>,
    key: &str,
) -> Result<(), Error> {
    if let Some(path) = file {
        let text = std::fs::read_to_string(path).map_err(|e| Error::Invalid {
            file: path.display().to_string(),
            key: key.into(),
            reason: format!("cannot read secret file: {e}"),
        })?;
        *secret = Some(SecretString::from(
            text.trim_end_matches(['\r', '\n']).to_owned(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
