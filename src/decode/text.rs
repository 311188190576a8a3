//! The text format of Circular 10/2021/TT-BTNMT station files, as dataloggers already produce
//! it: one reading a line, `SYMBOL<TAB>VALUE<TAB>UNIT<TAB>yyyyMMddHHmmss<TAB>STATUS`, the time
//! local to `stations.timezone`.
//!
//! Tolerated because real files do it: LF, CRLF or CR line ends, no final line end, blank lines,
//! trailing TABs and spaces, spaces around a field, an empty UNIT (meaning the canonical unit,
//! as dataloggers write pH), any number of decimals, a decimal comma (`7,1`), a header line
//! before the readings, and no value at all with status `01`/`02` (an analyser calibrating or
//! in fault: a status event). Rejections are indexed by physical line (0-based, blank lines
//! counted), so they point into the raw payload kept as a dead letter.

use super::{reject, time, whole, At, Ctx, Name, Quoted};
use crate::model::{Param, Reading, Reason, Rejection, Status};
use crate::pipeline::Decoded;

const FIELDS: usize = 5;

/// Decodes a text payload into `out`. If no line even resembles the format (no line with five
/// fields or starting with a known symbol), the payload is rejected whole instead of line by
/// line: it is something else, such as a sentence or a different protocol.
///
/// Some loggers write a header line first (column names, the station's name). The first line is
/// skipped, without a rejection, when it is not a reading — it does not start with a known
/// symbol and has no number where the value goes — and every other line is one.
pub(crate) fn decode(ctx: &Ctx<'_>, text: &str, out: &mut Decoded) {
    let mut resembles = false;
    // Lines of one file usually share their time: parse it once.
    let mut last_time: Option<(&str, Result<i64, time::TimeProblem>)> = None;
    // The rejection of the first non-blank line, when that line may be a header.
    let mut header: Option<usize> = None;
    let mut first = true;
    out.readings
        .reserve(text.bytes().filter(|&b| b == b'\n').count() + 1);
    for (i, line) in lines(text).enumerate() {
        // Trailing TABs and spaces.
        let line = line.trim_end();
        if line.trim_start().is_empty() {
            continue;
        }
        let (result, close, header_like) = reading(ctx, At::line(i), line, &mut last_time);
        resembles |= close;
        match result {
            Ok(r) => out.readings.push(r),
            Err(r) => {
                if first && header_like {
                    header = Some(out.rejections.len());
                }
                out.rejections.push(r);
            }
        }
        first = false;
    }
    if let Some(h) = header {
        if out.rejections.len() == 1 && !out.readings.is_empty() {
            out.rejections.remove(h);
        }
    }
    if !resembles {
        out.rejections.clear();
        out.rejections.push(whole(
            Reason::Malformed,
            "payload is neither JSON nor Circular 10/2021 text \
             (SYMBOL<TAB>VALUE<TAB>UNIT<TAB>yyyyMMddHHmmss<TAB>STATUS lines)"
                .to_owned(),
        ));
    }
}

/// The physical lines of `text`, whatever ends them: LF, CRLF or a lone CR (old Mac-style
/// loggers). A final line end gives no extra line; text after the last one is a line.
fn lines(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(text);
    std::iter::from_fn(move || {
        let s = rest?;
        match s.bytes().position(|b| b == b'\n' || b == b'\r') {
            None => {
                rest = None;
                (!s.is_empty()).then_some(s)
            }
            Some(i) => {
                let skip = if s.as_bytes()[i..].starts_with(b"\r\n") {
                    2
                } else {
                    1
                };
                rest = Some(&s[i + skip..]);
                Some(&s[..i])
            }
        }
    })
}

/// One non-blank line; the flags say whether it resembles the format at all, and whether it
/// could be a header (no known symbol, no number where the value goes).
fn reading<'t>(
    ctx: &Ctx<'_>,
    at: At,
    line: &'t str,
    last_time: &mut Option<(&'t str, Result<i64, time::TimeProblem>)>,
) -> (Result<Reading, Rejection>, bool, bool) {
    let mut f = [""; FIELDS];
    let mut n = 0;
    for part in line.split('\t') {
        if let Some(slot) = f.get_mut(n) {
            *slot = part.trim();
        }
        n += 1;
    }
    let param = ctx.params.parse(f[0]);
    let close = n == FIELDS || (n > 1 && param.is_some());
    let header_like =
        param.is_none() && (n < 2 || !matches!(value(f[1]), Value::Number(_) | Value::Missing));
    let name = match param {
        Some(p) => Name::Param(p),
        None if n > 1 => Name::Raw(f[0]),
        None => Name::None,
    };
    if n != FIELDS {
        let msg = format!(
            "expected {FIELDS} TAB-separated fields (SYMBOL, VALUE, UNIT, yyyyMMddHHmmss, STATUS), found {n}"
        );
        return (
            Err(reject(at, name, Reason::Malformed, msg)),
            close,
            header_like,
        );
    }
    (
        fields(ctx, at, name, param, &f, last_time),
        close,
        header_like,
    )
}

