//! InfluxDB 1.x (`influxd`): the v1 write and query API quantrac writes to, and the InfluxQL
//! the Grafana dashboards run.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::bail;
use serde_json::Value;

use crate::ports::free_port;
use crate::process::Proc;
use crate::programs::program;

/// `influxd` on free loopback ports; its files (configuration, data, `influxd.log`) in
/// `<dir>/influxdb`.
pub struct Influx1 {
    pub port: u16,
    /// The database of [`Influx1::create_db`], [`Influx1::query`] and [`Influx1::v1_config`].
    pub db: String,
    pub proc: Proc,
    /// Admin user and password when authentication is on.
    pub admin: Option<(String, String)>,
    /// With HTTPS: the CA file that signed the server's certificate (trusted by this
    /// client's own requests).
    pub ca: Option<std::path::PathBuf>,
}

/// The server certificate, its key and the CA that signed it, for [`Influx1::start_https`].
pub struct Https<'a> {
    pub cert: &'a Path,
    pub key: &'a Path,
    pub ca: &'a Path,
}

impl Influx1 {
    pub fn start(dir: &Path) -> Influx1 {
        Self::start_with(dir, false)
    }

    /// With `auth`, InfluxDB requires a user: `create_db` makes the admin first.
    pub fn start_with(dir: &Path, auth: bool) -> Influx1 {
        Self::start_opts(dir, auth, None)
    }

    /// The HTTP API over HTTPS only (`https-enabled = true`), with a certificate for
    /// `localhost`; [`Influx1::url`] is then `https://localhost:port`.
    pub fn start_https(dir: &Path, tls: Https<'_>) -> Influx1 {
        Self::start_opts(dir, false, Some(tls))
    }

    fn start_opts(dir: &Path, auth: bool, tls: Option<Https<'_>>) -> Influx1 {
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
                 [http]\n  bind-address = \"127.0.0.1:{port}\"\n  log-enabled = false\n  max-body-size = 0\n  auth-enabled = {auth}\n{https}\
                 [logging]\n  level = \"warn\"\n",
                d = data.display(),
                https = match &tls {
                    Some(t) => format!(
                        "  https-enabled = true\n  https-certificate = {:?}\n  https-private-key = {:?}\n",
                        t.cert.display().to_string(),
                        t.key.display().to_string()
                    ),
                    None => String::new(),
                }
            ),
        )
        .unwrap();
        let bin = program("influxd", "influxdb");
        let proc = Proc::build(
            "influxd",
            &[
                bin.display().to_string(),
                "-config".into(),
                conf.display().to_string(),
            ],
            &[],
            dir,
        )
        .log_file(&data.join("influxd.log"))
        .start_now();
        let mut influx = Influx1 {
            port,
            db: "quantrac".into(),
            proc,
            admin: auth.then(|| ("admin".to_string(), "admin-pw-31c7".to_string())),
            ca: tls.map(|t| t.ca.to_owned()),
        };
        if influx.ca.is_some() {
            // `/ping` below speaks plain HTTP; over HTTPS, the listening port is the sign
            // (`create_db` retries until the API answers).
            crate::ports::wait_port(port, "influxd (HTTPS)");
            return influx;
        }
        influx.wait_ping();
        influx
    }

    /// Waits (at most 30 s) until `/ping` answers 204.
    pub fn wait_ping(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.proc.exited() {
                panic!("influxd exited ({status}):\n{}", self.proc.tail(40));
            }
            if let Ok((204, _)) = self.http("GET", "/ping", "") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "influxd did not answer /ping:\n{}",
                self.proc.tail(40)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn authorised(&self, r: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.admin {
            Some((u, p)) => r.basic_auth(u, Some(p)),
            None => r,
        }
    }

    pub fn url(&self) -> String {
        match self.ca {
            Some(_) => format!("https://localhost:{}", self.port),
            None => format!("http://127.0.0.1:{}", self.port),
        }
    }

    /// An HTTP client for this server: it trusts the server's CA when it speaks HTTPS.
    pub fn client(&self) -> reqwest::Client {
        let mut b = reqwest::Client::builder();
        if let Some(ca) = &self.ca {
            let pem = std::fs::read(ca).expect("reading the CA file");
            b = b.add_root_certificate(
                reqwest::Certificate::from_pem(&pem).expect("a PEM CA certificate"),
            );
        }
        b.build().expect("an HTTP client")
    }

    /// The `[influx]` lines that point quantrac at this server with the v1 API.
    pub fn v1_config(&self) -> String {
        format!(
            "url = \"{}\"\napi = \"v1\"\ndatabase = \"{}\"",
            self.url(),
            self.db
        )
    }

    /// Creates [`Influx1::db`] (and the admin first, with authentication), retrying for 20 s.
    pub async fn create_db(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        if let Some((u, p)) = &self.admin {
            // The first admin may be created without credentials.
            loop {
                let r = self
                    .client()
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
                .authorised(self.client().post(format!("{}/query", self.url())))
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

    /// Runs an InfluxQL query on [`Influx1::db`] (times in ms); returns the JSON answer.
    pub async fn query(&self, q: &str) -> Value {
        let r = self
            .authorised(self.client().get(format!("{}/query", self.url())))
            .query(&[("db", self.db.as_str()), ("q", q), ("epoch", "ms")])
            .send()
            .await
            .expect("querying influxd");
        serde_json::from_str(&r.text().await.expect("influxd answers"))
            .expect("influxd answers JSON")
    }

    /// Rows of every series of a query, each with its series' tags.
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

    /// The first `count…` column of the first row; 0 when there is none.
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

    /// One InfluxQL request with the caller's client, in database `db` when given: POST for
    /// statements that change something (`CREATE`, `DROP`), GET for queries. An answer other
    /// than 2xx is an error.
    pub async fn request(
        &self,
        http: &reqwest::Client,
        post: bool,
        db: Option<&str>,
        q: &str,
    ) -> anyhow::Result<Value> {
        let url = format!("{}/query", self.url());
        let mut params = vec![("q", q)];
        if let Some(db) = db {
            params.push(("db", db));
        }
        let req = if post { http.post(url) } else { http.get(url) };
        let answer = self.authorised(req).query(&params).send().await?;
        let status = answer.status();
        let body = answer.text().await?;
        if !status.is_success() {
            bail!("InfluxDB answered {status} to {q:?}: {body}");
        }
        Ok(serde_json::from_str(&body)?)
    }

    /// A minimal blocking HTTP/1.0 exchange (no chunked encoding to undo), for tests without
    /// a runtime: status and body. `path` includes the query string, already encoded; no
    /// credentials are sent.
    pub fn http(&self, method: &str, path: &str, body: &str) -> std::io::Result<(u16, String)> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port))?;
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        write!(
            s,
            "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )?;
        let mut raw = String::new();
        s.read_to_string(&mut raw)?;
        let status = raw
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let body = raw
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        Ok((status, body))
    }

    /// An InfluxQL query in `db` over [`Influx1::http`]: the JSON answer (times in RFC 3339).
    pub fn query_blocking(&self, db: &str, q: &str) -> Value {
        let (status, body) = self
            .http("GET", &format!("/query?db={db}&q={}", url_encode(q)), "")
            .unwrap();
        serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("query {q}: HTTP {status}, not JSON ({e}): {body}"))
    }
}

/// Percent-encodes a query-string value (everything but RFC 3986's unreserved characters).
pub fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
