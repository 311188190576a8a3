//! What the page and the JSON say about a snapshot: which parameters are over their limit
//! right now and since when, which were earlier in the day, and the order things are listed in
//! (exceedances first). Shared by [`super::page`] and [`super::api`], so the two can never
//! disagree.

use super::html::Clock;
use crate::model::status::{Exceedance, ParamStatus, StationStatus, WindowStatus};

/// How far back an exceedance that ended still counts as recent.
pub const RECENT_MS: i64 = 24 * 3_600_000;
use crate::model::{HealthState, ParkStatus};

/// Why a parameter counts as over its limit now.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Basis<'a> {
    /// Its latest reading (status 00) exceeds the limit, and the station is not silent.
    Reading,
    /// The latest closed valid window exceeded, and no newer window of that length has closed.
    Window(&'a WindowStatus),
}

/// A parameter over its limit now.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Over<'a> {
    pub basis: Basis<'a>,
    /// The value compared to the limit (O2-corrected where that applies, or the window mean).
    pub value: f64,
    pub ratio: Option<f64>,
    /// The first reading of the current run of exceeded readings, or the window's start.
    pub since_ms: i64,
}

/// Every state a station can be shown in: the exported ones, then a configured station not
/// heard from since start-up.
pub const STATES: [HealthState; 6] = [
    HealthState::Ok,
    HealthState::Silent,
    HealthState::Fault,
    HealthState::Calibrating,
    HealthState::Stuck,
    HealthState::Unheard,
];

/// Where `state` is in [`STATES`].
pub fn state_index(state: HealthState) -> usize {
    match state {
        HealthState::Ok => 0,
        HealthState::Silent => 1,
        HealthState::Fault => 2,
        HealthState::Calibrating => 3,
        HealthState::Stuck => 4,
        HealthState::Unheard => 5,
    }
}

/// Whether `p` is over its limit at `now_ms`. A reading's verdict wins over a window's: it is
/// the more recent of the two.
pub fn over<'a>(s: &StationStatus, p: &'a ParamStatus, now_ms: i64) -> Option<Over<'a>> {
    if let Some(l) = p.latest.filter(|l| l.exceeded) {
        // An exceeded reading always has a value: only status-00 readings with one are judged.
        if let (Some(value), true) = (l.value_ref.or(l.value), s.state != HealthState::Silent) {
            return Some(Over {
                basis: Basis::Reading,
                value,
                ratio: l.ratio,
                since_ms: l.exceeding_since_ms.unwrap_or(l.ts_ms),
            });
        }
    }
    p.windows.iter().find_map(|w| {
        let c = w.closed.filter(|c| c.exceeded)?;
        // Still the latest window of its length: the next one has not closed yet.
        (now_ms < c.end_ms + (c.end_ms - c.start_ms)).then_some(Over {
            basis: Basis::Window(w),
            value: c.mean,
            ratio: c.ratio,
            since_ms: c.start_ms,
        })
    })
}

/// The run of exceeded readings of `p` that ended within [`RECENT_MS`] of `now_ms`, when `p`
/// is not over its limit now.
pub fn recent(p: &ParamStatus, over: Option<&Over>, now_ms: i64) -> Option<Exceedance> {
    if over.is_some() {
        return None;
    }
    p.last_exceedance.filter(|e| e.to_ms >= now_ms - RECENT_MS)
}

/// One station with its parameters in the order they are listed: over their limit first (by
/// ratio, highest first), then in table order.
pub struct StationView<'a> {
    pub s: &'a StationStatus,
    pub params: Vec<(&'a ParamStatus, Option<Over<'a>>)>,
    pub now_ms: i64,
}

impl StationView<'_> {
    pub fn is_over(&self) -> bool {
        self.params.iter().any(|(_, o)| o.is_some())
    }

    /// Not over a limit now, but was in the last 24 hours.
    pub fn was_over(&self) -> bool {
        !self.is_over()
            && self
                .params
                .iter()
                .any(|(p, o)| recent(p, o.as_ref(), self.now_ms).is_some())
    }

    /// 0: over a limit; 1: over one in the last 24 hours; 2: not measuring normally (silent,
    /// fault, calibrating, stuck); 3: ok.
    fn rank(&self) -> u8 {
        if self.is_over() {
            0
        } else if self.was_over() {
            1
        } else if self.s.state != HealthState::Ok {
            2
        } else {
            3
        }
    }
}

