//! The README against the code, both ways: the configuration and station keys of its tables
//! against what the config structs accept, the metrics it names against a rendered /metrics;
//! and the shipped configuration works with `check-config` as the README says.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use quantrac_testkit::{json_message, Broker, Publisher, Quantrac, STATIONS};

use crate::QUANTRAC;

const SECTIONS: [&str; 9] = [
    "mqtt",
    "influx",
    "http",
    "stations",
    "journal",
    "compliance",
    "metrics",
    "inbox",
    "uplink",
];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The fields a section accepts, read from the error for an unknown field ("expected one of …").
fn fields_of(toml_text: &str, load: impl Fn(&Path) -> String) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("probe.toml");
    std::fs::write(&path, toml_text).unwrap();
    let err = load(&path);
    let after = err
        .split("expected ")
        .nth(1)
        .unwrap_or_else(|| panic!("no field list in {err:?}"));
    let list = after.split(" for key").next().unwrap();
    // Every `name` in "one of `a`, `b`" or "`a` or `b`".
    list.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

/// The backticked names in the first column of the README table whose header row is `header`
/// (`mqtt.password` and `mqtt.password_file` from "| `mqtt.password`, `mqtt.password_file` |").
fn readme_table_keys(readme: &str, header: &str) -> BTreeSet<String> {
    let mut lines = readme.lines().skip_while(|l| l.trim() != header);
    assert!(lines.next().is_some(), "README has no table {header:?}");
    let keys: BTreeSet<String> = lines
        .skip(1) // |---|---|
        .take_while(|l| l.starts_with('|'))
        .flat_map(|row| {
            let first = row.split('|').nth(1).unwrap_or("");
            first
                .split('`')
                .skip(1)
                .step_by(2)
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(!keys.is_empty(), "README table {header:?} is empty");
    keys
}

/// Both ways: every key the code accepts is in the README's table, and every key in the table
/// is accepted.
fn assert_same_keys(what: &str, code: &BTreeSet<String>, readme: &BTreeSet<String>) {
    let undocumented: Vec<&String> = code.difference(readme).collect();
    let unknown: Vec<&String> = readme.difference(code).collect();
    assert!(
        undocumented.is_empty() && unknown.is_empty(),
        "{what}: accepted but not in the README's table: {undocumented:?}; in the README's \
         table but not accepted: {unknown:?}"
    );
}

#[test]
fn the_readme_documents_exactly_the_configuration_keys() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let shipped = std::fs::read_to_string(root().join("config/quantrac.toml")).unwrap();
    let mut accepted = BTreeSet::new();
    for section in SECTIONS {
        let fields = fields_of(&format!("[{section}]\nno_such_key = 1\n"), |p| {
            quantrac::config::Settings::load(p, true, Some(Default::default()))
                .unwrap_err()
                .to_string()
        });
        assert!(
            fields.len() >= 2 || section == "http",
            "{section}: {fields:?}"
        );
        for f in fields {
            let secret = f.contains("password") || f.contains("token") || f == "ca_file";
            // Keys of the InfluxDB API the file does not use are shown commented out.
            assert!(
                secret
                    || shipped.contains(&format!("\n{f} ="))
                    || shipped.contains(&format!("\n# {f} =")),
                "config/quantrac.toml does not show {section}.{f}"
            );
            accepted.insert(format!("{section}.{f}"));
        }
    }
    let documented = readme_table_keys(&readme, "| key | default | meaning |");
    assert_same_keys("configuration", &accepted, &documented);
}

#[test]
fn the_readme_documents_exactly_the_station_keys() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let defaults = quantrac::config::ComplianceSettings::default().station_defaults();
    let fields: BTreeSet<String> = fields_of(
        "[[station]]\npark = \"p\"\nsite = \"s\"\nstation = \"x\"\nkind = \"wastewater\"\nno_such_key = 1\n",
        |p| {
            quantrac::config::Stations::load(p, &defaults)
                .unwrap_err()
                .to_string()
        },
    )
    .into_iter()
    .collect();
    assert!(fields.len() > 10, "{fields:?}");
    // The station table's first column; `[station.limits]` is how `limits` is written.
    let documented: BTreeSet<String> = readme_table_keys(&readme, "| key | meaning |")
        .into_iter()
        .filter(|k| k != "[station.limits]")
        .collect();
    assert_same_keys("stations.toml", &fields, &documented);
}

