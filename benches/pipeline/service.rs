//! quantrac as the benchmark drives it: the testkit's process, with waits that report an error
//! instead of panicking and time what they wait for, and the InfluxDB statements of a run.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::bail;
use quantrac_testkit::metrics::sum_by_name;
use quantrac_testkit::{Influx1, Quantrac};

use crate::e2e::{Ctx, Done};

/// How often the end-to-end runs look at quantrac's metrics while waiting: seldom while much
/// is left (a scrape of ~200 stations' gauges costs quantrac tens of milliseconds of CPU), often
/// near the end, so the finish is timed to within [`POLL_FAST`].
pub(crate) const POLL_SLOW: Duration = Duration::from_secs(1);
pub(crate) const POLL_FAST: Duration = Duration::from_millis(200);
/// Points left in quantrac's backlog below which the wait polls fast.
const FAST_BELOW: f64 = 30_000.0;
/// InfluxDB is asked for its count at least this often, whatever the metrics say.
const ASK_INFLUX: Duration = Duration::from_secs(3);

/// `quantrac run` on one run's configuration.
pub(crate) struct Service {
    pub(crate) q: Quantrac,
}

impl Service {
    /// Starts `quantrac run --config <config>`; its output is appended to `quantrac.log` beside
    /// the config. Returns once it logged its HTTP address.
    pub(crate) fn start(config: &Path) -> Service {
        Service {
            q: Quantrac::run(env!("CARGO_BIN_EXE_quantrac"), config),
        }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.q.proc.pid()
    }

    /// The last lines of quantrac's log, for error messages.
    fn tail(&self) -> String {
        self.q.proc.tail(20)
    }

    /// Waits for `/readyz` 200 and for the log line saying the subscription was granted: what
    /// is published before the subscription exists reaches nobody, and a lost message would
    /// leave the benchmark waiting for readings that never come.
    pub(crate) async fn wait_ready(
        &mut self,
        http: &reqwest::Client,
        timeout: Duration,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.q.proc.find_log("MQTT subscribed").is_some() {
                if let Ok(r) = http.get(format!("{}/readyz", self.q.http)).send().await {
                    if r.status().is_success() {
                        return Ok(());
                    }
                }
            }
            if let Some(status) = self.q.proc.exited() {
                bail!("quantrac exited ({status}); log:\n{}", self.tail());
            }
            if Instant::now() > deadline {
                bail!(
                    "quantrac not ready after {timeout:?}; log:\n{}",
                    self.tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `/metrics`, each metric summed over its label sets, and the answer's size.
    pub(crate) async fn scrape(
        &self,
        http: &reqwest::Client,
    ) -> anyhow::Result<(HashMap<String, f64>, usize)> {
        let text = http
            .get(format!("{}/metrics", self.q.http))
            .send()
            .await?
            .text()
            .await?;
        Ok((sum_by_name(&text), text.len()))
    }

    /// Waits until InfluxDB holds `expected` readings. Watches quantrac's metrics and asks
    /// InfluxDB once they say everything is written, or every [`ASK_INFLUX`] in any case.
    pub(crate) async fn wait_in_influx(
        &mut self,
        ctx: &Ctx<'_>,
        db: &str,
        expected: u64,
        t0: Instant,
    ) -> anyhow::Result<Done> {
        let deadline = Instant::now() + ctx.sizes.timeout;
        let mut intake = None;
        let mut asked = Instant::now();
        let mut count = 0;
        let (mut scrapes, mut scrape_time) = (0u32, Duration::ZERO);
        loop {
            let t = Instant::now();
            let metrics = self
                .scrape(ctx.http)
                .await
                .map(|(m, _)| m)
                .unwrap_or_default();
            scrapes += 1;
            scrape_time += t.elapsed();
            let m = |k: &str| metrics.get(k).copied().unwrap_or(0.0);
            let accepted = m("quantrac_readings_accepted_total") as u64 >= expected;
            if accepted && intake.is_none() {
                intake = Some(t0.elapsed());
            }
            let backlog = m("quantrac_journal_backlog_readings");
            let written = accepted && backlog == 0.0;
            if written || asked.elapsed() >= ASK_INFLUX {
                asked = Instant::now();
                count = count_readings(ctx.influx, ctx.http, db).await?;
                if count >= expected {
                    let elapsed = t0.elapsed();
                    return Ok(Done {
                        intake: intake.unwrap_or(elapsed),
                        elapsed,
                        scrapes,
                        scrape_time,
                    });
                }
            }
            if let Some(status) = self.q.proc.exited() {
                bail!("quantrac exited ({status}); log:\n{}", self.tail());
            }
            if Instant::now() > deadline {
                bail!(
                    "after {:?} InfluxDB holds {count} of {expected} readings (accepted {}, backlog {}); log:\n{}",
                    ctx.sizes.timeout,
                    m("quantrac_readings_accepted_total"),
                    m("quantrac_journal_backlog_readings"),
                    self.tail()
                );
            }
            tokio::time::sleep(if accepted && backlog < FAST_BELOW {
                POLL_FAST
            } else {
                POLL_SLOW
            })
            .await;
        }
    }

    /// SIGTERM, as systemd stops it; quantrac flushes and exits 0.
    pub(crate) fn stop(mut self, timeout: Duration) -> anyhow::Result<()> {
        match self.q.proc.sigterm(timeout) {
            Some(status) if status.success() => Ok(()),
            Some(status) => bail!(
                "quantrac exited with {status} after SIGTERM; log:\n{}",
                self.tail()
            ),
            None => bail!("quantrac did not exit within {timeout:?} of SIGTERM"),
        }
    }
}

/// A run's own database.
pub(crate) async fn create_database(
    influx: &Influx1,
    http: &reqwest::Client,
    db: &str,
) -> anyhow::Result<()> {
    influx
        .request(http, true, None, &format!("CREATE DATABASE \"{db}\""))
        .await?;
    Ok(())
}

/// Frees the run's data, so its compactions do not run under the next one.
pub(crate) async fn drop_database(influx: &Influx1, http: &reqwest::Client, db: &str) {
    if let Err(e) = influx
        .request(http, true, None, &format!("DROP DATABASE \"{db}\""))
        .await
    {
        println!("   (dropping database {db}: {e:#})");
    }
}

/// `SELECT count(value) FROM reading`: readings queryable now.
pub(crate) async fn count_readings(
    influx: &Influx1,
    http: &reqwest::Client,
    db: &str,
) -> anyhow::Result<u64> {
    let v = influx
        .request(http, false, Some(db), "SELECT count(value) FROM reading")
        .await?;
    Ok(v["results"][0]["series"][0]["values"][0][1]
        .as_u64()
        .unwrap_or(0))
}
