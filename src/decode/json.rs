//! The JSON payload (contract "Topics and payloads"):
//! `{"ts": …, "readings": [{"param", "value", "unit"?, "status"?, "ts"?}, …]}`.
//!
//! serde_json checks the syntax of the whole document, but each reading's fields are kept as
//! borrowed raw JSON text ([`RawValue`]) and interpreted here. That is what lets one bad
//! reading (a string value, an unknown status, a number too large for `f64`) be rejected on
//! its own while its neighbours decode, and it copies no string that has no escapes.
//! Unknown keys are ignored, so a device may add its own fields.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::{reject, time, whole, At, Ctx, Name, Quoted};
use crate::model::{Reading, Reason, Rejection, Status};
use crate::pipeline::Decoded;

#[derive(Deserialize)]
struct Message<'a> {
    #[serde(borrow, default)]
    ts: Option<&'a RawValue>,
    #[serde(borrow, default)]
    readings: Option<Readings<'a>>,
}

/// The `readings` member: an array, or what it was instead.
enum Readings<'a> {
    Array(Vec<Slot<'a>>),
    Not(&'static str),
}

/// One element of `readings`: an object's fields, or what it was instead.
enum Slot<'a> {
    Object(Fields<'a>),
    Not(&'static str),
}

/// The fields of a reading object, as raw JSON text.
#[derive(Default)]
struct Fields<'a> {
    param: Option<&'a RawValue>,
    value: Option<&'a RawValue>,
    unit: Option<&'a RawValue>,
    status: Option<&'a RawValue>,
    ts: Option<&'a RawValue>,
    /// A field given twice: which one wins would be a guess.
    duplicate: Option<&'static str>,
}

/// Decodes a JSON payload into `out`.
pub(crate) fn decode(ctx: &Ctx<'_>, text: &str, out: &mut Decoded) {
    let msg: Message<'_> = match serde_json::from_str(text) {
        Ok(msg) => msg,
        Err(e) => {
            out.rejections
                .push(whole(Reason::Malformed, format!("not valid JSON: {e}")));
            return;
        }
    };
    let slots = match msg.readings {
        Some(Readings::Array(slots)) => slots,
        Some(Readings::Not(kind)) => {
            out.rejections.push(whole(
                Reason::Malformed,
                format!("\"readings\" is {kind}, not an array"),
            ));
            return;
        }
        None => {
            out.rejections.push(whole(
                Reason::Malformed,
                "JSON payload has no \"readings\" array".to_owned(),
            ));
            return;
        }
    };
    // Parsed once: most readings take the message's time.
    let msg_ts = msg.ts.map(|raw| parse_ts(raw, "message ts", ctx));
    out.readings.reserve(slots.len());
    for (i, slot) in slots.into_iter().enumerate() {
        match reading(ctx, At::reading(i), slot, msg_ts.as_ref()) {
            Ok(r) => out.readings.push(r),
            Err(r) => out.rejections.push(r),
        }
    }
}

fn reading(
    ctx: &Ctx<'_>,
    at: At,
    slot: Slot<'_>,
    msg_ts: Option<&Result<i64, String>>,
) -> Result<Reading, Rejection> {
    let malformed = |name, msg: fmt::Arguments<'_>| reject(at, name, Reason::Malformed, msg);
    let f = match slot {
        Slot::Object(f) => f,
        Slot::Not(kind) => {
            return Err(malformed(
                Name::None,
                format_args!("is {kind}, not an object"),
            ))
        }
    };
    let symbol = match f.param.map(classify) {
        None | Some(J::Null) => {
            return Err(malformed(Name::None, format_args!("has no \"param\"")))
        }
        Some(J::Str(s)) => s,
        Some(other) => {
            return Err(malformed(
                Name::None,
                format_args!("\"param\" is {}, not a string", other.kind()),
            ))
        }
    };
    let Some(param) = ctx.params.parse(&symbol) else {
        return Err(reject(
            at,
            Name::Raw(&symbol),
            Reason::UnknownParam,
            format_args!("unknown parameter {}", Quoted(&symbol)),
        ));
    };
    let name = Name::Param(param);
    if let Some(field) = f.duplicate {
        return Err(malformed(name, format_args!("\"{field}\" is given twice")));
    }
    let status = match f.status.map(classify) {
        None | Some(J::Null) => Status::Normal,
        Some(J::Str(code)) => Status::parse(&code).ok_or_else(|| bad_status(at, name, &code))?,
        Some(J::Num(code)) => Status::parse(code).ok_or_else(|| bad_status(at, name, code))?,
        Some(other) => {
            return Err(malformed(
                name,
                format_args!("\"status\" is {}, not a string", other.kind()),
            ))
        }
    };
    let value =
        match f.value.map(classify) {
            // An analyser calibrating or in fault may give no number at all: a status event.
            None if status != Status::Normal => None,
            None => return Err(malformed(name, format_args!("has no \"value\""))),
            // The field is there but the instrument had no number to give (typically with status
            // 02): not a broken payload, a missing measurement. `finish` accepts it as a status
            // event with status 01/02 and rejects it (`value`) with status 00.
            Some(J::Null) => None,
            Some(J::Str(s)) if s.trim().is_empty() => None,
            // Rust's parser turns 1e400 into infinity, which the value check then refuses.
            Some(J::Num(n)) => Some(n.parse::<f64>().map_err(|_| {
                malformed(name, format_args!("value {} is not a number", Quoted(n)))
            })?),
            Some(other) => {
                return Err(malformed(
                    name,
                    format_args!("\"value\" is {}, not a number", other.kind()),
                ))
            }
        };
    let unit = match f.unit.map(classify) {
        None | Some(J::Null) => None,
        Some(J::Str(unit)) => Some(unit),
        Some(other) => {
            return Err(malformed(
                name,
                format_args!("\"unit\" is {}, not a string", other.kind()),
            ))
        }
    };
    let ts = match f.ts {
        Some(raw) if raw.get() != "null" => parse_ts(raw, "ts", ctx),
        _ => match msg_ts {
            Some(ts) => ts.clone(),
            None => Err("no time: neither the reading nor the message has \"ts\"".to_owned()),
        },
    };
    ctx.finish(at, param, value, unit.as_deref(), status, ts)
}

