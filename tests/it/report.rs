//! `quantrac report` against a hand-computed scenario: every CSV column of the outfall's COD
//! row is asserted, from the journal and again once the records are sealed into the archive
//! and pruned; the HTML page is rendered by headless Chromium and screenshotted.

use std::path::{Path, PathBuf};
use std::process::Command;

use chrono::TimeZone;

use quantrac::journal::{Entry, Journal};
use quantrac_testkit::*;

use crate::QUANTRAC;

const OUTFALL: &str = "env/nam-dinh-vu/nd-textile/outfall-1";
const KEY: &str = "nam-dinh-vu/nd-textile/outfall-1";

/// 2026-11-`day` `h`:`m` in Hanoi, Unix ms.
fn local(day: u32, h: u32, m: u32) -> i64 {
    chrono_tz::Asia::Ho_Chi_Minh
        .with_ymd_and_hms(2026, 11, day, h, m, 0)
        .unwrap()
        .timestamp_millis()
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap()
        .with_timezone(&chrono_tz::Asia::Ho_Chi_Minh)
        .to_rfc3339()
}

/// One COD reading: `(reading time, value, status, unit)`, received at `received`.
struct Msg {
    ts: i64,
    value: Option<f64>,
    status: &'static str,
    unit: &'static str,
    received: i64,
}

fn payload(m: &Msg) -> String {
    let value = m.value.map_or("null".to_string(), |v| v.to_string());
    format!(
        r#"{{"ts":"{}","readings":[{{"param":"COD","value":{value},"unit":"{}","status":"{}"}}]}}"#,
        rfc3339(m.ts),
        m.unit,
        m.status
    )
}

/// The scenario, COD at the outfall (QCVN 40:2011 column B × Kq 0.9 × Kf 1: 135 mg/L, every
/// 5 minutes, so 12 samples an hour and 9 for a valid hour), over 10–11/11 (Hanoi):
/// - 10/11 08h: 12 × (90, 110 alternating): mean 100, valid;
/// - 10/11 09h: 12 × 140: mean 140, valid, above 135 (day 1 exceeds);
/// - 10/11 10h: 6 × 200: capture 0.5, not valid, so not an exceedance;
/// - 10/11 11h: 12 × status 01 (calibrating), no valid sample, no hour;
/// - 10/11 12h: 9 × 120 valid + 3 × status 02 (fault, no value): capture 0.75, valid, mean 120;
/// - 11/11 08h: 12 × 150: mean 150, valid, above (day 2 exceeds), ratio 150/135;
/// - 11/11 09h: 10 × 60 received late, on 12/11 10:00 (after the period): valid, mean 60;
/// - one reading refused (unit ppb), received 11/11 10:00;
/// - the 10/11 08:00 reading delivered twice (counted once);
/// - outside the period: 09/11 23:55 and 12/11 00:00, one reading each.
fn scenario() -> Vec<Msg> {
    let mut all = Vec::new();
    let mut hour =
        |day, h, n: u32, value: &dyn Fn(u32) -> Option<f64>, status, late: Option<i64>| {
            for i in 0..n {
                let ts = local(day, h, 5 * i);
                all.push(Msg {
                    ts,
                    value: value(i),
                    status,
                    unit: "mg/L",
                    received: late.map_or(ts + 10_000, |l| l + i as i64 * 1000),
                });
            }
        };
    hour(
        10,
        8,
        12,
        &|i| Some(if i % 2 == 0 { 90.0 } else { 110.0 }),
        "00",
        None,
    );
    hour(10, 9, 12, &|_| Some(140.0), "00", None);
    hour(10, 10, 6, &|_| Some(200.0), "00", None);
    hour(10, 11, 12, &|_| Some(5.0), "01", None);
    hour(10, 12, 9, &|_| Some(120.0), "00", None);
    for i in 9..12 {
        all.push(Msg {
            ts: local(10, 12, 5 * i),
            value: None,
            status: "02",
            unit: "mg/L",
            received: local(10, 12, 5 * i) + 10_000,
        });
    }
    let mut hour2 = |h: u32, n: u32, v: f64, late: Option<i64>| {
        for i in 0..n {
            let ts = local(11, h, 5 * i);
            all.push(Msg {
                ts,
                value: Some(v),
                status: "00",
                unit: "mg/L",
                received: late.map_or(ts + 10_000, |l| l + i as i64 * 1000),
            });
        }
    };
    hour2(8, 12, 150.0, None);
    hour2(9, 10, 60.0, Some(local(12, 10, 0)));
    let extra = [
        (local(11, 10, 0), Some(80.0), "ppb"),   // refused
        (local(10, 8, 0), Some(90.0), "mg/L"),   // again
        (local(9, 23, 55), Some(500.0), "mg/L"), // before the period
        (local(12, 0, 0), Some(500.0), "mg/L"),  // after it
    ];
    for (ts, value, unit) in extra {
        all.push(Msg {
            ts,
            value,
            status: "00",
            unit,
            received: ts + 20_000,
        });
    }
    all.sort_by_key(|m| m.received);
    all
}

