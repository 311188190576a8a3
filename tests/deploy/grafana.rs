//! Grafana dashboards: provisioned datasources, defined variables, and PromQL that parses.
//! The InfluxQL of the same dashboards runs against a real InfluxDB in `influxql`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;

use quantrac_testkit::run;
use serde_json::Value;

use crate::{assert_success, read};

pub(crate) const DASHBOARDS: [&str; 3] = [
    "park-overview.json",
    "station-detail.json",
    "compliance-report.json",
];

pub(crate) fn dashboard(name: &str) -> Value {
    let text = read(&format!("deploy/grafana/dashboards/{name}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name} is not valid JSON: {e}"))
}

fn provisioned_uids() -> BTreeSet<String> {
    read("deploy/grafana/provisioning/datasources/quantrac.yaml")
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("uid:"))
        .map(|u| u.trim().to_owned())
        .collect()
}

/// Every panel, rows' nested panels included.
pub(crate) fn panels(d: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for p in d["panels"].as_array().into_iter().flatten() {
        out.push(p);
        for inner in p["panels"].as_array().into_iter().flatten() {
            out.push(inner);
        }
    }
    out
}

fn variables(d: &Value) -> Vec<&Value> {
    d["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
        .collect()
}

/// A query as Grafana stores it: InfluxQL in `query`, PromQL in `expr`, variables in `query`
/// (a string, or `{ query }` for Prometheus).
#[derive(Debug, Clone)]
pub(crate) struct Query {
    pub(crate) where_: String,
    pub(crate) ds_type: String,
    pub(crate) text: String,
}

pub(crate) fn queries(name: &str, d: &Value) -> Vec<Query> {
    let mut out = Vec::new();
    for v in variables(d) {
        let text = match &v["query"] {
            Value::String(s) => s.clone(),
            Value::Object(o) => o
                .get("query")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            _ => continue,
        };
        out.push(Query {
            where_: format!("{name}: variable {}", v["name"]),
            ds_type: v["datasource"]["type"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            text,
        });
    }
    for p in panels(d) {
        for t in p["targets"].as_array().into_iter().flatten() {
            let ds = if t["datasource"].is_object() {
                &t["datasource"]
            } else {
                &p["datasource"]
            };
            let text = t["query"]
                .as_str()
                .or_else(|| t["expr"].as_str())
                .unwrap_or_default();
            out.push(Query {
                where_: format!("{name}: panel {} target {}", p["title"], t["refId"]),
                ds_type: ds["type"].as_str().unwrap_or_default().to_owned(),
                text: text.to_owned(),
            });
        }
    }
    out
}

/// Grafana's own variables, which need no definition in the dashboard.
const BUILTINS: [&str; 7] = [
    "timeFilter",
    "__timeFilter",
    "__interval",
    "__interval_ms",
    "__rate_interval",
    "__range",
    "__range_s",
];

/// The `$name` / `${name}` / `[[name]]` references in a query.
fn references(q: &str) -> Vec<String> {
    let mut out = Vec::new();
    let b = q.as_bytes();
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'$' {
            if b.get(i + 1) == Some(&b'{') {
                if let Some(end) = q[i + 2..].find('}') {
                    let inner = &q[i + 2..i + 2 + end];
                    out.push(inner.split(':').next().unwrap_or_default().to_owned());
                    i += end + 3;
                    continue;
                }
            }
            let start = i + 1;
            let mut j = start;
            while j < b.len() && ident(b[j]) {
                j += 1;
            }
            if j > start {
                out.push(q[start..j].to_owned());
            }
            i = j.max(i + 1);
        } else if b[i..].starts_with(b"[[") {
            if let Some(end) = q[i + 2..].find("]]") {
                out.push(q[i + 2..i + 2 + end].to_owned());
                i += end + 4;
                continue;
            }
            i += 1;
        } else {
            i += 1;
        }
    }
    out
}

/// Fills in Grafana's macros the way Grafana would for a 7-day range and a 1-hour interval,
/// and the template variables from `vars`.
pub(crate) fn fill(q: &str, vars: &BTreeMap<&str, &str>) -> String {
    let mut out = String::new();
    let b = q.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'$' {
            let start = i + 1;
            let mut j = start;
            while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_') {
                j += 1;
            }
            let name = &q[start..j];
            match name {
                "" => out.push('$'),
                "timeFilter" => out.push_str("time > now() - 7d"),
                "__interval" => out.push_str("1h"),
                "__rate_interval" | "__range" => out.push_str("5m"),
                _ => out.push_str(
                    vars.get(name)
                        .unwrap_or_else(|| panic!("no value for ${name} in {q}")),
                ),
            }
            i = j.max(i + 1);
        } else {
            let c = q[i..].chars().next().expect("i is on a char boundary");
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

#[test]
fn dashboards_use_provisioned_datasources_and_defined_variables() {
    let uids = provisioned_uids();
    assert!(
        uids.contains("quantrac-influx") && uids.contains("quantrac-prom"),
        "{uids:?}"
    );
    for name in DASHBOARDS {
        let d = dashboard(name);
        assert!(
            d["uid"].as_str().is_some_and(|u| !u.is_empty()),
            "{name}: no uid"
        );
        let defined: BTreeSet<String> = variables(&d)
            .iter()
            .filter_map(|v| v["name"].as_str().map(String::from))
            .collect();
        for v in variables(&d) {
            let uid = v["datasource"]["uid"].as_str().unwrap_or_default();
            assert!(
                uids.contains(uid),
                "{name}: variable {} uses datasource {uid:?}",
                v["name"]
            );
        }
        let all = panels(&d);
        assert!(!all.is_empty(), "{name}: no panels");
        for p in all {
            let uid = p["datasource"]["uid"].as_str().unwrap_or_default();
            assert!(
                uids.contains(uid),
                "{name}: panel {} uses datasource {uid:?}",
                p["title"]
            );
            for t in p["targets"].as_array().into_iter().flatten() {
                if let Some(tuid) = t["datasource"]["uid"].as_str() {
                    assert!(
                        uids.contains(tuid),
                        "{name}: panel {} target uses {tuid:?}",
                        p["title"]
                    );
                }
                // InfluxDB alias patterns are Grafana's, not template variables.
                for r in references(t["alias"].as_str().unwrap_or_default()) {
                    assert!(
                        r.starts_with("tag_") || ["col", "m", "measurement"].contains(&r.as_str()),
                        "{name}: panel {} alias uses ${r}",
                        p["title"]
                    );
                }
            }
        }
        for q in queries(name, &d) {
            assert!(!q.text.trim().is_empty(), "{}: empty query", q.where_);
            for r in references(&q.text) {
                assert!(
                    defined.contains(&r) || BUILTINS.contains(&r.as_str()),
                    "{}: ${r} is not a template variable of {name}",
                    q.where_
                );
            }
        }
    }
}

/// Every PromQL query of the dashboards parses: promtool checks them as recording rules.
#[test]
fn dashboard_promql_queries_parse() {
    let vars = BTreeMap::from([("park", "nam-dinh-vu"), ("site", "nd-textile")]);
    let mut rules = String::from("groups:\n  - name: dashboards\n    rules:\n");
    let mut n = 0;
    for name in DASHBOARDS {
        for q in queries(name, &dashboard(name)) {
            if q.ds_type != "prometheus" || q.text.starts_with("label_values(") {
                continue;
            }
            n += 1;
            let expr = serde_json::to_string(&fill(&q.text, &vars)).expect("a string serialises");
            rules.push_str(&format!(
                "      - record: dashboard_query_{n}\n        expr: {expr}\n"
            ));
        }
    }
    assert!(n >= 5, "only {n} PromQL queries found");
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("dashboards.rules.yml"), rules).unwrap();
    let out = run(
        "promtool",
        "prometheus",
        &["check", "rules", "dashboards.rules.yml"],
        dir.path(),
    );
    assert_success("promtool check rules (dashboard PromQL)", &out);
}

/// Parameters of different units never share an axis: the station dashboard draws one panel
/// per parameter with its limits (flow in m3/h beside pH would flatten pH to a line), and a
/// rate of readings is not shown as HTTP requests.
#[test]
fn the_station_dashboard_draws_each_parameter_against_its_own_limits() {
    let d = dashboard("station-detail.json");
    let all = panels(&d);
    let values = all
        .iter()
        .find(|p| p["title"] == "$param against its limits")
        .expect("the values panel");
    assert_eq!(values["repeat"], "param");
    let query = values["targets"][0]["query"].as_str().unwrap();
    assert!(
        query.contains("limit_max") && !query.contains(r#""param" fill"#),
        "{query}"
    );
    let param = variables(&d)
        .into_iter()
        .find(|v| v["name"] == "param")
        .unwrap();
    assert_eq!(
        param["current"]["value"][0], "$__all",
        "every parameter by default"
    );
    for name in DASHBOARDS {
        let d = dashboard(name);
        for p in panels(&d) {
            assert_ne!(
                p["fieldConfig"]["defaults"]["unit"], "reqps",
                "{name}: {} counts requests",
                p["title"]
            );
        }
    }
}
