//! Compliance averaging windows: clock-aligned blocks of one station × parameter.
//!
//! Legal exceedances are judged on averages of valid data, not single samples
//! (regulations.md §5); a DAHS averages only "normal" raw values, needs a minimum data capture
//! per period and flags each average valid or not (§4, §6 items 5–7). A window's point is
//! `mean`, `samples`, `capture = samples ÷ (window ÷ expected interval)` (at most 1),
//! `valid = capture ≥ min_capture`, and `exceeded` only when valid.
//!
//! ## What a window keeps
//! Only what its point needs: the number of status-00 samples and their sum, as an exact
//! fixed-point integer (so the mean is the same whatever order the samples came in, live or
//! rebuilt after a restart). No value is kept per sample. To count each sample once, the
//! series (one station × parameter × window length) keeps the set of sample times it has
//! counted, as arithmetic runs ([`Stamps`]): a station stamping its readings on the minute
//! costs one 16-byte run for a whole day, where a list of samples would cost 1,440 × 16 bytes
//! per window length. So a day of one-minute data costs a few hundred bytes per station ×
//! parameter × window length (a bucket of 48 bytes per window held within the late-data
//! horizon, plus the runs), and nothing is reserved ahead.
//!
//! Exact-once is by timestamp, first value wins: an MQTT redelivery or a replayed datalogger
//! buffer finds its time already counted and changes nothing; a late reading at a new time
//! (within the late-data horizon) is added and its closed window's point rewritten. A later
//! reading at a time already counted — a different value, or another status — is judged and
//! journaled like any reading but does not change the window (the values are not kept to
//! take the first one out). The journal holds both, and a rebuild after a restart replays
//! them in the order they were journaled, so it reaches the same windows.
//!
//! Windows align to the LOCAL clock of `stations.timezone`: an hour window starts on the hour
//! and a day window at local midnight (Asia/Ho_Chi_Minh: 17:00 UTC), as inspectors read them.

use std::collections::VecDeque;
use std::sync::Arc;

use chrono::{DateTime, LocalResult, Offset, TimeZone};
use chrono_tz::Tz;

use crate::config::WindowSpec;
use crate::model::status::{HourMean, HourlyMeans, WindowMean};
use crate::model::{Limit, Param, StationKey, WindowPoint};

use super::limits;
use super::state::{Dec, Enc, StateError};

mod stamps;
pub use stamps::Stamps;

/// `[start, end)` in epoch milliseconds of the `seconds`-long window holding `ts_ms`, aligned
/// to multiples of its length in local time (so to local midnight for day windows).
pub fn bounds(ts_ms: i64, seconds: u64, tz: Tz) -> (i64, i64) {
    bounds_cached(ts_ms, offset_ms(ts_ms, tz), seconds, tz, &mut None)
}

/// The local window start of the last [`bounds_cached`] call and the UTC instants of its two
/// ends (`None` when the wall-clock time does not exist).
type LocalCache = Option<(i64, Option<i64>, Option<i64>)>;

/// [`bounds`] given the zone's offset at `ts_ms` (readings of one message share it, so the
/// engine looks it up once) and a cache of the local → UTC conversion of the window's ends.
/// The conversions are the costly part and depend only on the local window start, which
/// consecutive readings of a series nearly always share; the checks after them still run for
/// every reading, so the result is exactly that of [`bounds`] in any zone.
fn bounds_cached(
    ts_ms: i64,
    offset_ms: i64,
    seconds: u64,
    tz: Tz,
    cache: &mut LocalCache,
) -> (i64, i64) {
    let len = (seconds as i64).saturating_mul(1000).max(1);
    let start_local = (ts_ms + offset_ms).div_euclid(len) * len;
    let (start, end) = match *cache {
        Some((local, start, end)) if local == start_local => (start, end),
        _ => {
            let ends = (to_utc(start_local, tz), to_utc(start_local + len, tz));
            *cache = Some((start_local, ends.0, ends.1));
            ends
        }
    };
    match (start, end) {
        (Some(s), Some(e)) if s <= ts_ms && ts_ms < e => (s, e),
        // A boundary inside a daylight-saving jump: fall back to plain epoch alignment rather
        // than produce a window that does not hold the reading.
        _ => {
            let start = ts_ms.div_euclid(len) * len;
            (start, start + len)
        }
    }
}

