//! End-to-end tests of the decoding stage: topic + payload in, readings and rejections out.
//! Section names refer to the contract (`Topics and payloads`, `Parameters and canonical units`).
//! The helpers are here; the tests are in one file per concern.

use super::*;

mod contract;
mod field;
mod json;
mod plumbing;
mod rejections;
mod times;
mod values;

const HCM: Tz = chrono_tz::Asia::Ho_Chi_Minh;
/// 2026-11-29T14:05:00+07:00 = 2026-11-29T07:05:00Z.
const T0: i64 = 1_795_935_900_000;
/// Received one second after T0.
const RECV: i64 = T0 + 1_000;
const TOPIC: &str = "env/nam-dinh-vu/nd-textile/outfall-1";

fn decoder() -> Decoder {
    Decoder::new(&["env/{park}/{site}/{station}".to_owned()], HCM, 65_536).unwrap()
}

fn decode(payload: &str) -> Decoded {
    decoder().decode(TOPIC, payload.as_bytes(), RECV)
}

fn key() -> StationKey {
    StationKey::parse("nam-dinh-vu", "nd-textile", "outfall-1").unwrap()
}

/// The only rejection of a decode, checked to be of `reason`.
fn only_rejection(d: &Decoded, reason: Reason) -> &Rejection {
    assert_eq!(d.rejections.len(), 1, "{d:#?}");
    let r = &d.rejections[0];
    assert_eq!(r.reason, reason, "{r:?}");
    r
}

/// A one-reading JSON payload with the message time T0.
fn one(reading: &str) -> Decoded {
    decode(&format!(
        r#"{{"ts": "2026-11-29T14:05:00+07:00", "readings": [{reading}]}}"#
    ))
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * b.abs().max(1.0)
}
