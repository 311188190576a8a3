//! The uplink stage: closes periods as they end, then sends what is pending, until stopped.
//!
//! A turn of the loop:
//! 1. Every period that ended at least `delay_s` ago (and `delay_s` after start, so the
//!    broker's queue is in the journal first) is closed, oldest first: its readings read back
//!    from the journal, its files made and committed with its closing.
//! 2. If files are pending and no backoff holds them, one FTP session sends them in id order
//!    (period order), skipping the stations whose last file was refused recently.
//! 3. It sleeps until the next period is due, a backoff ends, or the stop signal.
//!
//! The first start on a journal closes nothing in the past: it records the period in progress
//! as the first one, so an uplink switched on does not send the journal's history.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use tokio::time::Instant;

use super::events;
use super::ftp::{self, Failure, Session};
use super::period;
use super::{Plan, Store, StoreError};
use crate::config::UplinkSettings;
use crate::metrics::Metrics;
use crate::shutdown::CancellationToken;

/// How long a station waits after the server refused its file for good.
pub const REFUSED_RETRY: Duration = Duration::from_secs(3600);

/// Backoff bounds while the server cannot be reached (or refuses the login).
const RETRY_MIN: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(60);
/// Pending files are read this many at a time: a long outage of a large park never holds its
/// whole backlog in memory.
const PAGE: usize = 500;

/// At most this many periods are closed in one turn (a day of 5-minute periods), so catching
/// up after a long stop reads the journal in bounded pieces.
const CATCH_UP: i64 = 288;

/// `$call` until it succeeds; a fatal error ends the stage, a stop ends it quietly.
macro_rules! retrying {
    ($stop:expr, $doing:expr, $call:expr) => {
        loop {
            match $call.await {
                Ok(v) => break v,
                Err(e) => {
                    events::StoreFailed {
                        doing: $doing,
                        error: &e,
                    }
                    .emit();
                    if matches!(e, StoreError::Fatal(_)) {
                        return Err(e);
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(RETRY_MIN) => {}
                        _ = $stop.cancelled() => return Ok(()),
                    }
                }
            }
        }
    };
}

/// What the stage needs besides its store.
pub struct Options {
    pub settings: UplinkSettings,
    pub plan: Plan,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Runs until `stop`; fails only when the journal fails for good.
pub async fn run<S: Store>(
    mut store: S,
    opts: Options,
    metrics: Metrics,
    stop: CancellationToken,
) -> Result<(), StoreError> {
    let Options { settings, plan } = opts;
    let p = plan.period_ms;
    let delay = settings.delay_s as i64 * 1000;
    let started = now_ms();
    let mut closed = match retrying!(stop, "reading the last closed period", store.closed_upto()) {
        Some(c) => c,
        None => {
            let first = period::end_of(started, p, plan.tz) - p;
            retrying!(
                stop,
                "recording the first period",
                store.close_period(first, Vec::new())
            );
            first
        }
    };
    let mut stage = Stage {
        settings: &settings,
        metrics: &metrics,
        failing: None,
        retry: RETRY_MIN,
        next_attempt: Instant::now(),
        refused_until: HashMap::new(),
        refused_logged: HashSet::new(),
        check: true,
        backlog: 0,
    };
    let backlog = retrying!(stop, "counting pending files", store.backlog());
    events::Started {
        url: &settings.url().to_string(),
        stations: plan.stations.len(),
        period_s: settings.period_s,
        backlog,
    }
    .emit();
    stage.set_backlog(backlog);

    loop {
        if stop.is_cancelled() {
            return Ok(());
        }
        // 1. Close the periods that are due.
        let now = now_ms();
        let due_upto = if now - started >= delay {
            (now - delay).min(closed + CATCH_UP * p)
        } else {
            closed
        };
        let mut ends = Vec::new();
        let mut end = closed + p;
        while end <= due_upto {
            ends.push(end);
            end += p;
        }
        if let Some(&last) = ends.last() {
            let late = last < now - delay - p;
            let before = closed;
            let result = close(&mut store, &plan, &mut closed, &ends, late).await;
            if closed != before {
                stage.check = true;
            }
            match result {
                Ok(()) => {}
                Err(e) => {
                    stage.store_failed("closing a period", e)?;
                    // Due again at once: wait before the next try.
                    tokio::select! {
                        _ = tokio::time::sleep(RETRY_MIN) => {}
                        _ = stop.cancelled() => return Ok(()),
                    }
                    continue;
                }
            }
        }
        // 2. Send what is pending.
        if stage.check && Instant::now() >= stage.next_attempt {
            match store.backlog().await {
                Ok(backlog) => {
                    stage.check = false;
                    stage.set_backlog(backlog);
                    if backlog > 0 {
                        tokio::select! {
                            r = stage.send(&mut store) => r?,
                            _ = stop.cancelled() => return Ok(()),
                        }
                    }
                }
                Err(e) => stage.store_failed("listing pending files", e)?,
            }
        }
        // 3. Sleep until something is due.
        let next_close_ms = (closed + p + delay).max(started + delay) - now_ms();
        let mut wake =
            Instant::now() + Duration::from_millis(next_close_ms.clamp(10, 60_000) as u64);
        if stage.backlog > 0 {
            // A backoff in progress, or the first refused station's turn.
            if stage.next_attempt > Instant::now() {
                wake = wake.min(stage.next_attempt);
            }
            if let Some(&soonest) = stage.refused_until.values().min() {
                wake = wake.min(soonest);
            }
            stage.check = true;
        }
        tokio::select! {
            _ = tokio::time::sleep_until(wake) => {}
            _ = stop.cancelled() => return Ok(()),
        }
    }
}

/// Reads the readings of the periods `ends` (after `closed`) once, and closes each period,
/// moving `closed` with every commit (so a failure half-way leaves it at the last one).
async fn close<S: Store>(
    store: &mut S,
    plan: &Plan,
    closed: &mut i64,
    ends: &[i64],
    late: bool,
) -> Result<(), StoreError> {
    let last = *ends.last().expect("at least one period");
    let readings = store.readings(*closed, last).await?;
    for &end in ends {
        let files = plan.files(end, &readings);
        let n = files.len();
        store.close_period(end, files).await?;
        *closed = end;
        events::PeriodClosed {
            end: period::local(end, plan.tz),
            files: n,
            late,
        }
        .emit();
    }
    Ok(())
}

/// The sending side's state.
struct Stage<'a> {
    settings: &'a UplinkSettings,
    metrics: &'a Metrics,
    /// What is failing for every file, for reporting once per change.
    failing: Option<Failure>,
    retry: Duration,
    next_attempt: Instant,
    /// Stations whose file the server refused, and until when they wait.
    refused_until: HashMap<String, Instant>,
    /// Files whose refusal was logged.
    refused_logged: HashSet<u64>,
    /// Look at the pending files on the next turn.
    check: bool,
    backlog: usize,
}