/// Local time − UTC at the instant `utc_ms`, in milliseconds.
pub fn offset_ms(utc_ms: i64, tz: Tz) -> i64 {
    match DateTime::from_timestamp_millis(utc_ms) {
        Some(dt) => {
            i64::from(
                tz.offset_from_utc_datetime(&dt.naive_utc())
                    .fix()
                    .local_minus_utc(),
            ) * 1000
        }
        None => 0,
    }
}

/// The instant at which the local wall clock reads `local_ms` (earliest when ambiguous).
fn to_utc(local_ms: i64, tz: Tz) -> Option<i64> {
    let naive = DateTime::from_timestamp_millis(local_ms)?.naive_utc();
    match tz.from_local_datetime(&naive) {
        LocalResult::Single(dt) => Some(dt.timestamp_millis()),
        LocalResult::Ambiguous(early, _) => Some(early.timestamp_millis()),
        LocalResult::None => None,
    }
}

/// Fixed-point scale of the window sums: a value is counted in units of 2⁻⁴⁰ (about 10⁻¹²),
/// so a sum is an integer, exact and the same whatever order the samples came in, and a
/// window's mean does not depend on arrival order or on a restart. An `i128` holds sums up to
/// about 10²⁶; values are finite and far smaller (decode rejects the rest), and a conversion
/// that would not fit saturates instead of wrapping.
const SCALE: f64 = (1u64 << 40) as f64;

fn fixed(value: f64) -> i128 {
    (value * SCALE) as i128
}

/// One window's aggregate: what its point needs, and nothing per sample.
///
/// 32 bytes: a province holds millions of these (a 1 h series keeps two days of them for
/// late data), so the `i128` sum is kept as two halves (no 16-byte alignment), the end as the
/// length in seconds, and the "emitted" mark in the top bit of the sample count.
#[derive(Clone, Debug)]
struct Bucket {
    start_ms: i64,
    /// The samples' values summed in units of 2⁻⁴⁰ (see [`SCALE`]), low and high halves.
    sum_lo: u64,
    sum_hi: i64,
    /// The sample count, and in [`EMITTED`] whether the final point has been handed out (by
    /// `close` or as a late rewrite).
    samples: u32,
    len_s: u32,
}

/// The bit of [`Bucket::samples`] that marks a window's point as handed out.
const EMITTED: u32 = 1 << 31;

impl Bucket {
    fn new(start_ms: i64, end_ms: i64) -> Bucket {
        Bucket {
            start_ms,
            sum_lo: 0,
            sum_hi: 0,
            samples: 0,
            // Windows divide a day or are whole days: far below 2³² seconds.
            len_s: u32::try_from((end_ms - start_ms) / 1000).unwrap_or(u32::MAX),
        }
    }

    fn end_ms(&self) -> i64 {
        self.start_ms + i64::from(self.len_s) * 1000
    }

    fn sum(&self) -> i128 {
        (i128::from(self.sum_hi) << 64) | i128::from(self.sum_lo)
    }

    fn add(&mut self, value: f64) {
        let sum = self.sum().saturating_add(fixed(value));
        self.sum_lo = sum as u64;
        self.sum_hi = (sum >> 64) as i64;
        self.samples += 1;
    }

    fn count(&self) -> u32 {
        self.samples & !EMITTED
    }

    fn emitted(&self) -> bool {
        self.samples & EMITTED != 0
    }

    fn mark_emitted(&mut self) {
        self.samples |= EMITTED;
    }

    fn is_empty(&self) -> bool {
        self.count() == 0
    }

