//! The quantrac binary as a child process, and [`Stack`]: broker + InfluxDB + quantrac.
//!
//! quantrac runs with `http.listen = "127.0.0.1:0"` and logs the address it bound; it is read
//! from the log ("HTTP listening on http://ADDR/metrics"). The binary's path is passed in: only
//! an integration test or a benchmark has `env!("CARGO_BIN_EXE_quantrac")`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::fixtures::STATIONS;
use crate::influx::Influx1;
use crate::metrics::parse_metric;
use crate::mosquitto::Broker;
use crate::ports::free_port;
use crate::process::Proc;
use crate::wait::eventually;

/// The line quantrac logs once its HTTP server listens.
const LISTENING: &str = "HTTP listening on http://";

/// `http://ADDR` from the line a quantrac process (`run` or `demo`) logs once its HTTP server
/// listens; waits at most `limit` for it.
pub fn announced_http(proc: &Proc, limit: Duration) -> String {
    let line = proc.wait_for_log(LISTENING, limit);
    let addr = line
        .split("http://")
        .nth(1)
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string();
    format!("http://{addr}")
}

/// `quantrac run` with a config in its own folder; output kept by [`Proc`] and appended to
/// `quantrac.log` in that folder.
pub struct Quantrac {
    pub proc: Proc,
    pub dir: PathBuf,
    pub config: PathBuf,
    /// `http://ADDR` of `/metrics`, `/healthz`, `/readyz`.
    pub http: String,
    bin: PathBuf,
}

impl Quantrac {
    /// A test's quantrac.toml for `dir`: the broker URL, the `[influx]` lines, an HTTP port
    /// chosen by the OS, a unique client id, fast reconnects and flushes. `extra` holds whole
    /// sections; its `[mqtt]`, `[stations]` and `[journal]` lines join the generated sections.
    pub fn config_text(dir: &Path, broker: &str, influx: &str, extra: &str) -> String {
        format!(
            "[mqtt]\nurl = \"{broker}\"\nclient_id = \"quantrac-test-{id}\"\nreconnect_min_ms = 100\nreconnect_max_ms = 1000\n\
             {mqtt_extra}\n\
             [influx]\n{influx}\nflush_interval_ms = 200\nretry_max_ms = 1000\n\n\
             [http]\nlisten = \"127.0.0.1:0\"\n\n\
             [stations]\nfile = \"{d}/stations.toml\"\n{stations_extra}\n\
             [journal]\npath = \"{d}/journal\"\n{journal_extra}\n{rest}\n",
            id = std::process::id() as u64 * 1000 + free_port() as u64,
            d = dir.display(),
            mqtt_extra = section(extra, "mqtt"),
            journal_extra = section(extra, "journal"),
            stations_extra = section(extra, "stations"),
            rest = without(extra, &["mqtt", "journal", "stations"]),
        )
    }

    /// Writes `config` and `stations` as `quantrac.toml` and `stations.toml` in `dir`, then
    /// runs `bin` on them.
    pub fn start(bin: impl AsRef<Path>, dir: &Path, config: &str, stations: &str) -> Quantrac {
        std::fs::write(dir.join("stations.toml"), stations).unwrap();
        let path = dir.join("quantrac.toml");
        std::fs::write(&path, config).unwrap();
        Quantrac::run(bin, &path)
    }

    /// `bin run --config <config>` in the config's folder, at log level `info`, human format;
    /// returns once the HTTP address is logged (at most 30 s).
    pub fn run(bin: impl AsRef<Path>, config: &Path) -> Quantrac {
        let bin = bin.as_ref().to_path_buf();
        let dir = config
            .parent()
            .expect("the config is in a folder")
            .to_path_buf();
        let proc = Proc::build(
            "quantrac",
            &[
                bin.display().to_string(),
                "run".into(),
                "--config".into(),
                config.display().to_string(),
            ],
            &[
                ("RUST_LOG".into(), "info".into()),
                ("NO_COLOR".into(), "1".into()),
            ],
            &dir,
        )
        .env_remove("QUANTRAC_LOG_FORMAT")
        .log_file(&dir.join("quantrac.log"))
        .start_now();
        let mut q = Quantrac {
            proc,
            dir,
            config: config.to_path_buf(),
            http: String::new(),
            bin,
        };
        q.http = announced_http(&q.proc, Duration::from_secs(30));
        q
    }

