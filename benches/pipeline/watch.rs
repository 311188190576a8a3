//! Following quantrac through a province run without weighing on it. At 10,000 stations
//! `/metrics` is about 20 MB and rendering it costs quantrac a tenth of a second of CPU, so
//! while the run lasts the benchmark reads quantrac's journal instead, as a second SQLite
//! reader (WAL mode: a reader never blocks the writer): the chain head (every message committed
//! and then acknowledged), the last point committed and the outbox cursor (the last point
//! InfluxDB accepted). A look costs microseconds, so it is taken every [`POLL`]. `/metrics`
//! is read once, at the end.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use quantrac_testkit::metrics::sum_by_name;
use rusqlite::{Connection, OpenFlags};

use crate::service::Service;

/// Time between two looks at the journal.
pub(crate) const POLL: Duration = Duration::from_millis(50);

/// quantrac's counters, from one `/metrics` answer summed over labels.
pub(crate) struct Counters(HashMap<String, f64>);

impl Counters {
    pub(crate) fn get(&self, name: &str) -> f64 {
        self.0.get(name).copied().unwrap_or(0.0)
    }
}

pub(crate) async fn counters(http: &reqwest::Client, q: &Service) -> anyhow::Result<Counters> {
    let text = http
        .get(format!("{}/metrics", q.q.http))
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?;
    Ok(Counters(sum_by_name(&text)))
}

/// One look at the journal.
#[derive(Clone, Copy)]
struct Look {
    at: Instant,
    /// Messages committed (the chain head's record id).
    head: u64,
    /// Points committed and not yet accepted by InfluxDB.
    backlog: u64,
}

/// The journal of a running quantrac, opened as a reader.
struct Probe(Connection);

impl Probe {
    fn open(dir: &Path) -> anyhow::Result<Probe> {
        let conn = Connection::open_with_flags(
            quantrac::journal::db_path(dir),
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .context("opening quantrac's journal as a reader")?;
        conn.busy_timeout(Duration::from_secs(5))?;
        Ok(Probe(conn))
    }

    fn look(&self) -> anyhow::Result<Look> {
        let at = Instant::now();
        let mut stmt = self.0.prepare_cached(
            "SELECT key, value FROM meta WHERE key IN ('chain_head_id', 'last_point_id', 'outbox_cursor')",
        )?;
        let mut values = HashMap::new();
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let key: String = row.get(0)?;
            let value: i64 = row.get(1)?;
            values.insert(key, u64::try_from(value).unwrap_or(0));
        }
        let v = |k: &str| values.get(k).copied().unwrap_or(0);
        Ok(Look {
            at,
            head: v("chain_head_id"),
            backlog: v("last_point_id").saturating_sub(v("outbox_cursor")),
        })
    }
}

/// When quantrac had committed `messages` and when its outbox was empty again afterwards.
pub(crate) struct Followed {
    /// The first look with every message committed (within [`POLL`]).
    pub(crate) committed: Instant,
    /// The first look after that with the outbox empty.
    pub(crate) drained: Instant,
    /// Points not yet in InfluxDB when the last message was committed.
    pub(crate) backlog_at_commit: u64,
    /// quantrac's counters once the outbox was empty.
    pub(crate) last: Counters,
}

/// Looks at the journal in `dir` every [`POLL`] until it holds `messages` records and its
/// outbox is empty.
pub(crate) async fn follow(
    http: &reqwest::Client,
    q: &mut Service,
    dir: &Path,
    messages: u64,
    timeout: Duration,
) -> anyhow::Result<Followed> {
    let deadline = Instant::now() + timeout;
    let probe = Probe::open(dir)?;
    let mut committed: Option<Look> = None;
    loop {
        let look = probe.look()?;
        if committed.is_none() && look.head >= messages {
            committed = Some(look);
        }
        if let Some(c) = committed {
            if look.backlog == 0 {
                drop(probe);
                return Ok(Followed {
                    committed: c.at,
                    drained: look.at,
                    backlog_at_commit: c.backlog,
                    last: counters(http, q).await?,
                });
            }
        }
        if let Some(status) = q.q.proc.exited() {
            bail!("quantrac exited ({status}); log:\n{}", q.q.proc.tail(20));
        }
        if Instant::now() > deadline {
            bail!(
                "after {timeout:?} quantrac's journal holds {} of {messages} messages, outbox backlog {}; log:\n{}",
                look.head,
                look.backlog,
                q.q.proc.tail(20)
            );
        }
        tokio::time::sleep(POLL).await;
    }
}