/// A folder with `quantrac.toml`, `stations.toml` and a journal of the scenario, written
/// with the service's own decoder (rejections as it journals them).
fn journal_of_scenario() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = Quantrac::config_text(
        dir.path(),
        "mqtt://127.0.0.1:1",
        "url = \"\"",
        "[journal]\nretention_days = 1\n",
    );
    std::fs::write(dir.path().join("stations.toml"), STATIONS).unwrap();
    let path = dir.path().join("quantrac.toml");
    std::fs::write(&path, cfg).unwrap();
    let settings = quantrac::config::Settings::load(&path, true, None).unwrap();
    let stations = settings.load_stations().unwrap();
    let mut decoder = quantrac::app::decoder(&settings, &stations).unwrap();
    let mut j = Journal::open(&settings.journal.path, true).unwrap();
    for m in scenario() {
        let p = payload(&m);
        let decoded = decoder.decode(OUTFALL, p.as_bytes(), m.received);
        j.append(&[Entry {
            received_at_ms: m.received,
            topic: OUTFALL,
            payload: p.as_bytes(),
            station: Some(KEY.into()),
            rejections: &decoded.rejections,
            points: vec![],
            once: false,
        }])
        .unwrap();
    }
    (dir, path)
}

fn quantrac(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(QUANTRAC).args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn report(config: &Path, extra: &[&str]) -> String {
    let mut args = vec![
        "report",
        "--config",
        config.to_str().unwrap(),
        "--from",
        "2026-11-10",
        "--to",
        "2026-11-12",
    ];
    args.extend_from_slice(extra);
    let (ok, out, err) = quantrac(&args);
    assert!(ok, "{out}{err}");
    out
}

const HEADER: &str = "park,site,station,param,unit,limit,limit_source,expected,received,valid,\
calibrating,fault,rejected,capture,hours,hours_valid,hours_exceeded,days_exceeded,\
max_hour_mean,max_hour_ratio";

/// The hand computation. Two days of 5-minute samples: expected 2 × 288 = 576. Received: one
/// per timestamp in the period, 12 + 12 + 6 + 12 + 12 + 12 + 10 = 76; valid 12 + 12 + 6 +
/// 9 + 12 + 10 = 61; calibrating 12; fault 3; rejected 1; capture 61 ÷ 576 = 0.10590…,
/// printed 0.1059. Hours with valid data: 10/11 08, 09, 10, 12 and 11/11 08, 09 = 6; valid
/// (≥ 9 samples): all but 10/11 10h = 5; above 135: 10/11 09h (140) and 11/11 08h (150) = 2,
/// on 2 days; the highest valid mean 150, ratio 150 ÷ 135 = 1.1111.
const COD_ROW: &str = "nam-dinh-vu,nd-textile,outfall-1,COD,mg/L,135,\
QCVN 40:2011/BTNMT Table 1 col B × Kq 0.9 × Kf 1.0,576,76,61,12,3,1,0.1059,6,5,2,2,150,1.1111";

/// The cells of a CSV line (RFC 4180 quoting).
fn split_csv(line: &str) -> Vec<String> {
    let (mut cells, mut cell, mut quoted) = (Vec::new(), String::new(), false);
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cell.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => cells.push(std::mem::take(&mut cell)),
            (c, _) => cell.push(c),
        }
    }
    cells.push(cell);
    cells
}

fn check_csv(csv: &str) {
    let mut lines = csv.lines().skip_while(|l| l.starts_with('#'));
    assert_eq!(lines.next(), Some(HEADER), "{csv}");
    let rows: Vec<&str> = lines.collect();
    let cod: Vec<&&str> = rows.iter().filter(|r| r.contains(",COD,")).collect();
    assert_eq!(cod, [&COD_ROW], "{csv}");
    // Every other parameter of the outfall's permit: nothing received, nothing exceeded.
    for r in rows.iter().filter(|r| !r.contains(",COD,")) {
        let cells = split_csv(r);
        assert_eq!(cells.len(), 20, "{r}");
        assert_eq!(&cells[7..13], ["576", "0", "0", "0", "0", "0"], "{r}");
    }
    assert!(rows.iter().any(|r| r.contains(",pH,,5.5-9,")), "{csv}");
    assert!(
        csv.lines()
            .any(|l| l.starts_with("# verify: journal intact")),
        "{csv}"
    );
    assert!(
        csv.lines().any(|l| l.starts_with("# chain head: record ")),
        "{csv}"
    );
}