    /// SIGKILL, then the same command again, with a fresh log.
    pub fn restart(&mut self) {
        self.proc.kill9();
        self.proc.log.lock().unwrap().clear();
        self.proc.restart();
        self.http = announced_http(&self.proc, Duration::from_secs(30));
    }

    /// Runs a quantrac subcommand against this instance's config; returns (exit ok, stdout+stderr).
    pub fn command(&self, args: &[&str]) -> (bool, String) {
        let out = Command::new(&self.bin)
            .args(args)
            .arg("--config")
            .arg(&self.config)
            .current_dir(&self.dir)
            .output()
            .expect("running quantrac");
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    }

    /// The `/metrics` text; empty when quantrac does not answer.
    pub async fn metrics(&self) -> String {
        match reqwest::get(format!("{}/metrics", self.http)).await {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    /// The value of one sample: `name{labels}` as printed (labels in the exposition order), or
    /// the bare name.
    pub async fn metric(&self, sample: &str) -> Option<f64> {
        parse_metric(&self.metrics().await, sample)
    }

    pub async fn ready(&self) -> bool {
        matches!(reqwest::get(format!("{}/readyz", self.http)).await, Ok(r) if r.status().is_success())
    }

    pub async fn wait_ready(&self) {
        eventually("quantrac ready", Duration::from_secs(30), || async {
            self.ready().await.then_some(())
        })
        .await;
    }
}

/// The usual test setup: mosquitto, InfluxDB 1.x with its database, and quantrac writing to it
/// with the v1 API from [`STATIONS`], ready. Destructure it to get at the parts; every part
/// must stay bound.
pub struct Stack {
    pub q: Quantrac,
    pub influx: Influx1,
    pub broker: Broker,
    pub dir: tempfile::TempDir,
}

impl Stack {
    /// `bin`: the quantrac binary. `extra`: whole sections for the generated quantrac.toml
    /// (see [`Quantrac::config_text`]).
    pub async fn start(bin: impl AsRef<Path>, extra: &str) -> Stack {
        let dir = tempfile::tempdir().unwrap();
        let broker = Broker::start(dir.path());
        let influx = Influx1::start(dir.path());
        influx.create_db().await;
        let cfg = Quantrac::config_text(dir.path(), &broker.url(), &influx.v1_config(), extra);
        let q = Quantrac::start(bin, dir.path(), &cfg, STATIONS);
        q.wait_ready().await;
        Stack {
            q,
            influx,
            broker,
            dir,
        }
    }
}

/// The lines of section `[name]` in `extra`, without the header.
fn section(extra: &str, name: &str) -> String {
    let mut out = String::new();
    let mut inside = false;
    for line in extra.lines() {
        let t = line.trim();
        if t.starts_with('[') {
            inside = t == format!("[{name}]");
            continue;
        }
        if inside {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// `extra` without the sections `names`.
fn without(extra: &str, names: &[&str]) -> String {
    let mut out = String::new();
    let mut skip = false;
    for line in extra.lines() {
        let t = line.trim();
        if t.starts_with('[') {
            skip = names.iter().any(|n| t == format!("[{n}]"));
        }
        if !skip {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_sections_join_the_generated_ones() {
        let extra = "[mqtt]\nprotocol = \"v3.1.1\"\n[journal]\ndurable = false\n[compliance]\nlate_horizon_h = 72\n";
        let text = Quantrac::config_text(Path::new("/t"), "mqtt://b", "url = \"\"", extra);
        let mqtt = text.split("[influx]").next().unwrap();
        assert!(mqtt.contains("protocol = \"v3.1.1\""), "{text}");
        let journal = text.split("[journal]").nth(1).unwrap();
        assert!(journal.contains("durable = false"), "{text}");
        assert_eq!(text.matches("[mqtt]").count(), 1, "{text}");
        assert!(
            text.ends_with("[compliance]\nlate_horizon_h = 72\n\n"),
            "{text:?}"
        );
    }
}
