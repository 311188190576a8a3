//! Issue #14: dataloggers that push Circular 10/2021 files over FTP. A real vsftpd receives
//! the files a datalogger uploads (Python's `ftplib`: a plain upload, and an upload to a
//! temporary name renamed when complete); quantrac takes them from the FTP user's folder.

use std::path::Path;
use std::time::Duration;

use chrono::Utc;

use quantrac_testkit::*;

use crate::QUANTRAC;

const OUTFALL_LABELS: &str = r#"park="nam-dinh-vu",site="nd-textile",station="outfall-1""#;

/// yyyyMMddHHmmss in Hải Phòng, a minute ago (the files' own time).
fn local_time() -> String {
    (Utc::now() - chrono::Duration::minutes(1))
        .with_timezone(&chrono_tz::Asia::Ho_Chi_Minh)
        .format("%Y%m%d%H%M%S")
        .to_string()
}

/// The outfall's file as an open-source datalogger writes it: four decimals, LF, no final
/// newline, an empty unit for pH, an empty value for the analyser in fault. COD 150 mg/L is
/// above the outfall's 135 (QCVN 40:2011 B × Kq 0.9).
fn outfall_file(t: &str) -> String {
    format!(
        "COD\t150.0000\tmg/L\t{t}\t00\npH\t7.1000\t\t{t}\t00\nTSS\t\tmg/L\t{t}\t02\nFlow\t35.0000\tm3/h\t{t}\t00"
    )
}

/// The stack's file, CRLF, with a decimal comma and Table 34's `PM2,5`.
fn stack_file(t: &str) -> String {
    format!("SO2\t120\tppm\t{t}\t00\r\nO2\t11\t%\t{t}\t00\r\nPM2,5\t25,5\tug/Nm3\t{t}\t00\r\n")
}

fn inbox_config(inbox: &Path, extra: &str) -> String {
    format!(
        "[inbox]\ndir = {:?}\nprovince = \"HP\"\npoll_ms = 100\nsettle_ms = 300\n{extra}",
        inbox.display().to_string()
    )
}

