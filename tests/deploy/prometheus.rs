//! Prometheus rules and configuration, and Alertmanager's: checked by `promtool` and `amtool`,
//! and read for the labels, annotations, runbooks and routes the contract asks of every alert.

use std::collections::BTreeSet;

use quantrac_testkit::run;

use crate::{assert_success, read, repo};

#[test]
fn promtool_check_rules_accepts_the_shipped_rules() {
    let dir = repo().join("deploy/prometheus/rules");
    let out = run(
        "promtool",
        "prometheus",
        &["check", "rules", "quantrac.rules.yml"],
        &dir,
    );
    assert_success("promtool check rules", &out);
}

#[test]
fn promtool_unit_tests_of_every_alert_pass() {
    let dir = repo().join("deploy/prometheus/rules");
    let out = run(
        "promtool",
        "prometheus",
        &["test", "rules", "quantrac.rules.test.yml"],
        &dir,
    );
    assert_success("promtool test rules", &out);
}

#[test]
fn promtool_check_config_accepts_prometheus_yml() {
    let dir = repo().join("deploy/prometheus");
    // The compose stack's, and the one for a Prometheus beside quantrac on the same host.
    for file in ["prometheus.yml", "prometheus-local.yml"] {
        let out = run("promtool", "prometheus", &["check", "config", file], &dir);
        assert_success(&format!("promtool check config {file}"), &out);
    }
}

#[test]
fn amtool_check_config_accepts_alertmanager_yml() {
    let dir = repo().join("deploy/alertmanager");
    let out = run(
        "amtool",
        "prometheus-alertmanager",
        &["check-config", "alertmanager.yml"],
        &dir,
    );
    assert_success("amtool check-config", &out);
}

/// One `- alert:` block of the rule file, as text.
struct AlertBlock {
    name: String,
    text: String,
}

fn alert_blocks() -> Vec<AlertBlock> {
    let rules = read("deploy/prometheus/rules/quantrac.rules.yml");
    let mut blocks: Vec<AlertBlock> = Vec::new();
    for line in rules.lines() {
        let trimmed = line.trim_start();
        if let Some(name) = trimmed.strip_prefix("- alert:") {
            blocks.push(AlertBlock {
                name: name.trim().to_owned(),
                text: String::new(),
            });
        } else if trimmed.starts_with("- record:") || trimmed.starts_with("- name:") {
            blocks.push(AlertBlock {
                name: String::new(),
                text: String::new(),
            });
        } else if let Some(b) = blocks.last_mut() {
            b.text.push_str(line);
            b.text.push('\n');
        }
    }
    blocks.retain(|b| !b.name.is_empty());
    blocks
}

fn field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines()
        .find_map(|l| l.trim_start().strip_prefix(&format!("{key}:")))
        .map(str::trim)
}

