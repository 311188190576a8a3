//! The engine's state as bytes, so a clean restart does not rebuild it from the journal.
//!
//! Rebuilding windows means decoding and judging again every message of the late-data
//! horizon: for a province (10,000 stations, a day of one-minute messages) about a minute of
//! CPU before the service is ready. At a clean stop the compliance stage hands the engine's
//! state to the journal stage, which keeps it beside the journal, marked with the last record
//! it covers (see `journal::engine_state`); the next start loads it and replays only the
//! records after that one, as a crash-free restart of the same configuration would.
//!
//! The state holds only what readings made: window sums and sample times, the latest
//! reading, exceedance runs and health. What the configuration gives (limits, window
//! lengths, parameters) is rebuilt from it, and a state made under another configuration or
//! another build is refused by its fingerprint ([`Engine::fingerprint`]), so the start-up
//! rebuilds from the journal instead. The layout is little-endian, fixed-width, private to
//! one build: the fingerprint holds the version.
//!
//! [`Engine::fingerprint`]: super::Engine::fingerprint

use crate::model::status::{Exceedance, Latest, WindowMean};
use crate::model::{Param, Status};

/// Why a saved state could not be read.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("the saved state ends early")]
    Truncated,
    #[error("the saved state does not match the configuration: {0}")]
    Mismatch(String),
}

/// Writes the state's fields, in order.
#[derive(Default)]
pub struct Enc(Vec<u8>);

impl Enc {
    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }

    pub fn u8(&mut self, v: u8) {
        self.0.push(v);
    }

    pub fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }

    pub fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }

    pub fn i64(&mut self, v: i64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }

    pub fn f64(&mut self, v: f64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }

    pub fn bool(&mut self, v: bool) {
        self.u8(u8::from(v));
    }

    pub fn len(&mut self, n: usize) {
        self.u32(u32::try_from(n).expect("fewer than 2³² items"));
    }

    pub fn str(&mut self, s: &str) {
        self.len(s.len());
        self.0.extend_from_slice(s.as_bytes());
    }

    pub fn opt_i64(&mut self, v: Option<i64>) {
        self.bool(v.is_some());
        if let Some(v) = v {
            self.i64(v);
        }
    }

    pub fn opt_f64(&mut self, v: Option<f64>) {
        self.bool(v.is_some());
        if let Some(v) = v {
            self.f64(v);
        }
    }

    pub fn param(&mut self, p: Param) {
        self.len(p.index());
    }

    pub fn status(&mut self, s: Status) {
        self.u8(match s {
            Status::Normal => 0,
            Status::Calibrating => 1,
            Status::Fault => 2,
        });
    }

    pub fn mean(&mut self, m: &WindowMean) {
        self.i64(m.start_ms);
        self.i64(m.end_ms);
        self.f64(m.mean);
        self.u32(m.samples);
        self.f64(m.capture);
        self.bool(m.valid);
        self.opt_f64(m.ratio);
        self.bool(m.exceeded);
    }

    pub fn latest(&mut self, l: &Latest) {
        self.i64(l.ts_ms);
        self.opt_f64(l.value);
        self.opt_f64(l.value_ref);
        self.status(l.status);
        self.opt_f64(l.ratio);
        self.bool(l.exceeded);
        self.opt_i64(l.exceeding_since_ms);
    }

    pub fn exceedance(&mut self, x: &Exceedance) {
        self.i64(x.from_ms);
        self.i64(x.to_ms);
        self.f64(x.peak);
        self.opt_f64(x.peak_ratio);
    }
}

/// Reads what [`Enc`] wrote, in the same order. `params` are the configuration's parameters
/// by [`Param::index`].
pub struct Dec<'a> {
    buf: &'a [u8],
    params: Vec<Option<Param>>,
}

impl<'a> Dec<'a> {
    pub fn new(buf: &'a [u8], params: impl Iterator<Item = Param>) -> Dec<'a> {
        let mut by_index = Vec::new();
        for p in params {
            if by_index.len() <= p.index() {
                by_index.resize(p.index() + 1, None);
            }
            by_index[p.index()] = Some(p);
        }
        Dec {
            buf,
            params: by_index,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    fn take<const N: usize>(&mut self) -> Result<[u8; N], StateError> {
        let (head, rest) = self
            .buf
            .split_first_chunk::<N>()
            .ok_or(StateError::Truncated)?;
        self.buf = rest;
        Ok(*head)
    }

    pub fn u8(&mut self) -> Result<u8, StateError> {
        Ok(self.take::<1>()?[0])
    }

    pub fn u32(&mut self) -> Result<u32, StateError> {
        Ok(u32::from_le_bytes(self.take()?))
    }

    pub fn u64(&mut self) -> Result<u64, StateError> {
        Ok(u64::from_le_bytes(self.take()?))
    }

    pub fn i64(&mut self) -> Result<i64, StateError> {
        Ok(i64::from_le_bytes(self.take()?))
    }

    pub fn f64(&mut self) -> Result<f64, StateError> {
        Ok(f64::from_le_bytes(self.take()?))
    }

    pub fn bool(&mut self) -> Result<bool, StateError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            b => Err(StateError::Mismatch(format!("{b} is not a flag"))),
        }
    }

    pub fn len(&mut self) -> Result<usize, StateError> {
        let n = self.u32()? as usize;
        // A count can never exceed the bytes left (every item takes at least one).
        if n > self.buf.len() {
            return Err(StateError::Truncated);
        }
        Ok(n)
    }

    pub fn str(&mut self) -> Result<&'a str, StateError> {
        let n = self.len()?;
        let (s, rest) = self.buf.split_at(n);
        self.buf = rest;
        std::str::from_utf8(s).map_err(|_| StateError::Mismatch("a name is not UTF-8".into()))
    }

