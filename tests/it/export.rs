//! `quantrac export` and `quantrac verify --export`: one station's records, checked by a third
//! party against the operator's public key and a published anchor; any edit is caught. And the
//! archive's segments read by DuckDB, as the README shows.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use chrono::TimeZone;

use quantrac::journal::checkpoint::Checkpointer;
use quantrac::journal::{Entry, Journal};
use quantrac_testkit::*;

use crate::QUANTRAC;

const OUTFALL: &str = "env/nam-dinh-vu/nd-textile/outfall-1";
const STACK: &str = "env/dinh-vu/dv-steel/stack-1";

fn local(day: u32, h: u32, m: u32) -> i64 {
    chrono_tz::Asia::Ho_Chi_Minh
        .with_ymd_and_hms(2026, 11, day, h, m, 0)
        .unwrap()
        .timestamp_millis()
}

fn quantrac(args: &[&str]) -> (bool, String) {
    let out = Command::new(QUANTRAC).args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// A park's journal with a signing key: the outfall and the stack report every hour from
/// 10/11 to 12/11 (Hanoi); those days are sealed into signed segments; a signed checkpoint
/// covers the head. Returns the folder, the config and the public key file.
fn signed_park() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("signing.pem");
    let (ok, out) = quantrac(&["keygen", "--out", key.to_str().unwrap()]);
    assert!(ok, "{out}");
    let cfg = Quantrac::config_text(
        dir.path(),
        "mqtt://127.0.0.1:1",
        "url = \"\"",
        &format!(
            "[journal]\nretention_days = 1\nsigning_key_file = \"{}\"\n",
            key.display()
        ),
    );
    std::fs::write(dir.path().join("stations.toml"), STATIONS).unwrap();
    let config = dir.path().join("quantrac.toml");
    std::fs::write(&config, cfg).unwrap();
    let settings = quantrac::config::Settings::load(&config, true, None).unwrap();
    let signing = settings.journal.signing_key.clone().unwrap();
    let mut j = Journal::open(&settings.journal.path, true).unwrap();
    j.set_archive(
        &quantrac::journal::archive::configured_dir(&settings.journal),
        settings.stations.timezone,
        Some(signing.clone()),
    )
    .unwrap();
    for day in 10..=12 {
        for h in 0..24 {
            let ts = local(day, h, 0);
            let when = chrono::DateTime::from_timestamp_millis(ts)
                .unwrap()
                .to_rfc3339();
            for (topic, station, reading) in [
                (
                    OUTFALL,
                    "nam-dinh-vu/nd-textile/outfall-1",
                    ("COD", 40.0 + h as f64, "mg/L"),
                ),
                (
                    STACK,
                    "dinh-vu/dv-steel/stack-1",
                    ("SO2", 100.0 + h as f64, "mg/Nm3"),
                ),
            ] {
                let p = json_message(&when, &[reading]);
                // The point quantrac renders for it (`reading` measurement, see README).
                let (park, rest) = station.split_once('/').unwrap();
                let (site, id) = rest.split_once('/').unwrap();
                let point = format!(
                    "reading,param={},park={park},site={site},station={id} value={},unit=\"{}\",\
                     status=\"00\",exceeded=false {ts}",
                    reading.0, reading.1, reading.2
                );
                j.append(&[Entry {
                    received_at_ms: ts + 5_000,
                    topic,
                    payload: p.as_bytes(),
                    station: Some(station.into()),
                    rejections: &[],
                    points: vec![point],
                    once: false,
                }])
                .unwrap();
            }
        }
    }
    assert_eq!(j.seal(local(20, 0, 0)).unwrap(), 3);
    Checkpointer::new(signing, Duration::from_secs(300)).tick(&j, true);
    drop(j);
    (dir, config, dir_key_pub(&key))
}

fn dir_key_pub(key: &Path) -> PathBuf {
    let mut p = key.as_os_str().to_owned();
    p.push(".pub");
    p.into()
}

/// `quantrac export` of `station` over `[from, to)` into `out`.
fn export_period(config: &Path, station: &str, from: &str, to: &str, out: &Path) -> (bool, String) {
    quantrac(&[
        "export",
        "--config",
        config.to_str().unwrap(),
        "--station",
        station,
        "--from",
        from,
        "--to",
        to,
        "--out",
        out.to_str().unwrap(),
    ])
}

