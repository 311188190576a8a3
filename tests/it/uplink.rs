//! Issue #12: the Circular 10/2021 uplink to the provincial department. A real vsftpd plays
//! the department's server; quantrac sends one file per station and period to it. Exact
//! names, folders and content; an outage of the server; quantrac killed mid-upload; a wrong
//! password.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{TimeZone, Utc};
use chrono_tz::Asia::Ho_Chi_Minh as HCM;

use quantrac_testkit::vsftpd::{FTP_PASSWORD, FTP_USER};
use quantrac_testkit::*;

use crate::QUANTRAC;

/// A wastewater outfall and a stack with their codes in the department's system, and a stack
/// left out of the uplink.
const STATIONS: &str = r#"
[[station]]
park = "nam-dinh-vu"
site = "nd-textile"
station = "outfall-1"
kind = "wastewater"
regulation = "QCVN 40:2011/BTNMT"
column = "B"
kq = 0.9
kf = 1.0
uplink_code = "NDTEXTILE_NT1"

[[station]]
park = "dinh-vu"
site = "dv-steel"
station = "stack-1"
kind = "emission"
regulation = "QCVN 19:2009/BTNMT"
column = "B"
kp = 0.9
kv = 1.0
uplink_code = "DVSTEEL_K1"

[[station]]
park = "dinh-vu"
site = "dv-steel"
station = "stack-2"
kind = "emission"
uplink = false
"#;

const OUTFALL: &str = "env/nam-dinh-vu/nd-textile/outfall-1";
const STACK: &str = "env/dinh-vu/dv-steel/stack-1";
const STACK_2: &str = "env/dinh-vu/dv-steel/stack-2";

/// The department's server, quantrac's broker and a folder for quantrac.
struct Setup {
    ftp: Ftp,
    broker: Broker,
    dir: tempfile::TempDir,
    /// The FTP root (what the department sees).
    root: PathBuf,
}

impl Setup {
    fn new() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("department");
        let ftp = Ftp::start(dir.path(), &root);
        let broker = Broker::start(dir.path());
        Setup {
            ftp,
            broker,
            dir,
            root,
        }
    }

    /// The department's server requires explicit TLS, its certificate from a private CA.
    fn new_tls() -> (Setup, Pki) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("pki")).unwrap();
        let pki = Pki::create(&dir.path().join("pki"));
        let root = dir.path().join("department");
        let ftp = Ftp::start_tls(dir.path(), &root, &pki.server_cert, &pki.server_key);
        let broker = Broker::start(dir.path());
        let setup = Setup {
            ftp,
            broker,
            dir,
            root,
        };
        (setup, pki)
    }

    /// quantrac.toml with `[uplink]` (`extra` adds keys to it), the password in a file.
    fn config(&self, password: &str, extra: &str) -> String {
        let secret = self.dir.path().join("uplink-password");
        std::fs::write(&secret, format!("{password}\n")).unwrap();
        Quantrac::config_text(
            self.dir.path(),
            &self.broker.url(),
            "url = \"\"",
            &format!(
                "[uplink]\nurl = \"ftp://127.0.0.1:{port}/incoming/hp\"\nusername = \"{FTP_USER}\"\n\
                 password_file = {secret:?}\nprovince = \"HP\"\nfacility = \"NDTEXTILE\"\n{extra}",
                port = self.ftp.port,
                secret = secret.display().to_string(),
            ),
        )
    }

    fn start(&self, config: &str) -> Quantrac {
        Quantrac::start(QUANTRAC, self.dir.path(), config, STATIONS)
    }
}

/// Every file below `root`: path (relative, `/`-separated) → content.
fn files(root: &Path) -> BTreeMap<String, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let path = e.path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let rel = path.strip_prefix(root).unwrap().display().to_string();
                out.insert(rel, std::fs::read_to_string(&path).unwrap_or_default());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

async fn metric_at_least(q: &Quantrac, sample: &str, want: f64) -> f64 {
    eventually(
        &format!("{sample} ≥ {want}"),
        Duration::from_secs(60),
        || async { q.metric(sample).await.filter(|v| *v >= want) },
    )
    .await
}

