//! The yardstick of part 3a: a plain `mosquitto_sub -q 1` receiving the workload from the same
//! publishers, counted by its output lines (one per message: the payloads hold no newline).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use quantrac_testkit::programs::program;
use quantrac_testkit::Broker;

use crate::e2e::backlog_broker;
use crate::publish::publish;
use crate::report::rate;
use crate::workload::Workload;

/// Its client id: a persistent session (`-c`), like quantrac's.
const CLIENT_ID: &str = "quantrac-bench-mosquitto-sub";
/// The subscription quantrac makes from its topic template `env/{park}/{site}/{station}`.
pub(crate) const TOPIC_FILTER: &str = "env/+/+/+";

/// What `mosquitto_sub` saw.
pub(crate) struct SubRun {
    pub(crate) messages: u64,
    /// From the first publish to the last message printed.
    pub(crate) elapsed: Duration,
    /// From the first publish to the last PUBACK the publishers received.
    pub(crate) last_puback: Duration,
    /// CPU seconds of `mosquitto_sub` and of the broker over the pass.
    pub(crate) sub_cpu: f64,
    pub(crate) broker_cpu: f64,
}

impl SubRun {
    pub(crate) fn rate(&self) -> f64 {
        rate(self.messages, self.elapsed)
    }
}

/// A child killed when dropped (an error or a panic must not leave it running).
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Publishes `work` from `publishers` clients to a broker of its own, with `mosquitto_sub`
/// subscribed, and times its output. The session is made first (`-E`: subscribe, then exit),
/// so the broker queues for it from the start: nothing published is lost to a subscription not
/// yet granted, and the counting `mosquitto_sub -C <n>` resumes that session.
pub(crate) async fn mosquitto_sub_pass(
    dir: &Path,
    work: &Arc<Workload>,
    publishers: usize,
    timeout: Duration,
) -> anyhow::Result<SubRun> {
    let mut broker = Broker::start_with(dir, backlog_broker());
    let bin = program("mosquitto_sub", "mosquitto-clients");
    let port = broker.port.to_string();
    let base = [
        "-h",
        "127.0.0.1",
        "-p",
        &port,
        "-i",
        CLIENT_ID,
        "-c",
        "-q",
        "1",
        "-t",
        TOPIC_FILTER,
    ];
    let made = Command::new(&bin)
        .args(base)
        .args(["-E", "-W", "10"])
        .output()
        .context("mosquitto_sub -E")?;
    if !made.status.success() {
        bail!(
            "mosquitto_sub could not subscribe: {}",
            String::from_utf8_lossy(&made.stderr)
        );
    }
    let n = work.messages.len() as u64;
    let mut child = Killed(
        Command::new(&bin)
            .args(base)
            .args(["-C", &n.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("starting mosquitto_sub")?,
    );
    let out = child.0.stdout.take().context("mosquitto_sub's output")?;
    let (tx, rx) = tokio::sync::oneshot::channel::<(u64, Instant)>();
    std::thread::spawn(move || {
        let mut lines = 0u64;
        let mut reader = BufReader::with_capacity(1 << 16, out);
        let mut line = Vec::new();
        while reader.read_until(b'\n', &mut line).is_ok_and(|k| k > 0) {
            line.clear();
            lines += 1;
            if lines == n {
                break;
            }
        }
        let _ = tx.send((lines, Instant::now()));
    });
    // Time for it to connect; the session queues meanwhile anyway.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (sub_cpu0, broker_cpu0) = (
        crate::procfs::process_cpu(child.0.id()),
        crate::procfs::process_cpu(broker.proc.pid()),
    );
    let t0 = Instant::now();
    let published = publish(broker.port, work, publishers, "versus-sub", timeout).await?;
    let remaining = timeout.saturating_sub(t0.elapsed());
    let (lines, at) = match tokio::time::timeout(remaining, rx).await {
        Ok(Ok(done)) => done,
        _ => bail!("mosquitto_sub did not print {n} messages within {timeout:?}"),
    };
    let sub_cpu = crate::procfs::process_cpu(child.0.id()) - sub_cpu0;
    let broker_cpu = crate::procfs::process_cpu(broker.proc.pid()) - broker_cpu0;
    if lines < n {
        bail!("mosquitto_sub printed {lines} of {n} messages and stopped");
    }
    drop(child);
    broker.proc.kill9();
    Ok(SubRun {
        messages: lines,
        elapsed: at.duration_since(t0),
        last_puback: published.last_ack.saturating_duration_since(t0),
        sub_cpu,
        broker_cpu,
    })
}
