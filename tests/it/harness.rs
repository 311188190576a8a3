//! Real parts for integration tests: mosquitto, InfluxDB 1.x, victoria-metrics (a real server
//! for the InfluxDB v2 write API) and the quantrac binary, each started on free ports in a temp
//! dir, so a test can kill and restart any of them. A missing program fails the test, naming the
//! Debian package that provides it.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A port nobody listens on right now, never the same twice in one test run.
///
/// Ports come from a counter below Linux's ephemeral range (32768+), so a port handed to one
/// server cannot be given by the OS to another test's `bind(0)` or outgoing connection in the
/// moment before that server binds it.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let _ = NEXT.compare_exchange(
        0,
        20_000 + (std::process::id() % 200) as u16 * 50,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    loop {
        let port = NEXT.fetch_add(1, Ordering::SeqCst);
        assert!(port < 32_000, "ran out of test ports");
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Path of a required program, or a panic naming its Debian package.
pub fn program(name: &str, package: &str) -> PathBuf {
    for dir in ["/usr/sbin", "/usr/bin", "/usr/local/bin", "/usr/local/sbin"] {
        let p = Path::new(dir).join(name);
        if p.exists() {
            return p;
        }
    }
    if let Ok(out) = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {name}"))
        .output()
    {
        let s = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if !s.is_empty() {
            return PathBuf::from(s);
        }
    }
    panic!("`{name}` not found: install the Debian package `{package}` (the README's test command does)");
}

/// Polls `f` until it returns `Some`, at most `limit`; panics with `what` on time-out.
pub async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out after {limit:?} waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A child process whose output is kept (last lines) for failure reports.
pub struct Proc {
    pub name: String,
    child: Option<Child>,
    pub log: Arc<Mutex<VecDeque<String>>>,
    cmd: Vec<String>,
    envs: Vec<(String, String)>,
    cwd: PathBuf,
}

impl Proc {
    pub fn spawn(name: &str, cmd: &[String], envs: &[(String, String)], cwd: &Path) -> Proc {
        let mut p = Proc {
            name: name.into(),
            child: None,
            log: Arc::new(Mutex::new(VecDeque::new())),
            cmd: cmd.to_vec(),
            envs: envs.to_vec(),
            cwd: cwd.to_path_buf(),
        };
        p.start();
        p
    }

    fn start(&mut self) {
        let mut c = Command::new(&self.cmd[0]);
        c.args(&self.cmd[1..])
            .current_dir(&self.cwd)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in &self.envs {
            c.env(k, v);
        }
        let mut child = c
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", self.name));
        let live = std::env::var("TEST_LOG").is_ok();
        for stream in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let log = self.log.clone();
            let name = self.name.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if live {
                        eprintln!("[{name}] {line}");
                    }
                    let mut l = log.lock().unwrap();
                    l.push_back(line);
                    if l.len() > 2000 {
                        l.pop_front();
                    }
                }
            });
        }
        self.child = Some(child);
    }

    pub fn restart(&mut self) {
        self.kill9();
        self.start();
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait for the exit status (at most `limit`).
    pub fn sigterm(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let mut c = self.child.take()?;
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(c.id().to_string())
            .status();
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(Some(s)) = c.try_wait() {
                return Some(s);
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                let _ = c.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    pub fn log_text(&self) -> String {
        self.log
            .lock()
            .unwrap()
            .iter()
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    }

    pub fn tail(&self, n: usize) -> String {
        let l = self.log.lock().unwrap();
        l.iter()
            .skip(l.len().saturating_sub(n))
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    }

    pub fn wait_for_log(&self, needle: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(line) = self.log.lock().unwrap().iter().find(|l| l.contains(needle)) {
                return line.clone();
            }
            if Instant::now() > deadline {
                panic!(
                    "{} never logged {needle:?}; log tail:\n{}",
                    self.name,
                    self.tail(40)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("---- {} log tail ----\n{}", self.name, self.tail(60));
        }
        self.kill9();
    }
}

/// A mosquitto broker with persistence, configured as the README recommends.
pub struct Broker {
    pub port: u16,
    pub proc: Proc,
}

impl Broker {
    pub fn start(dir: &Path) -> Broker {
        let port = free_port();
        let data = dir.join("mosquitto");
        std::fs::create_dir_all(&data).unwrap();
        let conf = data.join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location {}/\n\
                 autosave_interval 1\nmax_queued_messages 1000000\nmax_inflight_messages 1000\n\
                 persistent_client_expiration 7d\nlog_dest stdout\nuser root\nlog_type error\nlog_type warning\nlog_type notice\n",
                data.display()
            ),
        )
        .unwrap();
        let bin = program("mosquitto", "mosquitto");
        let proc = Proc::spawn(
            "mosquitto",
            &[
                bin.display().to_string(),
                "-c".into(),
                conf.display().to_string(),
            ],
            &[],
            dir,
        );
        let b = Broker { port, proc };
        wait_port(port, "mosquitto");
        b
    }

    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    pub fn restart(&mut self) {
        self.proc.restart();
        wait_port(self.port, "mosquitto");
    }
}

pub fn wait_port(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            panic!("{what} did not listen on port {port}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// InfluxDB 1.x (`influxd`), v1 write and query API.
pub struct Influx1 {
    pub port: u16,
    pub db: String,
    pub proc: Proc,
    /// Admin user and password when authentication is on.
    pub admin: Option<(String, String)>,
}

impl Influx1 {
    pub fn start(dir: &Path) -> Influx1 {
        Self::start_with(dir, false)
    }

    /// With `auth`, InfluxDB requires a user: `create_db` makes the admin first.
    pub fn start_with(dir: &Path, auth: bool) -> Influx1 {
        let port = free_port();
        let rpc = free_port();
        let data = dir.join("influxdb");
        std::fs::create_dir_all(&data).unwrap();
        let conf = data.join("influxdb.conf");
        std::fs::write(
            &conf,
            format!(
                "reporting-disabled = true\nbind-address = \"127.0.0.1:{rpc}\"\n\
                 [meta]\n  dir = \"{d}/meta\"\n\
                 [data]\n  dir = \"{d}/data\"\n  wal-dir = \"{d}/wal\"\n  query-log-enabled = false\n  wal-fsync-delay = \"0s\"\n\
                 [monitor]\n  store-enabled = false\n\
                 [http]\n  bind-address = \"127.0.0.1:{port}\"\n  log-enabled = false\n  max-body-size = 0\n  auth-enabled = {auth}\n\
                 [logging]\n  level = \"warn\"\n",
                d = data.display()
            ),
        )
        .unwrap();
        let bin = program("influxd", "influxdb");
        let proc = Proc::spawn(
            "influxd",
            &[
                bin.display().to_string(),
                "-config".into(),
                conf.display().to_string(),
            ],
            &[],
            dir,
        );
        wait_port(port, "influxd");
        Influx1 {
            port,
            db: "quantrac".into(),
            proc,
            admin: auth.then(|| ("admin".to_string(), "admin-pw-31c7".to_string())),
        }
    }

    fn request(&self, r: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.admin {
            Some((u, p)) => r.basic_auth(u, Some(p)),
            None => r,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The `[influx]` lines that point quantrac at this server with the v1 API.
    pub fn v1_config(&self) -> String {
        format!(
            "url = \"{}\"\napi = \"v1\"\ndatabase = \"{}\"",
            self.url(),
            self.db
        )
    }

    pub async fn create_db(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        if let Some((u, p)) = &self.admin {
            // The first admin may be created without credentials.
            loop {
                let r = reqwest::Client::new()
                    .post(format!("{}/query", self.url()))
                    .form(&[(
                        "q",
                        format!("CREATE USER {u} WITH PASSWORD '{p}' WITH ALL PRIVILEGES"),
                    )])
                    .send()
                    .await;
                if matches!(&r, Ok(r) if r.status().is_success()) {
                    break;
                }
                if Instant::now() > deadline {
                    panic!("could not create the InfluxDB admin: {r:?}");
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        loop {
            let r = self
                .request(reqwest::Client::new().post(format!("{}/query", self.url())))
                .form(&[("q", format!("CREATE DATABASE {}", self.db))])
                .send()
                .await;
            if matches!(&r, Ok(r) if r.status().is_success()) {
                return;
            }
            if Instant::now() > deadline {
                panic!("could not create the InfluxDB database: {r:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Runs an InfluxQL query; returns the JSON answer.
    pub async fn query(&self, q: &str) -> Value {
        let r = self
            .request(reqwest::Client::new().get(format!("{}/query", self.url())))
            .query(&[("db", self.db.as_str()), ("q", q), ("epoch", "ms")])
            .send()
            .await
            .expect("querying influxd");
        serde_json::from_str(&r.text().await.expect("influxd answers"))
            .expect("influxd answers JSON")
    }

    /// Rows of the first series of a query, as (columns, values).
    pub async fn rows(&self, q: &str) -> Vec<serde_json::Map<String, Value>> {
        let v = self.query(q).await;
        let mut out = Vec::new();
        if let Some(series) = v["results"][0]["series"].as_array() {
            for s in series {
                let cols: Vec<String> = s["columns"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|c| c.as_str().unwrap().to_string())
                    .collect();
                let tags = s["tags"].as_object().cloned().unwrap_or_default();
                for row in s["values"].as_array().unwrap() {
                    let mut m = tags.clone();
                    for (c, v) in cols.iter().zip(row.as_array().unwrap()) {
                        m.insert(c.clone(), v.clone());
                    }
                    out.push(m);
                }
            }
        }
        out
    }

    pub async fn count(&self, q: &str) -> u64 {
        self.rows(q)
            .await
            .first()
            .and_then(|r| {
                r.iter()
                    .find(|(k, _)| k.starts_with("count"))
                    .map(|(_, v)| v.as_u64().unwrap_or(0))
            })
            .unwrap_or(0)
    }
}

/// victoria-metrics: accepts the InfluxDB v2 write API (`/api/v2/write`).
pub struct Victoria {
    pub port: u16,
    pub proc: Proc,
}

impl Victoria {
    pub fn start(dir: &Path) -> Victoria {
        let port = free_port();
        let data = dir.join("victoria");
        let bin = program("victoria-metrics", "victoria-metrics");
        let proc = Proc::spawn(
            "victoria-metrics",
            &[
                bin.display().to_string(),
                format!("-storageDataPath={}", data.display()),
                format!("-httpListenAddr=127.0.0.1:{port}"),
                "-loggerLevel=WARN".into(),
                "-search.disableCache".into(),
                "-search.latencyOffset=0s".into(),
            ],
            &[],
            dir,
        );
        wait_port(port, "victoria-metrics");
        Victoria { port, proc }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Every sample of the metrics matching `selector`, as (labels, values, timestamps).
    pub async fn export(&self, selector: &str) -> Vec<Value> {
        let _ = reqwest::Client::new()
            .get(format!("{}/internal/force_flush", self.url()))
            .send()
            .await;
        let text = reqwest::Client::new()
            .get(format!("{}/api/v1/export", self.url()))
            .query(&[("match[]", selector), ("start", "0")])
            .send()
            .await
            .expect("querying victoria-metrics")
            .text()
            .await
            .unwrap();
        text.lines()
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

/// The quantrac binary with a generated config in its own temp dir.
pub struct Quantrac {
    pub proc: Proc,
    pub dir: PathBuf,
    pub config: PathBuf,
    pub http: String,
}

pub const STATIONS: &str = r#"
[[station]]
park = "nam-dinh-vu"
site = "nd-textile"
station = "outfall-1"
kind = "wastewater"
regulation = "QCVN 40:2011/BTNMT"
column = "B"
kq = 0.9
kf = 1.0
expected_interval_s = 300

[[station]]
park = "dinh-vu"
site = "dv-steel"
station = "stack-1"
kind = "emission"
regulation = "QCVN 19:2009/BTNMT"
column = "B"
kp = 0.9
kv = 1.0
o2_ref = 7.0
expected_interval_s = 60
[station.limits]
PM = 100
SO2 = { max = 300 }
"#;

impl Quantrac {
    /// `extra` is appended to the generated quantrac.toml (whole sections).
    pub fn config_text(dir: &Path, broker: &str, influx: &str, extra: &str) -> String {
        format!(
            "[mqtt]\nurl = \"{broker}\"\nclient_id = \"quantrac-test-{id}\"\nreconnect_min_ms = 100\nreconnect_max_ms = 1000\n\
             {mqtt_extra}\n\
             [influx]\n{influx}\nflush_interval_ms = 200\nretry_max_ms = 1000\n\n\
             [http]\nlisten = \"127.0.0.1:0\"\n\n\
             [stations]\nfile = \"{d}/stations.toml\"\n\n\
             [journal]\npath = \"{d}/journal\"\n{journal_extra}\n{rest}\n",
            id = std::process::id() as u64 * 1000 + free_port() as u64,
            d = dir.display(),
            mqtt_extra = section(extra, "mqtt"),
            journal_extra = section(extra, "journal"),
            rest = without(extra, &["mqtt", "journal"]),
        )
    }

    pub fn start(dir: &Path, config: &str, stations: &str) -> Quantrac {
        std::fs::write(dir.join("stations.toml"), stations).unwrap();
        let path = dir.join("quantrac.toml");
        std::fs::write(&path, config).unwrap();
        let bin = env!("CARGO_BIN_EXE_quantrac");
        let proc = Proc::spawn(
            "quantrac",
            &[
                bin.into(),
                "run".into(),
                "--config".into(),
                path.display().to_string(),
            ],
            &[("RUST_LOG".into(), "info".into())],
            dir,
        );
        let mut q = Quantrac {
            proc,
            dir: dir.to_path_buf(),
            config: path,
            http: String::new(),
        };
        q.read_http_addr();
        q
    }

    fn read_http_addr(&mut self) {
        let line = self
            .proc
            .wait_for_log("HTTP listening on http://", Duration::from_secs(30));
        let addr = line
            .split("http://")
            .nth(1)
            .unwrap()
            .split('/')
            .next()
            .unwrap()
            .to_string();
        self.http = format!("http://{addr}");
    }

    pub fn restart(&mut self) {
        self.proc.kill9();
        self.proc.log.lock().unwrap().clear();
        self.proc.restart();
        self.read_http_addr();
    }

    /// Runs a quantrac subcommand against this instance's config; returns (exit ok, stdout+stderr).
    pub fn command(&self, args: &[&str]) -> (bool, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_quantrac"))
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
/// with the v1 API, ready. Destructure it to get at the parts; every part must stay bound.
pub struct Stack {
    pub q: Quantrac,
    pub influx: Influx1,
    pub broker: Broker,
    pub dir: tempfile::TempDir,
}

impl Stack {
    /// `extra`: whole sections appended to the generated quantrac.toml (see `config_text`).
    pub async fn start(extra: &str) -> Stack {
        let dir = tempfile::tempdir().unwrap();
        let broker = Broker::start(dir.path());
        let influx = Influx1::start(dir.path());
        influx.create_db().await;
        let cfg = Quantrac::config_text(dir.path(), &broker.url(), &influx.v1_config(), extra);
        let q = Quantrac::start(dir.path(), &cfg, STATIONS);
        q.wait_ready().await;
        Stack {
            q,
            influx,
            broker,
            dir,
        }
    }
}

/// Finds `sample` (e.g. `quantrac_readings_rejected_total{reason="unit"}`) in a scrape. Labels
/// given in `sample` must all be present in the line, in any order.
pub fn parse_metric(text: &str, sample: &str) -> Option<f64> {
    let (name, labels) = match sample.find('{') {
        Some(i) => (
            &sample[..i],
            sample[i + 1..sample.len() - 1]
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>(),
        ),
        None => (sample, vec![]),
    };
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            let n = l.split(['{', ' ']).next().unwrap_or("");
            n == name && labels.iter().all(|lab| l.contains(lab))
        })
        .find_map(|l| l.rsplit(' ').next().and_then(|v| v.parse().ok()))
}

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

/// A QoS 1 publisher (MQTT 3.1.1) that waits for every PUBACK.
pub struct Publisher {
    client: rumqttc::AsyncClient,
    acked: Arc<std::sync::atomic::AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Publisher {
    pub async fn connect(port: u16) -> Publisher {
        let mut o = rumqttc::MqttOptions::new(format!("pub-{}", free_port()), "127.0.0.1", port);
        o.set_keep_alive(Duration::from_secs(30))
            .set_inflight(200)
            .set_max_packet_size(1 << 24, 1 << 24);
        let (client, mut el) = rumqttc::AsyncClient::new(o, 1000);
        let acked = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let a = acked.clone();
        let task = tokio::spawn(async move {
            loop {
                match el.poll().await {
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::PubAck(_))) => {
                        a.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        Publisher {
            client,
            acked,
            task,
        }
    }

    pub async fn publish(&self, topic: &str, payload: impl Into<Vec<u8>>) {
        self.client
            .publish(topic, rumqttc::QoS::AtLeastOnce, false, payload.into())
            .await
            .expect("publishing");
    }

    /// Waits until the broker acknowledged `n` publishes in total.
    pub async fn wait_acked(&self, n: u64) {
        let acked = self.acked.clone();
        eventually(
            &format!("{n} PUBACKs from the broker"),
            Duration::from_secs(60),
            || {
                let acked = acked.clone();
                async move { (acked.load(std::sync::atomic::Ordering::SeqCst) >= n).then_some(()) }
            },
        )
        .await;
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A JSON payload in the contract's format.
pub fn json_message(ts: &str, readings: &[(&str, f64, &str)]) -> String {
    let rs: Vec<String> = readings
        .iter()
        .map(|(p, v, u)| {
            if u.is_empty() {
                format!(r#"{{"param":"{p}","value":{v}}}"#)
            } else {
                format!(r#"{{"param":"{p}","value":{v},"unit":"{u}"}}"#)
            }
        })
        .collect();
    format!(r#"{{"ts":"{ts}","readings":[{}]}}"#, rs.join(","))
}
