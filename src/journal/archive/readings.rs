//! The readings of a record, as columns: its `reading` points (line protocol, as sent to
//! InfluxDB and covered by the chain hash) taken apart, so SQL and pandas need no line
//! protocol parser. Derived from the points alone; `verify` checks that they agree.

use serde::{Deserialize, Serialize};

/// One `reading` point of a record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LineReading {
    pub park: String,
    pub site: String,
    pub station: String,
    pub param: String,
    /// The reading's own time, Unix ms, and as RFC 3339 UTC.
    pub ts_ms: i64,
    pub ts: String,
    /// As measured, in the canonical unit; none for a status event.
    pub value: Option<f64>,
    /// O2-corrected, when that applied.
    pub value_ref: Option<f64>,
    pub unit: String,
    /// `00`, `01` or `02`.
    pub status: String,
    pub limit_max: Option<f64>,
    pub limit_min: Option<f64>,
    pub ratio: Option<f64>,
    pub exceeded: bool,
}

/// The readings among `points`, in order; points of other measurements (window averages) and
/// any line not in quantrac's own `reading` form are left out.
pub fn readings<'a>(points: impl IntoIterator<Item = &'a str>) -> Vec<LineReading> {
    points.into_iter().filter_map(reading).collect()
}

/// Whether the readings stored in a line are those of its points. Numbers are compared to
/// 1e-12 relative: JSON parsers may miss the last bit of a float, an edit never does.
pub fn agree(stored: &[LineReading], derived: &[LineReading]) -> bool {
    fn close(a: Option<f64>, b: Option<f64>) -> bool {
        match (a, b) {
            (None, None) => true,
            (Some(a), Some(b)) => a == b || (a - b).abs() <= 1e-12 * a.abs().max(b.abs()),
            _ => false,
        }
    }
    stored.len() == derived.len()
        && stored.iter().zip(derived).all(|(s, d)| {
            (&s.park, &s.site, &s.station, &s.param, s.ts_ms, &s.ts)
                == (&d.park, &d.site, &d.station, &d.param, d.ts_ms, &d.ts)
                && (&s.unit, &s.status, s.exceeded) == (&d.unit, &d.status, d.exceeded)
                && close(s.value, d.value)
                && close(s.value_ref, d.value_ref)
                && close(s.limit_max, d.limit_max)
                && close(s.limit_min, d.limit_min)
                && close(s.ratio, d.ratio)
        })
}

/// A `reading,param=…,park=…,site=…,station=… value=…,… TS` line.
pub fn reading(line: &str) -> Option<LineReading> {
    let (head, rest) = split_unescaped(line, ' ')?;
    let (fields, ts) = split_fields(rest)?;
    let ts_ms: i64 = ts.trim().parse().ok()?;
    let mut tags = split_all(head, ',').into_iter();
    if tags.next()? != "reading" {
        return None;
    }
    let mut r = LineReading {
        park: String::new(),
        site: String::new(),
        station: String::new(),
        param: String::new(),
        ts_ms,
        ts: super::rfc3339_ms(ts_ms),
        value: None,
        value_ref: None,
        unit: String::new(),
        status: String::new(),
        limit_max: None,
        limit_min: None,
        ratio: None,
        exceeded: false,
    };
    for t in tags {
        let (k, v) = split_unescaped(&t, '=')?;
        let v = unescape(v);
        match unescape(k).as_str() {
            "param" => r.param = v,
            "park" => r.park = v,
            "site" => r.site = v,
            "station" => r.station = v,
            _ => {}
        }
    }
    for (k, v) in fields {
        let float = || v.parse::<f64>().ok();
        match k.as_str() {
            "value" => r.value = Some(float()?),
            "value_ref" => r.value_ref = Some(float()?),
            "limit_max" => r.limit_max = Some(float()?),
            "limit_min" => r.limit_min = Some(float()?),
            "ratio" => r.ratio = Some(float()?),
            "exceeded" => r.exceeded = v == "true",
            "unit" => r.unit = string(&v)?,
            "status" => r.status = string(&v)?,
            _ => {}
        }
    }
    Some(r)
}

