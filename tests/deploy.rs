//! Checks of the shipped deployment files (`deploy/`, `docs/runbooks/`), run with the real tools:
//! `promtool` for the alert rules and their unit tests, `amtool` for Alertmanager, and a real
//! InfluxDB 1.x for every InfluxQL query in the Grafana dashboards.
//!
//! A missing program fails the test and names the Debian package that provides it: a skipped
//! check would let a broken rule file or dashboard ship unnoticed.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    let path = repo().join(rel);
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Runs a program to completion; a missing program fails naming its Debian package.
fn run(program: &str, package: &str, args: &[&str], dir: &Path) -> Output {
    match Command::new(program).args(args).current_dir(dir).output() {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            panic!("`{program}` is not installed: install the Debian package `{package}`")
        }
        Err(e) => panic!("cannot run {program}: {e}"),
    }
}

fn assert_success(what: &str, out: &Output) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

// ------------------------------------------------------------------------------------------------
// Prometheus rules and configuration

#[test]
fn promtool_check_rules_accepts_the_shipped_rules() {
    let dir = repo().join("deploy/prometheus/rules");
    let out = run(
        "promtool",
        "prometheus",
        &["check", "rules", "quantrac.rules.yml"],
        &dir,
    );
    assert_success("promtool check rules", &out);
}

#[test]
fn promtool_unit_tests_of_every_alert_pass() {
    let dir = repo().join("deploy/prometheus/rules");
    let out = run(
        "promtool",
        "prometheus",
        &["test", "rules", "quantrac.rules.test.yml"],
        &dir,
    );
    assert_success("promtool test rules", &out);
}

#[test]
fn promtool_check_config_accepts_prometheus_yml() {
    let dir = repo().join("deploy/prometheus");
    let out = run(
        "promtool",
        "prometheus",
        &["check", "config", "prometheus.yml"],
        &dir,
    );
    assert_success("promtool check config", &out);
}

#[test]
fn amtool_check_config_accepts_alertmanager_yml() {
    let dir = repo().join("deploy/alertmanager");
    let out = run(
        "amtool",
        "prometheus-alertmanager",
        &["check-config", "alertmanager.yml"],
        &dir,
    );
    assert_success("amtool check-config", &out);
}

/// One `- alert:` block of the rule file, as text.
struct AlertBlock {
    name: String,
    text: String,
}

fn alert_blocks() -> Vec<AlertBlock> {
    let rules = read("deploy/prometheus/rules/quantrac.rules.yml");
    let mut blocks: Vec<AlertBlock> = Vec::new();
    for line in rules.lines() {
        let trimmed = line.trim_start();
        if let Some(name) = trimmed.strip_prefix("- alert:") {
            blocks.push(AlertBlock {
                name: name.trim().to_owned(),
                text: String::new(),
            });
        } else if trimmed.starts_with("- record:") || trimmed.starts_with("- name:") {
            blocks.push(AlertBlock {
                name: String::new(),
                text: String::new(),
            });
        } else if let Some(b) = blocks.last_mut() {
            b.text.push_str(line);
            b.text.push('\n');
        }
    }
    blocks.retain(|b| !b.name.is_empty());
    blocks
}

fn field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines()
        .find_map(|l| l.trim_start().strip_prefix(&format!("{key}:")))
        .map(str::trim)
}

