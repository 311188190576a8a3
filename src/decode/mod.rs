//! Bytes to readings: `(topic, payload, received_at)` → [`Decoded`].
//!
//! The topic names the station: through the `mqtt.topics` templates ([`topic`]), or, for a file
//! taken from the inbox (an `$inbox/…` topic), through `inbox.pattern` and the stations'
//! `uplink_code`s ([`FileNames`]). The payload is either JSON ([`json`]) or the TAB-separated
//! text that Circular 10/2021 dataloggers produce ([`text`]), told apart by its first non-blank
//! character. Symbols are looked up in the parameter table, built-in and operator-defined
//! ([`Params`]). Both formats end in the same checks ([`Ctx::finish`]): the unit converts to the
//! parameter's canonical unit ([`units`]), the value is finite and physically possible, and the
//! time ([`time`]) is believable.
//!
//! A reading with status `01` or `02` and no value (empty, `null`) is a *status event*: the
//! analyser said it is calibrating or in fault without giving a number. It is accepted with
//! `value: None`, so the fault reaches the station's state; a status `00` reading without a
//! value is rejected (`value`).
//!
//! One bad reading is one [`Rejection`] with its position in the payload; its neighbours still
//! decode. A payload that cannot be read at all is one rejection with `index: None`.
//!
//! This stage is pure: no I/O, no clock (the receive time is a parameter), no limits. It is
//! the hot path of the service, so it borrows from the payload instead of copying it and
//! allocates per message, not per reading, except for the [`StationKey`] clone each
//! [`Reading`] holds (an `Arc` increment). Measured on one core of the development machine
//! (release build, one `Decoder`): a 500-byte JSON message of 8 stack readings decodes at about
//! 5 million readings/s, the same readings as Circular 10/2021 text at about 6.8 million.

mod events;
mod files;
mod json;
mod run;
mod stations;
mod text;
mod time;
mod units;

use std::collections::HashMap;
use std::fmt;

use chrono_tz::Tz;

use crate::model::{Param, Params, Reading, Reason, Rejection, StationKey, Status};
use crate::pipeline::{self, Decoded};

use crate::model::topic;
pub use crate::model::topic::TemplateError;
pub use events::{Events, RejectionLog};
pub use files::FileNames;
pub use run::run;
pub use stations::StationFilter;

/// Topics remembered by [`Decoder`]. A park has at most a few hundred stations, so the bound
/// only matters if something publishes on ever-new topics; then the cache starts over.
const KEY_CACHE_LIMIT: usize = 10_000;

/// Said in the `too_large` detail of a payload of which only an excerpt was kept (a replay has
/// nothing whole to decode then).
pub const TRUNCATED: &str = "only its first";

/// The longest user-supplied text (topic, symbol, unit) quoted in a rejection detail.
const QUOTE_LIMIT: usize = 48;

/// Decodes messages into readings. Built once from the configuration; keeps a small
/// topic → [`StationKey`] cache, hence `&mut self` in [`Decoder::decode`].
#[derive(Debug)]
pub struct Decoder {
    templates: Vec<topic::Template>,
    tz: Tz,
    max_payload_bytes: usize,
    keys: HashMap<String, StationKey>,
    params: Params,
    /// How inbox file names name stations; `None` without `[inbox]`.
    files: Option<FileNames>,
    stations: StationFilter,
}

impl Decoder {
    /// `templates` are `mqtt.topics` (e.g. `"env/{park}/{site}/{station}"`): `{name}` captures
    /// one level; park, site and station must each appear exactly once; `+` and `#` are not
    /// allowed. `tz` is `stations.timezone`, for times written without an offset.
    pub fn new(
        templates: &[String],
        tz: Tz,
        max_payload_bytes: usize,
    ) -> Result<Decoder, TemplateError> {
        Ok(Decoder {
            templates: topic::parse_all(templates)?,
            tz,
            max_payload_bytes,
            keys: HashMap::new(),
            params: Params::builtin(),
            files: None,
            stations: StationFilter::default(),
        })
    }

    /// Decodes with this parameter table (built-in parameters and the operator's own) instead
    /// of the built-in one.
    pub fn with_params(mut self, params: Params) -> Decoder {
        self.params = params;
        self
    }

    /// Names the stations of inbox files (`$inbox/…` topics) with `files`. Without it such a
    /// message is rejected (`topic`).
    pub fn with_files(mut self, files: FileNames) -> Decoder {
        self.files = Some(files);
        self
    }

    /// Takes readings only of the stations `filter` admits (by default, every station).
    pub fn with_stations(mut self, filter: StationFilter) -> Decoder {
        self.stations = filter;
        self
    }

    /// MQTT subscription filters, one per template (`{x}` → `+`), without duplicates.
    pub fn filters(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::with_capacity(self.templates.len());
        for filter in self.templates.iter().map(topic::Template::filter) {
            if !out.contains(&filter) {
                out.push(filter);
            }
        }
        out
    }

