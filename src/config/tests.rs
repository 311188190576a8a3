//! Loading: layering, unknown keys, secrets, the typed values, and the errors' keys.

use super::*;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// Loads `text` as the file, with `env` as the whole environment.
fn load(text: &str, env: &[(&str, &str)]) -> Result<Settings, Error> {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "q.toml", text);
    let env = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Settings::load(&path, true, Some(env))
}

fn v2(s: &Settings) -> &InfluxV2 {
    match &s.influx.api {
        InfluxApi::V2(v2) => v2,
        other => panic!("{other:?}"),
    }
}

fn v1(s: &Settings) -> &InfluxV1 {
    match &s.influx.api {
        InfluxApi::V1(v1) => v1,
        other => panic!("{other:?}"),
    }
}

#[test]
fn defaults_then_file_then_environment() {
    let dir = tempfile::tempdir().unwrap();
    let token = write(dir.path(), "token", "s3cret\n");
    let path = write(
        dir.path(),
        "q.toml",
        &format!(
            "[influx]\nbatch_size = 10\ntoken_file = {:?}\n[mqtt]\ntopics = \"a/{{park}}/{{site}}/{{station}}\"\n",
            token.display().to_string()
        ),
    );
    let env = HashMap::from([
        ("QUANTRAC__INFLUX__BATCH_SIZE".to_string(), "20".to_string()),
        ("QUANTRAC__INFLUX__ORG".to_string(), "007".to_string()),
    ]);
    let s = Settings::load(&path, true, Some(env)).unwrap();
    assert_eq!(s.influx.batch_size, 20);
    assert_eq!(v2(&s).org, "007", "digits stay a string");
    assert_eq!(v2(&s).bucket, "quantrac");
    assert_eq!(v2(&s).token.as_ref().unwrap().expose_secret(), "s3cret");
    assert_eq!(s.mqtt.topics, vec!["a/{park}/{site}/{station}"]);
    assert_eq!(s.mqtt.client_id, "quantrac");
    assert!(
        !format!("{s:?}").contains("s3cret"),
        "secrets never reach Debug"
    );
}

#[test]
fn values_are_parsed_into_their_types_once() {
    let s = load(
        "[mqtt]\nurl = \"mqtts://broker.example\"\nusername = \"\"\n\
         [http]\nlisten = \"[::1]:0\"\n\
         [influx]\nurl = \"https://influx.example/base\"\napi = \"v1\"\nretention_policy = \"\"\n",
        &[],
    )
    .unwrap();
    assert_eq!(s.mqtt.url.to_string(), "mqtts://broker.example:8883");
    assert_eq!(s.mqtt.username, None, "\"\" is none");
    assert_eq!(s.http.listen, "[::1]:0".parse().unwrap());
    let url = s.influx.url.as_ref().unwrap();
    assert_eq!(url.as_url().path(), "/base");
    assert_eq!(v1(&s).database, "quantrac");
    assert_eq!(v1(&s).retention_policy, None, "\"\" is none");

    let s = load("[influx]\nurl = \"\"\n", &[]).unwrap();
    assert!(s.influx.url.is_none(), "no InfluxDB");
    let s = load("", &[("QUANTRAC__INFLUX__URL", "")]).unwrap();
    assert!(
        s.influx.url.is_none(),
        "the environment can turn InfluxDB off"
    );
}

// Issue 8: a v1-only key under v2 is a config error, not ignored; and the other way round.
#[test]
fn a_key_of_the_other_api_version_is_an_error_naming_it() {
    for (text, key, version) in [
        ("api = \"v2\"\ndatabase = \"db\"\n", "influx.database", "v2"),
        ("retention_policy = \"\"\n", "influx.retention_policy", "v2"),
        ("username = \"u\"\n", "influx.username", "v2"),
        ("password_file = \"/x\"\n", "influx.password_file", "v2"),
        ("api = \"v1\"\norg = \"o\"\n", "influx.org", "v1"),
        ("api = \"v1\"\ntoken = \"t0ken-9\"\n", "influx.token", "v1"),
        ("api = \"v1\"\nbucket = \"b\"\n", "influx.bucket", "v1"),
    ] {
        let e = load(&format!("[influx]\n{text}"), &[]).unwrap_err();
        assert_eq!(e.key(), Some(key), "{e}");
        let e = e.to_string();
        assert!(
            e.contains(&format!("not a {version} setting (api = \"{version}\")")),
            "{e}"
        );
        assert!(e.contains("q.toml") && !e.contains("t0ken-9"), "{e}");
    }
    // From the environment: the variable is named.
    let e = load(
        "[influx]\napi = \"v1\"\n",
        &[("QUANTRAC__INFLUX__TOKEN", "t0ken-9")],
    )
    .unwrap_err();
    assert_eq!(e.key(), Some("influx.token"));
    let e = e.to_string();
    assert!(
        e.contains("QUANTRAC__INFLUX__TOKEN") && !e.contains("t0ken-9"),
        "{e}"
    );
}