/// Splits at the first `sep` not escaped by a backslash.
fn split_unescaped(s: &str, sep: char) -> Option<(&str, &str)> {
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match c {
            '\\' if !escaped => escaped = true,
            c if c == sep && !escaped => return Some((&s[..i], &s[i + c.len_utf8()..])),
            _ => escaped = false,
        }
    }
    None
}

fn split_all(s: &str, sep: char) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some((a, b)) = split_unescaped(rest, sep) {
        out.push(a.to_string());
        rest = b;
    }
    out.push(rest.to_string());
    out
}

/// The field set (`key=value,…`, string values quoted) and what follows it (the timestamp).
fn split_fields(s: &str) -> Option<(Vec<(String, String)>, &str)> {
    let mut fields = Vec::new();
    let (mut key, mut value) = (String::new(), String::new());
    let (mut in_key, mut quoted, mut escaped) = (true, false, false);
    for (i, c) in s.char_indices() {
        if escaped {
            if in_key {
                key.push(c)
            } else {
                value.push(c)
            }
            escaped = false;
            continue;
        }
        match c {
            '\\' => {
                escaped = true;
                if !in_key {
                    value.push(c);
                }
            }
            '"' if !in_key => {
                quoted = !quoted;
                value.push(c);
            }
            '=' if in_key => in_key = false,
            ',' | ' ' if !quoted && !in_key => {
                fields.push((std::mem::take(&mut key), std::mem::take(&mut value)));
                in_key = true;
                if c == ' ' {
                    return Some((fields, &s[i + 1..]));
                }
            }
            c if in_key => key.push(c),
            c => value.push(c),
        }
    }
    None
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut escaped = false;
    for c in s.chars() {
        if c == '\\' && !escaped {
            escaped = true;
            continue;
        }
        escaped = false;
        out.push(c);
    }
    out
}

/// A quoted string field's text.
fn string(v: &str) -> Option<String> {
    let inner = v.strip_prefix('"')?.strip_suffix('"')?;
    Some(unescape(inner))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reading_points_come_apart_into_columns() {
        let r = reading(
            "reading,param=SO2,park=dinh-vu,site=dv-steel,station=stack-1 value=120.5,\
             value_ref=130.25,unit=\"mg/Nm3\",status=\"00\",limit_max=300,ratio=0.4342,\
             exceeded=false 1795935900000",
        )
        .unwrap();
        assert_eq!(
            (r.param.as_str(), r.station.as_str(), r.ts_ms),
            ("SO2", "stack-1", 1_795_935_900_000)
        );
        assert_eq!((r.value, r.value_ref), (Some(120.5), Some(130.25)));
        assert_eq!((r.unit.as_str(), r.status.as_str()), ("mg/Nm3", "00"));
        assert_eq!(
            (r.limit_max, r.limit_min, r.exceeded),
            (Some(300.0), None, false)
        );
        assert_eq!(r.ts, "2026-11-29T07:05:00.000Z");
        // A status event: no value; a string with a quote and a space.
        let e = reading(
            "reading,param=COD,park=p,site=s,station=o status=\"01\",unit=\"a \\\"b\",exceeded=false 5",
        )
        .unwrap();
        assert_eq!(
            (e.value, e.status.as_str(), e.unit.as_str()),
            (None, "01", "a \"b")
        );
        // Window averages and anything else are not readings.
        assert!(reading("average,param=COD,park=p,site=s,station=o,window=1h mean=1 5").is_none());
        assert!(reading("reading value=1 1").is_some());
        assert!(reading("garbage").is_none());
        // Stored readings agree with their points to the last bits, not beyond.
        let mut off = r.clone();
        off.value = Some(120.5 * (1.0 + 1e-15));
        assert!(agree(std::slice::from_ref(&off), std::slice::from_ref(&r)));
        off.value = Some(120.6);
        assert!(!agree(&[off], &[r]));
    }
}