    pub fn opt_i64(&mut self) -> Result<Option<i64>, StateError> {
        Ok(if self.bool()? {
            Some(self.i64()?)
        } else {
            None
        })
    }

    pub fn opt_f64(&mut self) -> Result<Option<f64>, StateError> {
        Ok(if self.bool()? {
            Some(self.f64()?)
        } else {
            None
        })
    }

    pub fn param(&mut self) -> Result<Param, StateError> {
        let i = self.u32()? as usize;
        self.params
            .get(i)
            .copied()
            .flatten()
            .ok_or_else(|| StateError::Mismatch(format!("no parameter at position {i}")))
    }

    pub fn status(&mut self) -> Result<Status, StateError> {
        match self.u8()? {
            0 => Ok(Status::Normal),
            1 => Ok(Status::Calibrating),
            2 => Ok(Status::Fault),
            b => Err(StateError::Mismatch(format!("{b} is not a status"))),
        }
    }

    pub fn mean(&mut self) -> Result<WindowMean, StateError> {
        Ok(WindowMean {
            start_ms: self.i64()?,
            end_ms: self.i64()?,
            mean: self.f64()?,
            samples: self.u32()?,
            capture: self.f64()?,
            valid: self.bool()?,
            ratio: self.opt_f64()?,
            exceeded: self.bool()?,
        })
    }

    pub fn latest(&mut self) -> Result<Latest, StateError> {
        Ok(Latest {
            ts_ms: self.i64()?,
            value: self.opt_f64()?,
            value_ref: self.opt_f64()?,
            status: self.status()?,
            ratio: self.opt_f64()?,
            exceeded: self.bool()?,
            exceeding_since_ms: self.opt_i64()?,
        })
    }

    pub fn exceedance(&mut self) -> Result<Exceedance, StateError> {
        Ok(Exceedance {
            from_ms: self.i64()?,
            to_ms: self.i64()?,
            peak: self.f64()?,
            peak_ratio: self.opt_f64()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_come_back_in_order_and_a_short_buffer_is_refused() {
        let mut e = Enc::default();
        e.u8(7);
        e.i64(-5);
        e.opt_f64(Some(1.5));
        e.opt_f64(None);
        e.str("HP-01");
        e.param(Param::COD);
        e.status(Status::Fault);
        let bytes = e.into_bytes();
        let mut d = Dec::new(&bytes, [Param::TSS, Param::COD].into_iter());
        assert_eq!(d.u8().unwrap(), 7);
        assert_eq!(d.i64().unwrap(), -5);
        assert_eq!(d.opt_f64().unwrap(), Some(1.5));
        assert_eq!(d.opt_f64().unwrap(), None);
        assert_eq!(d.str().unwrap(), "HP-01");
        assert_eq!(d.param().unwrap(), Param::COD);
        assert_eq!(d.status().unwrap(), Status::Fault);
        assert!(d.is_empty());

        let mut short = Dec::new(&bytes[..5], std::iter::empty());
        short.u8().unwrap();
        assert!(matches!(short.i64(), Err(StateError::Truncated)));
        // A parameter the configuration no longer has is a mismatch, not a panic.
        let mut d = Dec::new(&bytes, std::iter::empty());
        d.u8().unwrap();
        d.i64().unwrap();
        d.opt_f64().unwrap();
        d.opt_f64().unwrap();
        d.str().unwrap();
        assert!(matches!(d.param(), Err(StateError::Mismatch(_))));
    }

    #[test]
    fn a_count_is_refused_only_when_more_than_the_bytes_left() {
        // Three one-byte items after their count: every byte left is an item.
        let mut e = Enc::default();
        e.len(3);
        for v in [1, 2, 3] {
            e.u8(v);
        }
        let bytes = e.into_bytes();
        let mut d = Dec::new(&bytes, std::iter::empty());
        assert_eq!(d.len().unwrap(), 3);
        // A count no buffer this size can hold (an edited file): refused before anything is
        // reserved for it.
        let mut e = Enc::default();
        e.len(1_000_000);
        e.u8(1);
        let bytes = e.into_bytes();
        let mut d = Dec::new(&bytes, std::iter::empty());
        assert!(matches!(d.len(), Err(StateError::Truncated)));
    }
}