fn export(config: &Path, out: &Path) -> String {
    let (ok, text) = export_period(config, "outfall-1", "2026-11-11", "2026-11-12", out);
    assert!(ok, "{text}");
    text
}

/// Rewrites the export's `manifest.json` with `edit`.
fn edit_manifest(dir: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let path = dir.join("manifest.json");
    let mut m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    edit(&mut m);
    std::fs::write(&path, serde_json::to_string_pretty(&m).unwrap()).unwrap();
}

fn verify(dir: &Path, extra: &[&str]) -> (bool, String) {
    let mut args = vec!["verify", "--export", dir.to_str().unwrap()];
    args.extend_from_slice(extra);
    quantrac(&args)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for f in std::fs::read_dir(from).unwrap() {
        let f = f.unwrap();
        std::fs::copy(f.path(), to.join(f.file_name())).unwrap();
    }
}

/// Rewrites `records.jsonl` line by line, with `edit`, and puts the file's new SHA-256 in the
/// manifest: what someone editing the export would do to hide it.
fn edit_records(dir: &Path, edit: impl Fn(Vec<String>) -> Vec<String>) {
    use sha2::Digest as _;
    let path = dir.join("records.jsonl");
    let lines: Vec<String> = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    let text = edit(lines).join("\n") + "\n";
    std::fs::write(&path, &text).unwrap();
    edit_manifest(dir, |m| {
        m["sha256"] = hex::encode(sha2::Sha256::digest(text.as_bytes())).into();
    });
}

