//! TLS: quantrac reaches a broker over TLS, trusting the CA named in `mqtt.ca_file`, and
//! refuses a broker whose certificate that CA did not sign; it presents a client certificate
//! to a broker that requires one; it writes to InfluxDB over HTTPS with a private CA; and it
//! refuses unusable certificate files by name, never showing a key.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use chrono::Utc;

use quantrac_testkit::*;

use crate::QUANTRAC;

/// A CA and a server certificate for `localhost`, made with the openssl command.
fn certificates(dir: &Path, name: &str) {
    let openssl = program("openssl", "openssl");
    let run = |args: &[&str]| {
        let out = Command::new(&openssl)
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ca_key = format!("{name}-ca.key");
    let ca = format!("{name}-ca.pem");
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        &ca_key,
        "-out",
        &ca,
        "-days",
        "2",
        "-subj",
        &format!("/CN={name} test CA"),
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    ]);
    std::fs::write(dir.join("san.ext"), "subjectAltName=DNS:localhost\n").unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        &ca,
        "-CAkey",
        &ca_key,
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "san.ext",
    ]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtts_with_a_private_ca() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    certificates(d, "park");
    let (plain, tls) = (free_port(), free_port());
    std::fs::write(
        d.join("mosquitto.conf"),
        format!(
            "user root\nallow_anonymous true\npersistence false\nper_listener_settings false\n\
             listener {plain} 127.0.0.1\n\
             listener {tls} 127.0.0.1\ncafile {d}/park-ca.pem\ncertfile {d}/server.pem\nkeyfile {d}/server.key\n",
            d = d.display()
        ),
    )
    .unwrap();
    let mosquitto = program("mosquitto", "mosquitto");
    let _broker = Proc::spawn(
        "mosquitto",
        &[
            mosquitto.display().to_string(),
            "-c".into(),
            d.join("mosquitto.conf").display().to_string(),
        ],
        &[],
        d,
    );
    wait_port(plain, "mosquitto");
    wait_port(tls, "mosquitto (TLS)");

    let url = format!("mqtts://localhost:{tls}");
    let cfg = Quantrac::config_text(
        d,
        &url,
        "url = \"\"",
        &format!("[mqtt]\nca_file = \"{}/park-ca.pem\"\n", d.display()),
    );
    let q = Quantrac::start(QUANTRAC, d, &cfg, STATIONS);
    q.wait_ready().await;
    let p = Publisher::connect(plain).await;
    let ts = (Utc::now() - chrono::Duration::minutes(1))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    p.publish(
        "env/nam-dinh-vu/nd-textile/outfall-1",
        json_message(&ts, &[("COD", 20.0, "")]),
    )
    .await;
    p.wait_acked(1).await;
    eventually(
        "the reading arrives over TLS",
        Duration::from_secs(10),
        || async {
            (q.metric("quantrac_readings_accepted_total").await == Some(1.0)).then_some(())
        },
    )
    .await;
    drop(q);

    // A CA that did not sign the broker's certificate: no connection, a clear reason, no crash.
    let other = tempfile::tempdir().unwrap();
    certificates(other.path(), "other");
    let cfg = Quantrac::config_text(
        d,
        &url,
        "url = \"\"",
        &format!(
            "[mqtt]\nca_file = \"{}/other-ca.pem\"\n",
            other.path().display()
        ),
    );
    let mut q = Quantrac::start(QUANTRAC, d, &cfg, STATIONS);
    let reason = eventually(
        "a TLS failure as the readiness reason",
        Duration::from_secs(10),
        || async {
            let r = reqwest::get(format!("{}/readyz", q.http)).await.ok()?;
            let text = r.text().await.ok()?;
            text.contains("not connected").then_some(text)
        },
    )
    .await;
    assert!(
        q.proc.is_running(),
        "a refused certificate is weather, not death: {reason}"
    );
    assert_eq!(q.metric("quantrac_mqtt_connected").await, Some(0.0));
}

