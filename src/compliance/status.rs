//! The status snapshot ([`ParkStatus`]) the stage publishes once a tick for the status page
//! and `/api/stations`: readers get an `Arc` through a `watch` and never touch the engine.
//!
//! Most of a park does not change from one second to the next, so a station's description is
//! rebuilt only when a reading reached it, when one of its open windows ended, or when its
//! health changed; otherwise the previous `Arc` is shared. With stations reporting every few
//! minutes that is a handful of stations a second, whatever the size of the park.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};
use std::sync::Arc;

use chrono_tz::Tz;
use tokio::sync::watch;

use super::windows::{self, Series};
use super::{Engine, StationHealth};
use crate::model::status::{
    excerpt, Latest, ParamStatus, RecentRejection, StationStatus, WindowStatus, EXCERPT_CHARS,
    RECENT_REJECTIONS,
};
use crate::model::{Limit, Param, ParkStatus, Rejection, StationKey};

/// The hourly chart covers this much time before "now".
const CHART_MS: i64 = 24 * 3_600_000;

/// The windows holding one instant, by length: every series of a length shares them, and
/// finding them in the zone is the costly part of describing a station.
#[derive(Debug)]
pub struct Spans {
    now_ms: i64,
    tz: Tz,
    by_length: Vec<(u64, (i64, i64))>,
}

impl Spans {
    pub fn new(now_ms: i64, tz: Tz) -> Spans {
        Spans {
            now_ms,
            tz,
            by_length: Vec::new(),
        }
    }

    /// Moves "now" to `now_ms`, keeping the windows that still hold it.
    pub fn move_to(&mut self, now_ms: i64) {
        self.now_ms = now_ms;
        self.by_length
            .retain(|&(_, (start, end))| start <= now_ms && now_ms < end);
    }

    /// `[start, end)` of the `seconds`-long window holding "now".
    pub fn at(&mut self, seconds: u64) -> (i64, i64) {
        if let Some(&(_, b)) = self.by_length.iter().find(|(s, _)| *s == seconds) {
            return b;
        }
        let b = windows::bounds(self.now_ms, seconds, self.tz);
        self.by_length.push((seconds, b));
        b
    }
}

/// One parameter of one station at the instant of `spans`.
pub fn param_status(
    param: Param,
    latest: Option<Latest>,
    limit: Option<&Limit>,
    series: &mut [Series],
    spans: &mut Spans,
) -> ParamStatus {
    let now_ms = spans.now_ms;
    let windows = series
        .iter()
        .map(|s| WindowStatus {
            label: s.spec.label.clone(),
            seconds: s.spec.seconds,
            running: s.mean_at(spans.at(s.spec.seconds).0),
            closed: s.last_valid_mean(),
        })
        .collect();
    let hourly = series
        .iter_mut()
        .find(|s| s.spec.seconds == 3600)
        .map(|s| s.chart(now_ms - CHART_MS, now_ms + 1))
        .unwrap_or_default();
    ParamStatus {
        param,
        latest,
        limit: limit.cloned(),
        windows,
        hourly,
        last_exceedance: None,
    }
}

/// A configured station as last described, and until when that description holds.
struct Described {
    status: Arc<StationStatus>,
    until_ms: i64,
    /// The time it was described at.
    at_ms: i64,
}

/// A station described less than this long ago waits for the next tick to be described again,
/// so a datalogger replaying its buffer (many messages a second) is described once a tick,
/// not once a message.
const DESCRIBE_GAP_MS: i64 = 1_000;

/// A snapshot is published when something in it changed, and at least this often so that its
/// time stays current for the page.
const REFRESH_MS: i64 = 5_000;