#[test]
fn credentials_in_a_url_are_refused_without_repeating_them() {
    for (text, key) in [
        (
            "[mqtt]\nurl = \"mqtt://u:SECRET@broker:1883\"\n",
            "mqtt.url",
        ),
        (
            "[influx]\nurl = \"http://u:SECRET@influx:8086\"\n",
            "influx.url",
        ),
    ] {
        let e = load(text, &[]).unwrap_err();
        assert_eq!(e.key(), Some(key), "{e}");
        let e = e.to_string();
        assert!(!e.contains("SECRET") && e.contains("q.toml"), "{e}");
    }
}

#[test]
fn refused_values_name_their_key() {
    for (text, key) in [
        ("[mqtt]\nurl = \"tcp://broker\"\n", "mqtt.url"),
        ("[mqtt]\ntopics = []\n", "mqtt.topics"),
        (
            "[mqtt]\ntopics = [\"env/{park}/{station}\"]\n",
            "mqtt.topics",
        ),
        ("[mqtt]\nclient_id = \"\"\n", "mqtt.client_id"),
        ("[mqtt]\nreceive_maximum = 0\n", "mqtt.receive_maximum"),
        ("[mqtt]\nmax_payload_bytes = 0\n", "mqtt.max_payload_bytes"),
        ("[mqtt]\nprotocol = \"v4\"\n", "mqtt.protocol"),
        ("[influx]\nurl = \"ftp://h\"\n", "influx.url"),
        ("[influx]\nbatch_size = 0\n", "influx.batch_size"),
        ("[influx]\nbatch_size = \"many\"\n", "influx.batch_size"),
        ("[influx]\nbucket = \"\"\n", "influx.bucket"),
        (
            "[influx]\napi = \"v1\"\ndatabase = \"\"\n",
            "influx.database",
        ),
        ("[influx]\napi = \"v3\"\n", "influx.api"),
        ("[http]\nlisten = \"localhost:9787\"\n", "http.listen"),
        (
            "[stations]\ntimezone = \"Mars/Olympus\"\n",
            "stations.timezone",
        ),
        ("[journal]\nretention_days = 0\n", "journal.retention_days"),
        (
            "[compliance]\nmin_capture = 1.5\n",
            "compliance.min_capture",
        ),
        ("[compliance]\nwindows = [\"7m\"]\n", "compliance.windows"),
        ("[influx]\nbatchsize = 10\n", "influx"),
    ] {
        let e = load(text, &[]).unwrap_err();
        assert_eq!(e.key(), Some(key), "{text}: {e}");
        assert!(e.to_string().contains("q.toml"), "{e}");
    }
    let e = load("", &[("QUANTRAC__HTTP__LISTEN", "nowhere")]).unwrap_err();
    assert_eq!(e.key(), Some("http.listen"));
    assert!(e.to_string().contains("QUANTRAC__HTTP__LISTEN"), "{e}");
}

#[test]
fn unknown_keys_are_errors_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "q.toml", "[influx]\nbatchsize = 10\n");
    let e = Settings::load(&path, true, Some(HashMap::new()))
        .unwrap_err()
        .to_string();
    assert!(e.contains("batchsize"), "{e}");
    assert!(e.contains("q.toml"), "{e}");
}

#[test]
fn empty_secrets_are_none_and_secret_files_win() {
    let dir = tempfile::tempdir().unwrap();
    let pw = write(dir.path(), "pw", "from-file\n");
    let s = load(
        &format!(
            "[mqtt]\npassword = \"\"\n[influx]\napi = \"v1\"\nusername = \"w\"\npassword = \"inline\"\npassword_file = {:?}\n",
            pw.display().to_string()
        ),
        &[],
    )
    .unwrap();
    assert!(s.mqtt.password.is_none());
    assert_eq!(v1(&s).username.as_deref(), Some("w"));
    assert_eq!(
        v1(&s).password.as_ref().unwrap().expose_secret(),
        "from-file"
    );
    let e = load("[mqtt]\npassword_file = \"/nonexistent/pw\"\n", &[]).unwrap_err();
    assert_eq!(e.key(), Some("mqtt.password_file"));
    let e = load(
        "[mqtt]\nurl = \"mqtts://b\"\nca_file = \"/nonexistent/ca.pem\"\n",
        &[],
    )
    .unwrap_err();
    assert_eq!(e.key(), Some("mqtt.ca_file"));
}