fn bad_status(at: At, name: Name<'_>, code: &str) -> Rejection {
    reject(
        at,
        name,
        Reason::Malformed,
        format_args!(
            "status {} is not a Circular 10/2021 code (00, 01, 02)",
            Quoted(code)
        ),
    )
}

/// A time field: epoch milliseconds or an RFC 3339 / local date-time string. `what` names the
/// field in the detail (`ts` or `message ts`).
fn parse_ts(raw: &RawValue, what: &str, ctx: &Ctx<'_>) -> Result<i64, String> {
    match classify(raw) {
        J::Num(n) => time::parse_epoch_ms(n).map_err(|p| match p {
            time::TimeProblem::NotInteger => {
                format!("{what} {n} is not a whole number of epoch milliseconds")
            }
            _ => format!("{what} {n} is not epoch milliseconds"),
        }),
        J::Str(s) => time::parse_iso(&s, ctx.tz).map_err(|p| match p {
            time::TimeProblem::Nonexistent => format!(
                "{what} {} is a local time that does not exist in {} (clocks skipped it)",
                Quoted(&s),
                ctx.tz.name()
            ),
            _ => format!(
                "{what} {} is not RFC 3339, a local date-time or epoch milliseconds",
                Quoted(&s)
            ),
        }),
        other => Err(format!(
            "{what} is {}, not a string or number",
            other.kind()
        )),
    }
}

/// A raw JSON value, by kind.
enum J<'a> {
    Null,
    /// A number, as written.
    Num(&'a str),
    Str(Cow<'a, str>),
    Other(&'static str),
}

impl J<'_> {
    fn kind(&self) -> &'static str {
        match self {
            J::Null => "null",
            J::Num(_) => "a number",
            J::Str(_) => "a string",
            J::Other(kind) => kind,
        }
    }
}

/// Tells a raw value's kind from its first byte (serde_json has already checked the syntax).
fn classify(raw: &RawValue) -> J<'_> {
    let s = raw.get();
    match s.as_bytes().first() {
        Some(b'"') => {
            let inner = s.get(1..s.len().saturating_sub(1)).unwrap_or("");
            if inner.contains('\\') {
                match serde_json::from_str::<String>(s) {
                    Ok(owned) => J::Str(Cow::Owned(owned)),
                    Err(_) => J::Other("a broken string"),
                }
            } else {
                J::Str(Cow::Borrowed(inner))
            }
        }
        Some(b'-' | b'0'..=b'9') => J::Num(s),
        Some(b'n') => J::Null,
        Some(b't' | b'f') => J::Other("a boolean"),
        Some(b'[') => J::Other("an array"),
        Some(b'{') => J::Other("an object"),
        _ => J::Other("not a JSON value"),
    }
}

// ---- serde plumbing: accept any JSON kind where an array or object is expected, and say what
// ---- it was, instead of failing the whole document.

/// Implements the non-container `visit_*` methods of a visitor whose value has a
/// `Not(&'static str)` variant.
macro_rules! visit_scalars_as_not {
    ($not:path) => {
        fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
            Ok($not("a boolean"))
        }
        fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
            Ok($not("a number"))
        }
        fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
            Ok($not("a number"))
        }
        fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
            Ok($not("a number"))
        }
        fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
            Ok($not("a string"))
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok($not("null"))
        }
    };
}

impl<'de: 'a, 'a> Deserialize<'de> for Readings<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Readings<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array of readings")
            }
            visit_scalars_as_not!(Readings::Not);
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut slots = Vec::with_capacity(seq.size_hint().unwrap_or(8));
                while let Some(slot) = seq.next_element::<Slot<'a>>()? {
                    slots.push(slot);
                }
                Ok(Readings::Array(slots))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Readings::Not("an object"))
            }
        }
        d.deserialize_any(V(PhantomData))
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Slot<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Slot<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a reading object")
            }
            visit_scalars_as_not!(Slot::Not);
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Slot::Not("an array"))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut f = Fields::default();
                while let Some(key) = map.next_key::<Key>()? {
                    let (slot, name) = match key {
                        Key::Param => (&mut f.param, "param"),
                        Key::Value => (&mut f.value, "value"),
                        Key::Unit => (&mut f.unit, "unit"),
                        Key::Status => (&mut f.status, "status"),
                        Key::Ts => (&mut f.ts, "ts"),
                        Key::Other => {
                            map.next_value::<IgnoredAny>()?;
                            continue;
                        }
                    };
                    if slot.is_some() {
                        f.duplicate.get_or_insert(name);
                    }
                    *slot = Some(map.next_value::<&'a RawValue>()?);
                }
                Ok(Slot::Object(f))
            }
        }
        d.deserialize_any(V(PhantomData))
    }
}

/// A reading object's key.
enum Key {
    Param,
    Value,
    Unit,
    Status,
    Ts,
    Other,
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E>(self, s: &str) -> Result<Key, E> {
                Ok(match s {
                    "param" => Key::Param,
                    "value" => Key::Value,
                    "unit" => Key::Unit,
                    "status" => Key::Status,
                    "ts" => Key::Ts,
                    _ => Key::Other,
                })
            }
        }
        d.deserialize_identifier(V)
    }
}
