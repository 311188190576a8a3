//! Compose, Kubernetes, systemd and Docker files: the settings the README promises, parsed by
//! the tools that read them where those are installed.

use std::fs;
use std::path::Path;
use std::process::Command;

use quantrac_testkit::run;

use crate::{assert_success, read, repo};

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
        // The park simulator behind the `demo` profile: Grafana has data on a first start.
        "simulator",
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
        "profiles: [demo]",
        "--stations=/etc/quantrac/stations.toml",
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