/// The alerts quantrac ships: each must exist, carry severity + audience labels and the
/// contract's annotations ("Alerts" section), with a runbook that exists in the repository.
#[test]
fn every_alert_has_labels_annotations_runbook_and_a_unit_test() {
    let required = [
        "LimitExceeded",
        "LimitEarlyWarning",
        "InstantLimitExceeded",
        "StationSilent",
        "StationDeviceFault",
        "StationCalibrating",
        "AnalyserStuck",
        "IngestBacklogGrowing",
        "InfluxWritesFailing",
        "MqttDisconnected",
        "JournalFull",
        "QuantracDown",
        "ReadingsRejected",
    ];
    let blocks = alert_blocks();
    let names: BTreeSet<&str> = blocks.iter().map(|b| b.name.as_str()).collect();
    for r in required {
        assert!(
            names.contains(r),
            "alert {r} is missing from quantrac.rules.yml"
        );
    }
    let tests = read("deploy/prometheus/rules/quantrac.rules.test.yml");
    for b in &blocks {
        let severity =
            field(&b.text, "severity").unwrap_or_else(|| panic!("{}: no severity", b.name));
        assert!(
            ["critical", "warning", "info"].contains(&severity),
            "{}: severity {severity:?}",
            b.name
        );
        let audience =
            field(&b.text, "audience").unwrap_or_else(|| panic!("{}: no audience", b.name));
        assert!(
            ["inspector", "operator"].contains(&audience),
            "{}: audience {audience:?}",
            b.name
        );
        for key in ["summary", "description"] {
            assert!(
                field(&b.text, key).is_some(),
                "{}: no {key} annotation",
                b.name
            );
        }
        let url =
            field(&b.text, "runbook_url").unwrap_or_else(|| panic!("{}: no runbook_url", b.name));
        let rel = url
            .strip_prefix("https://github.com/quantrac/quantrac/blob/main/")
            .unwrap_or_else(|| panic!("{}: runbook_url {url} is not in the repository", b.name));
        assert!(
            repo().join(rel).is_file(),
            "{}: runbook {rel} does not exist",
            b.name
        );
        // Both firing and quiet cases are in the unit tests: at least two evaluations each.
        let evaluations = tests.matches(&format!("alertname: {}\n", b.name)).count();
        assert!(
            evaluations >= 2,
            "{}: only {evaluations} promtool evaluations",
            b.name
        );
    }
    // Exceedance alerts must stay quiet while the station cannot give a verdict.
    for b in blocks.iter().filter(|b| b.name.contains("Limit")) {
        assert!(
            b.text.contains(r#"unless on(park, site, station)"#)
                && b.text
                    .contains(r#"quantrac_station_state{state=~"calibrating|fault|silent"} == 1"#),
            "{}: not suppressed during calibration/fault/silence",
            b.name
        );
    }
}

#[test]
fn alertmanager_routes_by_audience_and_inhibits_exceedances() {
    let am = read("deploy/alertmanager/alertmanager.yml");
    for needle in [
        r#"matchers: ['audience="inspector"']"#,
        r#"matchers: ['audience="operator"']"#,
        "group_by: [alertname, park, site]",
        r#"source_matchers: ['alertname=~"StationSilent|StationDeviceFault|StationCalibrating"']"#,
        r#"target_matchers: ['alertname=~"LimitExceeded|LimitEarlyWarning|InstantLimitExceeded"']"#,
        "equal: [park, site, station]",
        r#"source_matchers: ['severity="critical"']"#,
    ] {
        assert!(am.contains(needle), "alertmanager.yml lacks {needle}");
    }
}

// ------------------------------------------------------------------------------------------------
// Grafana dashboards

const DASHBOARDS: [&str; 3] = [
    "park-overview.json",
    "station-detail.json",
    "compliance-report.json",
];

fn dashboard(name: &str) -> Value {
    let text = read(&format!("deploy/grafana/dashboards/{name}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name} is not valid JSON: {e}"))
}

fn provisioned_uids() -> BTreeSet<String> {
    read("deploy/grafana/provisioning/datasources/quantrac.yaml")
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("uid:"))
        .map(|u| u.trim().to_owned())
        .collect()
}

/// Every panel, rows' nested panels included.
fn panels(d: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for p in d["panels"].as_array().into_iter().flatten() {
        out.push(p);
        for inner in p["panels"].as_array().into_iter().flatten() {
            out.push(inner);
        }
    }
    out
}

fn variables(d: &Value) -> Vec<&Value> {
    d["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
        .collect()
}

/// A query as Grafana stores it: InfluxQL in `query`, PromQL in `expr`, variables in `query`
/// (a string, or `{ query }` for Prometheus).
#[derive(Debug, Clone)]
struct Query {
    where_: String,
    ds_type: String,
    text: String,
}

fn queries(name: &str, d: &Value) -> Vec<Query> {
    let mut out = Vec::new();
    for v in variables(d) {
        let text = match &v["query"] {
            Value::String(s) => s.clone(),
            Value::Object(o) => o
                .get("query")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            _ => continue,
        };
        out.push(Query {
            where_: format!("{name}: variable {}", v["name"]),
            ds_type: v["datasource"]["type"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            text,
        });
    }
    for p in panels(d) {
        for t in p["targets"].as_array().into_iter().flatten() {
            let ds = if t["datasource"].is_object() {
                &t["datasource"]
            } else {
                &p["datasource"]
            };
            let text = t["query"]
                .as_str()
                .or_else(|| t["expr"].as_str())
                .unwrap_or_default();
            out.push(Query {
                where_: format!("{name}: panel {} target {}", p["title"], t["refId"]),
                ds_type: ds["type"].as_str().unwrap_or_default().to_owned(),
                text: text.to_owned(),
            });
        }
    }
    out
}

/// Grafana's own variables, which need no definition in the dashboard.
const BUILTINS: [&str; 7] = [
    "timeFilter",
    "__timeFilter",
    "__interval",
    "__interval_ms",
    "__rate_interval",
    "__range",
    "__range_s",
];

/// The `$name` / `${name}` / `[[name]]` references in a query.
fn references(q: &str) -> Vec<String> {
    let mut out = Vec::new();
    let b = q.as_bytes();
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'$' {
            if b.get(i + 1) == Some(&b'{') {
                if let Some(end) = q[i + 2..].find('}') {
                    let inner = &q[i + 2..i + 2 + end];
                    out.push(inner.split(':').next().unwrap_or_default().to_owned());
                    i += end + 3;
                    continue;
                }
            }
            let start = i + 1;
            let mut j = start;
            while j < b.len() && ident(b[j]) {
                j += 1;
            }
            if j > start {
                out.push(q[start..j].to_owned());
            }
            i = j.max(i + 1);
        } else if b[i..].starts_with(b"[[") {
            if let Some(end) = q[i + 2..].find("]]") {
                out.push(q[i + 2..i + 2 + end].to_owned());
                i += end + 4;
                continue;
            }
            i += 1;
        } else {
            i += 1;
        }
    }
    out
}

/// Fills in Grafana's macros the way Grafana would for a 7-day range and a 1-hour interval,
/// and the template variables from `vars`.
fn fill(q: &str, vars: &BTreeMap<&str, &str>) -> String {
    let mut out = String::new();
    let b = q.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'$' {
            let start = i + 1;
            let mut j = start;
            while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_') {
                j += 1;
            }
            let name = &q[start..j];
            match name {
                "" => out.push('$'),
                "timeFilter" => out.push_str("time > now() - 7d"),
                "__interval" => out.push_str("1h"),
                "__rate_interval" | "__range" => out.push_str("5m"),
                _ => out.push_str(
                    vars.get(name)
                        .unwrap_or_else(|| panic!("no value for ${name} in {q}")),
                ),
            }
            i = j.max(i + 1);
        } else {
            let c = q[i..].chars().next().expect("i is on a char boundary");
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

#[test]
fn dashboards_use_provisioned_datasources_and_defined_variables() {
    let uids = provisioned_uids();
    assert!(
        uids.contains("quantrac-influx") && uids.contains("quantrac-prom"),
        "{uids:?}"
    );
    for name in DASHBOARDS {
        let d = dashboard(name);
        assert!(
            d["uid"].as_str().is_some_and(|u| !u.is_empty()),
            "{name}: no uid"
        );
        let defined: BTreeSet<String> = variables(&d)
            .iter()
            .filter_map(|v| v["name"].as_str().map(String::from))
            .collect();
        for v in variables(&d) {
            let uid = v["datasource"]["uid"].as_str().unwrap_or_default();
            assert!(
                uids.contains(uid),
                "{name}: variable {} uses datasource {uid:?}",
                v["name"]
            );
        }
        let all = panels(&d);
        assert!(!all.is_empty(), "{name}: no panels");
        for p in all {
            let uid = p["datasource"]["uid"].as_str().unwrap_or_default();
            assert!(
                uids.contains(uid),
                "{name}: panel {} uses datasource {uid:?}",
                p["title"]
            );
            for t in p["targets"].as_array().into_iter().flatten() {
                if let Some(tuid) = t["datasource"]["uid"].as_str() {
                    assert!(
                        uids.contains(tuid),
                        "{name}: panel {} target uses {tuid:?}",
                        p["title"]
                    );
                }
                // InfluxDB alias patterns are Grafana's, not template variables.
                for r in references(t["alias"].as_str().unwrap_or_default()) {
                    assert!(
                        r.starts_with("tag_") || ["col", "m", "measurement"].contains(&r.as_str()),
                        "{name}: panel {} alias uses ${r}",
                        p["title"]
                    );
                }
            }
        }
        for q in queries(name, &d) {
            assert!(!q.text.trim().is_empty(), "{}: empty query", q.where_);
            for r in references(&q.text) {
                assert!(
                    defined.contains(&r) || BUILTINS.contains(&r.as_str()),
                    "{}: ${r} is not a template variable of {name}",
                    q.where_
                );
            }
        }
    }
}

/// Every PromQL query of the dashboards parses: promtool checks them as recording rules.
#[test]
fn dashboard_promql_queries_parse() {
    let vars = BTreeMap::from([("park", "nam-dinh-vu"), ("site", "nd-textile")]);
    let mut rules = String::from("groups:\n  - name: dashboards\n    rules:\n");
    let mut n = 0;
    for name in DASHBOARDS {
        for q in queries(name, &dashboard(name)) {
            if q.ds_type != "prometheus" || q.text.starts_with("label_values(") {
                continue;
            }
            n += 1;
            let expr = serde_json::to_string(&fill(&q.text, &vars)).expect("a string serialises");
            rules.push_str(&format!(
                "      - record: dashboard_query_{n}\n        expr: {expr}\n"
            ));
        }
    }
    assert!(n >= 5, "only {n} PromQL queries found");
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("dashboards.rules.yml"), rules).unwrap();
    let out = run(
        "promtool",
        "prometheus",
        &["check", "rules", "dashboards.rules.yml"],
        dir.path(),
    );
    assert_success("promtool check rules (dashboard PromQL)", &out);
}

// ------------------------------------------------------------------------------------------------
// InfluxDB 1.x: every InfluxQL query of the dashboards runs against data in the contract schema

/// A throw-away `influxd` on free ports; killed on drop.
struct Influxd {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Drop for Influxd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Influxd {
    fn start() -> Influxd {
        let dir = tempfile::tempdir().unwrap();
        let (port, rpc) = (free_port(), free_port());
        let d = dir.path().display();
        let config = format!(
            r#"reporting-disabled = true
bind-address = "127.0.0.1:{rpc}"
[meta]
  dir = "{d}/meta"
[data]
  dir = "{d}/data"
  wal-dir = "{d}/wal"
  query-log-enabled = false
[monitor]
  store-enabled = false
[http]
  bind-address = "127.0.0.1:{port}"
  log-enabled = false
"#
        );
        let config_path = dir.path().join("influxdb.conf");
        fs::write(&config_path, config).unwrap();
        let log = fs::File::create(dir.path().join("influxd.log")).unwrap();
        let child = match Command::new("influxd")
            .arg("run")
            .arg("-config")
            .arg(&config_path)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
        {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                panic!("`influxd` is not installed: install the Debian package `influxdb` (1.x)")
            }
            Err(e) => panic!("cannot start influxd: {e}"),
        };
        let mut influx = Influxd { child, port, dir };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = influx.child.try_wait() {
                panic!("influxd exited ({status}):\n{}", influx.log());
            }
            if let Ok((204, _)) = influx.http("GET", "/ping", "") {
                return influx;
            }
            assert!(
                Instant::now() < deadline,
                "influxd did not answer /ping:\n{}",
                influx.log()
            );
            sleep(Duration::from_millis(100));
        }
    }

    fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("influxd.log")).unwrap_or_default()
    }

    /// A minimal HTTP/1.0 exchange (no chunked encoding to undo): status and body.
    fn http(&self, method: &str, path: &str, body: &str) -> std::io::Result<(u16, String)> {
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

    fn query(&self, db: &str, q: &str) -> Value {
        let (status, body) = self
            .http("GET", &format!("/query?db={db}&q={}", encode(q)), "")
            .unwrap();
        serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("query {q}: HTTP {status}, not JSON ({e}): {body}"))
    }
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// One parameter of a simulated station: canonical unit, limits, typical value.
struct Sim {
    park: &'static str,
    site: &'static str,
    station: &'static str,
    param: &'static str,
    unit: &'static str,
    max: Option<f64>,
    min: Option<f64>,
    base: f64,
    /// `(first hour, last hour, factor)`: an excursion, in hours from the start of the data.
    spike: Option<(u64, u64, f64)>,
    o2_corrected: bool,
}

