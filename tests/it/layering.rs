//! The direction of dependencies (style guide §6), checked on the source: stages never import
//! one another, they meet in `app` through channels of `model`/`pipeline` types; the
//! vocabulary modules depend on nothing above them; nothing in the service depends on `demo`
//! or `cli`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The pipeline's stages.
const STAGES: [&str; 7] = [
    "mqtt",
    "inbox",
    "decode",
    "compliance",
    "journal",
    "sink",
    "uplink",
];

/// What each module may name as `crate::<module>` (beyond itself).
fn allowed(module: &str) -> Option<&'static [&'static str]> {
    const SHARED: &[&str] = &[
        "pipeline",
        "model",
        "config",
        "metrics",
        "readiness",
        "shutdown",
        "tls",
        "memory",
    ];
    Some(match module {
        "model" | "shutdown" | "readiness" | "telemetry" | "tls" | "memory" => &[],
        "metrics" | "pipeline" => &["model"],
        "config" => &["model", "tls"],
        "mqtt" | "inbox" | "decode" | "compliance" | "journal" | "sink" | "uplink" => SHARED,
        "http" => &["metrics", "readiness", "shutdown", "model"],
        // `app` wires every stage; `demo` drives `app`; `cli` calls them all.
        "app" => &[
            "pipeline",
            "model",
            "config",
            "metrics",
            "readiness",
            "shutdown",
            "mqtt",
            "inbox",
            "decode",
            "compliance",
            "journal",
            "sink",
            "uplink",
            "http",
            "tls",
        ],
        // A reader of the evidence: decodes the records of the journal and its archive again
        // and judges them with the compliance rules; nothing of the pipeline runs.
        "report" => &["model", "config", "decode", "compliance", "journal"],
        "demo" => &[
            "app",
            "pipeline",
            "model",
            "config",
            "metrics",
            "readiness",
            "shutdown",
            "mqtt",
        ],
        _ => return None,
    })
}

/// Every `crate::<module>` a source text names, including grouped `crate::{a, b::c}` imports.
fn named_modules(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 0;
            let mut item = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        found.insert(first_segment(&item));
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                item.push(c);
            }
            found.insert(first_segment(&item));
        } else {
            found.insert(first_segment(rest));
        }
    }
    found.retain(|m| !m.is_empty());
    found
}

fn first_segment(path: &str) -> String {
    path.trim()
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect()
}

fn rust_files(path: &Path, out: &mut Vec<PathBuf>) {
    if path.is_dir() {
        for entry in std::fs::read_dir(path).unwrap() {
            rust_files(&entry.unwrap().path(), out);
        }
    } else if path.extension().is_some_and(|e| e == "rs") {
        out.push(path.to_path_buf());
    }
}

#[test]
fn the_parser_sees_single_and_grouped_imports() {
    let text = "use crate::model::Param;\nuse crate::{sink, journal::{self, Journal}};\nx(crate::mqtt::COMPONENT)";
    let found: Vec<_> = named_modules(text).into_iter().collect();
    assert_eq!(found, ["journal", "model", "mqtt", "sink"]);
}

#[test]
fn no_stage_imports_another_and_the_vocabulary_imports_nothing_above_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut violations = Vec::new();
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        let module = path.file_stem().unwrap().to_string_lossy().to_string();
        if ["lib", "main", "cli"].contains(&module.as_str()) {
            continue;
        }
        let allowed = allowed(&module).unwrap_or_else(|| {
            panic!("src/{module}: a new module; add it to this test's table of layers")
        });
        let mut files = Vec::new();
        rust_files(&path, &mut files);
        for file in files {
            // Test modules in files of their own (`tests.rs`, `tests/…`, `…_tests.rs`) are
            // test code too.
            let relative = file.strip_prefix(&src).unwrap();
            let stem = file.file_stem().unwrap().to_string_lossy();
            if stem == "tests"
                || stem.ends_with("_tests")
                || relative.components().any(|c| c.as_os_str() == "tests")
            {
                continue;
            }
            let text = std::fs::read_to_string(&file).unwrap();
            // Unit tests at the bottom of a file may borrow helpers from anywhere (the demo's
            // embedded broker, say); the rule is about what the service itself depends on.
            let code = text.split("#[cfg(test)]\nmod tests").next().unwrap();
            for named in named_modules(code) {
                if named != module && !allowed.contains(&named.as_str()) {
                    violations.push(format!(
                        "{} names crate::{named}",
                        file.strip_prefix(&src).unwrap().display()
                    ));
                }
            }
        }
    }
    assert!(
        violations.is_empty(),
        "imports against the layering (stages: {STAGES:?}):\n{}",
        violations.join("\n")
    );
}
