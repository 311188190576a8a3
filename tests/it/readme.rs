//! The README's shell blocks, run as written.
//!
//! Every ```` ```sh ```` block of the README is preceded by `<!-- test: NAME -->` (run here) or
//! `<!-- not run: why -->` (it installs software, needs Docker, or stands for values of the
//! reader's own). The blocks run in bash with `set -euo pipefail`, so a command that fails, or
//! a `grep` that finds nothing, fails the test: a reader would have been stuck there too.
//!
//! Each test runs its blocks in a network and PID namespace of its own (`unshare`): ports 1883,
//! 8086, 9787 and 9091 are free there whatever else runs on the machine, so the commands keep the
//! ports the README gives them, and every process started inside ends with the namespace. The
//! working folder is a fresh one holding copies of `config/` and `deploy/prometheus/`, as the
//! repository's top folder would; `quantrac` is the binary these tests were built with. For
//! the own-broker blocks, mosquitto and InfluxDB 1.x are started first, as Debian's packages
//! would start them (the step the README leaves to `apt-get install`).

use std::path::{Path, PathBuf};
use std::process::Command;

use quantrac_testkit::program;

use crate::QUANTRAC;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `(tag, body)` of every `sh` block, the tag being the comment line before it.
fn shell_blocks() -> Vec<(String, String)> {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let mut blocks = Vec::new();
    let mut previous = "";
    let mut lines = readme.lines();
    while let Some(line) = lines.next() {
        if line.trim_start().starts_with("```sh") {
            let body: Vec<&str> = lines.by_ref().take_while(|l| l.trim() != "```").collect();
            blocks.push((previous.trim().to_owned(), body.join("\n") + "\n"));
        }
        if !line.trim().is_empty() {
            previous = line;
        }
    }
    blocks
}

/// The body of the block tagged `<!-- test: name -->`.
fn block(name: &str) -> String {
    let tag = format!("<!-- test: {name} -->");
    let found: Vec<String> = shell_blocks()
        .into_iter()
        .filter(|(t, _)| *t == tag)
        .map(|(_, b)| b)
        .collect();
    assert_eq!(found.len(), 1, "README blocks tagged {tag}");
    found.into_iter().next().unwrap()
}

#[test]
fn every_shell_block_of_the_readme_is_run_or_says_why_not() {
    let blocks = shell_blocks();
    assert!(blocks.len() >= 8, "{} blocks", blocks.len());
    let mut names = Vec::new();
    for (tag, body) in &blocks {
        if let Some(name) = tag
            .strip_prefix("<!-- test: ")
            .and_then(|t| t.strip_suffix(" -->"))
        {
            names.push(name.to_owned());
        } else {
            assert!(
                tag.starts_with("<!-- not run: ") && tag.ends_with(" -->"),
                "a README shell block is neither run by the tests nor says why not:\n{body}"
            );
        }
    }
    // Each is run by a test below.
    for name in &names {
        assert!(
            RUN.iter().any(|group| group.contains(&name.as_str())),
            "no test runs the README block {name:?}"
        );
    }
}

/// The blocks each test runs, in order (later blocks use what earlier ones made).
const RUN: &[&[&str]] = &[
    &["tour"],
    &[
        "own-broker",
        "simulate",
        "add-station",
        "evidence",
        "report",
    ],
    &["alert"],
];

/// Servers a block expects to be running already.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Servers {
    None,
    /// mosquitto on 1883 and InfluxDB 1.x on 8086, as `apt-get install mosquitto influxdb`
    /// leaves them.
    BrokerAndInflux,
}

