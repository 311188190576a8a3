//! Configuration: `quantrac.toml` layered with the `config` crate (defaults ← file ←
//! `QUANTRAC__SECTION__KEY` environment variables), `*_file` secrets, and `stations.toml`.
//!
//! Every struct denies unknown keys: a typo in a config file is an error that names the key,
//! never a silently ignored setting. Defaults live once, in each `impl Default`.

mod broker_url;
mod stations;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use chrono_tz::Tz;
use secrecy::SecretString;
use serde::{Deserialize, Deserializer};

pub use broker_url::BrokerUrl;
pub use stations::{PermitLimit, Station, StationDefaults, Stations, WindowSpec};

/// Configuration errors. Each names the file (or variable), the key and the reason.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {reason}")]
    File { path: String, reason: String },
    #[error("{file}: {key}: {reason}")]
    Invalid {
        file: String,
        key: String,
        reason: String,
    },
}

#[derive(Debug, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub mqtt: MqttSettings,
    pub influx: InfluxSettings,
    pub http: HttpSettings,
    pub stations: StationsSettings,
    pub journal: JournalSettings,
    pub compliance: ComplianceSettings,
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
    /// `mqtt://host:port` or `mqtts://host:port` (TLS).
    pub url: String,
    pub client_id: String,
    #[serde(deserialize_with = "string_or_list")]
    pub topics: Vec<String>,
    pub protocol: Protocol,
    pub username: String,
    pub password: Option<SecretString>,
    pub password_file: Option<PathBuf>,
    /// PEM file of the CA that signed the broker's certificate (else system roots).
    pub ca_file: Option<PathBuf>,
    pub max_payload_bytes: usize,
    pub keep_alive_s: u64,
    /// Most unacknowledged messages the broker may send us (v5 receive maximum).
    pub receive_maximum: u16,
    /// How long the broker keeps our session and queue while we are away (v5).
    pub session_expiry_s: u32,
    pub reconnect_min_ms: u64,
    pub reconnect_max_ms: u64,
}

impl Default for MqttSettings {
    fn default() -> Self {
        MqttSettings {
            url: "mqtt://127.0.0.1:1883".into(),
            client_id: "quantrac".into(),
            topics: vec!["env/{park}/{site}/{station}".into()],
            protocol: Protocol::V5,
            username: String::new(),
            password: None,
            password_file: None,
            ca_file: None,
            max_payload_bytes: 65_536,
            keep_alive_s: 30,
            receive_maximum: 1000,
            session_expiry_s: 7 * 24 * 3600,
            reconnect_min_ms: 200,
            reconnect_max_ms: 30_000,
        }
    }
}

/// Which InfluxDB write API to use.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum InfluxApi {
    /// `/api/v2/write` with org, bucket and token (InfluxDB 2.x, 3.x, compatible servers).
    #[default]
    V2,
    /// `/write?db=&rp=` (InfluxDB 1.x).
    V1,
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InfluxSettings {
    /// Empty: no InfluxDB; readings stay in the journal.
    pub url: String,
    pub api: InfluxApi,
    pub org: String,
    pub bucket: String,
    pub token: Option<SecretString>,
    pub token_file: Option<PathBuf>,
    pub database: String,
    pub retention_policy: String,
    pub username: String,
    pub password: Option<SecretString>,
    pub password_file: Option<PathBuf>,
    pub batch_size: usize,
    pub flush_interval_ms: u64,
    pub timeout_ms: u64,
    pub retry_max_ms: u64,
}

