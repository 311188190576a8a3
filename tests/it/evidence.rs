//! Issue "Hostile world", rows 8 and 10: `verify` works on a read-only copy, and a chain
//! recomputed by someone holding the file is caught by published anchors and by signed
//! checkpoints; a chain base moved by hand contradicts the retention period.

use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use chrono::Utc;
use rusqlite::Connection;

use quantrac::journal::chain::{record_hash, RecordRef, RejectionRow};
use quantrac_testkit::*;

use crate::QUANTRAC;

const OUTFALL: &str = "env/nam-dinh-vu/nd-textile/outfall-1";

/// A journal the real service wrote and closed, and what its operator published.
struct Published {
    dir: tempfile::TempDir,
    /// The journal folder.
    journal: PathBuf,
    /// The public key file, when the service signed checkpoints.
    public_key: Option<PathBuf>,
    /// `ID:HASH` anchors, from the `quantrac_journal_chain_head` metric, in order.
    anchors: Vec<String>,
    /// The last record: the messages published, and the state quantrac journals itself
    /// (`$quantrac/…` records).
    last: i64,
}

/// The chain head the metric shows: `(record id, hash)`.
fn chain_head(metrics: &str) -> Option<(u64, String)> {
    let line = metrics
        .lines()
        .find(|l| l.starts_with("quantrac_journal_chain_head{"))?;
    let hash = line.split("hash=\"").nth(1)?.split('"').next()?.to_string();
    let id = line.rsplit(' ').next()?.parse::<f64>().ok()? as u64;
    Some((id, hash))
}

/// Runs quantrac (no InfluxDB; with a signing key made by `quantrac keygen` when `signed`),
/// publishes `bursts` of messages, publishes the chain head after each as an operator would,
/// and stops it cleanly.
async fn publish_journal(bursts: &[u64], signed: bool) -> Published {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path());
    let mut journal_extra = String::new();
    let mut public_key = None;
    if signed {
        let key = dir.path().join("signing.pem");
        let (ok, out) = run_quantrac(&["keygen", "--out", key.to_str().unwrap()]);
        assert!(ok && out.contains("public key"), "{out}");
        assert_eq!(std::fs::metadata(&key).unwrap().mode() & 0o777, 0o600);
        journal_extra = format!(
            "[journal]\nsigning_key_file = \"{}\"\ncheckpoint_interval_s = 1\n",
            key.display()
        );
        public_key = Some(dir.path().join("signing.pem.pub"));
    }
    let cfg = Quantrac::config_text(dir.path(), &broker.url(), "url = \"\"", &journal_extra);
    let mut q = Quantrac::start(QUANTRAC, dir.path(), &cfg, STATIONS);
    q.wait_ready().await;
    let p = Publisher::connect(broker.port).await;
    let base = Utc::now() - chrono::Duration::hours(1);
    let mut sent = 0;
    let mut anchors = Vec::new();
    for &n in bursts {
        for i in sent..sent + n {
            let ts = (base + chrono::Duration::seconds(i as i64))
                .format("%Y-%m-%dT%H:%M:%SZ")
                .to_string();
            let m = json_message(&ts, &[("COD", 40.0 + (i % 7) as f64, "mg/L")]);
            p.publish(OUTFALL, m).await;
        }
        sent += n;
        p.wait_acked(sent).await;
        let (id, hash) = eventually(
            &format!("record {sent} journaled"),
            Duration::from_secs(20),
            || async { chain_head(&q.metrics().await).filter(|(id, _)| *id >= sent) },
        )
        .await;
        anchors.push(format!("{id}:{hash}"));
        // Long enough for a periodic checkpoint between bursts.
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
    assert!(q.proc.sigterm(Duration::from_secs(20)).unwrap().success());
    let journal = dir.path().join("journal");
    let last = db(&journal)
        .query_row("SELECT max(id) FROM messages", [], |r| r.get(0))
        .unwrap();
    Published {
        journal,
        dir,
        public_key,
        anchors,
        last,
    }
}