    /// Has samples and its point was not handed out yet.
    fn is_pending(&self) -> bool {
        !self.is_empty() && !self.emitted()
    }

    fn mean(&self) -> f64 {
        self.sum() as f64 / SCALE / f64::from(self.count())
    }
}

/// What a chart's hours before the newest were made from: the series' revision, the first
/// hour's start and the number of hours.
type ChartKey = (u32, i64, usize);

/// The windows of one length for one station × parameter, with what a point needs.
///
/// The windows are kept sorted by start in a deque: readings arrive mostly in time order, so
/// the window sought is nearly always the last one, and eviction takes from the front.
/// Windows of one series never overlap, so sorted by start they are sorted by end too: the
/// first window with samples whose point was not handed out ("pending") is the next to
/// close, and its end is kept in `next_close` so a tick looks only at series that are due. A
/// window's end is fixed when it is created.
#[derive(Clone, Debug)]
pub struct Series {
    pub key: StationKey,
    pub param: Param,
    pub spec: WindowSpec,
    pub expected_interval_s: u64,
    pub min_capture: f64,
    pub limit: Option<Limit>,
    buckets: VecDeque<Bucket>,
    /// The end of the first pending window (`i64::MAX`: none).
    next_close: i64,
    /// The times of the samples counted in the windows held, for exact-once counting.
    stamps: Stamps,
    /// The shortest window held so far (`end − start`; windows of one length can differ
    /// across a daylight-saving jump): no window ends before the first start plus this.
    min_len_ms: i64,
    /// The latest closed window that was valid, for the `quantrac_limit_ratio` gauge;
    /// kept apart from the buckets so eviction does not lose it.
    last_valid: Option<WindowMean>,
    /// See [`bounds_cached`].
    local: LocalCache,
    /// Changes whenever a window other than the newest held is written or one is forgotten:
    /// what [`Series::chart`] checks its kept hours against.
    revision: u32,
    /// The hours before the newest of the last chart, and what they were made from.
    chart: Option<(ChartKey, Arc<[HourMean]>)>,
    /// The close and eviction times the engine's due-queue holds for this series
    /// (`i64::MAX`: none).
    pub(in crate::compliance) queued_close: i64,
    pub(in crate::compliance) queued_evict: i64,
}

impl Series {
    pub fn new(
        key: StationKey,
        param: Param,
        spec: WindowSpec,
        expected_interval_s: u64,
        min_capture: f64,
        limit: Option<Limit>,
    ) -> Series {
        Series {
            key,
            param,
            spec,
            expected_interval_s,
            min_capture,
            limit,
            buckets: VecDeque::new(),
            next_close: i64::MAX,
            stamps: Stamps::default(),
            min_len_ms: i64::MAX,
            last_valid: None,
            local: None,
            revision: 0,
            chart: None,
            queued_close: i64::MAX,
            queued_evict: i64::MAX,
        }
    }

    /// Records (`Some(value)`) or withdraws (`None`: the reading at that time is not status
    /// `00`) the sample at `ts_ms`. Windows ending at or before `floor_ms` (beyond the
    /// late-data horizon) are left alone: their point was written long ago, and rewriting it
    /// from the one sample still known would replace a complete average by a partial one.
    /// Returns the start of the window when it changed.
    pub fn put(&mut self, ts_ms: i64, value: Option<f64>, tz: Tz, floor_ms: i64) -> Option<i64> {
        self.put_at(ts_ms, offset_ms(ts_ms, tz), value, tz, floor_ms)
            .map(|(start, _)| start)
    }

