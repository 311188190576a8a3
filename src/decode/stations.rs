//! Which stations' readings are taken: `stations.unknown` and `stations.max_unknown_stations`.
//!
//! A publisher can invent station ids faster than anyone can read them; every invented station
//! would otherwise cost memory in the engine, a dozen series on `/metrics` and, in InfluxDB 1.x,
//! a tag value that counts against `max-values-per-tag` for every real station. So readings of
//! a station that is not configured are rejected (`unknown_station`, kept as a dead letter and
//! replayable once the station is added), or, when the operator chose to accept them, accepted
//! for at most a fixed number of stations.

use std::collections::HashSet;

use crate::config::UnknownStations;
use crate::model::StationKey;

/// The configured stations and what to do with the others.
#[derive(Debug, Default)]
pub struct StationFilter {
    /// `None`: every station is taken (no stations file behind this decoder).
    known: Option<HashSet<StationKey>>,
    policy: Option<UnknownStations>,
    max_unknown: usize,
    /// Unknown stations accepted so far (with `Accept`).
    accepted: HashSet<StationKey>,
}

impl StationFilter {
    pub fn new(
        known: impl IntoIterator<Item = StationKey>,
        policy: UnknownStations,
        max_unknown: usize,
    ) -> StationFilter {
        StationFilter {
            known: Some(known.into_iter().collect()),
            policy: Some(policy),
            max_unknown,
            accepted: HashSet::new(),
        }
    }

    /// `Ok` when the station's readings are taken, else why not.
    pub fn admit(&mut self, key: &StationKey) -> Result<(), String> {
        let Some(known) = &self.known else {
            return Ok(());
        };
        if known.contains(key) || self.accepted.contains(key) {
            return Ok(());
        }
        match self.policy {
            Some(UnknownStations::Accept) if self.accepted.len() < self.max_unknown => {
                self.accepted.insert(key.clone());
                Ok(())
            }
            Some(UnknownStations::Accept) => Err(format!(
                "station {key} is not in the stations file, and {} unknown stations are already accepted (stations.max_unknown_stations)",
                self.max_unknown
            )),
            _ => Err(format!(
                "station {key} is not in the stations file (stations.unknown = \"reject\")"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> StationKey {
        StationKey::parse("p", "s", s).unwrap()
    }

    #[test]
    fn reject_takes_only_configured_stations() {
        let mut f = StationFilter::new([key("a")], UnknownStations::Reject, 100);
        assert!(f.admit(&key("a")).is_ok());
        let why = f.admit(&key("b")).unwrap_err();
        assert!(why.contains("p/s/b") && why.contains("reject"), "{why}");
    }

    #[test]
    fn accept_takes_unknown_stations_up_to_the_cap() {
        let mut f = StationFilter::new([key("a")], UnknownStations::Accept, 2);
        assert!(f.admit(&key("x")).is_ok());
        assert!(f.admit(&key("y")).is_ok());
        assert!(
            f.admit(&key("x")).is_ok(),
            "already accepted stays accepted"
        );
        let why = f.admit(&key("z")).unwrap_err();
        assert!(why.contains("max_unknown_stations"), "{why}");
        assert!(
            f.admit(&key("a")).is_ok(),
            "configured stations never count"
        );
    }

    #[test]
    fn without_a_stations_file_everything_is_taken() {
        let mut f = StationFilter::default();
        assert!(f.admit(&key("anything")).is_ok());
    }
}
