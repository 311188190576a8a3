//! Tests of the driver against an outbox in memory and fake InfluxDB servers; the pure parts
//! (line protocol, classification) are tested beside their code.

mod batching;
mod failures;
mod stop;
mod window;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::run::RETRY_MIN;
use super::*;
use crate::config::InfluxSettings;
use crate::metrics::Metrics;

/// The outbox in memory: points, a cursor, the refusals.
#[derive(Default)]
struct Outbox {
    points: Vec<(u64, String)>,
    cursor: u64,
    cursor_moves: Vec<u64>,
    rejected: Vec<(u64, String)>,
    /// Reads that fail (transiently) before one succeeds.
    fail_reads: u32,
    /// What the next calls to `written` return instead of moving the cursor, first one first.
    written_errors: VecDeque<BacklogError>,
    /// Every call fails with this: an outbox gone bad for good.
    broken: Option<BacklogError>,
}

#[derive(Clone, Default)]
struct MemBacklog(Arc<Mutex<Outbox>>);

impl MemBacklog {
    fn with(n: u64) -> MemBacklog {
        let b = MemBacklog::default();
        b.push(1..=n);
        b
    }
    fn push(&self, ids: impl IntoIterator<Item = u64>) {
        let mut o = self.0.lock().unwrap();
        for id in ids {
            o.points
                .push((id, format!("reading,param=COD v={id} {id}")));
        }
    }
    fn cursor(&self) -> u64 {
        self.0.lock().unwrap().cursor
    }
}

impl Backlog for MemBacklog {
    async fn next_batch(&mut self, limit: usize) -> Result<Vec<(u64, String)>, BacklogError> {
        let mut o = self.0.lock().unwrap();
        o.check()?;
        if o.fail_reads > 0 {
            o.fail_reads -= 1;
            return Err(BacklogError::Transient("disk I/O error".into()));
        }
        let c = o.cursor;
        Ok(o.points
            .iter()
            .filter(|(id, _)| *id > c)
            .take(limit)
            .cloned()
            .collect())
    }
    async fn written(&mut self, upto_id: u64) -> Result<(), BacklogError> {
        let mut o = self.0.lock().unwrap();
        o.check()?;
        if let Some(e) = o.written_errors.pop_front() {
            return Err(e);
        }
        assert!(upto_id >= o.cursor, "the cursor never goes back");
        o.cursor = upto_id;
        o.cursor_moves.push(upto_id);
        Ok(())
    }
    async fn rejected(&mut self, id: u64, reason: &str) -> Result<(), BacklogError> {
        let mut o = self.0.lock().unwrap();
        o.check()?;
        o.rejected.push((id, reason.to_owned()));
        Ok(())
    }
    async fn backlog(&mut self) -> Result<u64, BacklogError> {
        let o = self.0.lock().unwrap();
        o.check()?;
        Ok(o.points.iter().filter(|(id, _)| *id > o.cursor).count() as u64)
    }
}

impl Outbox {
    fn check(&self) -> Result<(), BacklogError> {
        self.broken.clone().map_or(Ok(()), Err)
    }
}

type Rule = Box<dyn Fn(&str, usize) -> Result<Reply, WriteError> + Send + Sync>;

/// A fake InfluxDB: answers by a rule on (body, attempt number), records every request.
#[derive(Clone)]
struct FakeInflux {
    rule: Arc<Rule>,
    log: Arc<Mutex<Vec<(Instant, String, u16)>>>,
}

impl FakeInflux {
    fn new(
        rule: impl Fn(&str, usize) -> Result<Reply, WriteError> + Send + Sync + 'static,
    ) -> Self {
        FakeInflux {
            rule: Arc::new(Box::new(rule)),
            log: Arc::default(),
        }
    }
    fn requests(&self) -> Vec<(Instant, String, u16)> {
        self.log.lock().unwrap().clone()
    }
}

impl WriteApi for FakeInflux {
    async fn write(&self, body: String) -> Result<Reply, WriteError> {
        let n = self.log.lock().unwrap().len();
        let r = (self.rule)(&body, n);
        let status = r.as_ref().map(|r| r.status).unwrap_or(0);
        self.log
            .lock()
            .unwrap()
            .push((Instant::now(), body, status));
        r
    }
}