    /// [`Series::put`] given the zone's UTC offset at `ts_ms` (see [`offset_ms`]); returns the
    /// `[start, end)` of the window when it changed.
    pub fn put_at(
        &mut self,
        ts_ms: i64,
        offset_ms: i64,
        value: Option<f64>,
        tz: Tz,
        floor_ms: i64,
    ) -> Option<(i64, i64)> {
        let (start, end) = bounds_cached(ts_ms, offset_ms, self.spec.seconds, tz, &mut self.local);
        if end <= floor_ms {
            return None;
        }
        // First status-00 value wins: a timestamp counted once is never counted again (a
        // redelivery, a replayed buffer), and later readings at that time leave the window
        // alone (see the module's documentation).
        let v = value?;
        if !self.stamps.insert(ts_ms) {
            return None;
        }
        let i = match self.find(start) {
            Ok(i) => i,
            Err(i) => {
                self.buckets.insert(i, Bucket::new(start, end));
                self.min_len_ms = self.min_len_ms.min(end - start);
                i
            }
        };
        if i + 1 < self.buckets.len() {
            self.revision = self.revision.wrapping_add(1);
        }
        let bucket = &mut self.buckets[i];
        bucket.add(v);
        let end = bucket.end_ms();
        if bucket.is_pending() {
            self.next_close = self.next_close.min(end);
        }
        Some((start, end))
    }

    /// Whether the window starting at `start_ms` ends at or before `now_ms`.
    pub fn is_closed(&self, start_ms: i64, now_ms: i64) -> bool {
        self.bucket(start_ms).is_some_and(|b| b.end_ms() <= now_ms)
    }

    /// Where the window starting at `start_ms` is (`Ok`) or would go (`Err`).
    fn find(&self, start_ms: i64) -> Result<usize, usize> {
        match self.buckets.back() {
            Some(b) if b.start_ms == start_ms => Ok(self.buckets.len() - 1),
            Some(b) if b.start_ms < start_ms => Err(self.buckets.len()),
            _ => self.buckets.binary_search_by_key(&start_ms, |b| b.start_ms),
        }
    }

    fn bucket(&self, start_ms: i64) -> Option<&Bucket> {
        self.find(start_ms).ok().map(|i| &self.buckets[i])
    }

    /// Samples a full window holds: its length ÷ the expected interval.
    fn expected_samples(&self) -> f64 {
        self.spec.seconds as f64 / self.expected_interval_s.max(1) as f64
    }

    /// The point of the window starting at `start_ms`, marking it emitted and remembering it
    /// as the latest closed valid window when it is one. `None` for a window with no sample.
    pub fn emit(&mut self, start_ms: i64) -> Option<WindowPoint> {
        let i = self.find(start_ms).ok()?;
        let point = self.point_at(i)?;
        self.buckets[i].mark_emitted();
        self.remember_at(i);
        self.next_close = self.first_pending_end(0);
        Some(point)
    }

    /// The earliest end among windows `close` may emit (`i64::MAX` when there is none): a
    /// timer tick before it has nothing to do here.
    pub fn next_close_ms(&self) -> i64 {
        self.next_close
    }

    /// The end of the first pending window from position `from` on (`i64::MAX`: none).
    fn first_pending_end(&self, from: usize) -> i64 {
        self.buckets
            .range(from..)
            .find(|b| b.is_pending())
            .map_or(i64::MAX, Bucket::end_ms)
    }

    /// No window ends before this (`i64::MAX` when there is none): `evict` with a floor
    /// before it has nothing to do here.
    pub fn next_evict_ms(&self) -> i64 {
        self.buckets
            .front()
            .map_or(i64::MAX, |b| b.start_ms.saturating_add(self.min_len_ms))
    }

    /// Points of windows closed at `now_ms` and not yet handed out, by window start.
    pub fn close(&mut self, now_ms: i64) -> Vec<WindowPoint> {
        let mut points = Vec::new();
        self.close_into(now_ms, &mut points);
        points
    }