#[test]
fn a_missing_named_file_is_an_error() {
    let e = Settings::load(Path::new("/nonexistent/q.toml"), true, Some(HashMap::new()))
        .unwrap_err()
        .to_string();
    assert!(e.contains("no such file"), "{e}");
}

#[test]
fn the_signing_key_is_read_at_load_and_never_shown() {
    let dir = tempfile::tempdir().unwrap();
    let (key, pem) = SigningKey::generate().unwrap();
    let file = write(dir.path(), "signing.pem", pem.expose_secret());
    let s = load(
        &format!("[journal]\nsigning_key_file = {file:?}\ncheckpoint_interval_s = 60\n"),
        &[],
    )
    .unwrap();
    let loaded = s.journal.signing_key.as_ref().unwrap();
    assert_eq!(loaded.public_key(), key.public_key());
    assert_eq!(s.journal.checkpoint_interval_s, 60);
    let shown = format!("{s:?}");
    let body = pem.expose_secret().lines().nth(1).unwrap();
    assert!(!shown.contains(body), "the private key never reaches Debug");

    // No file, or not a key: refused, naming the key and the file.
    for text in ["", "not a key"] {
        let missing = dir.path().join(format!("k{}.pem", text.len()));
        if !text.is_empty() {
            std::fs::write(&missing, text).unwrap();
        }
        let e = load(&format!("[journal]\nsigning_key_file = {missing:?}\n"), &[]).unwrap_err();
        assert_eq!(e.key(), Some("journal.signing_key_file"), "{e}");
        assert!(
            e.to_string().contains(&missing.display().to_string()),
            "{e}"
        );
        assert!(!e.to_string().contains("not a key"), "{e}");
    }
    // "" is none, as for the other optional keys.
    let s = load("[journal]\nsigning_key_file = \"\"\n", &[]).unwrap();
    assert!(s.journal.signing_key.is_none());
    assert!(load("[journal]\ncheckpoint_interval_s = 0\n", &[]).is_err());
}

#[test]
fn the_inbox_is_off_without_its_section_and_fills_in_its_folders() {
    assert!(load("", &[]).unwrap().inbox.is_none());
    let s = load("[inbox]\ndir = \"/srv/ftp/quantrac\"\n", &[]).unwrap();
    let inbox = s.inbox.unwrap();
    assert_eq!(inbox.dir, Path::new("/srv/ftp/quantrac"));
    assert_eq!(inbox.done_dir, Path::new("/srv/ftp/quantrac/done"));
    assert_eq!(inbox.rejected_dir, Path::new("/srv/ftp/quantrac/rejected"));
    assert_eq!(
        inbox.pattern,
        "{province}_{facility}_{station}_{yyyyMMddHHmmss}.txt"
    );
    assert_eq!((inbox.poll_ms, inbox.settle_ms), (1000, 10_000));
    assert_eq!(inbox.province, None);
    // From the environment alone, too.
    let s = load(
        "",
        &[
            ("QUANTRAC__INBOX__DIR", "/in"),
            ("QUANTRAC__INBOX__PROVINCE", "HP"),
        ],
    )
    .unwrap();
    assert_eq!(s.inbox.unwrap().province.as_deref(), Some("HP"));
}

#[test]
fn inbox_errors_name_the_key() {
    for (text, key) in [
        ("[inbox]\npattern = \"{station}.txt\"\n", "inbox.dir"),
        (
            "[inbox]\ndir = \"/in\"\npattern = \"{site}_{yyyyMMddHHmmss}.txt\"\n",
            "inbox.pattern",
        ),
        (
            "[inbox]\ndir = \"/in\"\ndone_dir = \"/in\"\n",
            "inbox.done_dir",
        ),
        (
            "[inbox]\ndir = \"/in\"\ndone_dir = \"/x\"\nrejected_dir = \"/x\"\n",
            "inbox.rejected_dir",
        ),
        ("[inbox]\ndir = \"/in\"\npoll_ms = 0\n", "inbox.poll_ms"),
        ("[inbox]\ndir = \"/in\"\nfolder = \"/x\"\n", "inbox"),
    ] {
        let e = load(text, &[]).unwrap_err();
        assert_eq!(e.key(), Some(key), "{text}: {e}");
    }
}