/// A broker for the park's PKI: a plain listener (for the test's publisher), one that requires
/// a client certificate signed by the park's CA, and one whose own certificate has expired.
/// Returns (broker, plain port, mutual TLS port, expired-certificate port).
fn park_broker(pki: &Pki) -> (Proc, u16, u16, u16) {
    let d = &pki.dir;
    let (plain, mtls, expired) = (free_port(), free_port(), free_port());
    std::fs::write(
        d.join("mosquitto-mtls.conf"),
        format!(
            "user root\nallow_anonymous true\npersistence false\nper_listener_settings false\n\
             listener {plain} 127.0.0.1\n\
             listener {mtls} 127.0.0.1\ncafile {ca}\ncertfile {cert}\nkeyfile {key}\nrequire_certificate true\n\
             listener {expired} 127.0.0.1\ncafile {ca}\ncertfile {old}\nkeyfile {old_key}\nrequire_certificate true\n",
            ca = pki.ca.display(),
            cert = pki.server_cert.display(),
            key = pki.server_key.display(),
            old = pki.expired_server_cert.display(),
            old_key = pki.expired_server_key.display(),
        ),
    )
    .unwrap();
    let mosquitto = program("mosquitto", "mosquitto");
    let broker = Proc::spawn(
        "mosquitto",
        &[
            mosquitto.display().to_string(),
            "-c".into(),
            d.join("mosquitto-mtls.conf").display().to_string(),
        ],
        &[],
        d,
    );
    wait_port(plain, "mosquitto");
    wait_port(mtls, "mosquitto (mutual TLS)");
    wait_port(expired, "mosquitto (expired certificate)");
    (broker, plain, mtls, expired)
}

/// `[mqtt]` TLS lines: the park's CA, and a client certificate when given.
fn mqtt_tls(pki: &Pki, cert: Option<(&Path, &Path)>) -> String {
    let mut s = format!("[mqtt]\nca_file = {:?}\n", pki.ca.display().to_string());
    if let Some((c, k)) = cert {
        s += &format!(
            "cert_file = {:?}\nkey_file = {:?}\n",
            c.display().to_string(),
            k.display().to_string()
        );
    }
    s
}

/// The base64 body of a PEM key, line by line: none may appear in a log.
fn key_lines(key: &Path) -> Vec<String> {
    std::fs::read_to_string(key)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("-----") && l.len() > 16)
        .map(str::to_owned)
        .collect()
}

fn assert_no_key_material(text: &str, keys: &[&Path]) {
    for key in keys {
        for line in key_lines(key) {
            assert!(!text.contains(&line), "key material in the output:\n{text}");
        }
    }
}

async fn readyz(q: &Quantrac) -> Option<String> {
    let r = reqwest::get(format!("{}/readyz", q.http)).await.ok()?;
    r.text().await.ok()
}

/// `/readyz` once it says `needle`.
async fn readyz_says(q: &Quantrac, needle: &str) -> String {
    eventually(
        &format!("/readyz says {needle:?}"),
        Duration::from_secs(15),
        || async { readyz(q).await.filter(|t| t.contains(needle)) },
    )
    .await
}