#[test]
fn report_of_the_hand_computed_scenario_matches_every_column() {
    let (dir, config) = journal_of_scenario();
    let out = report(&config, &["--station", "outfall-1"]);
    check_csv(&out);
    // Only the outfall: the stack is not in it.
    assert!(!out.contains("stack-1"), "{out}");
    // JSON: the same numbers.
    let json = report(&config, &["--format", "json", "--station", "outfall-1"]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let cod = v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["param"] == "COD")
        .unwrap();
    assert_eq!(cod["hours_exceeded"], 2);
    assert_eq!(cod["max_hour_mean"], 150.0);
    assert_eq!(v["verification"]["intact"], true);
    drop(dir);
}

#[test]
fn report_from_records_sealed_into_the_archive_is_the_same() {
    let (dir, config) = journal_of_scenario();
    let before = report(&config, &["--station", "outfall-1"]);
    // Thirty days later, with a one-day retention: every day is sealed, then pruned.
    let journal = dir.path().join("journal");
    let mut j = Journal::open(&journal, true).unwrap();
    let n = j
        .prune(local(30, 12, 0), std::time::Duration::from_secs(86_400))
        .unwrap();
    assert_eq!(n as usize, scenario().len(), "every record pruned");
    drop(j);
    let segments: Vec<String> = std::fs::read_dir(journal.join("archive"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".jsonl.gz"))
        .collect();
    assert_eq!(
        segments.len(),
        4,
        "one segment per local day 9–12/11: {segments:?}"
    );
    let (ok, out, _) = quantrac(&[
        "verify",
        "--journal",
        journal.to_str().unwrap(),
        "--retention-days",
        "1",
    ]);
    assert!(ok && out.contains("archive intact: 4 segments"), "{out}");
    let after = report(&config, &["--station", "outfall-1"]);
    check_csv(&after);
    let strip = |s: &str| -> String {
        s.lines()
            .filter(|l| !l.starts_with('#'))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(strip(&before), strip(&after));
}

/// The HTML page: self-contained, rendered by headless Chromium with one table per station
/// and a chart whose two exceeding hours are marked, printable on A4.
#[test]
fn html_report_renders_in_chromium_and_prints_on_a4() {
    let (dir, config) = journal_of_scenario();
    let page = dir.path().join("report.html");
    let (ok, out, err) = quantrac(&[
        "report",
        "--config",
        config.to_str().unwrap(),
        "--from",
        "2026-11-10",
        "--to",
        "2026-11-12",
        "--format",
        "html",
        "--out",
        page.to_str().unwrap(),
    ]);
    assert!(ok, "{out}{err}");
    let html = std::fs::read_to_string(&page).unwrap();
    // Nothing fetched from elsewhere: no script, stylesheet, image or font link.
    for needle in ["<script", "src=", "href=", "@import", "url("] {
        assert!(!html.contains(needle), "{needle} in the page");
    }
    let chromium = Chromium::find();
    let url = format!("file://{}", page.display());
    let dom = chromium.dump_dom(&url);
    assert!(
        dom.contains("Station nam-dinh-vu/nd-textile/outfall-1"),
        "{dom}"
    );
    assert!(dom.contains("Station dinh-vu/dv-steel/stack-1"), "{dom}");
    assert!(dom.contains("journal intact"), "{dom}");
    assert_eq!(
        dom.matches("<svg").count(),
        1,
        "one chart: COD at the outfall"
    );
    assert_eq!(
        dom.matches("fill=\"#dc2626\"><title>").count(),
        2,
        "two exceeding hours"
    );
    assert!(dom.contains("limit 135"), "{dom}");
    let png = Path::new(env!("CARGO_TARGET_TMPDIR")).join("report.png");
    chromium.screenshot(&url, &png, 1240, 1754);
    quantrac_testkit::chromium::assert_not_blank(&chromium, &png, 1240, 1754);
    let pdf = dir.path().join("report.pdf");
    chromium.print_to_pdf(&url, &pdf);
    let text = String::from_utf8_lossy(&std::fs::read(&pdf).unwrap()).into_owned();
    // A4 is 595.3 × 841.9 points; Chromium rounds to its own units.
    let a4 = ["/MediaBox [0 0 594.9", "/MediaBox [0 0 595"];
    assert!(a4.iter().any(|m| text.contains(m)), "A4 pages");
}