const HOUR_MS: u64 = 3_600_000;
const STEP_MS: u64 = 300_000;

/// Two days of 5-minute readings and their hourly and daily averages, in the contract's
/// InfluxDB schema ("InfluxDB schema": measurements `reading` and `average`), with
/// exceedances, a calibration hour and a few device faults.
fn simulated_lines(start_ms: u64) -> Vec<String> {
    let sims = [
        Sim {
            park: "nam-dinh-vu",
            site: "nd-textile",
            station: "outfall-1",
            param: "COD",
            unit: "mg/L",
            max: Some(67.5),
            min: None,
            base: 45.0,
            spike: Some((10, 13, 1.8)),
            o2_corrected: false,
        },
        Sim {
            park: "nam-dinh-vu",
            site: "nd-textile",
            station: "outfall-1",
            param: "TSS",
            unit: "mg/L",
            max: Some(90.0),
            min: None,
            base: 50.0,
            spike: Some((0, 23, 2.0)),
            o2_corrected: false,
        },
        Sim {
            park: "nam-dinh-vu",
            site: "nd-textile",
            station: "outfall-1",
            param: "pH",
            unit: "",
            max: Some(9.0),
            min: Some(5.5),
            base: 7.2,
            spike: None,
            o2_corrected: false,
        },
        Sim {
            park: "nam-dinh-vu",
            site: "nd-textile",
            station: "outfall-1",
            param: "Flow",
            unit: "m3/h",
            max: None,
            min: None,
            base: 120.0,
            spike: None,
            o2_corrected: false,
        },
        Sim {
            park: "nam-dinh-vu",
            site: "nd-textile",
            station: "outfall-2",
            param: "COD",
            unit: "mg/L",
            max: Some(67.5),
            min: None,
            base: 30.0,
            spike: None,
            o2_corrected: false,
        },
        Sim {
            park: "dinh-vu",
            site: "dv-steel",
            station: "stack-1",
            param: "SO2",
            unit: "mg/Nm3",
            max: Some(300.0),
            min: None,
            base: 200.0,
            spike: Some((30, 32, 1.6)),
            o2_corrected: true,
        },
        Sim {
            park: "dinh-vu",
            site: "dv-steel",
            station: "stack-1",
            param: "PM",
            unit: "mg/Nm3",
            max: Some(100.0),
            min: None,
            base: 60.0,
            spike: None,
            o2_corrected: true,
        },
        Sim {
            park: "dinh-vu",
            site: "dv-steel",
            station: "stack-1",
            param: "O2",
            unit: "%",
            max: None,
            min: None,
            base: 9.0,
            spike: None,
            o2_corrected: false,
        },
    ];
    let hours = 48;
    let mut lines = Vec::new();
    for s in &sims {
        let tags = format!(
            "park={},site={},station={},param={}",
            s.park, s.site, s.station, s.param
        );
        // (sum, samples) of status-00 readings per hour and per day.
        let mut hourly = vec![(0.0, 0u64); hours as usize];
        for i in 0..hours * HOUR_MS / STEP_MS {
            let t = start_ms + i * STEP_MS;
            let hour = (t - start_ms) / HOUR_MS;
            let factor = match s.spike {
                Some((a, b, f)) if (a..=b).contains(&hour) => f,
                _ => 1.0,
            };
            let value = s.base * factor * (1.0 + 0.05 * ((i as f64) * 0.7).sin());
            let status = if s.station == "outfall-1" && hour == 20 {
                "01"
            } else if s.station == "stack-1" && hour == 40 && i % 3 == 0 {
                "02"
            } else {
                "00"
            };
            let mut fields = format!("value={value:.3},unit=\"{}\",status=\"{status}\"", s.unit);
            if s.o2_corrected {
                fields.push_str(&format!(",value_ref={:.3}", value * 1.12));
            }
            let mut exceeded = false;
            if let Some(max) = s.max {
                fields.push_str(&format!(",limit_max={max},ratio={:.4}", value / max));
                exceeded |= value > max;
            }
            if let Some(min) = s.min {
                fields.push_str(&format!(",limit_min={min}"));
                exceeded |= value < min;
            }
            fields.push_str(&format!(",exceeded={}", exceeded && status == "00"));
            lines.push(format!("reading,{tags} {fields} {t}"));
            if status == "00" {
                hourly[hour as usize].0 += value;
                hourly[hour as usize].1 += 1;
            }
        }
        let mut windows: Vec<(&str, u64, f64, u64, u64)> = Vec::new(); // label, start, sum, n, expected
        for (h, (sum, n)) in hourly.iter().enumerate() {
            windows.push(("1h", start_ms + h as u64 * HOUR_MS, *sum, *n, 12));
        }
        for day in 0..2 {
            let (sum, n) = hourly[day * 24..day * 24 + 24]
                .iter()
                .fold((0.0, 0), |(s, c), (hs, hc)| (s + hs, c + hc));
            windows.push(("24h", start_ms + day as u64 * 24 * HOUR_MS, sum, n, 288));
        }
        for (label, t, sum, n, expected) in windows {
            if n == 0 {
                continue;
            }
            let mean = sum / n as f64;
            let capture = n as f64 / expected as f64;
            let valid = capture >= 0.75;
            let mut fields =
                format!("mean={mean:.3},samples={n}i,capture={capture:.4},valid={valid}");
            let mut exceeded = false;
            if let Some(max) = s.max {
                fields.push_str(&format!(",limit_max={max},ratio={:.4}", mean / max));
                exceeded |= mean > max;
            }
            if let Some(min) = s.min {
                exceeded |= mean < min;
            }
            fields.push_str(&format!(",exceeded={}", exceeded && valid));
            lines.push(format!("average,{tags},window={label} {fields} {t}"));
        }
    }
    lines
}