#[test]
fn an_export_verifies_against_the_key_and_an_anchor_and_fails_after_any_edit() {
    let (dir, config, public) = signed_park();
    let out = dir.path().join("export");
    let said = export(&config, &out);
    assert!(said.contains("24 of station outfall-1"), "{said}");
    assert!(said.contains("manifest signed"), "{said}");
    // A station with nothing in the period, or a folder already used, is refused.
    let (ok, text) = export_period(
        &config,
        "outfall-9",
        "2026-11-11",
        "2026-11-12",
        &dir.path().join("none"),
    );
    assert!(
        !ok && text.contains("no record of station outfall-9"),
        "{text}"
    );
    let (ok, text) = export_period(&config, "outfall-1", "2026-11-11", "2026-11-12", &out);
    assert!(!ok && text.contains("is not empty"), "{text}");
    let key = ["--public-key", public.to_str().unwrap()];

    // The third party: the public key, and an anchor the operator published (the last record
    // of the sealed day 11/11, from its segment's manifest).
    let (ok, text) = verify(&out, &key);
    assert!(ok, "{text}");
    assert!(text.contains("export intact"), "{text}");
    let signed = text
        .lines()
        .find_map(|l| l.strip_prefix("signed checkpoints: "))
        .and_then(|l| l.strip_suffix(" hold with the given public key"))
        .and_then(|l| l.split_once(" of "))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(signed.0 == signed.1 && signed.0 != "0", "{text}");
    assert!(!text.contains("anchors:"), "none given: {text}");
    assert!(!text.contains("agree with each other only"), "{text}");
    assert!(text.contains("24 of station outfall-1"), "{text}");
    let archive = dir.path().join("journal/archive");
    let m: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(archive.join("2026-11-11_000000000049.manifest.json")).unwrap(),
    )
    .unwrap();
    let anchor = format!("{}:{}", m["last_id"], m["last_hash"].as_str().unwrap());
    let (ok, text) = verify(&out, &["--anchor", &anchor]);
    assert!(ok && text.contains("anchors: 1 of 1 hold"), "{text}");
    // The export ends at the first signed statement at or after the station's last record in
    // the period: here the sealed day's segment, not the journal's head.
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["last_id"], m["last_id"]);
    // The period is [from, to): records arrive at hh:00:05 local; the one received exactly
    // at `from` is in it, the one exactly at `to` is not.
    let exact = dir.path().join("exact");
    let (ok, text) = export_period(
        &config,
        "outfall-1",
        "2026-11-11T05:00:05+07:00",
        "2026-11-11T08:00:05+07:00",
        &exact,
    );
    assert!(ok && text.contains("3 of station outfall-1"), "{text}");
    // Other stations' records in between are there in full (their hashes are recomputed).
    let records = std::fs::read_to_string(out.join("records.jsonl")).unwrap();
    assert!(records.contains("stack-1"));

    // Every edit fails against the key; those of the records against the anchor too (the
    // manifest's own words and the signatures are only checked with the key).
    let edited = |name: &str, records: bool, edit: &dyn Fn(&Path)| -> String {
        let copy = dir.path().join(name);
        copy_dir(&out, &copy);
        edit(&copy);
        let (ok, text) = verify(&copy, &key);
        assert!(!ok, "{name}: {text}");
        if records {
            let (ok, with_anchor) = verify(&copy, &["--anchor", &anchor]);
            assert!(!ok, "{name}: {with_anchor}");
        }
        text
    };
    // One value changed, the SHA-256 in the manifest updated.
    let text = edited("value", true, &|d| {
        edit_records(d, |mut l| {
            l[10] = l[10].replacen(r#"\"value\":"#, r#"\"value\":1"#, 1);
            l
        })
    });
    assert!(text.contains("was altered"), "{text}");
    // A byte changed, nothing else.
    let text = edited("byte", true, &|d| {
        let p = d.join("records.jsonl");
        let mut b = std::fs::read(&p).unwrap();
        let i = b.len() / 2;
        b[i] = if b[i] == b'4' { b'5' } else { b'4' };
        std::fs::write(&p, b).unwrap();
    });
    assert!(text.contains("SHA-256"), "{text}");
    // A record removed; two swapped.
    let text = edited("removed", true, &|d| {
        edit_records(d, |mut l| {
            l.remove(5);
            l
        })
    });
    assert!(text.contains("record 53 is missing"), "{text}");
    let text = edited("swapped", true, &|d| {
        edit_records(d, |mut l| {
            l.swap(3, 4);
            l
        })
    });
    assert!(text.contains("out of place"), "{text}");
    // The chain recomputed after an edit: it agrees with itself, not with the signatures.
    let copy = dir.path().join("recomputed");
    copy_dir(&out, &copy);
    recompute_after_edit(&copy);
    let (ok, text) = verify(&copy, &[]);
    assert!(ok, "self-consistent: {text}");
    assert!(text.contains("agree with each other only"), "{text}");
    assert!(
        !text.contains("signed checkpoints:"),
        "no key given: {text}"
    );
    let (ok, text) = verify(&copy, &key);
    assert!(!ok, "{text}");
    let (ok, text) = verify(&copy, &["--anchor", &anchor]);
    assert!(!ok && text.contains("does not hold"), "{text}");
    // The record before the period cut off and the manifest made to agree (checked without
    // the key, which would refuse the manifest anyway): the export no longer shows where the
    // period starts, and the verifier says so.
    let cut = dir.path().join("cut");
    copy_dir(&out, &cut);
    let records = std::fs::read_to_string(cut.join("records.jsonl")).unwrap();
    let first: serde_json::Value = serde_json::from_str(records.lines().next().unwrap()).unwrap();
    edit_records(&cut, |mut l| {
        l.remove(0);
        l
    });
    edit_manifest(&cut, |m| {
        m["first_id"] = (first["id"].as_u64().unwrap() + 1).into();
        m["prev_hash"] = first["hash"].clone();
        m["records"] = (m["records"].as_u64().unwrap() - 1).into();
    });
    let (ok, text) = verify(&cut, &[]);
    assert!(!ok && text.contains("after the period began"), "{text}");
    // The manifest's end changed alone (its last id, not its hash): it no longer matches the
    // records.
    let end = dir.path().join("end");
    copy_dir(&out, &end);
    edit_manifest(&end, |m| {
        m["last_id"] = (m["last_id"].as_u64().unwrap() - 1).into();
    });
    let (ok, text) = verify(&end, &[]);
    assert!(!ok && text.contains("the records end at record"), "{text}");
    // The manifest's count of the station's records changed alone.
    let count = dir.path().join("count");
    copy_dir(&out, &count);
    edit_manifest(&count, |m| {
        m["station_records"] = 25.into();
    });
    let (ok, text) = verify(&count, &[]);
    assert!(!ok && text.contains("the manifest counts"), "{text}");
    // A period starting before the chain's first record: nothing can be before it.
    let early = dir.path().join("early");
    let (ok, text) = export_period(&config, "outfall-1", "2026-11-09", "2026-11-11", &early);
    assert!(ok, "{text}");
    let (ok, text) = verify(&early, &key);
    assert!(ok, "{text}");
    // The manifest's station, or a signature, changed.
    let text = edited("station", false, &|d| {
        let p = d.join("manifest.json");
        let t = std::fs::read_to_string(&p).unwrap();
        std::fs::write(&p, t.replace("\"outfall-1\"", "\"stack-1\"")).unwrap();
    });
    assert!(text.contains("manifest"), "{text}");
    let text = edited("checkpoint", false, &|d| {
        let p = d.join("checkpoints.json");
        let t = std::fs::read_to_string(&p).unwrap();
        let i = t.find("\"signature\": \"").unwrap() + 14;
        let flipped = if &t[i..i + 1] == "0" { "1" } else { "0" };
        std::fs::write(&p, format!("{}{flipped}{}", &t[..i], &t[i + 1..])).unwrap();
    });
    assert!(text.contains("no valid signature"), "{text}");
}