    /// The rejection of a payload that arrived over the limit and was cut to an excerpt
    /// ([`crate::pipeline::Envelope::received`]): `too_large`, with its size and SHA-256.
    pub fn oversized(&mut self, topic: &str, oversize: &crate::pipeline::Oversize) -> Decoded {
        Decoded {
            key: self.station_key(topic).ok(),
            readings: Vec::new(),
            rejections: vec![whole(
                Reason::TooLarge,
                format!(
                    "payload of {} bytes exceeds mqtt.max_payload_bytes ({}); SHA-256 {}{}",
                    oversize.bytes,
                    self.max_payload_bytes,
                    hex::encode(oversize.sha256),
                    if oversize.bytes > crate::pipeline::EXCERPT_BYTES {
                        format!(
                            "; {TRUNCATED} {} bytes are kept",
                            crate::pipeline::EXCERPT_BYTES
                        )
                    } else {
                        String::new()
                    }
                ),
            )],
        }
    }

    /// Decodes one message. `received_at_ms` (Unix epoch milliseconds) bounds how far in the
    /// future a reading's time may be. `key` is set whenever the topic names a station, even
    /// when the payload is rejected.
    pub fn decode(&mut self, topic: &str, payload: &[u8], received_at_ms: i64) -> Decoded {
        let key = self.station_key(topic);
        let mut out = Decoded::default();
        if payload.len() > self.max_payload_bytes {
            out.key = key.ok();
            out.rejections.push(whole(
                Reason::TooLarge,
                format!(
                    "payload of {} bytes exceeds mqtt.max_payload_bytes ({})",
                    payload.len(),
                    self.max_payload_bytes
                ),
            ));
            return out;
        }
        let key = match key {
            Ok(key) => key,
            Err(detail) => {
                out.rejections.push(whole(Reason::Topic, detail));
                return out;
            }
        };
        if let Err(detail) = self.stations.admit(&key) {
            out.rejections.push(whole(Reason::UnknownStation, detail));
            out.key = Some(key);
            return out;
        }
        let ctx = Ctx {
            key: &key,
            tz: self.tz,
            received_at_ms,
            params: &self.params,
        };
        decode_payload(&ctx, payload, &mut out);
        out.key = Some(key);
        out
    }

    /// The station a topic names, from the cache when seen before. An inbox file is named by
    /// its file name (never cached: every file has a new one).
    fn station_key(&mut self, topic: &str) -> Result<StationKey, String> {
        if let Some(name) = pipeline::inbox_file_name(topic) {
            return match &self.files {
                Some(files) => files.station(name),
                None => Err(format!(
                    "file {}: no [inbox] is configured to tell its station",
                    Quoted(name)
                )),
            };
        }
        if let Some(key) = self.keys.get(topic) {
            return Ok(key.clone());
        }
        match topic::match_topic(&self.templates, topic) {
            Ok(key) => {
                if self.keys.len() >= KEY_CACHE_LIMIT {
                    self.keys.clear();
                }
                self.keys.insert(topic.to_owned(), key.clone());
                Ok(key)
            }
            Err(topic::Mismatch::NoTemplate) => {
                let templates: Vec<&str> = self.templates.iter().map(|t| t.source()).collect();
                Err(format!(
                    "topic {} matches no template ({})",
                    Quoted(topic),
                    templates.join(", ")
                ))
            }
            Err(topic::Mismatch::BadIdentifier(why)) => {
                Err(format!("topic {}: {why}", Quoted(topic)))
            }
        }
    }
}

/// Sniffs the format and hands the payload to its parser.
fn decode_payload(ctx: &Ctx<'_>, payload: &[u8], out: &mut Decoded) {
    let text = match std::str::from_utf8(payload) {
        Ok(text) => text,
        Err(e) => {
            out.rejections.push(whole(
                Reason::Malformed,
                format!(
                    "payload is not UTF-8 (invalid byte at offset {})",
                    e.valid_up_to()
                ),
            ));
            return;
        }
    };
    // Windows dataloggers may start their files with a byte-order mark.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    match text.trim_start().as_bytes().first() {
        None => out
            .rejections
            .push(whole(Reason::Malformed, "payload is empty".to_owned())),
        Some(b'{') => json::decode(ctx, text, out),
        Some(_) => text::decode(ctx, text, out),
    }
}

/// What every reading of one message shares.
pub(crate) struct Ctx<'k> {
    pub(crate) key: &'k StationKey,
    pub(crate) tz: Tz,
    pub(crate) received_at_ms: i64,
    pub(crate) params: &'k Params,
}