fn series_count(v: &Value) -> usize {
    v["results"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| r["series"].as_array().map_or(0, Vec::len))
        .sum()
}

fn error_of(v: &Value) -> Option<String> {
    if let Some(e) = v.get("error") {
        return Some(e.to_string());
    }
    v["results"]
        .as_array()
        .into_iter()
        .flatten()
        .find_map(|r| r.get("error").map(Value::to_string))
}

#[test]
fn every_influxql_query_runs_on_influxdb_1x_and_key_panels_return_series() {
    let influx = Influxd::start();
    let (status, body) = influx
        .http(
            "POST",
            &format!("/query?q={}", encode("CREATE DATABASE quantrac")),
            "",
        )
        .unwrap();
    assert_eq!(status, 200, "CREATE DATABASE: {body}");

    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let start_ms = (now_ms - 2 * 24 * HOUR_MS) / HOUR_MS * HOUR_MS;
    let lines = simulated_lines(start_ms);
    for chunk in lines.chunks(5000) {
        let (status, body) = influx
            .http("POST", "/write?db=quantrac&precision=ms", &chunk.join("\n"))
            .unwrap();
        assert_eq!(status, 204, "write refused: {body}");
    }

    // The variable values Grafana would substitute: a wastewater station, a stack, and the
    // multi-value / "All" forms (`(a|b)` and the dashboards' allValue `.*`).
    let selections: [BTreeMap<&str, &str>; 3] = [
        BTreeMap::from([
            ("park", "nam-dinh-vu"),
            ("site", "nd-textile"),
            ("station", "outfall-1"),
            ("param", "COD"),
            ("window", "1h"),
        ]),
        BTreeMap::from([
            ("park", "dinh-vu"),
            ("site", "dv-steel"),
            ("station", "stack-1"),
            ("param", "SO2"),
            ("window", "1h"),
        ]),
        BTreeMap::from([
            ("park", "nam-dinh-vu"),
            ("site", "nd-textile"),
            ("station", ".*"),
            ("param", "(COD|TSS)"),
            ("window", ".*"),
        ]),
    ];

    let mut ran = 0;
    for name in DASHBOARDS {
        for q in queries(name, &dashboard(name)) {
            if q.ds_type != "influxdb" {
                continue;
            }
            let mut returned = false;
            for vars in &selections {
                let filled = fill(&q.text, vars);
                let result = influx.query("quantrac", &filled);
                if let Some(e) = error_of(&result) {
                    panic!("{}: InfluxDB error {e}\nquery: {filled}", q.where_);
                }
                ran += 1;
                returned |= series_count(&result) > 0;
            }
            assert!(
                returned,
                "{}: no series for any selection\nquery: {}",
                q.where_, q.text
            );
        }
    }
    assert!(ran >= 3 * 20, "only {ran} InfluxQL queries ran");

    // The compliance report finds the simulated exceedances: COD 10:00–13:59 on day one is four
    // exceeded hourly windows at outfall-1; TSS doubled all of day one is a daily exceedance.
    let report = dashboard("compliance-report.json");
    let table = panels(&report)
        .into_iter()
        .find(|p| p["title"] == "Exceedances by station and parameter")
        .expect("the exceedance table exists");
    let q = table["targets"][0]["query"].as_str().unwrap();
    let filled = fill(q, &selections[2]);
    let result = influx.query("quantrac", &filled);
    let series = result["results"][0]["series"].as_array().expect("series");
    let find = |param: &str, window: &str| {
        series
            .iter()
            .find(|s| {
                s["tags"]["param"] == param
                    && s["tags"]["window"] == window
                    && s["tags"]["station"] == "outfall-1"
            })
            .map(|s| s["values"][0][1].as_i64().unwrap())
    };
    assert_eq!(find("COD", "1h"), Some(4), "{result}");
    assert_eq!(find("TSS", "24h"), Some(1), "{result}");
    assert_eq!(find("COD", "24h"), None, "{result}");
}