async fn backlog_is_zero(q: &Quantrac) {
    eventually(
        "quantrac_uplink_backlog_files = 0",
        Duration::from_secs(60),
        || async { (q.metric("quantrac_uplink_backlog_files").await == Some(0.0)).then_some(()) },
    )
    .await;
}

/// A reading message with explicit statuses and values (`None`: a status without a number).
fn message(ts: &str, readings: &[(&str, Option<f64>, &str, &str)]) -> String {
    let readings: Vec<String> = readings
        .iter()
        .map(|(param, value, unit, status)| {
            let value = value.map_or("null".to_string(), |v| v.to_string());
            format!(r#"{{"param":"{param}","value":{value},"unit":"{unit}","status":"{status}"}}"#)
        })
        .collect();
    format!(r#"{{"ts":"{ts}","readings":[{}]}}"#, readings.join(","))
}

/// yyyyMMddHHmmss → the local time as RFC 3339 with +07:00.
fn local(t: &str) -> String {
    format!(
        "{}-{}-{}T{}:{}:{}+07:00",
        &t[..4],
        &t[4..6],
        &t[6..8],
        &t[8..10],
        &t[10..12],
        &t[12..14]
    )
}

// Circular 10/2021 art. 39 as the department receives it: a wastewater outfall and a stack,
// calibrating and fault readings, periods on both sides of local midnight, the department's
// station/yyyy/MM/dd folders, and a station left out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_reach_the_department_with_exact_names_folders_and_content() {
    let s = Setup::new();
    // The uplink as if running since 23:50 before a local midnight: the periods around it are
    // closed from the journal when quantrac starts.
    // The latest local midnight at least ten minutes ago.
    let day = (Utc::now() - chrono::Duration::minutes(10))
        .with_timezone(&HCM)
        .date_naive();
    let midnight = HCM
        .from_local_datetime(&day.and_hms_opt(0, 0, 0).unwrap())
        .unwrap();
    let fmt = |t: chrono::DateTime<chrono_tz::Tz>| t.format("%Y%m%d%H%M%S").to_string();
    let at = |secs: i64| midnight + chrono::Duration::seconds(secs);
    quantrac::journal::uplink::UplinkOutbox::open(&s.dir.path().join("journal"))
        .unwrap()
        .close_period(at(-600).timestamp_millis(), 0, &[])
        .unwrap();

    let q = s.start(&s.config(FTP_PASSWORD, "delay_s = 8\n"));
    q.wait_ready().await;
    let p = Publisher::connect(s.broker.port).await;
    let (before, late, after) = (fmt(at(-360)), fmt(at(-2)), fmt(at(3)));
    p.publish(
        OUTFALL,
        message(
            &local(&before),
            &[
                ("COD", Some(48.2), "mg/L", "00"),
                ("pH", Some(7.1), "", "00"),
                ("TSS", Some(12.0), "mg/L", "01"),
            ],
        ),
    )
    .await;
    p.publish(
        OUTFALL,
        message(
            &local(&late),
            &[
                ("COD", Some(50.0), "mg/L", "00"),
                ("Flow", Some(35.0), "m3/h", "00"),
            ],
        ),
    )
    .await;
    p.publish(
        STACK,
        message(
            &local(&after),
            &[
                ("SO2", Some(314.5), "mg/Nm3", "00"),
                ("O2", Some(11.0), "%", "00"),
                ("PM", None, "mg/Nm3", "02"),
            ],
        ),
    )
    .await;
    p.publish(
        STACK_2,
        message(&local(&after), &[("SO2", Some(1.0), "mg/Nm3", "00")]),
    )
    .await;
    p.wait_acked(4).await;

    metric_at_least(&q, r#"quantrac_uplink_files_total{result="sent"}"#, 3.0).await;
    backlog_is_zero(&q).await;
    let (d0, d1) = (&before[..8], &after[..8]);
    let dated = |d: &str| format!("{}/{}/{}", &d[..4], &d[4..6], &d[6..8]);
    let (t2355, t0000, t0005) = (fmt(at(-300)), fmt(at(0)), fmt(at(300)));
    let expected: BTreeMap<String, String> = [
        (
            format!("incoming/hp/NDTEXTILE_NT1/{}/HP_NDTEXTILE_NDTEXTILE_NT1_{t2355}.txt", dated(d0)),
            format!("pH\t7.1\t\t{t2355}\t00\r\nTSS\t12\tmg/L\t{t2355}\t01\r\nCOD\t48.2\tmg/L\t{t2355}\t00\r\n"),
        ),
        (
            // 23:59:58 belongs to the period that ends at midnight: the next day's file.
            format!("incoming/hp/NDTEXTILE_NT1/{}/HP_NDTEXTILE_NDTEXTILE_NT1_{t0000}.txt", dated(d1)),
            format!("Flow\t35\tm3/h\t{t0000}\t00\r\nCOD\t50\tmg/L\t{t0000}\t00\r\n"),
        ),
        (
            format!("incoming/hp/DVSTEEL_K1/{}/HP_NDTEXTILE_DVSTEEL_K1_{t0005}.txt", dated(d1)),
            format!("O2\t11\t%\t{t0005}\t00\r\nPM\t\tmg/Nm3\t{t0005}\t02\r\nSO2\t314.5\tmg/Nm3\t{t0005}\t00\r\n"),
        ),
    ]
    .into_iter()
    .collect();
    assert_eq!(files(&s.root), expected, "{}", q.proc.tail(30));

    // What an operator sees before asking the department.
    let (ok, out) = q.command(&[
        "uplink",
        "preview",
        "--station",
        "outfall-1",
        "--at",
        &local(&t0000),
    ]);
    assert!(ok, "{out}");
    let (path, content) = expected
        .iter()
        .find(|(path, _)| path.contains(&format!("NT1_{t0000}")))
        .unwrap();
    assert_eq!(
        out,
        format!("{}\n{content}", path.trim_start_matches("incoming/hp/")),
        "{out}"
    );
}

/// `quantrac_uplink_files_total{result=…}`.
fn files_total(result: &str) -> String {
    format!("quantrac_uplink_files_total{{result=\"{result}\"}}")
}

/// Publishes a COD reading of the outfall every 500 ms, timed now, until dropped.
fn keep_publishing(port: u16) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let p = Publisher::connect(port).await;
        for i in 0.. {
            let ts = Utc::now().with_timezone(&HCM).to_rfc3339();
            p.publish(
                OUTFALL,
                message(
                    &ts,
                    &[("COD", Some(40.0 + f64::from(i % 10)), "mg/L", "00")],
                ),
            )
            .await;
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    })
}