#[test]
fn check_config_prints_the_limit_table_of_the_shipped_configuration() {
    let out = Command::new(QUANTRAC)
        .args(["check-config", "--config", "config/quantrac.toml"])
        .current_dir(root())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cod = text
        .lines()
        .find(|l| l.starts_with("nam-dinh-vu/nd-textile/outfall-1") && l.contains(" COD "))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(cod.contains("135") && cod.contains("QCVN 40:2011"), "{cod}");
    let so2 = text
        .lines()
        .find(|l| l.starts_with("dinh-vu/dv-steel/stack-1") && l.contains(" SO2 "))
        .unwrap();
    assert!(so2.contains("300") && so2.contains("permit"), "{so2}");
    assert!(
        text.contains("UNVERIFIED"),
        "unverified QCVN 19 values are marked: {text}"
    );
}

#[test]
fn check_config_names_file_key_and_reason() {
    let dir = tempfile::tempdir().unwrap();
    let stations = dir.path().join("stations.toml");
    std::fs::write(
        &stations,
        "[[station]]\npark = \"p\"\nsite = \"s\"\nstation = \"x\"\nkind = \"wastewater\"\n[station.limits]\nBenzene = 3\n",
    )
    .unwrap();
    let cfg = dir.path().join("q.toml");
    std::fs::write(
        &cfg,
        format!("[stations]\nfile = {:?}\n", stations.display().to_string()),
    )
    .unwrap();
    let out = Command::new(QUANTRAC)
        .args(["check-config", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("stations.toml")
            && err.contains("station[0].limits.Benzene")
            && err.contains("unknown parameter"),
        "{err}"
    );

    std::fs::write(&cfg, "[influx]\nbatch_sise = 10\n").unwrap();
    let out = Command::new(QUANTRAC)
        .args(["check-config", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("q.toml") && err.contains("batch_sise"),
        "{err}"
    );
}

/// `quantrac run`: `Err(stderr)` when it exits (it only does on a refused configuration),
/// `Ok` once it serves HTTP (it is then stopped).
fn run_outcome(config: &Path) -> Result<(), String> {
    let log = config.with_extension("log");
    let mut child = Command::new(QUANTRAC)
        .args(["run", "--config"])
        .arg(config)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let exited = child.try_wait().unwrap();
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(status) = exited {
            assert!(!status.success(), "run exited 0 on its own: {text}");
            return Err(text);
        }
        if text.contains("HTTP listening on") {
            child.kill().unwrap();
            child.wait().unwrap();
            return Ok(());
        }
        assert!(
            Instant::now() < deadline,
            "run neither refused nor started: {text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn check_config_outcome(config: &Path) -> Result<(), String> {
    let out = Command::new(QUANTRAC)
        .args(["check-config", "--config"])
        .arg(config)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    if out.status.success() {
        Ok(())
    } else {
        Err(err)
    }
}

/// The `error: …` line of a refusal.
fn error_line(text: &str) -> &str {
    text.lines()
        .find(|l| l.starts_with("error:"))
        .unwrap_or_else(|| panic!("no error line in {text:?}"))
}

// Issue 8: `check-config` and `run` accept and refuse exactly the same configurations, with
// the same error, and a secret in a refused URL is not repeated by either.
#[test]
fn check_config_and_run_accept_and_refuse_the_same_configurations() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens on either port: `run` keeps retrying, which is accepting.
    let closed = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    };
    let broker = format!("url = \"mqtt://127.0.0.1:{}\"", closed());
    let influx = format!("url = \"http://127.0.0.1:{}\"", closed());
    let v1 =
        format!("{influx}\napi = \"v1\"\ndatabase = \"q\"\nusername = \"w\"\npassword = \"pw\"");
    // (what, [mqtt] body, [influx] body, [http] body, accepted)
    let cases = [
        ("the v2 API", broker.clone(), influx.clone(), "", true),
        ("the v1 API", broker.clone(), v1, "", true),
        ("no InfluxDB", broker.clone(), "url = \"\"".into(), "", true),
        (
            "credentials in influx.url",
            broker.clone(),
            "url = \"http://u:SECRET-1@127.0.0.1:9\"".into(),
            "",
            false,
        ),
        (
            "a v1 key under v2",
            broker.clone(),
            format!("{influx}\ndatabase = \"q\""),
            "",
            false,
        ),
        (
            "a v2 key under v1",
            broker.clone(),
            format!("{influx}\napi = \"v1\"\ntoken = \"SECRET-2\""),
            "",
            false,
        ),
        (
            "no bucket",
            broker.clone(),
            format!("{influx}\nbucket = \"\""),
            "",
            false,
        ),
        (
            "credentials in mqtt.url",
            "url = \"mqtt://u:SECRET-3@127.0.0.1:1883\"".into(),
            influx.clone(),
            "",
            false,
        ),
        (
            "a topic template without {station}",
            format!("{broker}\ntopics = [\"env/{{park}}/{{site}}\"]"),
            influx.clone(),
            "",
            false,
        ),
        (
            "an unreadable CA file",
            "url = \"mqtts://127.0.0.1:1\"\nca_file = \"/nonexistent/ca.pem\"".into(),
            influx.clone(),
            "",
            false,
        ),
        (
            "a host name in http.listen",
            broker.clone(),
            influx.clone(),
            "listen = \"localhost:0\"",
            false,
        ),
    ];
    let stations = root().join("config/stations.toml");
    for (i, (what, mqtt, influx, http, accepted)) in cases.into_iter().enumerate() {
        let http = if http.is_empty() {
            "listen = \"127.0.0.1:0\""
        } else {
            http
        };
        let config = dir.path().join(format!("case-{i}.toml"));
        std::fs::write(
            &config,
            format!(
                "[mqtt]\n{mqtt}\nclient_id = \"quantrac-config-{i}\"\n\n[influx]\n{influx}\n\n\
                 [http]\n{http}\n\n[stations]\nfile = {stations:?}\n\n\
                 [journal]\npath = {journal:?}\n",
                stations = stations.display().to_string(),
                journal = dir
                    .path()
                    .join(format!("journal-{i}"))
                    .display()
                    .to_string(),
            ),
        )
        .unwrap();
        let checked = check_config_outcome(&config);
        let ran = run_outcome(&config);
        match (&checked, &ran) {
            (Ok(()), Ok(())) => assert!(accepted, "{what}: accepted by both"),
            (Err(c), Err(r)) => {
                assert!(!accepted, "{what}: refused by both:\n{c}");
                assert_eq!(error_line(c), error_line(r), "{what}: the same error");
                assert!(
                    !c.contains("SECRET") && !r.contains("SECRET"),
                    "{what}: {c}"
                );
            }
            _ => panic!("{what}: check-config {checked:?}, run {ran:?}"),
        }
    }
}

#[test]
fn help_lists_the_commands_and_no_secret() {
    let out = Command::new(QUANTRAC)
        .arg("--help")
        .env("QUANTRAC__INFLUX__TOKEN", "tok-in-env-5521")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for cmd in [
        "run",
        "check-config",
        "demo",
        "simulate",
        "verify",
        "dead-letters",
    ] {
        assert!(text.contains(cmd), "{text}");
    }
    assert!(!text.contains("tok-in-env-5521"));
}

#[test]
fn the_deployment_configuration_is_valid() {
    let settings = quantrac::config::Settings::load(
        &root().join("deploy/quantrac/quantrac.toml"),
        true,
        Some(Default::default()),
    )
    .unwrap();
    assert_eq!(
        settings.http.listen.to_string(),
        "0.0.0.0:9787",
        "scrapable inside a container"
    );
    let defaults = settings.compliance.station_defaults();
    for file in ["deploy/quantrac/stations.toml", "config/stations.toml"] {
        let stations = quantrac::config::Stations::load(&root().join(file), &defaults).unwrap();
        assert!(stations.by_key.len() >= 2, "{file}");
    }
}

/// The metric families of a Prometheus scrape (`# TYPE name kind` lines).
fn families(scrape: &str) -> BTreeSet<String> {
    scrape
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| name.starts_with("quantrac_"))
        .map(str::to_string)
        .collect()
}

