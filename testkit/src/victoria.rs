//! victoria-metrics: a real server for the InfluxDB v2 write API (`/api/v2/write`).

use std::path::Path;

use serde_json::Value;

use crate::ports::{free_port, wait_port};
use crate::process::Proc;
use crate::programs::program;

/// victoria-metrics on a free loopback port; data in `<dir>/victoria`, its output in
/// `<dir>/victoria-metrics.log`.
pub struct Victoria {
    pub port: u16,
    pub proc: Proc,
}

impl Victoria {
    pub fn start(dir: &Path) -> Victoria {
        let port = free_port();
        let data = dir.join("victoria");
        let bin = program("victoria-metrics", "victoria-metrics");
        let proc = Proc::build(
            "victoria-metrics",
            &[
                bin.display().to_string(),
                format!("-storageDataPath={}", data.display()),
                format!("-httpListenAddr=127.0.0.1:{port}"),
                "-loggerLevel=WARN".into(),
                "-search.disableCache".into(),
                "-search.latencyOffset=0s".into(),
            ],
            &[],
            dir,
        )
        .log_file(&dir.join("victoria-metrics.log"))
        .start_now();
        wait_port(port, "victoria-metrics");
        Victoria { port, proc }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Every sample of the metrics matching `selector`, as (labels, values, timestamps).
    pub async fn export(&self, selector: &str) -> Vec<Value> {
        let _ = reqwest::Client::new()
            .get(format!("{}/internal/force_flush", self.url()))
            .send()
            .await;
        let text = reqwest::Client::new()
            .get(format!("{}/api/v1/export", self.url()))
            .query(&[("match[]", selector), ("start", "0")])
            .send()
            .await
            .expect("querying victoria-metrics")
            .text()
            .await
            .unwrap();
        text.lines()
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}