fn minute_ago(n: i64) -> String {
    (Utc::now() - chrono::Duration::minutes(n))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

// Issue 17: a broker with `require_certificate true` accepts quantrac with its client
// certificate and refuses it without; the refusal is a named TLS error, not "I/O".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_with_the_broker() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let pki = Pki::create(d);
    let (_broker, plain, mtls, expired) = park_broker(&pki);
    let url = format!("mqtts://localhost:{mtls}");

    // With the client certificate: connected, and a reading arrives.
    let tls = mqtt_tls(&pki, Some((&pki.client_cert, &pki.client_key)));
    let cfg = Quantrac::config_text(d, &url, "url = \"\"", &tls);
    let q = Quantrac::start(QUANTRAC, d, &cfg, STATIONS);
    q.wait_ready().await;
    let p = Publisher::connect(plain).await;
    p.publish(
        "env/nam-dinh-vu/nd-textile/outfall-1",
        json_message(&minute_ago(1), &[("COD", 20.0, "")]),
    )
    .await;
    p.wait_acked(1).await;
    eventually(
        "the reading arrives over mutual TLS",
        Duration::from_secs(10),
        || async {
            (q.metric("quantrac_readings_accepted_total").await == Some(1.0)).then_some(())
        },
    )
    .await;
    let expiry = q
        .metric("quantrac_tls_certificate_expiry_timestamp_seconds{client=\"mqtt\"}")
        .await
        .unwrap();
    let in_days = (expiry - Utc::now().timestamp() as f64) / 86_400.0;
    assert!((360.0..=366.0).contains(&in_days), "{in_days}");
    assert_no_key_material(&q.proc.log_text(), &[&pki.client_key]);
    drop(q);

    // Without it: refused in the handshake, said on /readyz and counted, and retried.
    let cfg = Quantrac::config_text(d, &url, "url = \"\"", &mqtt_tls(&pki, None));
    let mut q = Quantrac::start(QUANTRAC, d, &cfg, STATIONS);
    let reason = readyz_says(&q, "TLS handshake failed").await;
    assert!(
        reason.contains("(certificate_required)") || reason.contains("(handshake)"),
        "{reason}"
    );
    eventually("a TLS failure counted", Duration::from_secs(10), || async {
        (q.metric("quantrac_mqtt_connection_errors_total{kind=\"tls\"}")
            .await
            .unwrap_or(0.0)
            >= 1.0)
            .then_some(())
    })
    .await;
    assert!(q.proc.is_running(), "{reason}");
    drop(q);

    // A broker whose certificate has expired: the reason says so.
    let url = format!("mqtts://localhost:{expired}");
    let tls = mqtt_tls(&pki, Some((&pki.client_cert, &pki.client_key)));
    let cfg = Quantrac::config_text(d, &url, "url = \"\"", &tls);
    let q = Quantrac::start(QUANTRAC, d, &cfg, STATIONS);
    let reason = readyz_says(&q, "TLS handshake failed (expired)").await;
    assert!(reason.contains("mqtt: "), "{reason}");
    eventually("counted by reason", Duration::from_secs(10), || async {
        q.metric("quantrac_tls_handshake_failures_total{client=\"mqtt\",reason=\"expired\"}")
            .await
            .filter(|n| *n >= 1.0)
    })
    .await;
    drop(q);

    // A certificate that expires in 10 days: connected, with a warning and the gauge.
    let url = format!("mqtts://localhost:{mtls}");
    let tls = mqtt_tls(&pki, Some((&pki.soon_cert, &pki.soon_key)));
    let cfg = Quantrac::config_text(d, &url, "url = \"\"", &tls);
    let q = Quantrac::start(QUANTRAC, d, &cfg, STATIONS);
    q.wait_ready().await;
    let warning = q
        .proc
        .wait_for_log("the client certificate expires in", Duration::from_secs(5));
    assert!(warning.contains("mqtt.cert_file"), "{warning}");
    let (ok, out) = q.command(&["check-config"]);
    assert!(ok, "{out}");
    assert!(out.contains("warning: mqtt.cert_file"), "{out}");
    assert_no_key_material(&q.proc.log_text(), &[&pki.soon_key]);
}

// Issue 17: an expired client certificate, a key that is not the certificate's, a file that
// is not PEM: `check-config` and `run` refuse them alike, naming the key, showing no key.
#[test]
fn unusable_certificate_files_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let pki = Pki::create(d);
    std::fs::write(d.join("stations.toml"), STATIONS).unwrap();
    let cases = [
        (
            "mqtt",
            &pki.expired_cert,
            &pki.expired_key,
            "mqtt.cert_file",
            "expired on 2020-01-02",
        ),
        (
            "mqtt",
            &pki.client_cert,
            &pki.soon_key,
            "mqtt.key_file",
            "does not belong",
        ),
        (
            "mqtt",
            &pki.client_cert,
            &pki.ca,
            "mqtt.key_file",
            "not a PEM private key",
        ),
        (
            "influx",
            &pki.expired_cert,
            &pki.expired_key,
            "influx.cert_file",
            "expired on 2020-01-02",
        ),
        (
            "influx",
            &pki.client_key,
            &pki.client_key,
            "influx.cert_file",
            "no certificate in the file",
        ),
    ];
    for (i, (section, cert, key, named, why)) in cases.into_iter().enumerate() {
        let lines = format!(
            "ca_file = {:?}\ncert_file = {:?}\nkey_file = {:?}\n",
            pki.ca.display().to_string(),
            cert.display().to_string(),
            key.display().to_string()
        );
        let (mqtt, influx) = match section {
            "mqtt" => (lines, String::new()),
            _ => (String::new(), lines),
        };
        let config = d.join(format!("case-{i}.toml"));
        std::fs::write(
            &config,
            format!(
                "[mqtt]\nurl = \"mqtts://localhost:1\"\n{mqtt}\n[influx]\nurl = \"https://localhost:1\"\n{influx}\n\
                 [http]\nlisten = \"127.0.0.1:0\"\n[stations]\nfile = \"{d}/stations.toml\"\n[journal]\npath = \"{d}/journal-{i}\"\n",
                d = d.display()
            ),
        )
        .unwrap();
        for command in ["check-config", "run"] {
            let out = Command::new(QUANTRAC)
                .args([command, "--config"])
                .arg(&config)
                .output()
                .unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "{command} case {i}: {err}");
            assert!(
                err.contains(named) && err.contains(why),
                "{command} case {i}: {err}"
            );
            assert_no_key_material(&err, &[key, &pki.client_key]);
        }
    }
}