// ------------------------------------------------------------------------------------------------
// Compose, Kubernetes, systemd, Docker

/// Parses YAML with python3 + PyYAML when present; returns false (after a note) when not.
fn python_yaml_parse(path: &Path) -> bool {
    let probe = Command::new("python3").args(["-c", "import yaml"]).output();
    if !matches!(probe, Ok(ref o) if o.status.success()) {
        println!(
            "note: python3 with PyYAML is not available; {} checked by line matching only",
            path.display()
        );
        return false;
    }
    let out = Command::new("python3")
        .args([
            "-c",
            "import sys, yaml; list(yaml.safe_load_all(open(sys.argv[1])))",
        ])
        .arg(path)
        .output()
        .unwrap();
    assert_success(&format!("YAML parse of {}", path.display()), &out);
    true
}

#[test]
fn compose_file_has_every_service() {
    let path = repo().join("deploy/compose.yaml");
    let text = read("deploy/compose.yaml");
    assert!(
        text.lines().any(|l| l == "services:"),
        "no top-level services:"
    );
    for service in [
        "mosquitto",
        "influxdb",
        "prometheus",
        "alertmanager",
        "grafana",
        "quantrac",
    ] {
        assert!(
            text.contains(&format!("\n  {service}:\n")),
            "compose.yaml lacks service {service}"
        );
    }
    for needle in [
        "QUANTRAC__INFLUX__TOKEN_FILE",
        "/var/lib/quantrac",
        "secrets:",
    ] {
        assert!(text.contains(needle), "compose.yaml lacks {needle}");
    }
    python_yaml_parse(&path);

    let mosquitto = read("deploy/mosquitto/mosquitto.conf");
    for setting in [
        "persistence true",
        "max_queued_messages 1000000",
        "persistent_client_expiration 7d",
        "listener 1883",
    ] {
        assert!(
            mosquitto.lines().any(|l| l.trim() == setting),
            "mosquitto.conf lacks `{setting}`"
        );
    }
}

