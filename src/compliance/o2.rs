//! O2 normalisation of stack concentrations.
//!
//! A permit states emission limits at a reference oxygen content; dilution air lowers the
//! measured concentration, so the measured value is scaled to that reference before it is
//! compared (contract, "Parameters"; regulations.md §2.2, generic practice [V] S39):
//! `C_ref = C × (20.9 − O2_ref) / (20.9 − O2)`. Near ambient oxygen the denominator goes to
//! zero and the result means nothing, so no correction is made when O2 ≥ 20 %.

use std::collections::HashMap;

use crate::model::{Param, Reading, StationKey, Status};

use super::FxBuild;

/// Oxygen content of dry ambient air, % by volume.
pub const AMBIENT_O2: f64 = 20.9;

/// From this O2 content on, the correction is not applied.
pub const NO_CORRECTION_FROM: f64 = 20.0;

/// `C × (20.9 − o2_ref) / (20.9 − o2)`, or `None` when `o2` ≥ 20 % (or not finite).
pub fn correct(value: f64, o2: f64, o2_ref: f64) -> Option<f64> {
    if !o2.is_finite() || o2 >= NO_CORRECTION_FROM {
        return None;
    }
    Some(value * (AMBIENT_O2 - o2_ref) / (AMBIENT_O2 - o2))
}

/// A message rarely carries more O2 readings than this; up to it a scan beats hashing.
const SCAN_UP_TO: usize = 16;

/// The valid (status `00`) O2 readings of a batch, by station and timestamp. When one
/// station × timestamp appears twice, the later reading counts.
#[derive(Clone, Debug, Default)]
pub struct O2Values {
    /// In batch order.
    entries: Vec<(StationKey, i64, f64)>,
    /// Built only for large batches (a rebuild from the journal), where scanning would be
    /// quadratic.
    index: Option<HashMap<(StationKey, i64), f64, FxBuild>>,
}

impl O2Values {
    /// The valid O2 of `key` at `ts_ms`.
    pub fn get(&self, key: &StationKey, ts_ms: i64) -> Option<f64> {
        match &self.index {
            Some(index) => index.get(&(key.clone(), ts_ms)).copied(),
            None => self
                .entries
                .iter()
                .rev()
                .find(|(k, ts, _)| *ts == ts_ms && k == key)
                .map(|&(_, _, v)| v),
        }
    }
}

/// The valid (status `00`) O2 readings among `readings`, by station and timestamp: the only
/// O2 values a concentration may be corrected with is one measured at the same instant.
pub fn valid_o2(readings: &[Reading]) -> O2Values {
    let entries: Vec<(StationKey, i64, f64)> = readings
        .iter()
        .filter(|r| r.param == Param::O2 && r.status == Status::Normal)
        .filter_map(|r| Some((r.key.clone(), r.ts_ms, r.value?)))
        .collect();
    let index = (entries.len() > SCAN_UP_TO).then(|| {
        entries
            .iter()
            .map(|(k, ts, v)| ((k.clone(), *ts), *v))
            .collect()
    });
    O2Values { entries, index }
}

/// The corrected value of `reading`, when its station has a reference O2, the parameter is a
/// gas or dust concentration, and a valid O2 of the same timestamp is known.
pub fn value_ref(reading: &Reading, o2_ref: Option<f64>, o2: &O2Values) -> Option<f64> {
    let o2_ref = o2_ref?;
    if !reading.param.o2_correctable() {
        return None;
    }
    let measured = o2.get(&reading.key, reading.ts_ms)?;
    correct(reading.value?, measured, o2_ref)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(param: Param, ts_ms: i64, value: f64, status: Status) -> Reading {
        Reading {
            key: StationKey::parse("p", "s", "stack-1").unwrap(),
            param,
            ts_ms,
            value: Some(value),
            status,
        }
    }

    #[test]
    fn contract_example_c100_o2_11_ref_7() {
        // Contract, O2 correction: 100 × (20.9 − 7) / (20.9 − 11) = 100 × 13.9 / 9.9 = 140.404…
        let c = correct(100.0, 11.0, 7.0).unwrap();
        assert!((c - 140.404_040_4).abs() < 1e-6, "{c}");
    }

    #[test]
    fn not_applied_at_or_above_20_percent_o2() {
        assert_eq!(correct(100.0, 20.0, 7.0), None);
        assert_eq!(correct(100.0, 20.5, 7.0), None);
        assert!(correct(100.0, 19.99, 7.0).is_some());
    }

    #[test]
    fn needs_a_valid_o2_of_the_same_timestamp_and_a_correctable_param() {
        let msg = vec![
            reading(Param::SO2, 1_000, 100.0, Status::Normal),
            reading(Param::O2, 1_000, 11.0, Status::Normal),
            reading(Param::CO, 2_000, 100.0, Status::Normal),
            reading(Param::O2, 3_000, 11.0, Status::Calibrating),
            reading(Param::PM, 3_000, 100.0, Status::Normal),
            reading(Param::Temp, 1_000, 150.0, Status::Normal),
        ];
        let o2 = valid_o2(&msg);
        assert!(value_ref(&msg[0], Some(7.0), &o2).is_some());
        assert_eq!(
            value_ref(&msg[0], None, &o2),
            None,
            "no o2_ref at the station"
        );
        assert_eq!(
            value_ref(&msg[2], Some(7.0), &o2),
            None,
            "no O2 at that timestamp"
        );
        assert_eq!(
            value_ref(&msg[4], Some(7.0), &o2),
            None,
            "O2 was calibrating"
        );
        assert_eq!(
            value_ref(&msg[5], Some(7.0), &o2),
            None,
            "Temp is not corrected"
        );
        assert_eq!(
            value_ref(&msg[1], Some(7.0), &o2),
            None,
            "O2 itself is not corrected"
        );
    }

    #[test]
    fn the_later_of_two_o2_readings_at_one_instant_counts_in_small_and_large_batches() {
        // A redelivered O2 with a corrected value replaces the earlier one, whatever the size
        // of the batch (a message, or a rebuild from the journal).
        for filler in [0, 40] {
            let mut msg = vec![
                reading(Param::O2, 1_000, 11.0, Status::Normal),
                reading(Param::O2, 1_000, 13.0, Status::Normal),
            ];
            msg.extend((0..filler).map(|i| reading(Param::O2, 10_000 + i, 5.0, Status::Normal)));
            let so2 = reading(Param::SO2, 1_000, 100.0, Status::Normal);
            let c = value_ref(&so2, Some(7.0), &valid_o2(&msg)).unwrap();
            assert!((c - 100.0 * 13.9 / 7.9).abs() < 1e-9, "{c}");
        }
    }
}