pub struct SiteView<'a> {
    pub name: &'a str,
    pub stations: Vec<StationView<'a>>,
}

pub struct ParkView<'a> {
    pub name: &'a str,
    pub sites: Vec<SiteView<'a>>,
}

/// The whole snapshot, ordered: parks, sites and stations with an exceedance first, then
/// those with a station not measuring normally, then the rest, each by name.
pub struct View<'a> {
    pub status: &'a ParkStatus,
    pub now_ms: i64,
    /// Writes the page's times.
    pub clock: Clock,
    pub parks: Vec<ParkView<'a>>,
}

impl<'a> View<'a> {
    pub fn new(status: &'a ParkStatus) -> View<'a> {
        let now_ms = status.at_ms.unwrap_or(0);
        let mut stations: Vec<StationView<'a>> = status
            .stations
            .iter()
            .map(|s| station_view(s, now_ms))
            .collect();
        stations.sort_by(|a, b| (a.rank(), &a.s.key).cmp(&(b.rank(), &b.s.key)));
        // Group by park, then site, keeping the first appearance's order: the rank of a park
        // or site is that of its most urgent station.
        let mut parks: Vec<ParkView<'a>> = Vec::new();
        for st in stations {
            let (park, site) = (st.s.key.park(), st.s.key.site());
            let pi = match parks.iter().position(|p| p.name == park) {
                Some(i) => i,
                None => {
                    parks.push(ParkView {
                        name: park,
                        sites: Vec::new(),
                    });
                    parks.len() - 1
                }
            };
            let sites = &mut parks[pi].sites;
            let si = match sites.iter().position(|s| s.name == site) {
                Some(i) => i,
                None => {
                    sites.push(SiteView {
                        name: site,
                        stations: Vec::new(),
                    });
                    sites.len() - 1
                }
            };
            sites[si].stations.push(st);
        }
        View {
            status,
            now_ms,
            clock: Clock::new(now_ms, status.tz),
            parks,
        }
    }

    /// Every station in listing order.
    pub fn stations(&self) -> impl Iterator<Item = &StationView<'a>> {
        self.parks
            .iter()
            .flat_map(|p| &p.sites)
            .flat_map(|s| &s.stations)
    }

    /// Every parameter over its limit, highest ratio first.
    pub fn over(&self) -> Vec<(&StationView<'a>, &'a ParamStatus, Over<'a>)> {
        let mut all: Vec<_> = self
            .stations()
            .flat_map(|st| {
                st.params
                    .iter()
                    .filter_map(move |(p, o)| o.map(|o| (st, *p, o)))
            })
            .collect();
        all.sort_by(|a, b| {
            let (ra, rb) = (a.2.ratio.unwrap_or(0.0), b.2.ratio.unwrap_or(0.0));
            rb.total_cmp(&ra)
        });
        all
    }

    /// How many stations are in each state, in the order of [`STATES`].
    pub fn state_counts(&self) -> [usize; STATES.len()] {
        let mut counts = [0; STATES.len()];
        for s in &self.status.stations {
            counts[state_index(s.state)] += 1;
        }
        counts
    }

    pub fn over_count(&self) -> usize {
        self.stations().filter(|s| s.is_over()).count()
    }

    /// Stations not over a limit now but over one in the last 24 hours.
    pub fn was_over_count(&self) -> usize {
        self.stations().filter(|s| s.was_over()).count()
    }

    /// Every parameter not over its limit now whose last exceedance ended in the last 24
    /// hours, the latest first.
    pub fn recent(&self) -> Vec<(&StationView<'a>, &'a ParamStatus, Exceedance)> {
        let mut all: Vec<_> = self
            .stations()
            .flat_map(|st| {
                st.params.iter().filter_map(move |(p, o)| {
                    recent(p, o.as_ref(), self.now_ms).map(|e| (st, *p, e))
                })
            })
            .collect();
        all.sort_by_key(|e| std::cmp::Reverse(e.2.to_ms));
        all
    }
}

pub fn station_view(s: &StationStatus, now_ms: i64) -> StationView<'_> {
    let mut params: Vec<_> = s.params.iter().map(|p| (p, over(s, p, now_ms))).collect();
    params.sort_by(|a, b| match (&a.1, &b.1) {
        (Some(x), Some(y)) => y.ratio.unwrap_or(0.0).total_cmp(&x.ratio.unwrap_or(0.0)),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a.0.param.cmp(&b.0.param),
    });
    StationView { s, params, now_ms }
}