/// The alerts quantrac ships: each must exist, carry severity + audience labels and the
/// contract's annotations ("Alerts" section), with a runbook that exists in the repository.
#[test]
fn every_alert_has_labels_annotations_runbook_and_a_unit_test() {
    let required = [
        "LimitExceeded",
        "LimitEarlyWarning",
        "InstantLimitExceeded",
        "StationSilent",
        "StationDeviceFault",
        "StationCalibrating",
        "AnalyserStuck",
        "IngestBacklogGrowing",
        "InfluxWritesFailing",
        "MqttDisconnected",
        "JournalFull",
        "QuantracDown",
        "ReadingsRejected",
        "TlsCertificateExpiringSoon",
        "UplinkFailing",
    ];
    let blocks = alert_blocks();
    let names: BTreeSet<&str> = blocks.iter().map(|b| b.name.as_str()).collect();
    for r in required {
        assert!(
            names.contains(r),
            "alert {r} is missing from quantrac.rules.yml"
        );
    }
    let tests = read("deploy/prometheus/rules/quantrac.rules.test.yml");
    for b in &blocks {
        let severity =
            field(&b.text, "severity").unwrap_or_else(|| panic!("{}: no severity", b.name));
        assert!(
            ["critical", "warning", "info"].contains(&severity),
            "{}: severity {severity:?}",
            b.name
        );
        let audience =
            field(&b.text, "audience").unwrap_or_else(|| panic!("{}: no audience", b.name));
        assert!(
            ["inspector", "operator"].contains(&audience),
            "{}: audience {audience:?}",
            b.name
        );
        for key in ["summary", "description"] {
            assert!(
                field(&b.text, key).is_some(),
                "{}: no {key} annotation",
                b.name
            );
        }
        let url =
            field(&b.text, "runbook_url").unwrap_or_else(|| panic!("{}: no runbook_url", b.name));
        // The base comes from one place (the `quantrac:runbook_base` rule), the page from the
        // repository's docs/runbooks/.
        let page = url
            .strip_prefix(r#"'{{ with query "quantrac:runbook_base" }}{{ . | first | label "url" }}{{ end }}/"#)
            .and_then(|rest| rest.strip_suffix('\''))
            .unwrap_or_else(|| panic!("{}: runbook_url {url} is not built from quantrac:runbook_base", b.name));
        assert!(
            repo().join("docs/runbooks").join(page).is_file(),
            "{}: runbook docs/runbooks/{page} does not exist",
            b.name
        );
        // Both firing and quiet cases are in the unit tests: at least two evaluations each.
        let evaluations = tests.matches(&format!("alertname: {}\n", b.name)).count();
        assert!(
            evaluations >= 2,
            "{}: only {evaluations} promtool evaluations",
            b.name
        );
    }
    // Exceedance alerts must stay quiet while the station cannot give a verdict.
    for b in blocks.iter().filter(|b| b.name.contains("Limit")) {
        assert!(
            b.text.contains(r#"unless on(park, site, station)"#)
                && b.text
                    .contains(r#"quantrac_station_state{state=~"calibrating|fault|silent"} == 1"#),
            "{}: not suppressed during calibration/fault/silence",
            b.name
        );
    }
}

#[test]
fn alertmanager_routes_by_audience_and_inhibits_exceedances() {
    let am = read("deploy/alertmanager/alertmanager.yml");
    for needle in [
        r#"matchers: ['audience="inspector"']"#,
        r#"matchers: ['audience="operator"']"#,
        "group_by: [alertname, park, site]",
        r#"source_matchers: ['alertname=~"StationSilent|StationDeviceFault|StationCalibrating"']"#,
        r#"target_matchers: ['alertname=~"LimitExceeded|LimitEarlyWarning|InstantLimitExceeded"']"#,
        "equal: [park, site, station]",
        r#"source_matchers: ['severity="critical"']"#,
    ] {
        assert!(am.contains(needle), "alertmanager.yml lacks {needle}");
    }
}

/// Who gets what, as Alertmanager itself routes it: the operator acts on exceedances too (their
/// runbook says so), inspectors see nothing of the devices and data flow.
#[test]
fn alertmanager_sends_exceedances_to_inspectors_and_operators() {
    let dir = repo().join("deploy/alertmanager");
    for (labels, receivers) in [
        (
            [
                "alertname=LimitExceeded",
                "audience=inspector",
                "severity=critical",
            ],
            "inspectors,park-operators",
        ),
        (
            [
                "alertname=StationDeviceFault",
                "audience=operator",
                "severity=warning",
            ],
            "park-operators",
        ),
        (
            [
                "alertname=QuantracDown",
                "audience=operator",
                "severity=critical",
            ],
            "park-operators",
        ),
    ] {
        let mut args = vec!["config", "routes", "test", "--config.file=alertmanager.yml"];
        args.extend(labels);
        let out = run("amtool", "prometheus-alertmanager", &args, &dir);
        assert_success("amtool config routes test", &out);
        let got = String::from_utf8_lossy(&out.stdout);
        assert_eq!(got.trim(), receivers, "{labels:?}");
    }
}