/// Builds and publishes the snapshots.
pub struct StatusBoard {
    tx: watch::Sender<Arc<ParkStatus>>,
    /// By slot (configured stations in key order).
    described: Vec<Option<Described>>,
    /// The latest health of each configured station, by slot.
    health: Vec<Option<StationHealth>>,
    /// When a configured station's description ends (an open window ends), by time.
    until: BinaryHeap<Reverse<(i64, usize)>>,
    /// Stations heard from but not configured, by key.
    others: BTreeMap<StationKey, Arc<StationStatus>>,
    rejections: VecDeque<RecentRejection>,
    shared_rejections: Arc<[RecentRejection]>,
    rejections_changed: bool,
    published_ms: Option<i64>,
    /// Descriptions of stations with nothing measured yet (their limits only), one copy per
    /// distinct set: most stations of a province share their regulation and coefficients.
    unheard: Vec<Arc<[ParamStatus]>>,
    /// Stations a message reached that [`StatusBoard::describe_changed`] could not describe
    /// yet (no health known before the next tick).
    later: Vec<usize>,
    /// A station was described since the last snapshot.
    described_since: bool,
    /// The open windows at the latest [`StatusBoard::describe_changed`].
    spans: Option<Spans>,
}

/// At most this many distinct shared descriptions are kept.
const SHARED_MAX: usize = 64;

impl StatusBoard {
    pub fn new(tx: watch::Sender<Arc<ParkStatus>>) -> StatusBoard {
        StatusBoard {
            tx,
            described: Vec::new(),
            health: Vec::new(),
            until: BinaryHeap::new(),
            others: BTreeMap::new(),
            rejections: VecDeque::with_capacity(RECENT_REJECTIONS),
            shared_rejections: Arc::from(Vec::new()),
            rejections_changed: false,
            published_ms: None,
            unheard: Vec::new(),
            later: Vec::new(),
            described_since: false,
            spans: None,
        }
    }

    /// Describes again the stations a message just reached, while their state is still in the
    /// CPU's caches: at a province's scale, waiting for the tick means fetching each station's
    /// windows from memory a second time (`cargo bench --bench scale`). The snapshot itself
    /// is still published by [`StatusBoard::publish`].
    pub fn describe_changed(&mut self, engine: &mut Engine, now_ms: i64) {
        if self.described.len() != engine.configured() {
            return; // the first snapshot describes every station
        }
        let mut spans = self
            .spans
            .take()
            .unwrap_or_else(|| Spans::new(now_ms, engine.timezone()));
        spans.move_to(now_ms);
        for slot in engine.take_changed() {
            let recent = self.described[slot]
                .as_ref()
                .is_some_and(|d| (now_ms - d.at_ms).abs() < DESCRIBE_GAP_MS);
            if recent || !self.describe(engine, slot, &mut spans) {
                self.later.push(slot);
            }
        }
        self.spans = Some(spans);
    }

    /// Puts the station's new health into its description, keeping its parameters (shared,
    /// not described again); `false` when it has no description yet.
    fn refresh_health(&mut self, slot: usize) -> bool {
        let (Some(h), Some(d)) = (self.health[slot].clone(), self.described[slot].as_mut()) else {
            return false;
        };
        let old = &d.status;
        d.status = Arc::new(StationStatus {
            key: h.key,
            kind: old.kind,
            expected_interval_s: old.expected_interval_s,
            state: h.state,
            last_message_ms: h.last_reading_ms,
            stuck: h.stuck_params,
            params: old.params.clone(),
        });
        self.described_since = true;
        true
    }

    /// Describes the configured station at `slot` as of `spans`; `false` when its health is
    /// not known yet.
    fn describe(&mut self, engine: &mut Engine, slot: usize, spans: &mut Spans) -> bool {
        let Some(h) = self.health[slot].clone() else {
            return false;
        };
        let (params, until_ms) = engine.station_status_in(slot, spans);
        let params = self.shared(params);
        let (kind, expected_interval_s) = engine.station_kind(slot);
        self.described[slot] = Some(Described {
            status: Arc::new(StationStatus {
                key: h.key,
                kind: Some(kind),
                expected_interval_s: Some(expected_interval_s),
                state: h.state,
                last_message_ms: h.last_reading_ms,
                stuck: h.stuck_params,
                params,
            }),
            until_ms,
            at_ms: spans.now_ms,
        });
        if until_ms != i64::MAX {
            self.until.push(Reverse((until_ms, slot)));
        }
        self.described_since = true;
        true
    }

