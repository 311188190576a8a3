//! Compose, Kubernetes, systemd and Docker files: parsed (YAML by a YAML parser, the unit by
//! `systemd-analyze`, quantrac's own configuration by quantrac), then checked for what the
//! README promises and for references that must agree (volumes, secrets, ports, selectors).

use std::fs;

use quantrac_testkit::run;
use yaml_rust2::{Yaml, YamlLoader};

use crate::{read, repo};

/// Every document of a YAML file, parsed (a syntax error fails the test).
fn yaml(rel: &str) -> Vec<Yaml> {
    YamlLoader::load_from_str(&read(rel)).unwrap_or_else(|e| panic!("{rel} is not YAML: {e}"))
}

/// The string at `path` (keys, or indexes into lists) below `y`, or a failure naming it.
fn text<'a>(y: &'a Yaml, what: &str, path: &[&str]) -> &'a str {
    let mut at = y;
    for key in path {
        at = match key.parse::<usize>() {
            Ok(i) => &at[i],
            Err(_) => &at[*key],
        };
    }
    at.as_str()
        .unwrap_or_else(|| panic!("{what}: no string at {}", path.join(".")))
}

fn strings(y: &Yaml) -> Vec<String> {
    y.as_vec()
        .map(|v| {
            v.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn keys(y: &Yaml) -> Vec<String> {
    y.as_hash()
        .map(|h| {
            h.keys()
                .filter_map(|k| k.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// quantrac's settings as a container or pod gets them from `text`.
fn settings(text: &str) -> quantrac::config::Settings {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("quantrac.toml");
    fs::write(&path, text).unwrap();
    quantrac::config::Settings::load(&path, true, Some(Default::default()))
        .unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn compose_file_runs_every_service_with_its_image_volumes_and_secrets() {
    let docs = yaml("deploy/compose.yaml");
    assert_eq!(docs.len(), 1);
    let doc = &docs[0];
    let services = &doc["services"];
    let mut names = keys(services);
    names.sort();
    assert_eq!(
        names,
        [
            "alertmanager",
            "grafana",
            "influxdb",
            "mosquitto",
            "prometheus",
            "quantrac",
            // The park simulator behind the `demo` profile: Grafana has data on a first start.
            "simulator"
        ]
    );
    let declared_volumes = keys(&doc["volumes"]);
    let declared_secrets = keys(&doc["secrets"]);
    for secret in &declared_secrets {
        let file = text(doc, "compose secrets", &["secrets", secret, "file"]);
        assert!(file.starts_with("./secrets/"), "{secret}: {file}");
    }
    for name in &names {
        let service = &services[name.as_str()];
        let image = text(service, name, &["image"]);
        assert!(!image.is_empty(), "{name} has no image");
        // A published image is pinned (no `latest`), except quantrac's own build.
        assert!(
            name == "quantrac" || (image.contains(':') && !image.ends_with(":latest")),
            "{name}: image {image} is not pinned"
        );
        for mount in strings(&service["volumes"]) {
            let source = mount.split(':').next().unwrap();
            if let Some(rel) = source.strip_prefix("./") {
                assert!(
                    repo().join("deploy").join(rel).exists(),
                    "{name} mounts {source}, which is not in deploy/"
                );
            } else {
                assert!(
                    declared_volumes.contains(&source.to_string()),
                    "{name} mounts volume {source}, which is not declared"
                );
            }
        }
        for secret in strings(&service["secrets"]) {
            assert!(
                declared_secrets.contains(&secret),
                "{name} uses secret {secret}, which is not declared"
            );
        }
    }
    let simulator = &services["simulator"];
    assert_eq!(strings(&simulator["profiles"]), ["demo"]);
    assert!(
        read("deploy/compose.yaml").contains("--stations=/etc/quantrac/stations.toml"),
        "the simulator publishes the stations quantrac is configured with"
    );

    // quantrac: built from the repository's Dockerfile, the journal on a named volume, the
    // configuration read-only, the token as a secret file.
    let q = &services["quantrac"];
    let context = repo()
        .join("deploy")
        .join(text(q, "quantrac", &["build", "context"]));
    assert!(
        context
            .join(text(q, "quantrac", &["build", "dockerfile"]))
            .is_file(),
        "the build context has no Dockerfile"
    );
    let mounts = strings(&q["volumes"]);
    assert!(
        mounts.contains(&"quantrac-journal:/var/lib/quantrac".to_string()),
        "{mounts:?}"
    );
    assert!(
        mounts.contains(&"./quantrac/quantrac.toml:/etc/quantrac/quantrac.toml:ro".to_string()),
        "{mounts:?}"
    );
    let token = text(
        q,
        "quantrac",
        &["environment", "QUANTRAC__INFLUX__TOKEN_FILE"],
    );
    let secret = token
        .strip_prefix("/run/secrets/")
        .expect("the token is a secret file");
    assert!(strings(&q["secrets"]).contains(&secret.to_string()));
    assert_eq!(q["read_only"].as_bool(), Some(true));
    let config = settings(&read("deploy/quantrac/quantrac.toml"));
    assert!(
        config.journal.path.starts_with("/var/lib/quantrac"),
        "the journal is on the volume: {}",
        config.journal.path.display()
    );
    // The sealed archive too: it is the only copy of pruned records.
    assert!(quantrac::journal::archive::configured_dir(&config.journal)
        .starts_with("/var/lib/quantrac"));
    assert_eq!(config.http.listen.to_string(), "0.0.0.0:9787");
    assert!(config.journal.durable);

    // The broker keeps sessions and queues on its volume.
    let broker_mounts = strings(&services["mosquitto"]["volumes"]);
    assert!(
        broker_mounts.contains(&"mosquitto-data:/mosquitto/data".to_string()),
        "{broker_mounts:?}"
    );
    let mosquitto = read("deploy/mosquitto/mosquitto.conf");
    for setting in [
        "persistence true",
        "persistence_location /mosquitto/data/",
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

/// The manifests of `deploy/k8s`, by kind.
fn k8s_objects() -> Vec<(String, Yaml)> {
    let mut objects = Vec::new();
    let mut files: Vec<String> = fs::read_dir(repo().join("deploy/k8s"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|f| f.ends_with(".yaml"))
        .collect();
    files.sort();
    for file in files {
        for doc in yaml(&format!("deploy/k8s/{file}")) {
            objects.push((file.clone(), doc));
        }
    }
    objects
}

fn only<'a>(objects: &'a [(String, Yaml)], kind: &str) -> &'a Yaml {
    let found: Vec<&Yaml> = objects
        .iter()
        .filter(|(_, o)| o["kind"].as_str() == Some(kind))
        .map(|(_, o)| o)
        .collect();
    assert_eq!(found.len(), 1, "one {kind} in deploy/k8s");
    found[0]
}

/// `matchLabels` (or a Service's selector) as `key=value` pairs.
fn labels(y: &Yaml) -> Vec<String> {
    let mut out: Vec<String> = y
        .as_hash()
        .map(|h| {
            h.iter()
                .map(|(k, v)| format!("{}={}", k.as_str().unwrap(), v.as_str().unwrap()))
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

#[test]
fn kubernetes_manifests_are_single_writer_probed_and_locked_down() {
    let objects = k8s_objects();
    // kustomization.yaml lists every other manifest, and every object names itself.
    let kustomization = only(&objects, "Kustomization");
    let mut listed = strings(&kustomization["resources"]);
    listed.sort();
    let mut files: Vec<String> = objects
        .iter()
        .filter(|(_, o)| o["kind"].as_str() != Some("Kustomization"))
        .map(|(f, _)| f.clone())
        .collect();
    files.dedup();
    assert_eq!(listed, files);
    let mut kinds: Vec<&str> = objects
        .iter()
        .map(|(f, o)| {
            assert!(o["apiVersion"].as_str().is_some(), "{f}: no apiVersion");
            o["kind"].as_str().unwrap_or_else(|| panic!("{f}: no kind"))
        })
        .collect();
    kinds.sort();
    assert_eq!(
        kinds,
        [
            "ConfigMap",
            "Deployment",
            "Kustomization",
            "Namespace",
            "PersistentVolumeClaim",
            "PodDisruptionBudget",
            "Secret",
            "Service",
            "ServiceMonitor"
        ]
    );

    // One writer: one replica, the old pod gone before the new one opens the journal.
    let deployment = only(&objects, "Deployment");
    let spec = &deployment["spec"];
    assert_eq!(spec["replicas"].as_i64(), Some(1));
    assert_eq!(text(spec, "Deployment", &["strategy", "type"]), "Recreate");
    let pod_labels = labels(&spec["template"]["metadata"]["labels"]);
    let selector = labels(&spec["selector"]["matchLabels"]);
    assert!(!selector.is_empty() && selector.iter().all(|l| pod_labels.contains(l)));
    let pod = &spec["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"].as_bool(), Some(true));
    let containers = pod["containers"].as_vec().unwrap();
    assert_eq!(containers.len(), 1);
    let c = &containers[0];
    assert_eq!(
        strings(&c["args"]),
        ["run", "--config", "/etc/quantrac/quantrac.toml"]
    );
    assert_eq!(
        c["securityContext"]["readOnlyRootFilesystem"].as_bool(),
        Some(true)
    );
    assert_eq!(
        c["securityContext"]["allowPrivilegeEscalation"].as_bool(),
        Some(false)
    );
    let port = &c["ports"][0];
    let (port_name, port_number) = (
        text(port, "container port", &["name"]),
        port["containerPort"].as_i64().unwrap(),
    );
    for (probe, path) in [
        ("livenessProbe", "/healthz"),
        ("readinessProbe", "/readyz"),
        ("startupProbe", "/healthz"),
    ] {
        assert_eq!(text(c, probe, &[probe, "httpGet", "path"]), path);
        assert_eq!(text(c, probe, &[probe, "httpGet", "port"]), port_name);
    }

    // Mounts: every one names a volume of the pod; the journal is the claim, the
    // configuration the ConfigMap, the token the Secret.
    let volumes = pod["volumes"].as_vec().unwrap();
    let volume = |name: &str| -> &Yaml {
        volumes
            .iter()
            .find(|v| v["name"].as_str() == Some(name))
            .unwrap_or_else(|| panic!("no pod volume {name}"))
    };
    let mut mounted = std::collections::HashMap::new();
    for m in c["volumeMounts"].as_vec().unwrap() {
        let name = text(m, "volumeMount", &["name"]);
        volume(name);
        mounted.insert(text(m, "volumeMount", &["mountPath"]).to_string(), name);
    }
    let claim = text(
        volume(mounted["/var/lib/quantrac"]),
        "journal volume",
        &["persistentVolumeClaim", "claimName"],
    );
    let pvc = only(&objects, "PersistentVolumeClaim");
    assert_eq!(text(pvc, "PVC", &["metadata", "name"]), claim);
    assert_eq!(strings(&pvc["spec"]["accessModes"]), ["ReadWriteOnce"]);
    let config_map = only(&objects, "ConfigMap");
    assert_eq!(
        text(
            volume(mounted["/etc/quantrac"]),
            "config volume",
            &["configMap", "name"]
        ),
        text(config_map, "ConfigMap", &["metadata", "name"])
    );
    let secret = only(&objects, "Secret");
    assert_eq!(
        text(
            volume(mounted["/run/secrets/quantrac"]),
            "token volume",
            &["secret", "secretName"]
        ),
        text(secret, "Secret", &["metadata", "name"])
    );
    let env = c["env"].as_vec().unwrap();
    let token_file = env
        .iter()
        .find(|e| e["name"].as_str() == Some("QUANTRAC__INFLUX__TOKEN_FILE"))
        .map(|e| text(e, "env", &["value"]))
        .expect("the token comes from a file");
    let key = token_file.strip_prefix("/run/secrets/quantrac/").unwrap();
    assert!(
        keys(&secret["stringData"]).contains(&key.to_string()),
        "{key}"
    );

    // The configuration in the ConfigMap: the journal on the claim, the stations file in the
    // mounted folder, listening on the container port on every interface.
    let toml = text(config_map, "ConfigMap", &["data", "quantrac.toml"]);
    let config = settings(toml);
    assert!(config.journal.path.starts_with("/var/lib/quantrac"));
    assert!(quantrac::journal::archive::configured_dir(&config.journal)
        .starts_with("/var/lib/quantrac"));
    assert!(config.journal.durable);
    assert!(config.stations.file.starts_with("/etc/quantrac"));
    assert!(keys(&config_map["data"]).contains(&"stations.toml".to_string()));
    assert_eq!(config.http.listen.port() as i64, port_number);
    assert!(config.http.listen.ip().is_unspecified());

    // The Service selects the pod and exposes the named port; the ServiceMonitor scrapes
    // /metrics through it; the PodDisruptionBudget covers the pod.
    let service = only(&objects, "Service");
    let svc_selector = labels(&service["spec"]["selector"]);
    assert!(svc_selector.iter().all(|l| pod_labels.contains(l)));
    assert_eq!(
        text(service, "Service", &["spec", "ports", "0", "targetPort"]),
        port_name
    );
    let svc_port = text(service, "Service", &["spec", "ports", "0", "name"]);
    let monitor = only(&objects, "ServiceMonitor");
    let service_labels = labels(&service["metadata"]["labels"]);
    assert!(labels(&monitor["spec"]["selector"]["matchLabels"])
        .iter()
        .all(|l| service_labels.contains(l)));
    assert_eq!(
        text(
            monitor,
            "ServiceMonitor",
            &["spec", "endpoints", "0", "port"]
        ),
        svc_port
    );
    assert_eq!(
        text(
            monitor,
            "ServiceMonitor",
            &["spec", "endpoints", "0", "path"]
        ),
        "/metrics"
    );
    let pdb = only(&objects, "PodDisruptionBudget");
    assert!(labels(&pdb["spec"]["selector"]["matchLabels"])
        .iter()
        .all(|l| pod_labels.contains(l)));
    // Everything but the namespace itself is in quantrac's namespace.
    for (file, o) in &objects {
        let kind = o["kind"].as_str().unwrap();
        if kind != "Namespace" && kind != "Kustomization" {
            assert_eq!(
                o["metadata"]["namespace"].as_str(),
                Some("quantrac"),
                "{file}"
            );
        }
    }
}

/// `[Section]` `Key=Value` directives of a systemd unit, in order.
fn unit_directives(text: &str) -> Vec<(String, String, String)> {
    let mut section = String::new();
    let mut out = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_string();
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("not a directive: {line}"));
        out.push((
            section.clone(),
            key.trim().to_string(),
            value.trim().to_string(),
        ));
    }
    out
}

#[test]
fn systemd_unit_is_hardened_and_reads_the_token_as_a_credential() {
    let unit = read("deploy/systemd/quantrac.service");
    let directives = unit_directives(&unit);
    let values = |section: &str, key: &str| -> Vec<&str> {
        directives
            .iter()
            .filter(|(s, k, _)| s == section && k == key)
            .map(|(_, _, v)| v.as_str())
            .collect()
    };
    for (key, value) in [
        (
            "ExecStart",
            "/usr/bin/quantrac run --config /etc/quantrac/quantrac.toml",
        ),
        ("StateDirectory", "quantrac"),
        ("ProtectSystem", "strict"),
        ("NoNewPrivileges", "yes"),
        ("DynamicUser", "yes"),
        ("KillSignal", "SIGTERM"),
        ("Restart", "on-failure"),
    ] {
        assert_eq!(values("Service", key), [value], "[Service] {key}");
    }
    let credential = values("Service", "LoadCredential");
    assert_eq!(credential.len(), 1);
    let (name, _) = credential[0].split_once(':').unwrap();
    let env = values("Service", "Environment");
    assert!(
        env.contains(&format!("QUANTRAC__INFLUX__TOKEN_FILE=%d/{name}").as_str()),
        "{env:?}"
    );
    assert!(
        env.contains(&"QUANTRAC__JOURNAL__PATH=%S/quantrac/journal"),
        "the journal is in the state directory: {env:?}"
    );
    // Longer than quantrac's own 30 s shutdown budget, so a stop is never a SIGKILL.
    let stop: u64 = values("Service", "TimeoutStopSec")[0].parse().unwrap();
    assert!(stop > 30, "TimeoutStopSec={stop}");
    assert_eq!(values("Install", "WantedBy"), ["multi-user.target"]);
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