/// The files' times (yyyyMMddHHmmss) in the order the server renamed them into place.
fn delivered_times(ftp: &Ftp) -> Vec<String> {
    ftp.renamed()
        .iter()
        .map(|name| {
            let stem = name.rsplit('_').next().unwrap().trim_end_matches(".txt");
            stem.to_string()
        })
        .collect()
}

/// Every period from the first file to the last has its file (2 s periods), renamed into
/// place in order (a file whose confirmation a kill cut off is sent again to the same name,
/// right away: it replaces itself), complete, and nothing is left under a temporary name.
/// Returns how many renames there were.
fn assert_every_period_once_in_order(s: &Setup, q: &Quantrac) -> usize {
    let all = delivered_times(&s.ftp);
    let mut times = all.clone();
    times.dedup();
    assert!(times.len() >= 4, "{times:?}");
    let parsed: Vec<chrono::NaiveDateTime> = times
        .iter()
        .map(|t| chrono::NaiveDateTime::parse_from_str(t, "%Y%m%d%H%M%S").unwrap())
        .collect();
    for pair in parsed.windows(2) {
        assert_eq!(
            pair[1] - pair[0],
            chrono::Duration::seconds(2),
            "gap or disorder in {times:?}\n{}",
            q.proc.tail(40)
        );
    }
    let on_disk = files(&s.root);
    assert_eq!(on_disk.len(), times.len(), "{:?}", on_disk.keys());
    for (path, content) in &on_disk {
        assert!(!path.ends_with(".tmp"), "a temporary file is left: {path}");
        assert!(content.ends_with("\r\n"), "{path}: {content:?}");
        for line in content.lines() {
            assert_eq!(
                line.trim_end_matches('\r').split('\t').count(),
                5,
                "{path}: {line:?}"
            );
        }
    }
    all.len() - times.len()
}