    /// The rejections of one message on `topic`, received at `received_at_ms`. Only the topic,
    /// the reason and the detail are kept, each cut to a short excerpt: never the payload.
    pub fn rejected(
        &mut self,
        topic: &str,
        key: Option<&StationKey>,
        rejections: &[Rejection],
        received_at_ms: i64,
    ) {
        for r in rejections {
            if self.rejections.len() == RECENT_REJECTIONS {
                self.rejections.pop_back();
            }
            self.rejections.push_front(RecentRejection {
                received_at_ms,
                topic: excerpt(topic, EXCERPT_CHARS),
                key: key.cloned(),
                reason: r.reason,
                detail: excerpt(&r.detail, EXCERPT_CHARS),
            });
            self.rejections_changed = true;
        }
    }

    /// `params` as an `Arc`, shared with other stations when nothing was measured yet.
    fn shared(&mut self, params: Vec<ParamStatus>) -> Arc<[ParamStatus]> {
        let fresh = params.iter().all(|p| {
            p.latest.is_none()
                && p.last_exceedance.is_none()
                && p.hourly.is_empty()
                && p.windows
                    .iter()
                    .all(|w| w.running.is_none() && w.closed.is_none())
        });
        if !fresh {
            return Arc::from(params);
        }
        if let Some(s) = self.unheard.iter().find(|s| ***s == *params) {
            return s.clone();
        }
        let arc: Arc<[ParamStatus]> = Arc::from(params);
        if self.unheard.len() < SHARED_MAX {
            self.unheard.push(arc.clone());
        }
        arc
    }