impl Stage<'_> {
    fn set_backlog(&mut self, n: usize) {
        self.backlog = n;
        events::Backlog(n).emit(self.metrics);
    }

    /// A transient store error is logged and the turn goes on; a fatal one ends the stage.
    fn store_failed(&mut self, doing: &str, e: StoreError) -> Result<(), StoreError> {
        events::StoreFailed { doing, error: &e }.emit();
        match e {
            StoreError::Fatal(_) => Err(e),
            StoreError::Transient(_) => {
                self.check = true;
                self.next_attempt = Instant::now() + RETRY_MIN;
                Ok(())
            }
        }
    }

    /// One session: every pending file in order, a page at a time, but a station refused
    /// recently waits, and a station whose file is refused now waits from there on. The
    /// session opens at the first file that may go.
    async fn send<S: Store>(&mut self, store: &mut S) -> Result<(), StoreError> {
        let now = Instant::now();
        self.refused_until.retain(|_, until| *until > now);
        let mut blocked: HashSet<String> = self.refused_until.keys().cloned().collect();
        let mut session: Option<Session> = None;
        let mut left = self.backlog;
        let mut after = 0;
        'pages: loop {
            let page = match store.pending(after, PAGE).await {
                Ok(page) => page,
                Err(e) => {
                    self.store_failed("listing pending files", e)?;
                    break 'pages;
                }
            };
            let last_page = page.len() < PAGE;
            for f in page {
                after = f.id;
                if blocked.contains(&f.station) {
                    continue;
                }
                let session = match &mut session {
                    Some(s) => s,
                    None => match Session::open(self.settings).await {
                        Ok(s) => session.insert(s),
                        Err(failure) => {
                            self.server_failed(failure);
                            return Ok(());
                        }
                    },
                };
                let path = ftp::join(&[&f.dir, &f.name]);
                match session.deliver(&f.dir, &f.name, &f.content).await {
                    Ok(()) => {
                        if let Err(e) = store.sent(f.id).await {
                            // Sent again later, to the same name: harmless.
                            self.store_failed("recording a delivered file", e)?;
                            break 'pages;
                        }
                        left = left.saturating_sub(1);
                        self.set_backlog(left);
                        events::Sent {
                            station: &f.station,
                            path: &path,
                            bytes: f.content.len(),
                        }
                        .emit(self.metrics);
                    }
                    Err(Failure::Refused(reason)) => {
                        let first = self.refused_logged.insert(f.id);
                        events::Refused {
                            station: &f.station,
                            path: &path,
                            reason: &reason,
                            first,
                            retry_in: REFUSED_RETRY,
                        }
                        .emit(self.metrics);
                        if let Err(e) = store.refused(f.id, reason).await {
                            self.store_failed("recording a refused file", e)?;
                        }
                        self.refused_until
                            .insert(f.station.clone(), Instant::now() + REFUSED_RETRY);
                        blocked.insert(f.station);
                    }
                    Err(other) => {
                        self.server_failed(other);
                        return Ok(());
                    }
                }
            }
            if last_page {
                break;
            }
        }
        let Some(session) = session else {
            // Every pending file waits for a refused station's turn.
            return Ok(());
        };
        session.close().await;
        if self.failing.take().is_some() {
            events::Resumed.emit();
        }
        self.retry = RETRY_MIN;
        self.next_attempt = Instant::now();
        Ok(())
    }

    /// Every file waits: count, report once per change, back off.
    fn server_failed(&mut self, failure: Failure) {
        let changed = self.failing.as_ref().map(Failure::as_label) != Some(failure.as_label());
        if !changed {
            self.retry = (self.retry * 2).min(RETRY_MAX);
        }
        events::Failing {
            failure: &failure,
            changed,
            retry_in: self.retry,
            backlog: self.backlog,
        }
        .emit(self.metrics);
        self.next_attempt = Instant::now() + self.retry;
        self.failing = Some(failure);
    }
}
