//! Compliance averaging windows: clock-aligned blocks of one station × parameter.
//!
//! Legal exceedances are judged on averages of valid data, not single samples
//! (regulations.md §5); a DAHS averages only "normal" raw values, needs a minimum data capture
//! per period and flags each average valid or not (§4, §6 items 5–7). So each window keeps its
//! status-00 samples keyed by timestamp — an MQTT redelivery or a replayed datalogger buffer
//! replaces a sample instead of counting it twice — and its point is
//! `mean`, `samples`, `capture = samples ÷ (window ÷ expected interval)` (at most 1),
//! `valid = capture ≥ min_capture`, and `exceeded` only when valid.
//!
//! Windows align to the LOCAL clock of `stations.timezone`: an hour window starts on the hour
//! and a day window at local midnight (Asia/Ho_Chi_Minh: 17:00 UTC), as inspectors read them.

use std::collections::{BTreeSet, VecDeque};

use chrono::{DateTime, LocalResult, Offset, TimeZone};
use chrono_tz::Tz;

use crate::config::WindowSpec;
use crate::model::status::WindowMean;
use crate::model::{Limit, Param, StationKey, WindowPoint};

use super::limits;

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

/// The sum of no sample, as `Iterator::sum` starts it, so a running sum built by adding
/// samples in time order is bit for bit the sum of the samples.
fn empty_sum() -> f64 {
    std::iter::empty::<f64>().sum()
}

/// One window's samples.
#[derive(Clone, Debug)]
struct Bucket {
    start_ms: i64,
    end_ms: i64,
    /// `(reading timestamp, value)` (O2-corrected where that applied), sorted by timestamp,
    /// one per timestamp. Readings arrive mostly in time order, so most inserts are a push.
    samples: Vec<(i64, f64)>,
    /// The values summed in timestamp order: the mean is `sum / len` without a pass over the
    /// samples. A push adds to it; any other change re-sums, so rounding never depends on the
    /// order the readings came in.
    sum: f64,
    /// Its final point has been handed out (by `close` or as a late rewrite).
    emitted: bool,
}

impl Bucket {
    /// `expected` samples are reserved at once: the window fills to about that many, and
    /// growing a vector by doubling would copy it and leave slack in memory.
    fn new(start_ms: i64, end_ms: i64, expected: usize) -> Bucket {
        Bucket {
            start_ms,
            end_ms,
            samples: Vec::with_capacity(expected),
            sum: empty_sum(),
            emitted: false,
        }
    }

    /// Sets the sample at `ts_ms`; returns the value it replaced.
    fn insert(&mut self, ts_ms: i64, value: f64) -> Option<f64> {
        if self.samples.last().is_none_or(|&(last, _)| last < ts_ms) {
            self.samples.push((ts_ms, value));
            self.sum += value;
            return None;
        }
        match self.samples.binary_search_by_key(&ts_ms, |&(ts, _)| ts) {
            Ok(i) => {
                let old = std::mem::replace(&mut self.samples[i].1, value);
                if old.to_bits() != value.to_bits() {
                    self.resum();
                }
                Some(old)
            }
            Err(i) => {
                self.samples.insert(i, (ts_ms, value));
                self.resum();
                None
            }
        }
    }

    /// Withdraws the sample at `ts_ms`; returns its value.
    fn remove(&mut self, ts_ms: i64) -> Option<f64> {
        let i = self
            .samples
            .binary_search_by_key(&ts_ms, |&(ts, _)| ts)
            .ok()?;
        let (_, old) = self.samples.remove(i);
        self.resum();
        Some(old)
    }

    fn resum(&mut self) {
        self.sum = self.samples.iter().map(|&(_, v)| v).sum();
    }
}