/// Runs the named blocks in one bash, in a fresh folder and namespace; returns what they
/// printed (stdout and stderr), or panics with it when a command failed.
fn run_blocks(names: &[&str], servers: Servers) -> String {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("quantrac");
    copy_dir(&root().join("config"), &work.join("config"));
    copy_dir(
        &root().join("deploy/prometheus"),
        &work.join("deploy/prometheus"),
    );
    let bin = Path::new(QUANTRAC).parent().unwrap();
    let mut script = format!(
        "set -euo pipefail\nip link set lo up\nexport HOME={home} PATH={bin}:$PATH\ncd {work}\n",
        home = dir.path().display(),
        bin = bin.display(),
        work = work.display(),
    );
    if servers == Servers::BrokerAndInflux {
        script.push_str(&start_servers(dir.path()));
    }
    for name in names {
        script.push_str(&format!("echo '>>> README block {name}'\n"));
        script.push_str(&block(name));
    }
    script.push_str("echo '>>> README blocks done'\n");
    let path = dir.path().join("readme.sh");
    std::fs::write(&path, &script).unwrap();
    // A namespace of its own: free ports, and everything started inside dies with its bash.
    let out = Command::new("timeout")
        .args([
            "-s",
            "KILL",
            "400",
            "unshare",
            "--kill-child",
            "--fork",
            "--pid",
            "--net",
        ])
        .arg("bash")
        .arg(&path)
        .current_dir(&work)
        .output()
        .expect("timeout and unshare (coreutils, util-linux)");
    let text = format!(
        "{}\n--- stderr ---\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let logs: String = ["demo.log", "quantrac.log", "prometheus.log"]
        .iter()
        .filter_map(|f| {
            let t = std::fs::read_to_string(work.join(f)).ok()?;
            let tail: Vec<&str> = t.lines().rev().take(30).collect();
            Some(format!(
                "\n--- {f} (last lines) ---\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            ))
        })
        .collect();
    assert!(
        out.status.success() && text.contains(">>> README blocks done"),
        "the README's blocks {names:?} failed ({}); the script:\n{script}\n--- output ---\n{text}{logs}",
        out.status
    );
    text
}

/// mosquitto and influxd as their Debian packages run them (ports 1883 and 8086, anonymous
/// local access), started in the namespace before the blocks.
fn start_servers(dir: &Path) -> String {
    let mosquitto = program("mosquitto", "mosquitto");
    let influxd = program("influxd", "influxdb");
    program("influx", "influxdb-client");
    program("mosquitto_pub", "mosquitto-clients");
    let data = dir.join("servers");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(
        data.join("mosquitto.conf"),
        format!(
            "listener 1883 127.0.0.1\nallow_anonymous true\npersistence true\n\
             persistence_location {d}/\nuser root\nlog_dest file {d}/mosquitto.log\n",
            d = data.display()
        ),
    )
    .unwrap();
    std::fs::write(
        data.join("influxdb.conf"),
        format!(
            "reporting-disabled = true\nbind-address = \"127.0.0.1:8088\"\n\
             [meta]\n  dir = \"{d}/meta\"\n\
             [data]\n  dir = \"{d}/data\"\n  wal-dir = \"{d}/wal\"\n  query-log-enabled = false\n\
             [http]\n  bind-address = \"127.0.0.1:8086\"\n  log-enabled = false\n\
             [logging]\n  level = \"warn\"\n",
            d = data.display()
        ),
    )
    .unwrap();
    format!(
        // In a subshell: not jobs of the script's shell, so the README's `%1` and `wait`
        // mean its own processes, as in a reader's terminal.
        "({mosquitto} -c {d}/mosquitto.conf &)\n\
         ({influxd} -config {d}/influxdb.conf 2> {d}/influxd.log &)\n\
         for i in $(seq 300); do influx -execute 'SHOW DATABASES' >/dev/null 2>&1 && break; sleep 0.1; done\n\
         for i in $(seq 300); do mosquitto_pub -t probe -m x 2>/dev/null && break; sleep 0.1; done\n",
        mosquitto = mosquitto.display(),
        influxd = influxd.display(),
        d = data.display(),
    )
}

fn copy_dir(from: &Path, to: &PathBuf) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

#[test]
fn the_tour_runs_as_written() {
    let out = run_blocks(RUN[0], Servers::None);
    assert!(out.contains("quantrac_station_state{"), "{out}");
    assert!(
        out.lines().any(|l| l.starts_with(
            r#"quantrac_exceedance{param="COD",park="nam-dinh-vu",site="nd-textile",station="outfall-1",window="instant"} 1"#
        )),
        "the textile outfall's COD is over its limit: {out}"
    );
    assert!(out.contains("env/nam-dinh-vu/"), "mosquitto_sub: {out}");
    assert!(out.contains("malformed:"), "a dead letter: {out}");
    assert!(out.contains("journal intact"), "{out}");
}

#[test]
fn the_own_broker_influxdb1_station_and_evidence_steps_run_as_written() {
    let out = run_blocks(RUN[1], Servers::BrokerAndInflux);
    // own-broker: the reading in InfluxDB with its limit and verdict.
    assert!(
        out.lines()
            .any(|l| l.contains("148.2") && l.contains("135") && l.contains("true")),
        "{out}"
    );
    // simulate: every simulated station has a state.
    for site in [
        "dv-steel",
        "dv-power",
        "nd-textile",
        "nd-chem",
        "dc-electronics",
    ] {
        assert!(
            out.lines()
                .any(|l| l.starts_with("quantrac_station_state{") && l.contains(site)),
            "{site}: {out}"
        );
    }
    // add-station: rejected while unknown, configured, replayed, judged.
    assert!(out.contains("unknown_station"), "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("nam-dinh-vu/nd-seafood/outfall-1") && l.contains("NH4")),
        "{out}"
    );
    assert!(
        out.contains("env/nam-dinh-vu/nd-seafood/outfall-1: 1 readings accepted, 0 still rejected"),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.contains("9.1") && l.contains(" 8 ") && l.contains("true")),
        "NH4 9.1 against the permit's 8: {out}"
    );
    // evidence: the anchor and the signature hold on the copy.
    assert!(out.contains("anchors: 1 of 1 hold"), "{out}");
    assert!(out.contains("hold with the given public key"), "{out}");
    assert!(
        out.matches("journal intact").count() >= 2,
        "verify after own-broker and on the copy: {out}"
    );
    // report: the outfall's COD reading of the own-broker step, and the export verified.
    assert!(
        out.lines()
            .any(|l| l.starts_with("nam-dinh-vu,nd-textile,outfall-1,COD,mg/L,135,")),
        "{out}"
    );
    assert!(out.contains("# verify: journal intact"), "{out}");
    assert!(out.contains("export intact"), "{out}");
    assert!(out.contains("hold with the given public key"), "{out}");
}

#[test]
fn the_alert_step_runs_as_written() {
    program("prometheus", "prometheus");
    let out = run_blocks(RUN[2], Servers::None);
    assert!(out.contains(r#""alertname":"StationSilent""#), "{out}");
}