    /// [`Series::close`], appending to `points`. Only the last valid point is remembered:
    /// the points come by start, so it is the one [`Series::emit`] one by one would keep.
    pub fn close_into(&mut self, now_ms: i64, points: &mut Vec<WindowPoint>) {
        if self.next_close > now_ms {
            return;
        }
        // Pending windows ending by `now_ms` come first (see the type's documentation).
        let mut latest_valid = None;
        let mut i = self
            .buckets
            .partition_point(|b| b.end_ms() < self.next_close);
        while i < self.buckets.len() && self.buckets[i].end_ms() <= now_ms {
            if self.buckets[i].is_pending() {
                // Pending windows have samples, so each has a point.
                if let Some(point) = self.point_at(i) {
                    if point.valid {
                        latest_valid = Some(i);
                    }
                    points.push(point);
                }
                self.buckets[i].mark_emitted();
            }
            i += 1;
        }
        if let Some(i) = latest_valid {
            self.remember_at(i);
        }
        self.next_close = self.first_pending_end(i);
    }

    /// After a rebuild: windows closed at `now_ms` count as handed out (their points were
    /// written before the restart), but still feed the latest-closed-valid state.
    pub fn mark_closed_emitted(&mut self, now_ms: i64) {
        for i in 0..self.buckets.len() {
            if self.buckets[i].end_ms() > now_ms {
                continue;
            }
            self.remember_at(i);
            self.buckets[i].mark_emitted();
        }
        self.next_close = self.first_pending_end(0);
    }

    /// Forgets windows ending at or before `floor_ms`.
    ///
    /// A window ending by then started before it, so only the front of the deque up to
    /// `floor_ms` is looked at: the windows forgotten, and at most the one or two that
    /// straddle the floor.
    pub fn evict(&mut self, floor_ms: i64) {
        self.revision = self.revision.wrapping_add(1);
        let mut i = 0;
        while let Some(b) = self.buckets.get(i) {
            if b.start_ms >= floor_ms {
                break;
            }
            if b.end_ms() <= floor_ms {
                self.buckets.remove(i);
            } else {
                i += 1;
            }
        }
        // Times before the first window held can no longer be put (they are below the floor).
        match self.buckets.front() {
            Some(b) => self.stamps.forget_before(b.start_ms),
            None => self.stamps = Stamps::default(),
        }
        self.next_close = self.first_pending_end(0);
        if self.buckets.capacity() > 2 * self.buckets.len() + 4 {
            self.buckets.shrink_to_fit();
        }
    }

    /// Keeps the window at `i` as the latest closed valid one when it is valid and not older.
    fn remember_at(&mut self, i: usize) {
        let Some(m) = self.mean_of(&self.buckets[i]) else {
            return;
        };
        if m.valid
            && self
                .last_valid
                .as_ref()
                .is_none_or(|p| p.start_ms <= m.start_ms)
        {
            self.last_valid = Some(m);
        }
    }

    /// The `average` point of one window.
    pub fn point(&self, start_ms: i64) -> Option<WindowPoint> {
        self.point_at(self.find(start_ms).ok()?)
    }

    fn point_at(&self, i: usize) -> Option<WindowPoint> {
        Some(self.point_of(&self.mean_of(&self.buckets[i])?))
    }

    fn point_of(&self, m: &WindowMean) -> WindowPoint {
        WindowPoint {
            key: self.key.clone(),
            param: self.param,
            window: self.spec.label.to_string(),
            start_ms: m.start_ms,
            mean: m.mean,
            samples: m.samples,
            capture: m.capture,
            valid: m.valid,
            limit_max: self.limit.as_ref().and_then(|l| l.max),
            ratio: m.ratio,
            exceeded: m.exceeded,
        }
    }

    /// A window's mean, capture and verdict; `None` for a window with no sample.
    fn mean_of(&self, bucket: &Bucket) -> Option<WindowMean> {
        if bucket.is_empty() {
            return None;
        }
        let samples = bucket.count();
        let mean = bucket.mean();
        let expected = self.expected_samples();
        let capture = (samples as f64 / expected).min(1.0);
        let valid = capture >= self.min_capture;
        let ratio = self.limit.as_ref().and_then(|l| limits::ratio(l, mean));
        let exceeded = valid
            && self
                .limit
                .as_ref()
                .is_some_and(|l| limits::exceeds(l, mean));
        Some(WindowMean {
            start_ms: bucket.start_ms,
            end_ms: bucket.end_ms(),
            mean,
            samples,
            capture,
            valid,
            ratio,
            exceeded,
        })
    }