/// Every `quantrac_…` metric name the README mentions.
fn readme_metrics(readme: &str) -> BTreeSet<String> {
    readme
        .split("quantrac_")
        .skip(1)
        .map(|rest| {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect();
            format!("quantrac_{name}")
        })
        .collect()
}

/// Families of the TLS clients exist only when a client uses TLS: tests/it/tls.rs reads them
/// from an instance that does.
const TLS_ONLY: [&str; 2] = [
    "quantrac_tls_certificate_expiry_timestamp_seconds",
    "quantrac_tls_handshake_failures_total",
];

// The metric set is what a running quantrac renders on /metrics: a station reporting (its
// gauges and windows), and InfluxDB unreachable (the write errors by kind), so every family
// has a sample. The README names exactly those.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_lists_exactly_the_metrics_quantrac_exposes() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let documented = readme_metrics(&readme);
    assert!(documented.len() > 15, "{documented:?}");

    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path());
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg = Quantrac::config_text(
        dir.path(),
        &broker.url(),
        &format!("url = \"http://127.0.0.1:{closed}\"\napi = \"v1\"\ndatabase = \"q\""),
        "",
    );
    let q = Quantrac::start(QUANTRAC, dir.path(), &cfg, STATIONS);
    q.wait_ready().await;
    let p = Publisher::connect(broker.port).await;
    let ts = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    p.publish(
        "env/nam-dinh-vu/nd-textile/outfall-1",
        json_message(&ts, &[("COD", 200.0, "mg/L")]),
    )
    .await;
    p.wait_acked(1).await;

    let deadline = Instant::now() + Duration::from_secs(30);
    let exposed = loop {
        let exposed = families(&q.metrics().await);
        let expected = documented
            .iter()
            .filter(|m| !TLS_ONLY.contains(&m.as_str()));
        if expected.clone().all(|m| exposed.contains(m)) || Instant::now() > deadline {
            break exposed;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let undocumented: Vec<&String> = exposed.difference(&documented).collect();
    let missing: Vec<&String> = documented
        .difference(&exposed)
        .filter(|m| !TLS_ONLY.contains(&m.as_str()))
        .collect();
    assert!(
        undocumented.is_empty() && missing.is_empty(),
        "/metrics has families the README does not name: {undocumented:?}; the README names \
         metrics /metrics does not have: {missing:?}"
    );
}

/// The InfluxDB 1.x example is the shipped configuration with the v1 keys in place of the v2
/// ones, and loads as `api = "v1"`.
#[test]
fn the_influxdb1_example_is_the_shipped_configuration_with_the_v1_api() {
    let path = root().join("config/quantrac-influxdb1.toml");
    let settings = quantrac::config::Settings::load(&path, true, Some(Default::default())).unwrap();
    assert!(
        matches!(settings.influx.api, quantrac::config::InfluxApi::V1(_)),
        "{:?}",
        settings.influx.api
    );
    let body = |file: &str| -> Vec<String> {
        let text = std::fs::read_to_string(root().join(file)).unwrap();
        let start = text.find("[mqtt]").unwrap();
        text[start..]
            .lines()
            .filter(|l| {
                let key = l.trim_start_matches("# ").split(' ').next().unwrap_or("");
                ![
                    "api",
                    "org",
                    "bucket",
                    "token_file",
                    "database",
                    "retention_policy",
                    "username",
                    "password_file",
                ]
                .contains(&key)
                    && !l.starts_with("# api =")
                    && !l.starts_with("# Each API")
            })
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(
        body("config/quantrac-influxdb1.toml"),
        body("config/quantrac.toml")
    );
}