#[test]
fn kubernetes_manifests_are_single_writer_and_locked_down() {
    let dir = repo().join("deploy/k8s");
    let mut all = String::new();
    for entry in fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            python_yaml_parse(&path);
            all.push_str(&fs::read_to_string(&path).unwrap());
        }
    }
    for needle in [
        "kind: Deployment",
        "replicas: 1",
        "type: Recreate",
        "kind: ConfigMap",
        "kind: Secret",
        "kind: Service",
        "kind: ServiceMonitor",
        "kind: PodDisruptionBudget",
        "kind: PersistentVolumeClaim",
        "path: /healthz",
        "path: /readyz",
        "runAsNonRoot: true",
        "readOnlyRootFilesystem: true",
        "quantrac.toml: |",
        "stations.toml: |",
    ] {
        assert!(all.contains(needle), "deploy/k8s lacks `{needle}`");
    }
}

#[test]
fn systemd_unit_is_hardened_and_reads_the_token_as_a_credential() {
    let unit = read("deploy/systemd/quantrac.service");
    for needle in [
        "ExecStart=/usr/bin/quantrac run --config /etc/quantrac/quantrac.toml",
        "StateDirectory=quantrac",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "LoadCredential=influx-token:",
        "QUANTRAC__INFLUX__TOKEN_FILE=%d/influx-token",
        "Restart=on-failure",
        "TimeoutStopSec=",
    ] {
        assert!(unit.contains(needle), "quantrac.service lacks `{needle}`");
    }
    // systemd parses every directive; the only complaint allowed is the binary not being
    // installed on the machine running the tests.
    let out = run(
        "systemd-analyze",
        "systemd",
        &["verify", "quantrac.service"],
        &repo().join("deploy/systemd"),
    );
    let complaints: Vec<String> = String::from_utf8_lossy(&out.stderr)
        .lines()
        .chain(String::from_utf8_lossy(&out.stdout).lines())
        .filter(|l| !l.trim().is_empty() && !l.contains("/usr/bin/quantrac is not executable"))
        .map(String::from)
        .collect();
    assert!(
        complaints.is_empty(),
        "systemd-analyze verify: {complaints:#?}"
    );
}