    /// The means of the windows starting in `[from_ms, to_ms)`, oldest first, as the status
    /// page's hourly chart shows them: mean, capture and validity only (no ratio or verdict),
    /// of the windows still held (within the late-data horizon). The hours before the newest
    /// are made again only when one of them changed (a late reading, a new hour, an hour
    /// leaving the chart), otherwise shared with the previous chart; a station is described
    /// with every message, and its older hours rarely change.
    pub fn chart(&mut self, from_ms: i64, to_ms: i64) -> HourlyMeans {
        let (first, end) = self.chart_range(from_ms, to_ms);
        if first == end {
            return HourlyMeans::default();
        }
        let key = (self.revision, self.buckets[first].start_ms, end - first);
        let before = match &self.chart {
            Some((k, before)) if *k == key => before.clone(),
            _ => {
                let before: Arc<[HourMean]> = self
                    .buckets
                    .range(first..end - 1)
                    .map(|b| self.hour_mean(b))
                    .collect();
                self.chart = Some((key, before.clone()));
                before
            }
        };
        HourlyMeans {
            before,
            newest: Some(self.hour_mean(&self.buckets[end - 1])),
        }
    }

    /// Positions of the windows starting in `[from_ms, to_ms)`.
    fn chart_range(&self, from_ms: i64, to_ms: i64) -> (usize, usize) {
        let first = self.buckets.partition_point(|b| b.start_ms < from_ms);
        let end = self
            .buckets
            .partition_point(|b| b.start_ms < to_ms)
            .max(first);
        (first, end)
    }

    fn hour_mean(&self, b: &Bucket) -> HourMean {
        let capture = (f64::from(b.count()) / self.expected_samples()).min(1.0);
        HourMean {
            start_ms: b.start_ms,
            mean: b.mean(),
            capture,
            valid: capture >= self.min_capture,
        }
    }

    /// The mean of the window starting at `start_ms`, as it stands.
    pub fn mean_at(&self, start_ms: i64) -> Option<WindowMean> {
        self.mean_of(self.bucket(start_ms)?)
    }

    /// The latest closed valid window's mean, with its end.
    pub fn last_valid_mean(&self) -> Option<WindowMean> {
        self.last_valid
    }

    /// Writes what samples made of the series (see `compliance::state`); the rest comes from
    /// the configuration.
    pub fn save(&self, e: &mut Enc) {
        e.len(self.buckets.len());
        for b in &self.buckets {
            e.i64(b.start_ms);
            e.u64(b.sum_lo);
            e.i64(b.sum_hi);
            e.u32(b.samples);
            e.u32(b.len_s);
        }
        e.i64(self.next_close);
        self.stamps.save(e);
        e.i64(self.min_len_ms);
        e.bool(self.last_valid.is_some());
        if let Some(m) = &self.last_valid {
            e.mean(m);
        }
    }

    /// Reads what [`Series::save`] wrote into a series made from the configuration.
    pub fn load(&mut self, d: &mut Dec<'_>) -> Result<(), StateError> {
        let n = d.len()?;
        self.buckets = VecDeque::with_capacity(n);
        for _ in 0..n {
            self.buckets.push_back(Bucket {
                start_ms: d.i64()?,
                sum_lo: d.u64()?,
                sum_hi: d.i64()?,
                samples: d.u32()?,
                len_s: d.u32()?,
            });
        }
        self.next_close = d.i64()?;
        self.stamps = Stamps::load(d)?;
        self.min_len_ms = d.i64()?;
        self.last_valid = if d.bool()? { Some(d.mean()?) } else { None };
        Ok(())
    }
}

#[cfg(test)]
mod tests;
