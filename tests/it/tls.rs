//! `mqtts://`: quantrac reaches a broker over TLS, trusting the CA named in `mqtt.ca_file`, and
//! refuses a broker whose certificate that CA did not sign.

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