// The department's server away for three periods: the files wait in the journal and arrive,
// oldest first, each once, when it is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_of_the_server_loses_and_doubles_nothing() {
    let mut s = Setup::new();
    let q = s.start(&s.config(FTP_PASSWORD, "period_s = 2\ndelay_s = 1\ndir = \"\"\n"));
    q.wait_ready().await;
    let publisher = keep_publishing(s.broker.port);
    metric_at_least(&q, &files_total("sent"), 2.0).await;

    s.ftp.stop();
    metric_at_least(&q, &files_total("unreachable"), 1.0).await;
    metric_at_least(&q, "quantrac_uplink_backlog_files", 3.0).await;
    assert!(q.ready().await, "/readyz does not depend on the uplink");
    s.ftp.restart();

    let sent = q.metric(&files_total("sent")).await.unwrap();
    metric_at_least(&q, &files_total("sent"), sent + 4.0).await;
    publisher.abort();
    tokio::time::sleep(Duration::from_secs(4)).await;
    backlog_is_zero(&q).await;
    assert_eq!(
        assert_every_period_once_in_order(&s, &q),
        0,
        "a file renamed twice"
    );
    assert!(q.proc.find_log("files wait in the journal").is_some());
}

// quantrac killed while it uploads: no half file under a final name, nothing missing, each
// period's file once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quantrac_killed_mid_upload_leaves_no_half_file_and_misses_nothing() {
    let mut s = Setup::new();
    let mut q = s.start(&s.config(FTP_PASSWORD, "period_s = 2\ndelay_s = 1\ndir = \"\"\n"));
    q.wait_ready().await;
    let publisher = keep_publishing(s.broker.port);
    metric_at_least(&q, &files_total("sent"), 1.0).await;
    // A backlog, then the server back: kill quantrac while it sends the backlog.
    s.ftp.stop();
    metric_at_least(&q, "quantrac_uplink_backlog_files", 4.0).await;
    let before = files(&s.root).len();
    s.ftp.restart();
    eventually(
        "the backlog starting to arrive",
        Duration::from_secs(60),
        || async { (files(&s.root).len() > before).then_some(()) },
    )
    .await;
    q.restart();
    q.wait_ready().await;
    let sent = q.metric(&files_total("sent")).await.unwrap_or(0.0);
    metric_at_least(&q, &files_total("sent"), sent + 3.0).await;
    publisher.abort();
    tokio::time::sleep(Duration::from_secs(4)).await;
    backlog_is_zero(&q).await;
    assert!(assert_every_period_once_in_order(&s, &q) <= 1);
}

// A wrong password: counted and logged (without the password), every file kept; once the
// password is fixed, everything arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_counted_logged_without_it_and_loses_nothing() {
    let s = Setup::new();
    let wrong = "not-the-department-password-7";
    let extra = "period_s = 2\ndelay_s = 1\ndir = \"\"\n";
    let mut q = s.start(&s.config(wrong, extra));
    q.wait_ready().await;
    let publisher = keep_publishing(s.broker.port);
    metric_at_least(&q, &files_total("login"), 1.0).await;
    metric_at_least(&q, "quantrac_uplink_backlog_files", 2.0).await;
    assert!(files(&s.root).is_empty());
    let line = q
        .proc
        .wait_for_log("login refused", Duration::from_secs(10));
    assert!(line.contains("530"), "{line}");
    assert!(
        !q.proc.log_text().contains(wrong),
        "the password reached the log"
    );

    // Fixed: the same configuration with the right password file.
    std::fs::write(s.dir.path().join("uplink-password"), FTP_PASSWORD).unwrap();
    q.restart();
    q.wait_ready().await;
    metric_at_least(&q, &files_total("sent"), 3.0).await;
    publisher.abort();
    tokio::time::sleep(Duration::from_secs(4)).await;
    backlog_is_zero(&q).await;
    assert_every_period_once_in_order(&s, &q);
}