impl Ctx<'_> {
    /// The checks both formats end with, in order: the unit converts to the canonical one, the
    /// converted value is finite and physically possible (or, without a value, the status says
    /// why there is none), the time parsed and is believable. `ts` is the parsed time or why it
    /// could not be parsed.
    pub(crate) fn finish(
        &self,
        at: At,
        param: Param,
        value: Option<f64>,
        unit: Option<&str>,
        status: Status,
        ts: Result<i64, String>,
    ) -> Result<Reading, Rejection> {
        let name = Name::Param(param);
        // Checked with or without a value: a unit that does not belong to the parameter says
        // the datalogger is configured wrong either way.
        let converted = match unit {
            None => value,
            Some(unit) => match units::to_canonical(param, unit, value.unwrap_or(0.0)) {
                Some(v) => value.map(|_| v),
                None => {
                    let msg = match param.canonical_unit() {
                        "" => format!(
                            "unit {} does not apply to {param}, which has no unit",
                            Quoted(unit)
                        ),
                        canonical => {
                            format!("unit {} does not convert to {canonical}", Quoted(unit))
                        }
                    };
                    return Err(reject(at, name, Reason::Unit, msg));
                }
            },
        };
        let value = match converted {
            Some(v) => Some(self.check_value(at, param, v)?),
            // A status event: the analyser is calibrating or in fault and gave no number.
            None if status != Status::Normal => None,
            None => {
                return Err(reject(
                    at,
                    name,
                    Reason::Value,
                    "no value (status 00, measuring, needs one; an analyser without a value \
                     reports status 01 or 02)",
                ))
            }
        };
        let ts_ms = ts.map_err(|msg| reject(at, name, Reason::Timestamp, msg))?;
        self.check_time(at, name, ts_ms)?;
        Ok(Reading {
            key: self.key.clone(),
            param,
            ts_ms,
            value,
            status,
        })
    }

    /// A converted value: finite and physically possible.
    fn check_value(&self, at: At, param: Param, value: f64) -> Result<f64, Rejection> {
        let name = Name::Param(param);
        if !value.is_finite() {
            return Err(reject(
                at,
                name,
                Reason::Value,
                "value is not a finite number",
            ));
        }
        let (min, max) = param.physical_range();
        if !(min..=max).contains(&value) {
            let u = match param.canonical_unit() {
                "" => String::new(),
                u => format!(" {u}"),
            };
            let msg = if max.is_infinite() {
                format!("value {value}{u} is physically impossible (must be at least {min}{u})")
            } else {
                format!("value {value}{u} is physically impossible (must be {min} to {max}{u})")
            };
            return Err(reject(at, name, Reason::Value, msg));
        }
        Ok(value)
    }

    /// A parsed time: not before 2000, not far ahead of the receive time.
    fn check_time(&self, at: At, name: Name<'_>, ts_ms: i64) -> Result<(), Rejection> {
        if let Err(why) = time::check_plausible(ts_ms, self.received_at_ms) {
            let msg = match why {
                time::Implausible::BeforeEarliest => {
                    // Epoch seconds sent where milliseconds are expected land in 1970.
                    let hint = if (time::EARLIEST_MS / 1000..100_000_000_000).contains(&ts_ms) {
                        " (epoch seconds? ts is in milliseconds)"
                    } else {
                        ""
                    };
                    format!("time {} is before 2000-01-01{hint}", time::fmt_ms(ts_ms))
                }
                time::Implausible::InFuture => format!(
                    "time {} is more than 10 minutes after the message arrived ({})",
                    time::fmt_ms(ts_ms),
                    time::fmt_ms(self.received_at_ms)
                ),
            };
            return Err(reject(at, name, Reason::Timestamp, msg));
        }
        Ok(())
    }
}

/// Where a reading sits in its payload: JSON reading index or text line index, 0-based.
#[derive(Clone, Copy, Debug)]
pub(crate) struct At {
    what: &'static str,
    index: usize,
}

impl At {
    pub(crate) fn reading(index: usize) -> At {
        At {
            what: "reading",
            index,
        }
    }
    pub(crate) fn line(index: usize) -> At {
        At {
            what: "line",
            index,
        }
    }
}

/// How a rejection names the reading: its parameter when known, else the symbol as written.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Name<'a> {
    Param(Param),
    Raw(&'a str),
    None,
}

/// A rejection of one reading: `reading 2 (SO2): unit "ppb" does not convert to mg/Nm3`.
pub(crate) fn reject(at: At, name: Name<'_>, reason: Reason, msg: impl fmt::Display) -> Rejection {
    let detail = match name {
        Name::Param(p) => format!("{} {} ({p}): {msg}", at.what, at.index),
        Name::Raw(s) => format!("{} {} ({}): {msg}", at.what, at.index, Quoted(s)),
        Name::None => format!("{} {}: {msg}", at.what, at.index),
    };
    Rejection {
        reason,
        detail,
        index: Some(at.index),
    }
}

/// A rejection of the whole payload.
pub(crate) fn whole(reason: Reason, detail: String) -> Rejection {
    Rejection {
        reason,
        detail,
        index: None,
    }
}

/// User text in a detail: quoted, escaped, and cut short so a hostile payload cannot blow up
/// the dead-letter log.
pub(crate) struct Quoted<'a>(pub(crate) &'a str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.char_indices().nth(QUOTE_LIMIT) {
            None => write!(f, "{:?}", self.0),
            Some((end, _)) => write!(f, "{:?}…", &self.0[..end]),
        }
    }
}

#[cfg(test)]
mod tests;
