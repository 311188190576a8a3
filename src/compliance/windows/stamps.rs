//! The set of sample timestamps a series has counted, kept as arithmetic runs.
//!
//! A station reports on a clock: one reading a minute, stamped on the minute, so the times a
//! series has seen are nearly always one run `start, start + step, …` with gaps where the
//! station was silent. A run is 16 bytes however long it is, so a day of one-minute samples
//! costs one run instead of 1,440 timestamps. Irregular times cost a run each (a point), which
//! is no worse than a list of timestamps; a late sample inside a run's span but off its step
//! splits it in three.
//!
//! Runs are sorted by start and their spans `[start, last]` never overlap, so the run that
//! may hold a time is the last one starting at or before it.

use crate::compliance::state::{Dec, Enc, StateError};

/// `start, start + step, …, start + (count − 1) × step`; a run of one is a point (its step
/// means nothing until a second time joins it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Run {
    start: i64,
    step: u32,
    count: u32,
}

impl Run {
    fn point(ts: i64) -> Run {
        Run {
            start: ts,
            step: 0,
            count: 1,
        }
    }

    fn last(&self) -> i64 {
        self.start + i64::from(self.step) * (i64::from(self.count) - 1)
    }

    fn holds(&self, ts: i64) -> bool {
        if ts < self.start || ts > self.last() {
            return false;
        }
        self.count == 1 || (ts - self.start) % i64::from(self.step) == 0
    }

    /// The step that would follow `last()` with `ts`, when the run can take it.
    fn extends_with(&self, ts: i64) -> bool {
        let gap = ts - self.last();
        if self.count == 1 {
            gap > 0 && gap <= i64::from(u32::MAX)
        } else {
            gap == i64::from(self.step)
        }
    }

    /// Appends `ts` (see [`Run::extends_with`]).
    fn push(&mut self, ts: i64) {
        if self.count == 1 {
            self.step = u32::try_from(ts - self.start).expect("checked by extends_with");
        }
        self.count += 1;
    }
}

/// Sample timestamps (epoch milliseconds) as runs.
#[derive(Clone, Debug, Default)]
pub struct Stamps {
    runs: Vec<Run>,
}

impl Stamps {
    /// Writes the runs (see `compliance::state`).
    pub fn save(&self, e: &mut Enc) {
        e.len(self.runs.len());
        for r in &self.runs {
            e.i64(r.start);
            e.u32(r.step);
            e.u32(r.count);
        }
    }

    /// Reads what [`Stamps::save`] wrote.
    pub fn load(d: &mut Dec<'_>) -> Result<Stamps, StateError> {
        let n = d.len()?;
        let mut runs = Vec::with_capacity(n);
        for _ in 0..n {
            runs.push(Run {
                start: d.i64()?,
                step: d.u32()?,
                count: d.u32()?,
            });
        }
        Ok(Stamps { runs })
    }

    /// Adds `ts`; `false` when it was already there.
    pub fn insert(&mut self, ts: i64) -> bool {
        let i = self.runs.partition_point(|r| r.start <= ts);
        if i > 0 {
            let run = self.runs[i - 1];
            if run.holds(ts) {
                return false;
            }
            if ts < run.last() {
                // Inside the run's span, off its step: split around it.
                let k = u32::try_from((ts - run.start) / i64::from(run.step)).expect("below count");
                let left = Run {
                    count: k + 1,
                    ..run
                };
                let right = Run {
                    start: run.start + i64::from(run.step) * i64::from(k + 1),
                    step: run.step,
                    count: run.count - k - 1,
                };
                self.runs[i - 1] = left;
                self.runs
                    .splice(i..i, [Run::point(ts), right])
                    .for_each(drop);
                return true;
            }
            if run.extends_with(ts) {
                self.runs[i - 1].push(ts);
                self.merge(i - 1);
                return true;
            }
        }
        // Before the next run: it may take `ts` as its new start.
        if let Some(next) = self.runs.get(i).copied() {
            let gap = next.start - ts;
            let fits = if next.count == 1 {
                gap <= i64::from(u32::MAX)
            } else {
                gap == i64::from(next.step)
            };
            if fits {
                let step = u32::try_from(gap).expect("checked above");
                self.runs[i] = Run {
                    start: ts,
                    step,
                    count: next.count + 1,
                };
                return true;
            }
        }
        self.runs.insert(i, Run::point(ts));
        true
    }

    /// Joins run `i` with the next one when they continue each other.
    fn merge(&mut self, i: usize) {
        let (Some(&a), Some(&b)) = (self.runs.get(i), self.runs.get(i + 1)) else {
            return;
        };
        if b.start - a.last() == i64::from(a.step) && (b.count == 1 || b.step == a.step) {
            self.runs[i].count += b.count;
            self.runs.remove(i + 1);
        }
    }

    pub fn contains(&self, ts: i64) -> bool {
        let i = self.runs.partition_point(|r| r.start <= ts);
        i > 0 && self.runs[i - 1].holds(ts)
    }

