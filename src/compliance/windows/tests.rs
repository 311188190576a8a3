//! Window tests: alignment, capture, exact-once samples, closing and eviction.

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

/// The chart's means made afresh from the windows held: what [`Series::chart`] must give.
fn chart_means(s: &Series, from_ms: i64, to_ms: i64) -> Vec<HourMean> {
    let (first, end) = s.chart_range(from_ms, to_ms);
    s.buckets
        .range(first..end)
        .map(|b| s.hour_mean(b))
        .collect()
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
fn a_timestamp_counts_once_and_the_first_value_stays() {
    let mut s = series("1h", None);
    assert_eq!(s.put(T0, Some(10.0), chrono_tz::UTC, 0), Some(T0));
    assert_eq!(
        s.put(T0, Some(10.0), chrono_tz::UTC, 0),
        None,
        "unchanged redelivery"
    );
    assert_eq!(
        s.put(T0, Some(30.0), chrono_tz::UTC, 0),
        None,
        "a second value at a counted time"
    );
    assert_eq!(s.put(T0, None, chrono_tz::UTC, 0), None, "another status");
    let p = s.point(T0).unwrap();
    assert_eq!(p.samples, 1);
    assert_eq!(p.mean, 10.0);
    // A new time in the same window counts.
    assert_eq!(s.put(T0 + 1000, Some(30.0), chrono_tz::UTC, 0), Some(T0));
    assert_eq!(s.point(T0).unwrap().mean, 20.0);
}

#[test]
fn close_emits_once_and_evict_forgets_beyond_the_horizon() {
    let mut s = series("1h", None);
    s.put(T0 + 60_000, Some(1.0), chrono_tz::UTC, 0);
    assert!(s.close(T0 + HOUR - 1).is_empty(), "still open");
    assert_eq!(s.close(T0 + HOUR).len(), 1);
    assert!(s.close(T0 + 2 * HOUR).is_empty(), "once only");
    s.evict(T0 + HOUR);
    assert_eq!(s.mean_at(T0), None, "forgotten");
    // Beyond the horizon floor nothing is recorded.
    assert_eq!(
        s.put(T0 + 60_000, Some(1.0), chrono_tz::UTC, T0 + HOUR),
        None
    );
    assert_eq!(s.mean_at(T0), None, "not recorded");
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
fn every_window_holds_its_reading_even_inside_a_repeated_hour() {
    // When clocks go back, an hour of local time happens twice. A 30-minute window of the
    // second pass (Berlin, 2026-10-25, 02:10 CET = 01:10Z) has local ends that first meant
    // 00:00Z and 00:30Z: that window would not hold the reading, so the reading goes to the
    // plain UTC-aligned window [01:00Z, 01:30Z) instead.
    let tz = chrono_tz::Europe::Berlin;
    let second_pass = 1_792_890_600_000; // 2026-10-25T01:10:00Z
    assert_eq!(
        bounds(second_pass, 1800, tz),
        (1_792_890_000_000, 1_792_891_800_000)
    );
    // And across both transitions of several zones, every window holds its reading.
    let zones = [
        tz,
        chrono_tz::Australia::Lord_Howe,
        chrono_tz::America::St_Johns,
    ];
    for tz in zones {
        for seconds in [300, 1800, 3600, 86_400] {
            let mut ts = 1_772_323_200_000;
            while ts < 1_794_700_800_000 {
                let (start, end) = bounds(ts, seconds, tz);
                assert!(
                    start <= ts && ts < end,
                    "{tz} {seconds} s at {ts}: [{start}, {end})"
                );
                ts += 7 * 60_000;
            }
        }
    }
}

#[test]
fn any_arrival_order_gives_the_same_mean_to_the_bit() {
    // The sum is exact (fixed point), so the mean does not depend on arrival order, nor on
    // redeliveries in between (regulations.md §6: the average of the valid samples of the
    // period).
    let values: Vec<f64> = (0..12).map(|i| 0.1 * i as f64 + 1.0 / 3.0).collect();
    let mut in_order = series("1h", None);
    for (i, v) in values.iter().enumerate() {
        in_order.put(T0 + i as i64 * 300_000, Some(*v), chrono_tz::UTC, 0);
    }
    let mut shuffled = series("1h", None);
    for i in [5usize, 0, 11, 3, 7, 1, 9, 2, 10, 4, 8, 6] {
        shuffled.put(T0 + i as i64 * 300_000, Some(values[i]), chrono_tz::UTC, 0);
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
    assert!(
        (a.mean - expected).abs() < 1e-12,
        "{} vs {expected}",
        a.mean
    );
}

#[test]
fn a_day_of_one_minute_samples_keeps_no_value_per_sample() {
    // The point of the representation: one run of times and one aggregate per window.
    let mut s = series("24h", None);
    let day = bounds(T0, 86_400, Ho_Chi_Minh).0;
    for i in 0..1440 {
        s.put(day + i * 60_000, Some(i as f64), Ho_Chi_Minh, 0);
    }
    assert_eq!(s.stamps.runs(), 1);
    assert_eq!(s.buckets.len(), 1);
    let p = s.point(day).unwrap();
    assert_eq!(p.samples, 1440);
    assert_eq!(p.mean, 719.5);
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
    assert_eq!(s.close(T0 + 3 * HOUR)[0].mean, 1.0);
    assert_eq!(s.next_close_ms(), i64::MAX, "everything handed out");
    // A late sample in a window already handed out is re-emitted by the engine, not by close.
    assert_eq!(
        s.put(T0 + 2 * HOUR + 1, Some(2.0), chrono_tz::UTC, 0),
        Some(T0 + 2 * HOUR)
    );
    assert_eq!(s.next_close_ms(), i64::MAX);
    assert_eq!(s.point(T0 + 2 * HOUR).unwrap().mean, 1.5);
    s.evict(T0 + HOUR);
    assert_eq!(s.next_evict_ms(), T0 + 3 * HOUR);
    assert!(s.point(T0).is_none());
}

#[test]
fn a_window_costs_32_bytes_and_its_split_sum_keeps_sign_and_large_values() {
    // Issue 10: a province holds millions of windows.
    assert_eq!(std::mem::size_of::<Bucket>(), 32);
    let mut b = Bucket::new(T0, T0 + HOUR);
    assert_eq!(b.end_ms(), T0 + HOUR);
    for v in [-1.5, 0.5, -2.0] {
        b.add(v);
    }
    assert_eq!((b.count(), b.mean()), (3, -1.0));
    // Above 2⁶⁴ units of 2⁻⁴⁰ (about 1.7 × 10⁷): the high half carries it.
    let mut big = Bucket::new(T0, T0 + HOUR);
    big.add(3.0e7);
    big.add(5.0e7);
    assert_eq!(big.mean(), 4.0e7);
    big.mark_emitted();
    assert!(big.emitted() && !big.is_pending());
    assert_eq!(big.count(), 2, "the mark is not a sample");
}

#[test]
fn the_chart_means_are_the_windows_means() {
    // The status page's hourly chart: the same mean, capture and validity as the windows'
    // own points, over the hours asked for only.
    let mut s = series("1h", Some(100.0));
    for (hour, n) in [(0, 12), (1, 3), (3, 9), (4, 1)] {
        for i in 0..n {
            let ts = T0 + hour * HOUR + i * 300_000;
            s.put(ts, Some(40.0 + i as f64), Ho_Chi_Minh, i64::MIN);
        }
    }
    // The windows held in those hours (none in the third; the one starting at the end of
    // the range is not in it).
    let from_means: Vec<HourMean> = [T0 + HOUR, T0 + 3 * HOUR]
        .into_iter()
        .filter_map(|start| s.mean_at(start).map(HourMean::from))
        .collect();
    let chart: Vec<HourMean> = chart_means(&s, T0 + HOUR, T0 + 4 * HOUR);
    assert_eq!(chart, from_means);
    assert_eq!(
        chart
            .iter()
            .map(|m| (m.start_ms, m.valid))
            .collect::<Vec<_>>(),
        [(T0 + HOUR, false), (T0 + 3 * HOUR, true)]
    );
    assert_eq!(chart[1].capture, 0.75);
}

#[test]
fn a_kept_chart_is_always_the_chart_made_afresh() {
    // The status page's chart keeps its hours before the newest between descriptions; after
    // live samples, a new hour, a late sample, eviction and the clock moving on, it must be
    // what the windows say now.
    fn check(s: &mut Series, now: i64) -> HourlyMeans {
        let kept = s.chart(now - 24 * HOUR, now + 1);
        let afresh: Vec<HourMean> = chart_means(s, now - 24 * HOUR, now + 1);
        assert_eq!(kept.to_vec(), afresh, "at {now}");
        kept
    }
    let mut s = series("1h", Some(100.0));
    for i in 0..30 * 12 {
        let ts = T0 + i * 300_000;
        s.put(ts, Some(i as f64), Ho_Chi_Minh, i64::MIN);
        check(&mut s, ts);
    }
    let now = T0 + 30 * HOUR;
    let (a, b) = (check(&mut s, now), check(&mut s, now));
    assert_eq!(a.len(), 24);
    assert!(Arc::ptr_eq(&a.before, &b.before), "nothing changed: shared");
    // A live sample in the newest hour changes only the newest: the hours before are shared.
    s.put(now - 3 * 60_000, Some(7.0), Ho_Chi_Minh, i64::MIN);
    let b = check(&mut s, now);
    assert!(Arc::ptr_eq(&a.before, &b.before), "only the newest changed");

    // A late sample five hours back (off the five-minute grid, so a new time).
    s.put(now - 5 * HOUR + 60_000, Some(1000.0), Ho_Chi_Minh, i64::MIN);
    let c = check(&mut s, now);
    assert!(!Arc::ptr_eq(&b.before, &c.before));
    s.evict(now - 20 * HOUR);
    check(&mut s, now);
    check(&mut s, now + 2 * HOUR);
    assert!(check(&mut s, now + 40 * HOUR).is_empty());
}

#[test]
fn eviction_at_a_floor_inside_a_window_keeps_that_window_and_its_times() {
    // The floor (now − the late-data horizon) falls anywhere, so mostly inside a window: that
    // window stays whole, the ones ending by the floor go.
    let mut s = series("1h", None);
    for hour in 0..3 {
        s.put(T0 + hour * HOUR + 60_000, Some(1.0), Ho_Chi_Minh, i64::MIN);
    }
    s.evict(T0 + HOUR + 30 * 60_000);
    assert!(s.mean_at(T0).is_none());
    assert_eq!(s.mean_at(T0 + HOUR).map(|m| m.samples), Some(1));
    assert_eq!(s.mean_at(T0 + 2 * HOUR).map(|m| m.samples), Some(1));
    assert_eq!(s.next_evict_ms(), T0 + 2 * HOUR);
    // Its sample's time is still known: a redelivery does not count twice.
    assert_eq!(
        s.put(T0 + HOUR + 60_000, Some(1.0), Ho_Chi_Minh, i64::MIN),
        None
    );
    assert_eq!(s.mean_at(T0 + HOUR).map(|m| m.samples), Some(1));
}