/// The windows of one length for one station × parameter, with what a point needs.
///
/// The windows are kept sorted by start in a deque: readings arrive mostly in time order, so
/// the window sought is nearly always the last one, and eviction takes from the front.
/// `pending`, by `(end, start)`, holds the windows with samples whose point was not handed
/// out yet, so `close` looks only at those that are due. A window's end is fixed when it is
/// created.
#[derive(Clone, Debug)]
pub struct Series {
    pub key: StationKey,
    pub param: Param,
    pub spec: WindowSpec,
    pub expected_interval_s: u64,
    pub min_capture: f64,
    pub limit: Option<Limit>,
    buckets: VecDeque<Bucket>,
    pending: BTreeSet<(i64, i64)>,
    /// The shortest window held so far (`end − start`; windows of one length can differ
    /// across a daylight-saving jump): no window ends before the first start plus this.
    min_len_ms: i64,
    /// The latest closed window that was valid, for the `quantrac_limit_ratio` gauge;
    /// kept apart from the buckets so eviction does not lose it.
    last_valid: Option<WindowPoint>,
    /// See [`bounds_cached`].
    local: LocalCache,
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
            pending: BTreeSet::new(),
            min_len_ms: i64::MAX,
            last_valid: None,
            local: None,
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
        match value {
            Some(v) => {
                let i = match self.find(start) {
                    Ok(i) => i,
                    Err(i) => {
                        let expected = self.expected_samples().ceil().clamp(1.0, 1024.0);
                        self.buckets
                            .insert(i, Bucket::new(start, end, expected as usize));
                        self.min_len_ms = self.min_len_ms.min(end - start);
                        i
                    }
                };
                let bucket = &mut self.buckets[i];
                if bucket.samples.is_empty() && !bucket.emitted {
                    self.pending.insert((bucket.end_ms, start));
                }
                let old = bucket.insert(ts_ms, v);
                (old != Some(v)).then_some((start, bucket.end_ms))
            }
            None => {
                let i = self.find(start).ok()?;
                let bucket = &mut self.buckets[i];
                bucket.remove(ts_ms)?;
                if bucket.samples.is_empty() {
                    self.pending.remove(&(bucket.end_ms, start));
                }
                Some((start, bucket.end_ms))
            }
        }
    }

    /// Whether the window starting at `start_ms` ends at or before `now_ms`.
    pub fn is_closed(&self, start_ms: i64, now_ms: i64) -> bool {
        self.bucket(start_ms).is_some_and(|b| b.end_ms <= now_ms)
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
        let point = self.point(start_ms)?;
        if let Ok(i) = self.find(start_ms) {
            let b = &mut self.buckets[i];
            b.emitted = true;
            self.pending.remove(&(b.end_ms, start_ms));
        }
        self.remember(&point);
        Some(point)
    }

    /// The earliest end among windows `close` may emit (`i64::MAX` when there is none): a
    /// timer tick before it has nothing to do here.
    pub fn next_close_ms(&self) -> i64 {
        self.pending.first().map_or(i64::MAX, |&(end, _)| end)
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
        let rest = self
            .pending
            .split_off(&(now_ms.saturating_add(1), i64::MIN));
        let due = std::mem::replace(&mut self.pending, rest);
        let mut starts: Vec<i64> = due.into_iter().map(|(_, start)| start).collect();
        starts.sort_unstable();
        let mut latest_valid = None;
        for start in starts {
            let Ok(i) = self.find(start) else {
                continue;
            };
            // Pending windows have samples, so each has a point.
            if let Some(point) = self.point_at(i) {
                self.buckets[i].emitted = true;
                if point.valid {
                    latest_valid = Some(points.len());
                }
                points.push(point);
            }
        }
        if let Some(i) = latest_valid {
            let point = points[i].clone();
            self.remember(&point);
        }
    }

    /// After a rebuild: windows closed at `now_ms` count as handed out (their points were
    /// written before the restart), but still feed the latest-closed-valid state.
    pub fn mark_closed_emitted(&mut self, now_ms: i64) {
        for i in 0..self.buckets.len() {
            let (start, end) = (self.buckets[i].start_ms, self.buckets[i].end_ms);
            if end > now_ms {
                continue;
            }
            if let Some(p) = self.point(start) {
                self.remember(&p);
            }
            self.buckets[i].emitted = true;
            self.pending.remove(&(end, start));
        }
    }

    /// Forgets windows ending at or before `floor_ms`.
    ///
    /// A window ending by then started before it, so only the front of the deque up to
    /// `floor_ms` is looked at: the windows forgotten, and at most the one or two that
    /// straddle the floor.
    pub fn evict(&mut self, floor_ms: i64) {
        let mut i = 0;
        while let Some(b) = self.buckets.get(i) {
            if b.start_ms >= floor_ms {
                break;
            }
            if b.end_ms <= floor_ms {
                self.pending.remove(&(b.end_ms, b.start_ms));
                self.buckets.remove(i);
            } else {
                i += 1;
            }
        }
    }

    /// The latest closed valid window.
    pub fn last_valid(&self) -> Option<&WindowPoint> {
        self.last_valid.as_ref()
    }

    /// The point of the window holding `now_ms`, as it stands (for early warnings).
    pub fn running(&self, now_ms: i64, tz: Tz) -> Option<WindowPoint> {
        let (start, _) = bounds(now_ms, self.spec.seconds, tz);
        self.point(start)
    }

    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }

    fn remember(&mut self, point: &WindowPoint) {
        if point.valid
            && self
                .last_valid
                .as_ref()
                .is_none_or(|p| p.start_ms <= point.start_ms)
        {
            self.last_valid = Some(point.clone());
        }
    }

    /// The `average` point of one window.
    pub fn point(&self, start_ms: i64) -> Option<WindowPoint> {
        self.point_at(self.find(start_ms).ok()?)
    }

    fn point_at(&self, i: usize) -> Option<WindowPoint> {
        let m = self.mean_of(&self.buckets[i])?;
        Some(WindowPoint {
            key: self.key.clone(),
            param: self.param,
            window: self.spec.label.clone(),
            start_ms: m.start_ms,
            mean: m.mean,
            samples: m.samples,
            capture: m.capture,
            valid: m.valid,
            limit_max: self.limit.as_ref().and_then(|l| l.max),
            ratio: m.ratio,
            exceeded: m.exceeded,
        })
    }

    /// A window's mean, capture and verdict; `None` for a window with no sample.
    fn mean_of(&self, bucket: &Bucket) -> Option<WindowMean> {
        if bucket.samples.is_empty() {
            return None;
        }
        let samples = bucket.samples.len();
        let mean = bucket.sum / samples as f64;
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
            end_ms: bucket.end_ms,
            mean,
            samples: u32::try_from(samples).unwrap_or(u32::MAX),
            capture,
            valid,
            ratio,
            exceeded,
        })
    }

    /// The means of the windows starting in `[from_ms, to_ms)` that hold a sample, oldest
    /// first (the status page's hourly chart). Only windows still held are seen: those within
    /// the late-data horizon.
    pub fn means(&self, from_ms: i64, to_ms: i64) -> impl Iterator<Item = WindowMean> + '_ {
        let first = self.buckets.partition_point(|b| b.start_ms < from_ms);
        self.buckets
            .range(first..)
            .take_while(move |b| b.start_ms < to_ms)
            .filter_map(|b| self.mean_of(b))
    }

    /// The mean of the window starting at `start_ms`, as it stands.
    pub fn mean_at(&self, start_ms: i64) -> Option<WindowMean> {
        self.mean_of(self.bucket(start_ms)?)
    }

    /// The latest closed valid window's mean, with its end.
    pub fn last_valid_mean(&self, tz: Tz) -> Option<WindowMean> {
        let p = self.last_valid.as_ref()?;
        // The window is nearly always still held (for late data): its end is known.
        let end_ms = match self.bucket(p.start_ms) {
            Some(b) => b.end_ms,
            None => bounds(p.start_ms, self.spec.seconds, tz).1,
        };
        Some(WindowMean {
            start_ms: p.start_ms,
            end_ms,
            mean: p.mean,
            samples: p.samples,
            capture: p.capture,
            valid: p.valid,
            ratio: p.ratio,
            exceeded: p.exceeded,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::LimitSource;
    use chrono_tz::Asia::Ho_Chi_Minh;

    const HOUR: i64 = 3_600_000;
    /// 2026-11-29T00:00:00Z.
    const T0: i64 = 1_795_910_400_000;

    fn series(label: &str, max: Option<f64>) -> Series {
        Series::new(
            StationKey::parse("p", "s", "outfall-1").unwrap(),
            Param::COD,
            WindowSpec::parse(label).unwrap(),
            300,
            0.75,
            max.map(|m| Limit {
                max: Some(m),
                min: None,
                source: LimitSource::Permit,
            }),
        )
    }

    #[test]
    fn t0_is_utc_midnight() {
        assert_eq!(
            DateTime::from_timestamp_millis(T0).unwrap().to_rfc3339(),
            "2026-11-29T00:00:00+00:00"
        );
    }

    #[test]
    fn hour_windows_align_to_clock_hours_in_vietnam() {
        // Contract, InfluxDB schema: windows aligned to clock hours (UTC+7: same as UTC hours).
        let ts = T0 + 5 * HOUR + 17 * 60_000;
        assert_eq!(
            bounds(ts, 3600, Ho_Chi_Minh),
            (T0 + 5 * HOUR, T0 + 6 * HOUR)
        );
        assert_eq!(bounds(T0 + 5 * HOUR, 3600, Ho_Chi_Minh).0, T0 + 5 * HOUR);
        assert_eq!(bounds(ts, 1800, Ho_Chi_Minh).0, T0 + 5 * HOUR);
    }

    #[test]
    fn day_windows_start_at_local_midnight_17_00_utc_for_ho_chi_minh() {
        // Contract: daily windows aligned to local days in stations.timezone.
        // 16:59:59Z is 23:59:59 local (day before); 17:00:00Z is local midnight.
        let before = T0 + 17 * HOUR - 1000;
        let at = T0 + 17 * HOUR;
        let (s1, e1) = bounds(before, 86_400, Ho_Chi_Minh);
        let (s2, e2) = bounds(at, 86_400, Ho_Chi_Minh);
        assert_eq!((s1, e1), (T0 - 7 * HOUR, T0 + 17 * HOUR));
        assert_eq!((s2, e2), (T0 + 17 * HOUR, T0 + 41 * HOUR));
        assert_ne!(s1, s2);
        // In UTC the same day window would start at 00:00Z.
        assert_eq!(bounds(before, 86_400, chrono_tz::UTC).0, T0);
    }

    #[test]
    fn full_hour_of_twelve_five_minute_samples_is_valid() {
        // 12 samples × 300 s = 3600 s → capture 1.0 ≥ 0.75 (regulations.md §6 item 6).
        let mut s = series("1h", Some(135.0));
        for i in 0..12 {
            s.put(T0 + i * 300_000, Some(100.0 + i as f64), chrono_tz::UTC, 0);
        }
        let p = s.emit(T0).unwrap();
        assert_eq!(p.samples, 12);
        assert_eq!(p.capture, 1.0);
        assert!(p.valid);
        assert!((p.mean - 105.5).abs() < 1e-9);
        assert!((p.ratio.unwrap() - 105.5 / 135.0).abs() < 1e-12);
        assert!(!p.exceeded);
        assert_eq!(p.limit_max, Some(135.0));
        assert_eq!(p.window, "1h");
    }

    #[test]
    fn partial_capture_8_of_12_is_invalid_and_never_exceeded() {
        // 8/12 = 0.667 < min_capture 0.75 → invalid; an invalid average is no exceedance even
        // with a mean above the limit (regulations.md §5: verdicts on valid averages only).
        let mut s = series("1h", Some(135.0));
        for i in 0..8 {
            s.put(T0 + i * 300_000, Some(200.0), chrono_tz::UTC, 0);
        }
        let p = s.emit(T0).unwrap();
        assert_eq!(p.samples, 8);
        assert!((p.capture - 8.0 / 12.0).abs() < 1e-12);
        assert!(!p.valid);
        assert!(!p.exceeded);
        assert!(p.ratio.unwrap() > 1.0);
        // Nine samples (0.75) make it valid and exceeded.
        s.put(T0 + 8 * 300_000, Some(200.0), chrono_tz::UTC, 0);
        let p = s.emit(T0).unwrap();
        assert!(p.valid && p.exceeded);
    }

    #[test]
    fn duplicate_timestamp_replaces_instead_of_double_counting() {
        let mut s = series("1h", None);
        assert_eq!(s.put(T0, Some(10.0), chrono_tz::UTC, 0), Some(T0));
        assert_eq!(
            s.put(T0, Some(10.0), chrono_tz::UTC, 0),
            None,
            "unchanged redelivery"
        );
        assert_eq!(s.put(T0, Some(30.0), chrono_tz::UTC, 0), Some(T0));
        let p = s.point(T0).unwrap();
        assert_eq!(p.samples, 1);
        assert_eq!(p.mean, 30.0);
        // A later non-00 reading at that time withdraws the sample.
        assert_eq!(s.put(T0, None, chrono_tz::UTC, 0), Some(T0));
        assert!(s.point(T0).is_none());
    }

    #[test]
    fn close_emits_once_and_evict_forgets_beyond_the_horizon() {
        let mut s = series("1h", None);
        s.put(T0 + 60_000, Some(1.0), chrono_tz::UTC, 0);
        assert!(s.close(T0 + HOUR - 1).is_empty(), "still open");
        assert_eq!(s.close(T0 + HOUR).len(), 1);
        assert!(s.close(T0 + 2 * HOUR).is_empty(), "once only");
        s.evict(T0 + HOUR);
        assert!(s.is_empty());
        // Beyond the horizon floor nothing is recorded.
        assert_eq!(
            s.put(T0 + 60_000, Some(1.0), chrono_tz::UTC, T0 + HOUR),
            None
        );
        assert!(s.is_empty());
    }

    #[test]
    fn cached_bounds_equal_uncached_bounds_across_daylight_saving_jumps() {
        // The per-series cache must not change a single window, in any zone: Berlin (1 h
        // jumps), Lord Howe (30 min jumps), St John's (−3:30) and Kathmandu (+5:45), across
        // the 2026 transitions, for every window length of the contract's examples.
        let zones = [
            chrono_tz::Europe::Berlin,
            chrono_tz::Australia::Lord_Howe,
            chrono_tz::America::St_Johns,
            chrono_tz::Asia::Kathmandu,
            Ho_Chi_Minh,
        ];
        // 2026-03-01Z to 2026-11-15Z in 7-minute steps covers both transitions of each zone.
        let from = 1_772_323_200_000;
        let to = 1_794_700_800_000;
        for tz in zones {
            for seconds in [300, 1800, 3600, 8 * 3600, 86_400] {
                let mut cache = None;
                let mut ts = from;
                while ts < to {
                    let cached = bounds_cached(ts, offset_ms(ts, tz), seconds, tz, &mut cache);
                    assert_eq!(cached, bounds(ts, seconds, tz), "{tz} {seconds} s at {ts}");
                    ts += 7 * 60_000;
                }
            }
        }
    }

    #[test]
    fn out_of_order_and_replaced_samples_give_the_same_mean_as_in_order() {
        // The running sum is re-summed in time order after anything but an append, so the
        // mean does not depend on arrival order (regulations.md §6: the average of the valid
        // samples of the period).
        let values: Vec<f64> = (0..12).map(|i| 0.1 * i as f64 + 1.0 / 3.0).collect();
        let mut in_order = series("1h", None);
        for (i, v) in values.iter().enumerate() {
            in_order.put(T0 + i as i64 * 300_000, Some(*v), chrono_tz::UTC, 0);
        }
        let mut shuffled = series("1h", None);
        for i in [5, 0, 11, 3, 7, 1, 9, 2, 10, 4, 8, 6] {
            shuffled.put(T0 + i * 300_000, Some(99.0), chrono_tz::UTC, 0);
        }
        for i in [3, 11, 0, 6] {
            shuffled.put(T0 + i * 300_000, None, chrono_tz::UTC, 0);
        }
        for (i, v) in values.iter().enumerate().rev() {
            shuffled.put(T0 + i as i64 * 300_000, Some(*v), chrono_tz::UTC, 0);
        }
        let (a, b) = (in_order.point(T0).unwrap(), shuffled.point(T0).unwrap());
        assert_eq!(a.samples, 12);
        assert_eq!(
            a.mean.to_bits(),
            b.mean.to_bits(),
            "{} vs {}",
            a.mean,
            b.mean
        );
        let expected = values.iter().sum::<f64>() / 12.0;
        assert_eq!(a.mean.to_bits(), expected.to_bits());
    }

    #[test]
    fn due_times_follow_the_windows_that_close_and_end() {
        let mut s = series("1h", None);
        assert_eq!((s.next_close_ms(), s.next_evict_ms()), (i64::MAX, i64::MAX));
        s.put(T0 + 2 * HOUR, Some(1.0), chrono_tz::UTC, 0);
        s.put(T0 + 60_000, Some(1.0), chrono_tz::UTC, 0);
        assert_eq!(s.next_close_ms(), T0 + HOUR);
        assert_eq!(s.close(T0 + 2 * HOUR).len(), 1);
        assert_eq!(
            s.next_close_ms(),
            T0 + 3 * HOUR,
            "the 00:00 hour was handed out"
        );
        assert_eq!(
            s.next_evict_ms(),
            T0 + HOUR,
            "but is still held for late data"
        );
        // A window whose only sample is withdrawn has nothing to close.
        s.put(T0 + 2 * HOUR, None, chrono_tz::UTC, 0);
        assert_eq!(s.next_close_ms(), i64::MAX);
        assert!(s.close(T0 + 3 * HOUR).is_empty());
        // A sample back in it makes it due again.
        s.put(T0 + 2 * HOUR + 1, Some(2.0), chrono_tz::UTC, 0);
        assert_eq!(s.close(T0 + 3 * HOUR)[0].mean, 2.0);
        s.evict(T0 + HOUR);
        assert_eq!(s.next_evict_ms(), T0 + 3 * HOUR);
        assert!(s.point(T0).is_none());
    }
}