    /// Publishes the park at `now_ms`. `health` is [`Engine::health_changes`] at `now_ms`: the
    /// stations whose health changed, by slot. Only the stations that changed are described
    /// again — a reading reached them, their health changed, or an open window of theirs ended
    /// — so a tick costs what changed, not the size of the park.
    pub fn publish(&mut self, engine: &mut Engine, health: &[(usize, StationHealth)], now_ms: i64) {
        let configured = engine.configured();
        let first = self.described.len() != configured;
        self.described.resize_with(configured, || None);
        self.health.resize_with(configured, || None);
        let mut stale: Vec<usize> = engine.take_changed();
        stale.append(&mut self.later);
        // Stations whose health alone changed (a message described with it, a silence).
        let mut health_only = Vec::new();
        let mut others_changed = false;
        for (slot, h) in health {
            if *slot < configured {
                self.health[*slot] = Some(h.clone());
                health_only.push(*slot);
            } else {
                others_changed = true;
                self.others.insert(
                    h.key.clone(),
                    Arc::new(StationStatus {
                        key: h.key.clone(),
                        kind: None,
                        expected_interval_s: None,
                        state: h.state,
                        last_message_ms: h.last_reading_ms,
                        stuck: h.stuck_params.clone(),
                        params: Arc::from(Vec::new()),
                    }),
                );
            }
        }
        while let Some(&Reverse((at, slot))) = self.until.peek() {
            if at > now_ms {
                break;
            }
            self.until.pop();
            if self.described[slot]
                .as_ref()
                .is_some_and(|d| d.until_ms == at)
            {
                stale.push(slot);
            }
        }
        if first {
            stale = (0..configured).collect();
        }
        stale.sort_unstable();
        stale.dedup();
        let mut spans = Spans::new(now_ms, engine.timezone());
        for &slot in &stale {
            self.describe(engine, slot, &mut spans);
        }
        for slot in health_only {
            if stale.binary_search(&slot).is_err() && !self.refresh_health(slot) {
                self.describe(engine, slot, &mut spans);
            }
        }
        let rebuilt = std::mem::take(&mut self.described_since);
        let due = self
            .published_ms
            .is_none_or(|at| now_ms - at >= REFRESH_MS || now_ms < at);
        if !(rebuilt || others_changed || self.rejections_changed || due) {
            return;
        }
        if self.rejections_changed {
            self.shared_rejections = self.rejections.iter().cloned().collect();
            self.rejections_changed = false;
        }
        let stations = self
            .described
            .iter()
            .flatten()
            .map(|d| d.status.clone())
            .chain(self.others.values().cloned())
            .collect();
        self.published_ms = Some(now_ms);
        self.tx.send_replace(Arc::new(ParkStatus {
            at_ms: Some(now_ms),
            tz: engine.timezone(),
            stations,
            rejections: self.shared_rejections.clone(),
        }));
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod timing {
    //! What publishing costs the stage (the issue: the page must not slow ingestion).

    use std::time::Instant;

    use super::*;
    use crate::config::{StationDefaults, Stations, WindowSpec};
    use crate::model::{Reading, Status};

    /// 1,002 stations (the demo park × 167), a day of readings every 10 minutes, then the
    /// snapshot published: once with every station to describe (the first tick, or the end of
    /// an hour), once with one station changed (a usual tick). Run in release:
    /// `cargo test --release --lib -- --ignored publish_1000 --nocapture`.
    #[test]
    #[ignore = "a timing; run on its own, in release"]
    fn publish_1000_stations() {
        let defaults = StationDefaults {
            windows: vec![
                WindowSpec::parse("1h").unwrap(),
                WindowSpec::parse("24h").unwrap(),
            ],
            min_capture: 0.75,
            stuck_after_s: 0,
        };
        let text = crate::demo::stations_toml_replicated(167);
        let stations = Stations::parse(&text, "stations.toml", &defaults).unwrap();
        let keys: Vec<_> = stations.iter().map(|s| (s.key.clone(), s.kind)).collect();
        let mut e = Engine::new(
            stations,
            &super::super::Catalogue::builtin(),
            chrono_tz::Asia::Ho_Chi_Minh,
        );
        let t0 = 1_795_910_400_000;
        let mut readings = 0;
        for step in 0..144 {
            let ts = t0 + step * 600_000;
            for (key, kind) in &keys {
                let message: Vec<Reading> = Param::ALL
                    .iter()
                    .filter(|p| p.kinds().contains(kind))
                    .map(|&param| Reading {
                        key: key.clone(),
                        param,
                        ts_ms: ts,
                        value: Some(10.0 + (step % 7) as f64),
                        status: Status::Normal,
                    })
                    .collect();
                readings += message.len();
                e.judge(message, ts);
            }
            e.tick(ts);
        }
        // A minute after the last readings, nine before the top of the hour.
        let now = t0 + 143 * 600_000 + 60_000;
        let health = e.health_changes(now);
        let (tx, rx) = watch::channel(Arc::new(ParkStatus::empty(chrono_tz::UTC)));
        let mut board = StatusBoard::new(tx);
        let t = Instant::now();
        board.publish(&mut e, &health, now);
        let all = t.elapsed();
        let (key, kind) = &keys[0];
        let one = vec![Reading {
            key: key.clone(),
            param: *Param::ALL
                .iter()
                .find(|p| p.kinds().contains(kind))
                .unwrap(),
            ts_ms: now,
            value: Some(1.0),
            status: Status::Normal,
        }];
        e.judge(one, now);
        let health = e.health_changes(now + 1);
        let t = Instant::now();
        board.publish(&mut e, &health, now + 1);
        let usual = t.elapsed();
        let s = rx.borrow().clone();
        let params: usize = s.stations.iter().map(|s| s.params.len()).sum();
        let hourly: usize = s
            .stations
            .iter()
            .flat_map(|s| s.params.iter())
            .map(|p| p.hourly.len())
            .sum();
        println!(
            "snapshot of {} stations ({params} parameters, {hourly} hourly means, {readings} readings judged): every station described {:.1} ms, one station {:.2} ms",
            s.stations.len(),
            all.as_secs_f64() * 1000.0,
            usual.as_secs_f64() * 1000.0
        );
    }
}