    /// Forgets every time before `floor_ms`.
    pub fn forget_before(&mut self, floor_ms: i64) {
        let gone = self.runs.partition_point(|r| r.last() < floor_ms);
        self.runs.drain(..gone);
        if let Some(first) = self.runs.first_mut() {
            if first.start < floor_ms {
                let step = i64::from(first.step);
                let k = (floor_ms - first.start + step - 1) / step;
                first.start += k * step;
                first.count -= u32::try_from(k).expect("fewer than count");
            }
        }
        if self.runs.capacity() > 2 * self.runs.len() + 4 {
            self.runs.shrink_to_fit();
        }
    }

    /// How many runs hold the times (for tests and measurements).
    pub fn runs(&self) -> usize {
        self.runs.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(s: &Stamps) -> Vec<i64> {
        s.runs
            .iter()
            .flat_map(|r| (0..r.count).map(move |k| r.start + i64::from(r.step) * i64::from(k)))
            .collect()
    }

    // A floor inside a run cuts it at the first time at or after the floor, on a step or
    // between two.
    #[test]
    fn forgetting_inside_a_run_keeps_the_times_from_the_floor_on() {
        let t0 = 1_796_000_000_000;
        let minutes = |from: i64| (from..10).map(|i| t0 + i * 60_000).collect::<Vec<_>>();
        for (floor, kept) in [(180_000, minutes(3)), (210_000, minutes(4))] {
            let mut s = Stamps::default();
            for t in minutes(0) {
                s.insert(t);
            }
            s.forget_before(t0 + floor);
            assert_eq!(all(&s), kept, "floor at +{floor} ms");
            assert_eq!(s.runs(), 1);
        }
    }

    // Forgetting before a floor keeps a time at the floor (it belongs to the window starting
    // there: forgotten, a redelivery of it would count twice), in a run or as a point.
    #[test]
    fn a_time_at_the_floor_is_kept() {
        let mut run = Stamps::default();
        run.insert(0);
        run.insert(60_000);
        run.forget_before(60_000);
        assert_eq!(all(&run), [60_000]);
        let mut point = Stamps::default();
        point.insert(60_000);
        point.forget_before(60_000);
        assert_eq!(all(&point), [60_000]);
    }

    // A datalogger replaying its buffer newest first: each time becomes the new start of
    // the run after it, still one run, and nothing before it is held.
    #[test]
    fn a_stream_inserted_newest_first_is_one_run() {
        let t0 = 1_796_000_000_000;
        let mut s = Stamps::default();
        for i in (0..100).rev() {
            assert!(s.insert(t0 + i * 60_000));
        }
        assert_eq!(s.runs(), 1);
        assert_eq!(
            all(&s),
            (0..100).map(|i| t0 + i * 60_000).collect::<Vec<_>>()
        );
        assert!(!s.contains(t0 - 60_000), "before the first run");
        assert!(!s.insert(t0), "exact-once");
    }

    // A step is a `u32` of milliseconds (49.7 days): times further apart stay separate runs,
    // after the last run and before the first.
    #[test]
    fn times_too_far_apart_for_a_step_stay_apart() {
        let far = i64::from(u32::MAX) + 1;
        let mut s = Stamps::default();
        assert!(s.insert(0));
        assert!(s.insert(far));
        assert!(s.insert(-far));
        assert_eq!(s.runs(), 3);
        assert_eq!(all(&s), [-far, 0, far]);
    }

    #[test]
    fn a_regular_stream_is_one_run() {
        let mut s = Stamps::default();
        for i in 0..1440 {
            assert!(s.insert(i * 60_000));
        }
        assert_eq!(s.runs(), 1);
        assert!(!s.insert(720 * 60_000), "exact-once");
        assert!(s.contains(1439 * 60_000));
        assert!(!s.contains(1440 * 60_000));
        assert!(!s.contains(30_000));
    }

    #[test]
    fn any_order_gives_the_same_set_as_a_sorted_list() {
        // A pseudo-random mix of on-step and off-step times, inserted twice, in a scrambled
        // order: the set equals the sorted, deduplicated list.
        let mut times: Vec<i64> = (0..400)
            .map(|i: i64| {
                let x = (i * 7919) % 397;
                if x % 5 == 0 {
                    x * 60_000 + 7_000
                } else {
                    x * 60_000
                }
            })
            .collect();
        let mut s = Stamps::default();
        for (n, &t) in times.iter().chain(times.iter().rev()).enumerate() {
            let fresh = s.insert(t);
            assert_eq!(fresh, n < times.len() && !times[..n].contains(&t), "{t}");
            assert!(s.contains(t));
        }
        times.sort_unstable();
        times.dedup();
        assert_eq!(all(&s), times);
        s.forget_before(100 * 60_000 + 1);
        let kept: Vec<i64> = times.into_iter().filter(|&t| t > 100 * 60_000).collect();
        assert_eq!(all(&s), kept);
    }

    #[test]
    fn a_late_gap_filler_joins_the_runs_around_it() {
        let mut s = Stamps::default();
        for i in (0..10).chain(11..20) {
            s.insert(i * 60_000);
        }
        assert_eq!(s.runs(), 2);
        s.insert(10 * 60_000);
        assert_eq!(s.runs(), 1);
        // Off the step inside the run: split.
        s.insert(5 * 60_000 + 1);
        assert_eq!(s.runs(), 3);
        assert_eq!(all(&s).len(), 21);
    }
}