// FTPS (explicit TLS, the server's certificate from the park's CA in `uplink.ca_file`): the
// control and data connections are encrypted, the files arrive as over FTP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_go_over_ftps_with_a_private_ca() {
    let (s, pki) = Setup::new_tls();
    let config = s
        .config(
            FTP_PASSWORD,
            &format!(
                "period_s = 2\ndelay_s = 1\ndir = \"\"\nca_file = {:?}\n",
                pki.ca.display().to_string()
            ),
        )
        .replace("ftp://127.0.0.1", "ftps://127.0.0.1");
    let q = s.start(&config);
    q.wait_ready().await;
    let publisher = keep_publishing(s.broker.port);
    metric_at_least(&q, &files_total("sent"), 2.0).await;
    publisher.abort();
    let on_disk = files(&s.root);
    assert!(on_disk.len() >= 2, "{on_disk:?}");
    for (path, content) in on_disk {
        assert!(
            path.starts_with("incoming/hp/HP_NDTEXTILE_NDTEXTILE_NT1_"),
            "{path}"
        );
        assert!(
            content.starts_with("COD\t4") && content.ends_with("\t00\r\n"),
            "{content:?}"
        );
    }
    assert_eq!(q.metric(&files_total("tls")).await, Some(0.0));
}

// The department's server refuses one station's files for good (its folder is not writable
// for the account): they are kept, counted, logged once, and do not hold the other station;
// once the folder is fixed, they arrive at the next start, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_file_waits_without_holding_other_stations() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let s = Setup::new();
    let uid = std::fs::metadata(&s.root).unwrap().uid();
    let base = s.root.join("incoming/hp");
    let blocked = base.join("DVSTEEL_K1");
    std::fs::create_dir_all(&blocked).unwrap();
    std::os::unix::fs::chown(s.root.join("incoming"), Some(uid), None).unwrap();
    std::os::unix::fs::chown(&base, Some(uid), None).unwrap();
    std::fs::set_permissions(&blocked, std::fs::Permissions::from_mode(0o555)).unwrap();

    let mut q = s.start(&s.config(
        FTP_PASSWORD,
        "period_s = 2\ndelay_s = 1\ndir = \"{station}\"\n",
    ));
    q.wait_ready().await;
    let outfall = keep_publishing(s.broker.port);
    let stack = tokio::spawn({
        let port = s.broker.port;
        async move {
            let p = Publisher::connect(port).await;
            loop {
                let ts = Utc::now().with_timezone(&HCM).to_rfc3339();
                p.publish(STACK, message(&ts, &[("SO2", Some(120.0), "mg/Nm3", "00")]))
                    .await;
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    });
    metric_at_least(&q, &files_total("refused"), 1.0).await;
    let sent = q.metric(&files_total("sent")).await.unwrap();
    metric_at_least(&q, &files_total("sent"), sent + 3.0).await;
    assert!(files(&blocked).is_empty());
    // Tried once, logged once, until the retry an hour later or the next start.
    assert_eq!(q.metric(&files_total("refused")).await, Some(1.0));
    let logged = q.proc.log_text().matches("refused an uplink file").count();
    assert_eq!(logged, 1, "{}", q.proc.tail(20));
    assert!(q.proc.log_text().contains("553"), "{}", q.proc.tail(20));

    // The department fixes the folder; quantrac restarts and sends what waited, oldest first.
    std::fs::set_permissions(&blocked, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::chown(&blocked, Some(uid), None).unwrap();
    q.restart();
    q.wait_ready().await;
    metric_at_least(&q, &files_total("sent"), 3.0).await;
    outfall.abort();
    stack.abort();
    tokio::time::sleep(Duration::from_secs(4)).await;
    backlog_is_zero(&q).await;
    let times: Vec<chrono::NaiveDateTime> = files(&blocked)
        .keys()
        .map(|name| {
            let t = name.rsplit('_').next().unwrap().trim_end_matches(".txt");
            chrono::NaiveDateTime::parse_from_str(t, "%Y%m%d%H%M%S").unwrap()
        })
        .collect();
    assert!(times.len() >= 4, "{times:?}");
    for pair in times.windows(2) {
        assert_eq!(pair[1] - pair[0], chrono::Duration::seconds(2), "{times:?}");
    }
    let renamed: Vec<String> = s
        .ftp
        .renamed()
        .into_iter()
        .filter(|n| n.contains("DVSTEEL_K1/"))
        .collect();
    let mut in_order = renamed.clone();
    in_order.sort();
    assert_eq!(renamed, in_order, "the stack's files in period order");
}
