//! The running service seals before it prunes: a journal holding days past the retention, the
//! service started with `archive_dir` and a signing key, and the old days end up as signed
//! segments in that folder while the journal keeps only what is young; `verify` and `report`
//! read the two as one.

use std::time::Duration;

use chrono::TimeZone;

use quantrac::journal::{Entry, Journal};
use quantrac_testkit::*;

use crate::QUANTRAC;

const OUTFALL: &str = "env/nam-dinh-vu/nd-textile/outfall-1";

#[tokio::test]
async fn the_service_seals_old_days_into_the_configured_archive_before_pruning_them() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path());
    let key = dir.path().join("signing.pem");
    let keygen = std::process::Command::new(QUANTRAC)
        .args(["keygen", "--out", key.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(keygen.status.success());
    let sealed = dir.path().join("sealed");
    let cfg = Quantrac::config_text(
        dir.path(),
        &broker.url(),
        "url = \"\"",
        &format!(
            "[journal]\nretention_days = 1\narchive_dir = \"{}\"\nsigning_key_file = \"{}\"\n",
            sealed.display(),
            key.display()
        ),
    );
    // Four readings received five and three days ago (two local days), one an hour ago.
    let tz = chrono_tz::Asia::Ho_Chi_Minh;
    let now = chrono::Utc::now();
    let today = now.with_timezone(&tz).date_naive();
    let at = |days_ago: u64, h: u32| {
        tz.from_local_datetime(
            &(today - chrono::Days::new(days_ago))
                .and_hms_opt(h, 0, 0)
                .unwrap(),
        )
        .unwrap()
        .timestamp_millis()
    };
    let times = [
        at(5, 9),
        at(5, 10),
        at(3, 9),
        at(3, 10),
        now.timestamp_millis() - 3_600_000,
    ];
    let mut j = Journal::open(&dir.path().join("journal"), true).unwrap();
    for t in times {
        let ts = chrono::DateTime::from_timestamp_millis(t)
            .unwrap()
            .to_rfc3339();
        let p = json_message(&ts, &[("COD", 50.0, "mg/L")]);
        j.append(&[Entry {
            received_at_ms: t,
            topic: OUTFALL,
            payload: p.as_bytes(),
            station: Some("nam-dinh-vu/nd-textile/outfall-1".into()),
            rejections: &[],
            points: vec![],
            once: false,
        }])
        .unwrap();
    }
    drop(j);

    let mut q = Quantrac::start(QUANTRAC, dir.path(), &cfg, STATIONS);
    q.wait_ready().await;
    let segments = eventually("two days sealed", Duration::from_secs(20), || async {
        let names: Vec<String> = std::fs::read_dir(&sealed)
            .ok()?
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".jsonl.gz"))
            .collect();
        (names.len() == 2).then_some(names)
    })
    .await;
    assert!(
        segments.iter().any(|n| n.starts_with(&format!(
            "{}_000000000001",
            (today - chrono::Days::new(5)).format("%Y-%m-%d")
        ))),
        "{segments:?}"
    );
    q.proc.wait_for_log(
        "journal days sealed into the archive",
        Duration::from_secs(10),
    );
    q.proc.sigterm(Duration::from_secs(30));

    // The journal kept the young record only; verify walks both, signatures included.
    let public = format!("{}.pub", key.display());
    let (ok, out) = q.command(&["verify", "--public-key", &public]);
    assert!(ok, "{out}");
    assert!(out.contains("records up to 4 were deleted"), "{out}");
    assert!(
        out.contains("archive intact: 2 segments, 4 records (1 to 4)"),
        "{out}"
    );
    assert!(out.contains("2 of 2 segments signed"), "{out}");
    // The report counts the sealed readings and the young one.
    let from = (today - chrono::Days::new(6))
        .format("%Y-%m-%d")
        .to_string();
    let to = (today + chrono::Days::new(1))
        .format("%Y-%m-%d")
        .to_string();
    let (ok, out) = q.command(&[
        "report",
        "--from",
        &from,
        "--to",
        &to,
        "--station",
        "outfall-1",
    ]);
    assert!(ok, "{out}");
    let cod = out
        .lines()
        .find(|l| l.contains(",COD,"))
        .unwrap_or_default();
    let cells: Vec<&str> = cod.split(',').collect();
    assert_eq!(cells.get(8), Some(&"5"), "received: {out}");

    // A regulator's copies, each with one thing done to the archive: verify names it.
    let copy = |name: &str| {
        let to = dir.path().join(name);
        std::fs::create_dir_all(to.join("archive")).unwrap();
        for f in std::fs::read_dir(dir.path().join("journal")).unwrap() {
            let f = f.unwrap();
            if f.path().is_file() {
                std::fs::copy(f.path(), to.join(f.file_name())).unwrap();
            }
        }
        for f in std::fs::read_dir(&sealed).unwrap() {
            let f = f.unwrap();
            std::fs::copy(f.path(), to.join("archive").join(f.file_name())).unwrap();
        }
        to
    };
    let verify = |journal: &std::path::Path| {
        let out = std::process::Command::new(QUANTRAC)
            .args(["verify", "--journal"])
            .arg(journal)
            .args(["--retention-days", "1"])
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let mut names = segments.clone();
    names.sort();
    let first = names[0].trim_end_matches(".jsonl.gz").to_string();
    let second = names[1].trim_end_matches(".jsonl.gz").to_string();
    let (ok, out) = verify(&copy("intact"));
    assert!(ok, "{out}");
    // One byte.
    let c = copy("byte");
    let seg = c.join("archive").join(&names[1]);
    let mut bytes = std::fs::read(&seg).unwrap();
    let i = bytes.len() / 2;
    bytes[i] ^= 0x01;
    std::fs::write(&seg, bytes).unwrap();
    let (ok, out) = verify(&c);
    assert!(
        !ok && out.contains(&format!("segment {second} was altered")),
        "{out}"
    );
    // Removed: the first segment.
    let c = copy("removed");
    std::fs::remove_file(c.join("archive").join(&names[0])).unwrap();
    std::fs::remove_file(c.join("archive").join(format!("{first}.manifest.json"))).unwrap();
    let (ok, out) = verify(&c);
    assert!(
        !ok && out.contains(&format!(
            "records 1 to 2 are in no segment: a segment is missing before segment {second}"
        )),
        "{out}"
    );
    // Swapped.
    let c = copy("swapped");
    let (a, b) = (
        c.join("archive").join(&names[0]),
        c.join("archive").join(&names[1]),
    );
    let t = c.join("archive").join("t");
    std::fs::rename(&a, &t).unwrap();
    std::fs::rename(&b, &a).unwrap();
    std::fs::rename(&t, &b).unwrap();
    let (ok, out) = verify(&c);
    assert!(
        !ok && out.contains(&format!("segments {first} and {second} were reordered")),
        "{out}"
    );
}