/// What the VALUE field holds.
enum Value {
    Number(f64),
    /// Empty, `null` or `NaN`: the analyser gave no number.
    Missing,
    NotANumber,
}

/// Reads a VALUE field: a number with any number of decimals, with a decimal point or (as
/// Vietnamese locales write it) a decimal comma when that is the only separator: `7,1` is 7.1,
/// while `1,234.5` and `1,2,3` are not numbers.
fn value(field: &str) -> Value {
    if field.is_empty() || field.eq_ignore_ascii_case("null") || field.eq_ignore_ascii_case("nan") {
        return Value::Missing;
    }
    if let Ok(v) = field.parse::<f64>() {
        return Value::Number(v);
    }
    let mut commas = field.match_indices(',');
    if let (Some((i, _)), None) = (commas.next(), commas.next()) {
        if !field.contains('.') {
            let dotted = format!("{}.{}", &field[..i], &field[i + 1..]);
            // Digits on both sides: "7,1", not ",5" or "7," (nor "1,e5").
            let digits_around = field[..i].ends_with(|c: char| c.is_ascii_digit())
                && field[i + 1..].starts_with(|c: char| c.is_ascii_digit());
            if let (true, Ok(v)) = (digits_around, dotted.parse::<f64>()) {
                return Value::Number(v);
            }
        }
    }
    Value::NotANumber
}

fn fields<'t>(
    ctx: &Ctx<'_>,
    at: At,
    name: Name<'_>,
    param: Option<Param>,
    f: &[&'t str; FIELDS],
    last_time: &mut Option<(&'t str, Result<i64, time::TimeProblem>)>,
) -> Result<Reading, Rejection> {
    let [symbol, raw_value, unit, when, status] = *f;
    let Some(param) = param else {
        return Err(reject(
            at,
            name,
            Reason::UnknownParam,
            format_args!("unknown parameter {}", Quoted(symbol)),
        ));
    };
    let Some(status) = Status::parse(status) else {
        return Err(reject(
            at,
            name,
            Reason::Malformed,
            format_args!(
                "status {} is not a Circular 10/2021 code (00, 01, 02)",
                Quoted(status)
            ),
        ));
    };
    let value = match value(raw_value) {
        Value::Number(v) => Some(v),
        Value::Missing => None,
        Value::NotANumber => {
            return Err(reject(
                at,
                name,
                Reason::Malformed,
                format_args!("value {} is not a number", Quoted(raw_value)),
            ))
        }
    };
    let parsed = match *last_time {
        Some((prev, result)) if prev == when => result,
        _ => {
            let result = time::parse_compact(when, ctx.tz);
            *last_time = Some((when, result));
            result
        }
    };
    let ts = parsed.map_err(|p| match p {
        time::TimeProblem::Nonexistent => format!(
            "time {} is a local time that does not exist in {} (clocks skipped it)",
            Quoted(when),
            ctx.tz.name()
        ),
        _ => format!("time {} is not yyyyMMddHHmmss", Quoted(when)),
    });
    ctx.finish(at, param, value, Some(unit), status, ts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn number(s: &str) -> Option<f64> {
        match value(s) {
            Value::Number(v) => Some(v),
            _ => None,
        }
    }

    #[test]
    fn values_take_any_decimals_and_a_lone_decimal_comma() {
        assert_eq!(number("48.2000"), Some(48.2));
        assert_eq!(number("7"), Some(7.0));
        assert_eq!(number("0.123456789"), Some(0.123456789));
        assert_eq!(number("7,1"), Some(7.1));
        assert_eq!(number("-0,5"), Some(-0.5));
        assert_eq!(number("1234,5678"), Some(1234.5678));
        for s in ["1,234.5", "1,2,3", ",5", "7,", "seven", "7,1e", "1,e5"] {
            assert_eq!(number(s), None, "{s}");
        }
        for s in ["", "null", "NULL", "NaN"] {
            assert!(matches!(value(s), Value::Missing), "{s}");
        }
    }

    #[test]
    fn lines_end_with_lf_crlf_or_cr() {
        let all: Vec<&str> = lines("a\nb\r\nc\rd").collect();
        assert_eq!(all, ["a", "b", "c", "d"]);
        let all: Vec<&str> = lines("a\r\n\r\nb\r\n").collect();
        assert_eq!(all, ["a", "", "b"]);
        assert_eq!(lines("").count(), 0);
    }
}