async fn metric_is(q: &Quantrac, sample: &str, want: f64) {
    eventually(
        &format!("{sample} = {want}"),
        Duration::from_secs(30),
        || async { (q.metric(sample).await == Some(want)).then_some(()) },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_pushed_over_ftp_get_the_same_verdicts_journal_and_rejections_as_mqtt() {
    let ftp_dir = tempfile::tempdir().unwrap();
    let inbox = ftp_dir.path().join("home");
    let ftp = Ftp::start(ftp_dir.path(), &inbox);
    let Stack {
        q,
        influx,
        broker: _broker,
        dir: _dir,
    } = Stack::start(QUANTRAC, &inbox_config(&inbox, "")).await;

    let t = local_time();
    let outfall = format!("HP_NDTEXTILE_outfall-1_{t}.txt");
    let stack = format!("HP_DVSTEEL_stack-1_{t}.txt");
    ftp.upload(&outfall, outfall_file(&t).as_bytes(), Upload::Plain);
    // A department's layout: station/yyyy/MM/dd.
    let stack_path = format!("stack-1/{}/{}/{}/{stack}", &t[..4], &t[4..6], &t[6..8]);
    ftp.upload(&stack_path, stack_file(&t).as_bytes(), Upload::ThenRename);
    let unknown = format!("HP_NDTEXTILE_NUO99_{t}.txt");
    ftp.upload(&unknown, outfall_file(&t).as_bytes(), Upload::ThenRename);
    ftp.upload("notes.txt", b"call the lab on Monday", Upload::Plain);

    metric_is(&q, r#"quantrac_inbox_files_total{outcome="done"}"#, 2.0).await;
    metric_is(&q, r#"quantrac_inbox_files_total{outcome="rejected"}"#, 2.0).await;
    let text = q.metrics().await;
    assert_eq!(
        parse_metric(&text, "quantrac_messages_received_total"),
        Some(4.0)
    );
    assert_eq!(
        parse_metric(&text, "quantrac_readings_accepted_total"),
        Some(7.0)
    );
    assert_eq!(
        parse_metric(&text, r#"quantrac_readings_rejected_total{reason="topic"}"#),
        Some(2.0)
    );

    // The files left the inbox for done/ (keeping their folders) and rejected/.
    assert!(inbox.join("done").join(&outfall).is_file());
    assert!(inbox.join("done").join(&stack_path).is_file());
    assert!(inbox.join("rejected").join(&unknown).is_file());
    assert!(inbox.join("rejected/notes.txt").is_file());
    assert!(!inbox.join(&outfall).exists() && !inbox.join(&stack_path).exists());

    // Readings in InfluxDB with their verdicts; the fault has a status and no value.
    let rows = eventually(
        "7 readings in InfluxDB",
        Duration::from_secs(20),
        || async {
            let r = influx.rows("SELECT * FROM reading").await;
            (r.len() == 7).then_some(r)
        },
    )
    .await;
    let find = |param: &str| {
        rows.iter()
            .find(|r| r["param"] == param)
            .unwrap_or_else(|| panic!("{param} in {rows:?}"))
    };
    let cod = find("COD");
    assert_eq!(cod["value"], 150.0);
    assert_eq!(cod["limit_max"], 135.0);
    assert_eq!(cod["exceeded"], true);
    let tss = find("TSS");
    assert_eq!(tss["status"], "02");
    assert!(tss["value"].is_null(), "{tss:?}");
    assert_eq!(tss["exceeded"], false);
    assert_eq!(find("pH")["unit"], "");
    let so2 = find("SO2");
    assert_eq!(so2["station"], "stack-1");
    assert_eq!(
        so2["exceeded"], true,
        "O2-corrected above the permit's 300: {so2:?}"
    );
    let pm = find("PM2.5")["value"].as_f64().unwrap();
    assert!(
        (pm - 0.0255).abs() < 1e-12,
        "25,5 µg/Nm3 is 0.0255 mg/Nm3: {pm}"
    );

    // The analyser in fault shows: the station's state is fault.
    metric_is(
        &q,
        &format!("quantrac_station_state{{{OUTFALL_LABELS},state=\"fault\"}}"),
        1.0,
    )
    .await;
    metric_is(
        &q,
        &format!("quantrac_exceedance{{{OUTFALL_LABELS},param=\"COD\",window=\"instant\"}}"),
        1.0,
    )
    .await;

    // Every file is in the journal as evidence; the unmatched ones as dead letters.
    let (ok, out) = q.command(&["dead-letters", "list"]);
    assert!(ok, "{out}");
    assert!(out.contains(&format!("$inbox/{unknown}")), "{out}");
    assert!(out.contains("$inbox/notes.txt"), "{out}");
    assert!(out.contains("no station has uplink_code"), "{out}");
    assert!(
        out.contains("call the lab on Monday"),
        "raw bytes as received: {out}"
    );
    let (ok, out) = q.command(&["verify"]);
    assert!(ok, "{out}");

    // The operator gives the unknown code to its station; a replay takes the file's readings.
    let mut q = q;
    q.proc.sigterm(Duration::from_secs(30)).expect("stops");
    let stations = q.dir.join("stations.toml");
    let text = std::fs::read_to_string(&stations).unwrap().replacen(
        "kind = \"wastewater\"",
        "kind = \"wastewater\"\nuplink_code = \"NUO99\"",
        1,
    );
    std::fs::write(&stations, text).unwrap();
    let (ok, out) = q.command(&["dead-letters", "replay"]);
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!(
            "$inbox/{unknown}: 4 readings accepted, 0 still rejected"
        )),
        "{out}"
    );
    assert!(
        out.contains("$inbox/notes.txt: 0 readings accepted"),
        "{out}"
    );
}

/// Messages the journal holds for inbox files.
fn journaled_files(journal: &Path) -> i64 {
    let conn = rusqlite::Connection::open_with_flags(
        journal.join("journal.sqlite"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    conn.query_row(
        "SELECT count(*) FROM messages WHERE topic LIKE '$inbox/%'",
        [],
        |r| r.get(0),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_between_the_upload_and_the_move_loses_and_duplicates_nothing() {
    let ftp_dir = tempfile::tempdir().unwrap();
    let inbox = ftp_dir.path().join("home");
    let ftp = Ftp::start(ftp_dir.path(), &inbox);
    // done_dir cannot be made (its parent is a file): a journaled file stays in the inbox,
    // which holds quantrac exactly between the commit and the move when it is killed.
    let blocked = ftp_dir.path().join("blocked");
    std::fs::write(&blocked, "not a folder").unwrap();
    let done_line = format!(
        "done_dir = {:?}\n",
        blocked.join("done").display().to_string()
    );
    let Stack {
        mut q,
        influx,
        broker: _broker,
        dir,
    } = Stack::start(QUANTRAC, &inbox_config(&inbox, &done_line)).await;

    let t = local_time();
    let first = format!("HP_NDTEXTILE_outfall-1_{t}.txt");
    ftp.upload(&first, outfall_file(&t).as_bytes(), Upload::ThenRename);
    q.proc.wait_for_log("cannot move", Duration::from_secs(30));
    eventually(
        "the first file's readings in InfluxDB",
        Duration::from_secs(20),
        || async { (influx.count("SELECT count(*) FROM reading").await > 0).then_some(()) },
    )
    .await;
    assert!(inbox.join(&first).exists(), "journaled, not moved");
    assert!(!q.ready().await, "/readyz says the inbox cannot move files");

    q.proc.kill9();
    // A second file arrives while quantrac is down: uploaded, not journaled.
    let t2 = (Utc::now() - chrono::Duration::seconds(30))
        .with_timezone(&chrono_tz::Asia::Ho_Chi_Minh)
        .format("%Y%m%d%H%M%S")
        .to_string();
    let second = format!("HP_NDTEXTILE_outfall-1_{t2}.txt");
    ftp.upload(&second, outfall_file(&t2).as_bytes(), Upload::Plain);
    let journal = dir.path().join("journal");
    assert_eq!(journaled_files(&journal), 1);

    // The operator fixes done_dir and quantrac starts again.
    let config = std::fs::read_to_string(&q.config)
        .unwrap()
        .replace(&done_line, "");
    std::fs::write(&q.config, config).unwrap();
    q.restart();
    q.wait_ready().await;

    eventually(
        "both files moved to done/",
        Duration::from_secs(30),
        || async {
            (inbox.join("done").join(&first).is_file()
                && inbox.join("done").join(&second).is_file())
            .then_some(())
        },
    )
    .await;
    assert_eq!(journaled_files(&journal), 2, "each file recorded once");
    assert_eq!(
        q.metric("quantrac_journal_duplicates_total").await,
        Some(1.0),
        "the first file, taken again, was recognised"
    );
    let rows = eventually(
        "8 readings in InfluxDB",
        Duration::from_secs(20),
        || async {
            let n = influx.count("SELECT count(status) FROM reading").await;
            (n == 8).then_some(n)
        },
    )
    .await;
    assert_eq!(rows, 8);
    assert_eq!(
        std::fs::read_dir(&inbox)
            .unwrap()
            .filter(|e| e.as_ref().unwrap().path().is_file())
            .count(),
        0,
        "nothing left in the inbox"
    );
    let (ok, out) = q.command(&["verify"]);
    assert!(ok, "{out}");
}