impl Default for InfluxSettings {
    fn default() -> Self {
        InfluxSettings {
            url: "http://127.0.0.1:8086".into(),
            api: InfluxApi::V2,
            org: "quantrac".into(),
            bucket: "quantrac".into(),
            token: None,
            token_file: None,
            database: "quantrac".into(),
            retention_policy: String::new(),
            username: String::new(),
            password: None,
            password_file: None,
            batch_size: 5000,
            flush_interval_ms: 1000,
            timeout_ms: 10_000,
            retry_max_ms: 30_000,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpSettings {
    /// `/metrics`, `/healthz`, `/readyz`. Port 0 picks a free port (logged at start).
    pub listen: String,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            listen: "127.0.0.1:9787".into(),
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
}

impl Default for StationsSettings {
    fn default() -> Self {
        StationsSettings {
            file: "config/stations.toml".into(),
            timezone: chrono_tz::Asia::Ho_Chi_Minh,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JournalSettings {
    pub path: PathBuf,
    /// Above this size the journal stops accepting (and quantrac stops acknowledging).
    pub max_bytes: u64,
    /// Readings already written to InfluxDB are pruned after this many days.
    pub retention_days: u32,
    /// `true`: every commit reaches the disk before its messages are acknowledged.
    pub durable: bool,
    /// How often the chain head is logged for third-party anchoring.
    pub chain_log_interval_s: u64,
}

impl Default for JournalSettings {
    fn default() -> Self {
        JournalSettings {
            path: "data/journal".into(),
            max_bytes: 20 * 1024 * 1024 * 1024,
            retention_days: 60,
            durable: true,
            chain_log_interval_s: 3600,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ComplianceSettings {
    /// Averaging windows for every station and parameter unless `stations.toml` says otherwise.
    #[serde(deserialize_with = "string_or_list")]
    pub windows: Vec<String>,
    /// Share of expected samples a window needs to be valid.
    pub min_capture: f64,
    /// Identical values for this long mark an analyser as stuck.
    pub stuck_after_s: u64,
}

impl Default for ComplianceSettings {
    fn default() -> Self {
        ComplianceSettings {
            windows: vec!["1h".into(), "24h".into()],
            min_capture: 0.75,
            stuck_after_s: 3600,
        }
    }
}

impl ComplianceSettings {
    pub fn station_defaults(&self) -> Result<StationDefaults, Error> {
        let windows = self
            .windows
            .iter()
            .map(|w| {
                WindowSpec::parse(w).map_err(|reason| Error::Invalid {
                    file: "quantrac.toml".into(),
                    key: "compliance.windows".into(),
                    reason,
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(StationDefaults {
            windows,
            min_capture: self.min_capture,
            stuck_after_s: self.stuck_after_s,
        })
    }
}

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

fn timezone<'de, D: Deserializer<'de>>(d: D) -> Result<Tz, D::Error> {
    let s = String::deserialize(d)?;
    s.parse::<Tz>()
        .map_err(|_| serde::de::Error::custom(format!("unknown time zone {s:?}")))
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
    /// Loads defaults ← `path` ← environment. `path_given`: the user named the file, so it
    /// must exist. `env` is the environment to read (tests pass their own map).
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
        let mut settings: Settings = built.try_deserialize().map_err(|e| Error::Invalid {
            file: format!("{file_name} (or QUANTRAC__* environment)"),
            key: config_error_key(&e),
            reason: e.to_string(),
        })?;
        settings.read_secret_files()?;
        settings.check(&file_name)?;
        Ok(settings)
    }

    fn read_secret_files(&mut self) -> Result<(), Error> {
        read_secret(
            &mut self.mqtt.password,
            &self.mqtt.password_file,
            "mqtt.password_file",
        )?;
        read_secret(
            &mut self.influx.token,
            &self.influx.token_file,
            "influx.token_file",
        )?;
        read_secret(
            &mut self.influx.password,
            &self.influx.password_file,
            "influx.password_file",
        )?;
        Ok(())
    }

    fn check(&self, file: &str) -> Result<(), Error> {
        let bad = |key: &str, reason: String| Error::Invalid {
            file: file.to_owned(),
            key: key.to_owned(),
            reason,
        };
        if let Err(reason) = BrokerUrl::parse(&self.mqtt.url) {
            return Err(bad("mqtt.url", format!("{:?}: {reason}", self.mqtt.url)));
        }
        if self.mqtt.topics.is_empty() {
            return Err(bad(
                "mqtt.topics",
                "at least one topic template is needed".into(),
            ));
        }
        if self.mqtt.client_id.is_empty() {
            return Err(bad(
                "mqtt.client_id",
                "a stable, non-empty client id keeps the broker session".into(),
            ));
        }
        if self.mqtt.receive_maximum == 0 {
            return Err(bad("mqtt.receive_maximum", "must be at least 1".into()));
        }
        if self.mqtt.max_payload_bytes == 0 {
            return Err(bad("mqtt.max_payload_bytes", "must be at least 1".into()));
        }
        let influx = &self.influx.url;
        if !(influx.is_empty() || influx.starts_with("http://") || influx.starts_with("https://")) {
            return Err(bad(
                "influx.url",
                format!("{:?} must start with http:// or https://", self.influx.url),
            ));
        }
        if self.influx.batch_size == 0 {
            return Err(bad("influx.batch_size", "must be at least 1".into()));
        }
        if self.http.listen.parse::<std::net::SocketAddr>().is_err() {
            return Err(bad(
                "http.listen",
                format!(
                    "{:?} is not an address such as 127.0.0.1:9787",
                    self.http.listen
                ),
            ));
        }
        if self.journal.retention_days == 0 {
            return Err(bad("journal.retention_days", "must be at least 1".into()));
        }
        if !(0.0..=1.0).contains(&self.compliance.min_capture) {
            return Err(bad("compliance.min_capture", "must be in 0–1".into()));
        }
        self.compliance.station_defaults()?;
        Ok(())
    }

    /// Loads `stations.file`, relative to the working directory.
    pub fn load_stations(&self) -> Result<Stations, Error> {
        Stations::load(&self.stations.file, &self.compliance.station_defaults()?)
    }
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

/// Pulls the key out of a `config` error message ("… for key `mqtt.foo` …") when it has one.
fn config_error_key(e: &config::ConfigError) -> String {
    let msg = e.to_string();
    if let Some(start) = msg.find("key `") {
        if let Some(end) = msg[start + 5..].find('`') {
            return msg[start + 5..start + 5 + end].to_owned();
        }
    }
    if let Some(start) = msg.find("unknown field `") {
        if let Some(end) = msg[start + 15..].find('`') {
            return msg[start + 15..start + 15 + end].to_owned();
        }
    }
    "(top level)".into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn defaults_then_file_then_environment() {
        let dir = tempfile::tempdir().unwrap();
        let token = write(dir.path(), "token", "s3cret\n");
        let path = write(
            dir.path(),
            "q.toml",
            &format!(
                "[influx]\nbatch_size = 10\ntoken_file = {:?}\n[mqtt]\ntopics = \"a/{{park}}/{{site}}/{{station}}\"\n",
                token.display().to_string()
            ),
        );
        let env = HashMap::from([
            ("QUANTRAC__INFLUX__BATCH_SIZE".to_string(), "20".to_string()),
            ("QUANTRAC__INFLUX__ORG".to_string(), "007".to_string()),
        ]);
        let s = Settings::load(&path, true, Some(env)).unwrap();
        assert_eq!(s.influx.batch_size, 20);
        assert_eq!(s.influx.org, "007", "digits stay a string");
        assert_eq!(s.influx.token.as_ref().unwrap().expose_secret(), "s3cret");
        assert_eq!(s.mqtt.topics, vec!["a/{park}/{site}/{station}"]);
        assert_eq!(s.mqtt.client_id, "quantrac");
        assert!(
            !format!("{s:?}").contains("s3cret"),
            "secrets never reach Debug"
        );
    }

    #[test]
    fn unknown_keys_are_errors_naming_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "q.toml", "[influx]\nbatchsize = 10\n");
        let e = Settings::load(&path, true, Some(HashMap::new()))
            .unwrap_err()
            .to_string();
        assert!(e.contains("batchsize"), "{e}");
        assert!(e.contains("q.toml"), "{e}");
    }

    #[test]
    fn a_missing_named_file_is_an_error() {
        let e = Settings::load(Path::new("/nonexistent/q.toml"), true, Some(HashMap::new()))
            .unwrap_err()
            .to_string();
        assert!(e.contains("no such file"), "{e}");
    }
}