// Issue 17: InfluxDB 1.x served over HTTPS with the park's CA receives every reading; with a
// CA that did not sign its certificate, writes fail as `tls` (unknown CA), not as "connect".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn influxdb_over_https_with_a_private_ca() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let pki = Pki::create(d);
    let influx = Influx1::start_https(
        d,
        Https {
            cert: &pki.server_cert,
            key: &pki.server_key,
            ca: &pki.ca,
        },
    );
    influx.create_db().await;
    let broker = Broker::start(d);
    let influx_lines = |ca: &Path| {
        format!(
            "{}\nca_file = {:?}\ncert_file = {:?}\nkey_file = {:?}",
            influx.v1_config(),
            ca.display().to_string(),
            pki.client_cert.display().to_string(),
            pki.client_key.display().to_string()
        )
    };
    let cfg = Quantrac::config_text(d, &broker.url(), &influx_lines(&pki.ca), "");
    let q = Quantrac::start(QUANTRAC, d, &cfg, STATIONS);
    q.wait_ready().await;
    let p = Publisher::connect(broker.port).await;
    let n = 20;
    for i in 0..n {
        p.publish(
            "env/nam-dinh-vu/nd-textile/outfall-1",
            json_message(&minute_ago(i + 1), &[("COD", 20.0 + i as f64, "")]),
        )
        .await;
    }
    p.wait_acked(n as u64).await;
    eventually(
        "every reading in InfluxDB over HTTPS",
        Duration::from_secs(20),
        || async {
            (influx.count("SELECT count(value) FROM reading").await == n as u64).then_some(())
        },
    )
    .await;
    assert_eq!(
        q.metric("quantrac_influx_write_errors_total{kind=\"tls\"}")
            .await,
        Some(0.0)
    );
    assert!(q
        .metric("quantrac_tls_certificate_expiry_timestamp_seconds{client=\"influx\"}")
        .await
        .is_some());
    assert_no_key_material(&q.proc.log_text(), &[&pki.client_key]);
    drop(q);

    // The wrong CA: the handshake fails, counted as tls and by reason; nothing is lost.
    let cfg = Quantrac::config_text(d, &broker.url(), &influx_lines(&pki.other_ca), "");
    let q = Quantrac::start(QUANTRAC, d, &cfg, STATIONS);
    q.wait_ready().await;
    p.publish(
        "env/nam-dinh-vu/nd-textile/outfall-1",
        json_message(&minute_ago(30), &[("COD", 1.0, "")]),
    )
    .await;
    eventually("writes fail as tls", Duration::from_secs(15), || async {
        let tls = q
            .metric("quantrac_influx_write_errors_total{kind=\"tls\"}")
            .await?;
        let reason = q
            .metric(
                "quantrac_tls_handshake_failures_total{client=\"influx\",reason=\"unknown_ca\"}",
            )
            .await?;
        (tls >= 1.0 && reason >= 1.0).then_some(())
    })
    .await;
    assert_eq!(
        q.metric("quantrac_influx_write_errors_total{kind=\"connect\"}")
            .await,
        Some(0.0)
    );
    let log = q
        .proc
        .wait_for_log("TLS handshake with InfluxDB failed", Duration::from_secs(5));
    assert!(log.contains("unknown_ca"), "{log}");
    // A certificate to fix is said on /readyz, naming the client and the reason.
    let reason = readyz_says(&q, "influx: InfluxDB TLS handshake failed (unknown_ca)").await;
    assert!(reason.contains("not signed by a trusted CA"), "{reason}");
    assert_no_key_material(&q.proc.log_text(), &[&pki.client_key]);
}
