//! Part 3's workload: generated wastewater stations (as `benches/scale` builds them: COD, TSS,
//! pH, NH4, Temp and Flow, QCVN 40 column B, one message a minute) and their messages in the
//! contract's JSON, with one reading or all six a message.

use anyhow::bail;
use bytes::Bytes;
use chrono::{SecondsFormat, TimeZone};
use quantrac::model::Param;

use crate::workload::{decoder, Message, Workload};
use crate::TZ;

/// The parameters every generated station measures.
pub(crate) const PARAMS: [Param; 6] = [
    Param::COD,
    Param::TSS,
    Param::PH,
    Param::NH4,
    Param::Temp,
    Param::Flow,
];
/// Typical values, all within QCVN 40:2011 column B.
const BASE: [f64; 6] = [60.0, 40.0, 7.0, 5.0, 30.0, 120.0];
const MINUTE_MS: i64 = 60_000;

fn topic(station: usize) -> String {
    format!("env/p{}/s{}/outfall-{station}", station % 10, station % 100)
}

/// `count` messages of `stations` stations, each station sending every minute either its six
/// readings in one message (`per_message` 6) or one message a reading (`per_message` 1, a
/// station's six sent one after the other). The minutes end before `now_ms`, so the readings
/// are live data in open windows. Every message is decoded once here, to be sure none is
/// refused and to count the readings.
pub(crate) fn generate(
    stations: usize,
    count: usize,
    per_message: usize,
    now_ms: i64,
) -> anyhow::Result<Workload> {
    if per_message != 1 && per_message != PARAMS.len() {
        bail!("{per_message} readings a message: only 1 or 6");
    }
    let per_minute = stations * PARAMS.len() / per_message;
    let minutes = i64::try_from(count.div_ceil(per_minute)).unwrap_or(1);
    let start = now_ms - now_ms.rem_euclid(MINUTE_MS) - minutes * MINUTE_MS;
    let mut decoder = decoder()?;
    let mut messages = Vec::with_capacity(count);
    let mut readings = 0u64;
    for k in 0..count {
        let minute = i64::try_from(k / per_minute).unwrap_or(0);
        let within = k % per_minute;
        let (station, params) = if per_message == 1 {
            let p = within % PARAMS.len();
            (within / PARAMS.len(), p..p + 1)
        } else {
            (within, 0..PARAMS.len())
        };
        let ts = start + minute * MINUTE_MS;
        let payload = json(ts, station as u64 + minute as u64 * 7, params);
        let topic = topic(station);
        let decoded = decoder.decode(&topic, payload.as_bytes(), ts + 1000);
        if !decoded.rejections.is_empty() || decoded.readings.len() != per_message {
            bail!(
                "generated message on {topic} not accepted whole: {:?}",
                decoded.rejections
            );
        }
        readings += decoded.readings.len() as u64;
        messages.push(Message {
            topic,
            payload: Bytes::from(payload),
            ts_ms: ts,
        });
    }
    Ok(Workload { messages, readings })
}

/// `{"ts":"…+07:00","readings":[{"param":"COD","value":61.23,"unit":"mg/L","status":"00"}]}`.
fn json(ts_ms: i64, salt: u64, params: std::ops::Range<usize>) -> String {
    let local = TZ
        .timestamp_millis_opt(ts_ms)
        .single()
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, false))
        .unwrap_or_default();
    let readings: Vec<String> = params
        .map(|i| {
            let p = PARAMS[i];
            let value =
                BASE[i] + (salt.wrapping_mul(31).wrapping_add(i as u64 * 7) % 97) as f64 / 97.0;
            let unit = match p.canonical_unit() {
                "" => String::new(),
                u => format!(r#","unit":"{u}""#),
            };
            format!(
                r#"{{"param":"{}","value":{value:.2}{unit},"status":"00"}}"#,
                p.symbol()
            )
        })
        .collect();
    format!(r#"{{"ts":"{local}","readings":[{}]}}"#, readings.join(","))
}
