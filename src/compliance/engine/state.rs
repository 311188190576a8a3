//! Saving the engine's state at a clean stop and loading it at the next start (see
//! `compliance::state` for why and what is kept).

use sha2::Digest;

use super::{Engine, Exceedance, Param, Seen, Series};
use crate::compliance::state::{Dec, Enc, StateError};

/// The layout of [`Engine::save_state`]; changed with it.
const LAYOUT: u32 = 1;

/// What one parameter of a station brings back from a saved state, checked before anything
/// is changed.
struct Loaded {
    param: Param,
    series: Vec<Series>,
    seen: Option<Box<Seen>>,
}

impl Engine {
    /// What a saved state must have been made under to be loaded: this build and layout, the
    /// stations file and parameter table as read, the time zone and the late-data horizon.
    /// Any change (a limit, a window, a station added) makes the start-up rebuild from the
    /// journal instead, which judges every reading under the new configuration.
    pub fn fingerprint(&self) -> [u8; 32] {
        let mut h = sha2::Sha256::new();
        h.update(
            format!(
                "quantrac {} layout {LAYOUT}\n{:?}\n{}\n{}",
                env!("CARGO_PKG_VERSION"),
                self.stations,
                self.tz,
                self.horizon_ms
            )
            .as_bytes(),
        );
        h.finalize().into()
    }

    /// The state readings made: per configured station and parameter its windows, newest
    /// reading and exceedance run; health of every station heard from.
    pub fn save_state(&self) -> Vec<u8> {
        let mut e = Enc::default();
        e.len(self.slots.len());
        for slot in &self.slots {
            e.len(slot.params.len());
            for p in &slot.params {
                e.param(p.param);
                e.len(p.series.len());
                for s in &p.series {
                    s.save(&mut e);
                }
                let seen = p.seen.as_deref();
                let latest = seen.and_then(|s| s.latest.as_ref());
                e.bool(latest.is_some());
                if let Some(l) = latest {
                    e.latest(l);
                }
                let exceedance = seen.and_then(|s| s.exceedance.as_ref());
                e.bool(exceedance.is_some());
                if let Some(x) = exceedance {
                    e.exceedance(x);
                }
            }
        }
        self.health.save(&mut e);
        e.into_bytes()
    }

    /// Loads what [`Engine::save_state`] wrote (by an engine of the same
    /// [`Engine::fingerprint`]) into this new engine, as [`Engine::restore_part`] would have
    /// left it: end with [`Engine::restore_done`] after replaying the records the state does
    /// not cover. Nothing changes when the bytes do not fit the configuration.
    pub fn load_state(&mut self, bytes: &[u8], now_ms: i64) -> Result<(), StateError> {
        let mut d = Dec::new(bytes, self.stations.params.all());
        let n = d.len()?;
        if n != self.slots.len() {
            return Err(StateError::Mismatch(format!(
                "{n} stations saved, {} configured",
                self.slots.len()
            )));
        }
        let mut staged: Vec<Vec<Loaded>> = Vec::with_capacity(n);
        for (slot, station) in self.slots.iter().zip(self.stations.iter()) {
            let count = d.len()?;
            let mut params = Vec::with_capacity(count);
            for i in 0..count {
                let param = d.param()?;
                // Positions do not move: those with a limit come first, as configured.
                let expected = slot.params.get(i).map(|p| p.param);
                let fits = match expected {
                    Some(p) => p == param,
                    None => slot.param(param).is_none(),
                };
                if !fits {
                    return Err(StateError::Mismatch(format!(
                        "{} of {} is not where it was",
                        param.symbol(),
                        station.key
                    )));
                }
                let limit = slot.param(param).and_then(|p| p.limit.clone());
                let mut series = super::new_series(&self.stations, &station.key, param, &limit);
                let saved = d.len()?;
                if saved == 0 {
                    series.clear();
                } else if saved != series.len() {
                    return Err(StateError::Mismatch(format!(
                        "{} of {}: {saved} windows saved, {} configured",
                        param.symbol(),
                        station.key,
                        series.len()
                    )));
                }
                for s in &mut series {
                    s.load(&mut d)?;
                }
                let latest = if d.bool()? { Some(d.latest()?) } else { None };
                let exceedance: Option<Exceedance> = if d.bool()? {
                    Some(d.exceedance()?)
                } else {
                    None
                };
                let seen = (latest.is_some() || exceedance.is_some())
                    .then(|| Box::new(Seen { latest, exceedance }));
                params.push(Loaded {
                    param,
                    series,
                    seen,
                });
            }
            staged.push(params);
        }
        let mut health = self.health.clone();
        health.load(&mut d)?;
        if !d.is_empty() {
            return Err(StateError::Mismatch("bytes left over".into()));
        }

        // Everything read: now the engine changes.
        self.advance(now_ms);
        self.health = health;
        for (handle, params) in staged.into_iter().enumerate() {
            let slot = &mut self.slots[handle];
            for loaded in params {
                let (pi, p) = slot.param_mut(loaded.param);
                for i in 0..loaded.series.len() {
                    self.restored.push((handle as u32, pi as u16, i as u8));
                }
                p.series = loaded.series;
                p.seen = loaded.seen;
                if !p.dirty {
                    p.dirty = true;
                    self.dirty.push((handle as u32, pi as u16));
                }
            }
            if !slot.changed {
                slot.changed = true;
                self.changed.push(handle);
            }
        }
        Ok(())
    }
}