fn reply(status: u16) -> Result<Reply, WriteError> {
    Ok(Reply {
        status,
        retry_after: None,
        body: String::new(),
    })
}

fn opts(batch_size: usize) -> Options {
    Options {
        batch_size,
        flush_interval: Duration::from_secs(1),
        retry: RetryPolicy {
            min: Duration::from_millis(200),
            max: Duration::from_secs(30),
        },
        deadline_on_stop: Duration::from_secs(5),
        in_flight: IN_FLIGHT,
    }
}

struct Running {
    stop: CancellationToken,
    wake: Arc<Notify>,
    task: tokio::task::JoinHandle<Result<(), BacklogError>>,
    metrics: Metrics,
}

fn start(b: &MemBacklog, f: &FakeInflux, o: Options) -> Running {
    spawn_run(b, f, o)
}

/// Runs the driver over `b` and `f` on a task of its own.
fn spawn_run<W: WriteApi + Clone>(b: &MemBacklog, f: &W, o: Options) -> Running {
    let stop = CancellationToken::new();
    let wake = Arc::new(Notify::new());
    let metrics = Metrics::new();
    let task = tokio::spawn(run(
        b.clone(),
        f.clone(),
        o,
        metrics.clone(),
        crate::readiness::Readiness::default(),
        wake.clone(),
        stop.clone(),
    ));
    Running {
        stop,
        wake,
        task,
        metrics,
    }
}

impl Running {
    async fn stop(self) -> Metrics {
        self.stop.cancel();
        self.task
            .await
            .unwrap()
            .expect("the outbox never failed for good");
        self.metrics
    }
    fn errors(&self, kind: &str) -> u64 {
        self.metrics
            .influx_write_errors
            .with_label_values(&[kind])
            .get()
    }
}

/// Waits (in paused time) until `cond` holds, at most an hour of virtual time.
async fn until(cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(3600);
    while !cond() {
        assert!(Instant::now() < deadline, "condition never held");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

type SlowRule = Box<dyn Fn(u64, usize) -> (Duration, u16) + Send + Sync>;

/// A fake InfluxDB whose answers take time: a rule on (first id of the body, attempt number)
/// gives the latency and the status. Records when each request ended and how many were
/// on the wire at once.
#[derive(Clone)]
struct SlowInflux {
    rule: Arc<SlowRule>,
    state: Arc<Mutex<Slow>>,
}

#[derive(Default)]
struct Slow {
    started: usize,
    on_wire: usize,
    most_on_wire: usize,
    /// (first id, last id, status), in the order the answers came.
    answered: Vec<(u64, u64, u16)>,
}

impl SlowInflux {
    fn new(rule: impl Fn(u64, usize) -> (Duration, u16) + Send + Sync + 'static) -> Self {
        SlowInflux {
            rule: Arc::new(Box::new(rule)),
            state: Arc::default(),
        }
    }
    fn answered(&self) -> Vec<(u64, u64, u16)> {
        self.state.lock().unwrap().answered.clone()
    }
}

impl WriteApi for SlowInflux {
    async fn write(&self, body: String) -> Result<Reply, WriteError> {
        // Lines are "reading,param=COD v={id} {id}": the id is the timestamp.
        let id = |line: &str| line.rsplit(' ').next().unwrap().parse::<u64>().unwrap();
        let (first, last) = (
            id(body.lines().next().unwrap()),
            id(body.lines().last().unwrap()),
        );
        let (latency, status) = {
            let mut s = self.state.lock().unwrap();
            s.on_wire += 1;
            s.most_on_wire = s.most_on_wire.max(s.on_wire);
            s.started += 1;
            (self.rule)(first, s.started - 1)
        };
        tokio::time::sleep(latency).await;
        let mut s = self.state.lock().unwrap();
        s.on_wire -= 1;
        s.answered.push((first, last, status));
        reply(status)
    }
}

fn start_slow(b: &MemBacklog, f: &SlowInflux, o: Options) -> Running {
    spawn_run(b, f, o)
}
