//! Checks of the shipped deployment files (`deploy/`, `docs/runbooks/`), run with the real tools:
//! `promtool` for the alert rules and their unit tests, `amtool` for Alertmanager, and a real
//! InfluxDB 1.x for every InfluxQL query in the Grafana dashboards.
//!
//! A missing program fails the test and names the Debian package that provides it: a skipped
//! check would let a broken rule file or dashboard ship unnoticed.

mod grafana;
mod influxql;
mod packaging;
mod prometheus;

use std::fs;
use std::path::PathBuf;
use std::process::Output;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    let path = repo().join(rel);
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
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
