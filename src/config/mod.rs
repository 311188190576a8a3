//! Configuration: `quantrac.toml` layered with the `config` crate (defaults ← file ←
//! `QUANTRAC__SECTION__KEY` environment variables), `*_file` secrets, and `stations.toml`.
//!
//! Every struct denies unknown keys: a typo in a config file is an error that names the key,
//! never a silently ignored setting. Defaults live once, in each `impl Default`.

mod broker_url;
mod influx;
mod stations;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use chrono_tz::Tz;
use secrecy::{ExposeSecret, SecretString};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer};

pub use broker_url::BrokerUrl;
pub use influx::{InfluxApi, InfluxSettings, InfluxUrl, InfluxV1, InfluxV2};
pub use stations::{PermitLimit, Station, StationDefaults, Stations, WindowSpec};

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
    /// PEM file of the CA that signed the broker's certificate (else system roots). Readable:
    /// checked at load when the URL is `mqtts://`.
    pub ca_file: Option<PathBuf>,
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
    /// Readings already written to InfluxDB are pruned after this many days; at least 1.
    #[serde(deserialize_with = "at_least_one")]
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

    /// Loads `stations.file`, relative to the working directory.
    pub fn load_stations(&self) -> Result<Stations, Error> {
        Stations::load(&self.stations.file, &self.compliance.station_defaults())
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
            journal,
            compliance,
        } = self;
        read_secret(
            &mut mqtt.password,
            &mqtt.password_file,
            "mqtt.password_file",
        )?;
        if let (true, Some(ca)) = (mqtt.url.tls, &mqtt.ca_file) {
            std::fs::File::open(ca).map_err(|e| Error::Invalid {
                file: ca.display().to_string(),
                key: "mqtt.ca_file".into(),
                reason: format!("cannot read the CA file: {e}"),
            })?;
        }
        Ok(Settings {
            mqtt,
            influx: influx.parse(bad)?,
            http,
            stations,
            journal,
            compliance,
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
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    /// Loads `text` as the file, with `env` as the whole environment.
    fn load(text: &str, env: &[(&str, &str)]) -> Result<Settings, Error> {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "q.toml", text);
        let env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::load(&path, true, Some(env))
    }

    fn v2(s: &Settings) -> &InfluxV2 {
        match &s.influx.api {
            InfluxApi::V2(v2) => v2,
            other => panic!("{other:?}"),
        }
    }

    fn v1(s: &Settings) -> &InfluxV1 {
        match &s.influx.api {
            InfluxApi::V1(v1) => v1,
            other => panic!("{other:?}"),
        }
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
        assert_eq!(v2(&s).org, "007", "digits stay a string");
        assert_eq!(v2(&s).bucket, "quantrac");
        assert_eq!(v2(&s).token.as_ref().unwrap().expose_secret(), "s3cret");
        assert_eq!(s.mqtt.topics, vec!["a/{park}/{site}/{station}"]);
        assert_eq!(s.mqtt.client_id, "quantrac");
        assert!(
            !format!("{s:?}").contains("s3cret"),
            "secrets never reach Debug"
        );
    }

    #[test]
    fn values_are_parsed_into_their_types_once() {
        let s = load(
            "[mqtt]\nurl = \"mqtts://broker.example\"\nusername = \"\"\n\
             [http]\nlisten = \"[::1]:0\"\n\
             [influx]\nurl = \"https://influx.example/base\"\napi = \"v1\"\nretention_policy = \"\"\n",
            &[],
        )
        .unwrap();
        assert_eq!(s.mqtt.url.to_string(), "mqtts://broker.example:8883");
        assert_eq!(s.mqtt.username, None, "\"\" is none");
        assert_eq!(s.http.listen, "[::1]:0".parse().unwrap());
        let url = s.influx.url.as_ref().unwrap();
        assert_eq!(url.as_url().path(), "/base");
        assert_eq!(v1(&s).database, "quantrac");
        assert_eq!(v1(&s).retention_policy, None, "\"\" is none");

        let s = load("[influx]\nurl = \"\"\n", &[]).unwrap();
        assert!(s.influx.url.is_none(), "no InfluxDB");
        let s = load("", &[("QUANTRAC__INFLUX__URL", "")]).unwrap();
        assert!(
            s.influx.url.is_none(),
            "the environment can turn InfluxDB off"
        );
    }

    // Issue 8: a v1-only key under v2 is a config error, not ignored; and the other way round.
    #[test]
    fn a_key_of_the_other_api_version_is_an_error_naming_it() {
        for (text, key, version) in [
            ("api = \"v2\"\ndatabase = \"db\"\n", "influx.database", "v2"),
            ("retention_policy = \"\"\n", "influx.retention_policy", "v2"),
            ("username = \"u\"\n", "influx.username", "v2"),
            ("password_file = \"/x\"\n", "influx.password_file", "v2"),
            ("api = \"v1\"\norg = \"o\"\n", "influx.org", "v1"),
            ("api = \"v1\"\ntoken = \"t0ken-9\"\n", "influx.token", "v1"),
            ("api = \"v1\"\nbucket = \"b\"\n", "influx.bucket", "v1"),
        ] {
            let e = load(&format!("[influx]\n{text}"), &[]).unwrap_err();
            assert_eq!(e.key(), Some(key), "{e}");
            let e = e.to_string();
            assert!(
                e.contains(&format!("not a {version} setting (api = \"{version}\")")),
                "{e}"
            );
            assert!(e.contains("q.toml") && !e.contains("t0ken-9"), "{e}");
        }
        // From the environment: the variable is named.
        let e = load(
            "[influx]\napi = \"v1\"\n",
            &[("QUANTRAC__INFLUX__TOKEN", "t0ken-9")],
        )
        .unwrap_err();
        assert_eq!(e.key(), Some("influx.token"));
        let e = e.to_string();
        assert!(
            e.contains("QUANTRAC__INFLUX__TOKEN") && !e.contains("t0ken-9"),
            "{e}"
        );
    }

    #[test]
    fn credentials_in_a_url_are_refused_without_repeating_them() {
        for (text, key) in [
            (
                "[mqtt]\nurl = \"mqtt://u:SECRET@broker:1883\"\n",
                "mqtt.url",
            ),
            (
                "[influx]\nurl = \"http://u:SECRET@influx:8086\"\n",
                "influx.url",
            ),
        ] {
            let e = load(text, &[]).unwrap_err();
            assert_eq!(e.key(), Some(key), "{e}");
            let e = e.to_string();
            assert!(!e.contains("SECRET") && e.contains("q.toml"), "{e}");
        }
    }

    #[test]
    fn refused_values_name_their_key() {
        for (text, key) in [
            ("[mqtt]\nurl = \"tcp://broker\"\n", "mqtt.url"),
            ("[mqtt]\ntopics = []\n", "mqtt.topics"),
            (
                "[mqtt]\ntopics = [\"env/{park}/{station}\"]\n",
                "mqtt.topics",
            ),
            ("[mqtt]\nclient_id = \"\"\n", "mqtt.client_id"),
            ("[mqtt]\nreceive_maximum = 0\n", "mqtt.receive_maximum"),
            ("[mqtt]\nmax_payload_bytes = 0\n", "mqtt.max_payload_bytes"),
            ("[mqtt]\nprotocol = \"v4\"\n", "mqtt.protocol"),
            ("[influx]\nurl = \"ftp://h\"\n", "influx.url"),
            ("[influx]\nbatch_size = 0\n", "influx.batch_size"),
            ("[influx]\nbatch_size = \"many\"\n", "influx.batch_size"),
            ("[influx]\nbucket = \"\"\n", "influx.bucket"),
            (
                "[influx]\napi = \"v1\"\ndatabase = \"\"\n",
                "influx.database",
            ),
            ("[influx]\napi = \"v3\"\n", "influx.api"),
            ("[http]\nlisten = \"localhost:9787\"\n", "http.listen"),
            (
                "[stations]\ntimezone = \"Mars/Olympus\"\n",
                "stations.timezone",
            ),
            ("[journal]\nretention_days = 0\n", "journal.retention_days"),
            (
                "[compliance]\nmin_capture = 1.5\n",
                "compliance.min_capture",
            ),
            ("[compliance]\nwindows = [\"7m\"]\n", "compliance.windows"),
            ("[influx]\nbatchsize = 10\n", "influx"),
        ] {
            let e = load(text, &[]).unwrap_err();
            assert_eq!(e.key(), Some(key), "{text}: {e}");
            assert!(e.to_string().contains("q.toml"), "{e}");
        }
        let e = load("", &[("QUANTRAC__HTTP__LISTEN", "nowhere")]).unwrap_err();
        assert_eq!(e.key(), Some("http.listen"));
        assert!(e.to_string().contains("QUANTRAC__HTTP__LISTEN"), "{e}");
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
    fn empty_secrets_are_none_and_secret_files_win() {
        let dir = tempfile::tempdir().unwrap();
        let pw = write(dir.path(), "pw", "from-file\n");
        let s = load(
            &format!(
                "[mqtt]\npassword = \"\"\n[influx]\napi = \"v1\"\nusername = \"w\"\npassword = \"inline\"\npassword_file = {:?}\n",
                pw.display().to_string()
            ),
            &[],
        )
        .unwrap();
        assert!(s.mqtt.password.is_none());
        assert_eq!(v1(&s).username.as_deref(), Some("w"));
        assert_eq!(
            v1(&s).password.as_ref().unwrap().expose_secret(),
            "from-file"
        );
        let e = load("[mqtt]\npassword_file = \"/nonexistent/pw\"\n", &[]).unwrap_err();
        assert_eq!(e.key(), Some("mqtt.password_file"));
        let e = load(
            "[mqtt]\nurl = \"mqtts://b\"\nca_file = \"/nonexistent/ca.pem\"\n",
            &[],
        )
        .unwrap_err();
        assert_eq!(e.key(), Some("mqtt.ca_file"));
    }

    #[test]
    fn a_missing_named_file_is_an_error() {
        let e = Settings::load(Path::new("/nonexistent/q.toml"), true, Some(HashMap::new()))
            .unwrap_err()
            .to_string();
        assert!(e.contains("no such file"), "{e}");
    }
}