/// Changes record 60's payload and recomputes every hash after it, the manifest's too.
fn recompute_after_edit(dir: &Path) {
    use quantrac::journal::archive::Line;
    let path = dir.join("records.jsonl");
    let mut lines: Vec<Line> = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut prev = None;
    for l in &mut lines {
        if l.id == 60 {
            let p = l
                .payload
                .clone()
                .unwrap()
                .replacen("\"value\":", "\"value\":9", 1);
            use base64::Engine as _;
            l.payload_base64 = base64::engine::general_purpose::STANDARD.encode(p.as_bytes());
            l.payload = Some(p);
        }
        if let Some(p) = prev {
            l.prev_hash = hex::encode(p);
        }
        let h = l
            .recompute(&quantrac::journal::archive::hash_hex(&l.prev_hash).unwrap())
            .unwrap();
        l.hash = hex::encode(h);
        prev = Some(h);
    }
    let text: Vec<String> = lines
        .iter()
        .map(|l| serde_json::to_string(l).unwrap())
        .collect();
    std::fs::write(&path, text.join("\n") + "\n").unwrap();
    let last = lines.last().unwrap().hash.clone();
    edit_records(dir, |l| l);
    edit_manifest(dir, |m| {
        m["last_hash"] = last.into();
    });
}

/// DuckDB, from PyPI in a virtualenv of the test's own, reads a sealed segment as it is.
#[test]
fn duckdb_reads_a_segment_and_counts_its_records() {
    let (dir, _config, _public) = signed_park();
    let segment = dir
        .path()
        .join("journal/archive/2026-11-11_000000000049.jsonl.gz");
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("duckdb-venv");
    let python = venv.join("bin/python");
    if !python.exists() {
        let py = program("python3", "python3");
        let out = Command::new(py)
            .args(["-m", "venv"])
            .arg(&venv)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "python3 -m venv (Debian package python3-venv): {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let have = Command::new(&python)
        .args(["-c", "import duckdb"])
        .status()
        .unwrap();
    if !have.success() {
        let out = Command::new(venv.join("bin/pip"))
            .args(["install", "-q", "duckdb"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pip install duckdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let query = |sql: String| -> String {
        let out = Command::new(&python)
            .args([
                "-c",
                &format!(
                    "import duckdb\nfor row in duckdb.connect().execute({sql:?}).fetchall(): \
                     print(*row)"
                ),
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let path = segment.display();
    assert_eq!(
        query(format!(
            "SELECT count(*), min(id), max(id), count(DISTINCT station) \
             FROM read_json_auto('{path}')"
        )),
        "48 49 96 2"
    );
    // The README's one-liner: the readings, as columns.
    assert_eq!(
        query(format!(
            "SELECT r.station, r.param, count(*), avg(r.value) FROM (SELECT unnest(readings) AS r \
             FROM read_json_auto('{path}')) GROUP BY ALL ORDER BY ALL"
        )),
        "outfall-1 COD 24 51.5\nstack-1 SO2 24 111.5"
    );
}