/// `quantrac ARGS` without a configuration file; (exit ok, stdout + stderr).
fn run_quantrac(args: &[&str]) -> (bool, String) {
    output(Command::new(QUANTRAC).args(args))
}

fn output(cmd: &mut Command) -> (bool, String) {
    let out = cmd.output().expect("running quantrac");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// `quantrac verify --journal DIR` with `extra` arguments.
fn verify(journal: &Path, extra: &[&str]) -> (bool, String) {
    let mut args = vec!["verify", "--journal", journal.to_str().unwrap()];
    args.extend_from_slice(extra);
    run_quantrac(&args)
}

/// A copy of the journal database alone (as handed over), in a new folder `name`.
fn copy_of(p: &Published, name: &str) -> PathBuf {
    let copy = p.dir.path().join(name);
    std::fs::create_dir_all(&copy).unwrap();
    std::fs::copy(
        p.journal.join("journal.sqlite"),
        copy.join("journal.sqlite"),
    )
    .unwrap();
    copy
}

fn db(dir: &Path) -> Connection {
    Connection::open(dir.join("journal.sqlite")).unwrap()
}

fn hash_of(db: &Connection, id: i64) -> Vec<u8> {
    db.query_row("SELECT hash FROM messages WHERE id = ?1", [id], |r| {
        r.get(0)
    })
    .unwrap()
}

/// What someone holding the file can do with the chain's public description: delete record
/// `victim`, renumber the ones after it, recompute every hash from there and record the new
/// head, so that the chain agrees with itself again.
fn delete_and_recompute(dir: &Path, victim: i64) {
    let db = db(dir);
    db.execute_batch(&format!(
        "DELETE FROM points WHERE msg_id = {victim};
         DELETE FROM rejections WHERE msg_id = {victim};
         DELETE FROM messages WHERE id = {victim};
         UPDATE messages SET id = -(id - 1) WHERE id > {victim};
         UPDATE messages SET id = -id WHERE id < 0;
         UPDATE points SET msg_id = msg_id - 1 WHERE msg_id > {victim};
         UPDATE rejections SET msg_id = -(msg_id - 1) WHERE msg_id > {victim};
         UPDATE rejections SET msg_id = -msg_id WHERE msg_id < 0;"
    ))
    .unwrap();
    let mut prev: [u8; 32] = hash_of(&db, victim - 1).try_into().unwrap();
    let last: i64 = db
        .query_row("SELECT max(id) FROM messages", [], |r| r.get(0))
        .unwrap();
    for id in victim..=last {
        let (received_at_ms, topic, payload, station): (i64, String, Vec<u8>, Option<String>) = db
            .query_row(
                "SELECT received_at_ms, topic, payload, station FROM messages WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .unwrap();
        let rejections: Vec<RejectionRow> = db
            .prepare("SELECT seq, reading, reason, detail FROM rejections WHERE msg_id = ?1 ORDER BY seq")
            .unwrap()
            .query_map([id], |r| {
                Ok(RejectionRow {
                    seq: r.get::<_, i64>(0)? as u64,
                    reading: r.get::<_, Option<i64>>(1)?.map(|i| i as u64),
                    reason: r.get(2)?,
                    detail: r.get(3)?,
                })
            })
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let points: Vec<(u64, String)> = db
            .prepare("SELECT id, line FROM points WHERE msg_id = ?1 ORDER BY id")
            .unwrap()
            .query_map([id], |r| Ok((r.get::<_, i64>(0)? as u64, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let record = RecordRef {
            id: id as u64,
            received_at_ms,
            topic: &topic,
            payload: &payload,
            station: station.as_deref(),
        };
        prev = record_hash(&prev, record, &rejections, &points);
        db.execute(
            "UPDATE messages SET hash = ?2 WHERE id = ?1",
            (id, &prev[..]),
        )
        .unwrap();
    }
    db.execute(
        "UPDATE meta SET value = ?1 WHERE key = 'chain_head_id'",
        [last],
    )
    .unwrap();
    db.execute(
        "UPDATE meta SET value = ?1 WHERE key = 'chain_head_hash'",
        [&prev[..]],
    )
    .unwrap();
}

/// Runs `cmd` as an unprivileged user when the tests run as root, since permission bits do not
/// stop root; `bin_dir`: a folder that user can reach, for a copy of the binary.
fn unprivileged(bin_dir: &Path, args: &[&str]) -> Command {
    let root = std::fs::metadata(bin_dir).unwrap().uid() == 0;
    if !root {
        let mut cmd = Command::new(QUANTRAC);
        cmd.args(args);
        return cmd;
    }
    // The build folder may be out of that user's reach: then run a copy from one it can read.
    let reachable = Command::new(QUANTRAC)
        .arg("--version")
        .uid(65534)
        .gid(65534)
        .output()
        .is_ok_and(|o| o.status.success());
    let bin = if reachable {
        PathBuf::from(QUANTRAC)
    } else {
        let bin = bin_dir.join("quantrac");
        if !bin.exists() {
            std::fs::copy(QUANTRAC, &bin).unwrap();
        }
        bin
    };
    let mut cmd = Command::new(bin);
    cmd.args(args).uid(65534).gid(65534);
    cmd
}

fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn listing(dir: &Path) -> Vec<(String, u64)> {
    let mut all: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                e.metadata().unwrap().len(),
            )
        })
        .collect();
    all.sort();
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_8_a_read_only_copy_of_a_closed_journal_verifies() {
    let p = publish_journal(&[40], false).await;
    let names: Vec<_> = listing(&p.journal).into_iter().map(|f| f.0).collect();
    assert!(
        !names
            .iter()
            .any(|n| n.ends_with("-wal") || n.ends_with("-shm")),
        "a cleanly closed journal has no write-ahead log: {names:?}"
    );
    // The copy a regulator is handed: the database file alone, nothing writable, read by a
    // user that owns none of it.
    set_mode(p.dir.path(), 0o755);
    let copy = copy_of(&p, "handed-over");
    set_mode(&copy.join("journal.sqlite"), 0o444);
    set_mode(&copy, 0o555);
    let before = listing(&copy);
    let copy_arg = copy.to_str().unwrap();
    let (ok, out) = output(&mut unprivileged(
        p.dir.path(),
        &["verify", "--journal", copy_arg],
    ));
    assert!(ok, "{out}");
    assert!(
        out.starts_with(&format!("journal intact: {} records", p.last)),
        "{out}"
    );
    assert!(!out.contains("unable to open"), "{out}");
    assert_eq!(listing(&copy), before, "verify created or changed nothing");
    // The dead-letter listing opens it the same way.
    let cfg = p.dir.path().join("copy.toml");
    std::fs::write(&cfg, format!("[journal]\npath = {copy_arg:?}\n")).unwrap();
    set_mode(&cfg, 0o644);
    let (ok, out) = output(&mut unprivileged(
        p.dir.path(),
        &["dead-letters", "list", "--config", cfg.to_str().unwrap()],
    ));
    assert!(ok && out.contains("no dead letters"), "{out}");
    assert_eq!(listing(&copy), before);

    // The published anchor holds on the copy too.
    let (ok, out) = output(&mut unprivileged(
        p.dir.path(),
        &["verify", "--journal", copy_arg, "--anchor", &p.anchors[0]],
    ));
    assert!(ok && out.contains("anchors: 1 of 1 hold"), "{out}");
    set_mode(&copy, 0o755);
}

/// A copy taken while quantrac was writing has a write-ahead log. Without its `-shm` index
/// and in a folder where SQLite cannot make one, an empty log is harmless (the file alone is
/// the journal), but a log holding commits cannot be read: `verify` says what to copy instead
/// of reporting a corrupt journal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_8_a_read_only_copy_with_a_write_ahead_log_verifies_or_says_what_is_missing() {
    let p = publish_journal(&[40], false).await;
    set_mode(p.dir.path(), 0o755);
    let hand_over = |name: &str, wal: Option<&Path>| {
        let copy = copy_of(&p, name);
        let wal_copy = copy.join("journal.sqlite-wal");
        match wal {
            Some(from) => std::fs::copy(from, &wal_copy).map(|_| ()).unwrap(),
            None => std::fs::write(&wal_copy, b"").unwrap(),
        }
        set_mode(&copy.join("journal.sqlite"), 0o444);
        set_mode(&wal_copy, 0o444);
        set_mode(&copy, 0o555);
        copy
    };

    // An empty log, no index: verifies, and nothing is created.
    let empty = hand_over("empty-wal", None);
    let before = listing(&empty);
    let (ok, out) = output(&mut unprivileged(
        p.dir.path(),
        &["verify", "--journal", empty.to_str().unwrap()],
    ));
    assert!(ok && out.starts_with("journal intact"), "{out}");
    assert_eq!(listing(&empty), before);

    // A log that holds commits (a writer that changes no record, left open as a running
    // quantrac would be), copied without its index.
    let live = copy_of(&p, "live");
    let writer = db(&live);
    writer.pragma_update(None, "journal_mode", "WAL").unwrap();
    writer.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
    writer
        .execute_batch("CREATE TABLE scratch(a); DROP TABLE scratch;")
        .unwrap();
    let wal = live.join("journal.sqlite-wal");
    assert!(std::fs::metadata(&wal).unwrap().len() > 0);
    let held = hand_over("held-wal", Some(&wal));
    let before = listing(&held);
    let (ok, out) = output(&mut unprivileged(
        p.dir.path(),
        &["verify", "--journal", held.to_str().unwrap()],
    ));
    assert!(!ok, "{out}");
    assert!(
        out.contains("-shm index file") && out.contains("copy the journal with its -wal and -shm"),
        "{out}"
    );
    assert_eq!(listing(&held), before, "verify created or changed nothing");
    drop(writer);
    set_mode(&empty, 0o755);
    set_mode(&held, 0o755);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_10_a_chain_recomputed_after_deleting_record_500_is_caught_by_anchor_and_signature() {
    let p = publish_journal(&[300, 300], true).await;
    let public_key = p.public_key.clone().unwrap();
    let key_arg = public_key.to_str().unwrap();
    let (ok, out) = verify(
        &p.journal,
        &["--public-key", key_arg, "--anchor", &p.anchors[1]],
    );
    assert!(ok, "{out}");
    let n = p.last;
    assert!(
        out.contains(&format!("journal intact: {n} records")),
        "{out}"
    );
    assert!(
        out.contains(&format!("covers records up to {n}")),
        "the shutdown checkpoint: {out}"
    );

    // The forger also deletes the checkpoints that would name the change.
    let forged = copy_of(&p, "forged");
    delete_and_recompute(&forged, 500);
    db(&forged)
        .execute("DELETE FROM checkpoints WHERE head_id >= 500", [])
        .unwrap();
    let (ok, out) = verify(&forged, &[]);
    assert!(ok, "the recomputed chain agrees with itself: {out}");
    assert!(
        out.contains(&format!("journal intact: {} records", n - 1)),
        "{out}"
    );

    let (ok, out) = verify(&forged, &["--anchor", &p.anchors[1]]);
    assert!(!ok, "{out}");
    assert!(
        out.contains(&format!("anchor {} does not hold", p.anchors[1])),
        "{out}"
    );
    let (ok, out) = verify(&forged, &["--public-key", key_arg]);
    assert!(!ok, "{out}");
    assert!(
        out.contains(&format!(
            "to {} are not covered by a signed checkpoint",
            n - 1
        )),
        "{out}"
    );

    // Checkpoints left in place name themselves, signed or not.
    let careless = copy_of(&p, "careless");
    delete_and_recompute(&careless, 500);
    let (ok, out) = verify(&careless, &["--public-key", key_arg]);
    assert!(!ok, "{out}");
    assert!(
        out.contains(&format!("signed record {n} as the chain head"))
            && out.contains(&format!("chain ends at record {}", n - 1)),
        "{out}"
    );
    // A recomputed chain with a forged signature: the signature does not hold.
    db(&careless)
        .execute(
            "UPDATE checkpoints SET head_id = ?1 - 1,
               head_hash = (SELECT hash FROM messages WHERE id = ?1 - 1) WHERE head_id = ?1",
            [n],
        )
        .unwrap();
    let (ok, out) = verify(&careless, &["--public-key", key_arg]);
    assert!(!ok && out.contains("has no valid signature"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_10_deleting_the_last_10_records_and_rewriting_the_head_is_caught() {
    let p = publish_journal(&[300, 300], true).await;
    let key_arg = p.public_key.as_ref().unwrap().to_str().unwrap().to_string();
    let (n, keep) = (p.last, p.last - 10);
    let cut = copy_of(&p, "cut");
    let cut_tail = |extra: &str| {
        db(&cut)
            .execute_batch(&format!(
                "DELETE FROM points WHERE msg_id > {keep}; DELETE FROM messages WHERE id > {keep};
                 UPDATE meta SET value = {keep} WHERE key = 'chain_head_id';
                 UPDATE meta SET value = (SELECT hash FROM messages WHERE id = {keep})
                   WHERE key = 'chain_head_hash'; {extra}"
            ))
            .unwrap()
    };
    cut_tail("");
    // The checkpoint written at shutdown says where the chain ended, even unchecked.
    let (ok, out) = verify(&cut, &[]);
    assert!(!ok, "{out}");
    assert!(
        out.contains(&format!("signed record {n} as the chain head")),
        "{out}"
    );

    // With the checkpoints covering the tail deleted too, the file alone no longer shows it.
    cut_tail(&format!("DELETE FROM checkpoints WHERE head_id > {keep};"));
    let (ok, out) = verify(&cut, &[]);
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!("journal intact: {keep} records")),
        "{out}"
    );
    let (ok, out) = verify(&cut, &["--anchor", &p.anchors[1]]);
    assert!(
        !ok && out.contains(&format!("its chain ends at record {keep}")),
        "{out}"
    );
    let (ok, out) = verify(&cut, &["--public-key", &key_arg]);
    assert!(!ok, "{out}");
    assert!(
        out.contains(&format!("to {keep} are not covered by a signed checkpoint")),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_10_moving_the_base_past_minutes_old_records_contradicts_the_retention() {
    let p = publish_journal(&[150], true).await;
    let key_arg = p.public_key.as_ref().unwrap().to_str().unwrap().to_string();
    let moved = copy_of(&p, "moved");
    let db = db(&moved);
    let h100 = hex::encode(hash_of(&db, 100));
    db.execute_batch(&format!(
        "DELETE FROM points WHERE msg_id <= 100; DELETE FROM messages WHERE id <= 100;
         UPDATE meta SET value = 100 WHERE key = 'chain_base_id';
         UPDATE meta SET value = X'{h100}' WHERE key = 'chain_base_hash';"
    ))
    .unwrap();
    let (ok, out) = verify(&moved, &[]);
    assert!(!ok, "{out}");
    assert!(
        out.contains("records up to 100 were deleted, but the journal recorded no pruning"),
        "{out}"
    );
    assert!(
        !out.contains("deleted after their retention period"),
        "{out}"
    );

    // Pruning times forged as well: the journal's own record says "60 days", the signature
    // does not.
    let now = Utc::now().timestamp_millis();
    db.execute_batch(&format!(
        "UPDATE meta SET value = {} WHERE key = 'chain_base_received_at_ms';
         UPDATE meta SET value = {now} WHERE key = 'chain_base_pruned_at_ms';",
        now - 61 * 86_400_000
    ))
    .unwrap();
    let (ok, out) = verify(&moved, &["--public-key", &key_arg]);
    assert!(!ok, "{out}");
    assert!(
        out.contains("the base was moved without a signed pruning"),
        "{out}"
    );
    // Times that give themselves away, against a regulator's retention period.
    db.execute(
        "UPDATE meta SET value = ?1 WHERE key = 'chain_base_received_at_ms'",
        [now - 600_000],
    )
    .unwrap();
    let (ok, out) = verify(&moved, &["--retention-days", "60"]);
    assert!(!ok, "{out}");
    assert!(
        out.contains("before their retention period of 60 days"),
        "{out}"
    );
}