#[test]
fn dockerfile_builds_in_two_stages_and_runs_unprivileged() {
    let file = read("Dockerfile");
    for needle in [
        "FROM rust:1-bookworm AS build",
        "FROM debian:bookworm-slim",
        "USER quantrac",
        "/var/lib/quantrac",
        r#""run", "--config", "/etc/quantrac/quantrac.toml""#,
    ] {
        assert!(file.contains(needle), "Dockerfile lacks `{needle}`");
    }
    assert!(
        repo().join(".dockerignore").is_file(),
        ".dockerignore is missing"
    );
}

/// The image build copies only some folders (see `.dockerignore`): every file the crate embeds
/// at compile time must be in one of them, or `docker build` fails where `cargo build` works.
#[test]
fn the_dockerfile_copies_everything_the_build_embeds() {
    let dockerfile = read("Dockerfile");
    let copied: Vec<&str> = dockerfile
        .lines()
        .filter_map(|l| l.strip_prefix("COPY "))
        .filter(|l| !l.starts_with("--from"))
        .flat_map(|l| l.split_whitespace().rev().skip(1))
        .collect();
    for dir in ["src", "benches"] {
        assert!(
            copied.contains(&dir),
            "Dockerfile does not copy {dir}/: {copied:?}"
        );
    }
    let mut embedded = Vec::new();
    let mut stack = vec![repo().join("src")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            for part in text.split("include_str!(\"").skip(1) {
                let rel = part.split('"').next().unwrap();
                let file = path.parent().unwrap().join(rel).canonicalize().unwrap();
                let top = file.strip_prefix(repo().canonicalize().unwrap()).unwrap();
                embedded.push(
                    top.components()
                        .next()
                        .unwrap()
                        .as_os_str()
                        .to_string_lossy()
                        .to_string(),
                );
            }
        }
    }
    assert!(
        embedded.contains(&"regulations".to_string()),
        "{embedded:?}"
    );
    for top in embedded {
        assert!(
            copied.contains(&top.as_str()),
            "Dockerfile does not copy {top}/ (embedded by the build)"
        );
    }
}
