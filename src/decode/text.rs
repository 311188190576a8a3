//! The text format of Circular 10/2021/TT-BTNMT station files, as dataloggers already produce
//! it: one reading a line, `SYMBOL<TAB>VALUE<TAB>UNIT<TAB>yyyyMMddHHmmss<TAB>STATUS`, CRLF or LF,
//! the time local to `stations.timezone`.
//!
//! Tolerated because real files do it: blank lines, trailing TABs and spaces, spaces around a
//! field, an empty UNIT (meaning the canonical unit). Rejections are indexed by physical line
//! (0-based, blank lines counted), so they point into the raw payload kept as a dead letter.

use super::{reject, time, whole, At, Ctx, Name, Quoted};
use crate::model::{Param, Reading, Reason, Rejection, Status};
use crate::pipeline::Decoded;

const FIELDS: usize = 5;

/// Decodes a text payload into `out`. If no line even resembles the format (no line with five
/// fields or starting with a known symbol), the payload is rejected whole instead of line by
/// line: it is something else, such as a sentence or a different protocol.
pub(crate) fn decode(ctx: &Ctx<'_>, text: &str, out: &mut Decoded) {
    let mut resembles = false;
    // Lines of one file usually share their time: parse it once.
    let mut last_time: Option<(&str, Result<i64, time::TimeProblem>)> = None;
    out.readings
        .reserve(text.bytes().filter(|&b| b == b'\n').count() + 1);
    for (i, line) in text.split('\n').enumerate() {
        // Removes the CR of CRLF, trailing TABs and spaces.
        let line = line.trim_end();
        if line.trim_start().is_empty() {
            continue;
        }
        let (result, close) = reading(ctx, At::line(i), line, &mut last_time);
        resembles |= close;
        match result {
            Ok(r) => out.readings.push(r),
            Err(r) => out.rejections.push(r),
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

/// One non-blank line; the flag says whether it resembles the format at all.
fn reading<'t>(
    ctx: &Ctx<'_>,
    at: At,
    line: &'t str,
    last_time: &mut Option<(&'t str, Result<i64, time::TimeProblem>)>,
) -> (Result<Reading, Rejection>, bool) {
    let mut f = [""; FIELDS];
    let mut n = 0;
    for part in line.split('\t') {
        if let Some(slot) = f.get_mut(n) {
            *slot = part.trim();
        }
        n += 1;
    }
    let param = Param::parse(f[0]);
    let close = n == FIELDS || (n > 1 && param.is_some());
    let name = match param {
        Some(p) => Name::Param(p),
        None if n > 1 => Name::Raw(f[0]),
        None => Name::None,
    };
    if n != FIELDS {
        let msg = format!(
            "expected {FIELDS} TAB-separated fields (SYMBOL, VALUE, UNIT, yyyyMMddHHmmss, STATUS), found {n}"
        );
        return (Err(reject(at, name, Reason::Malformed, msg)), close);
    }
    (fields(ctx, at, name, param, &f, last_time), close)
}

fn fields<'t>(
    ctx: &Ctx<'_>,
    at: At,
    name: Name<'_>,
    param: Option<Param>,
    f: &[&'t str; FIELDS],
    last_time: &mut Option<(&'t str, Result<i64, time::TimeProblem>)>,
) -> Result<Reading, Rejection> {
    let [symbol, value, unit, when, status] = *f;
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
    let value = value.parse::<f64>().map_err(|_| {
        // Vietnamese locales write 48,2; guessing between a decimal and a thousands separator
        // would be wrong half the time, so say it instead.
        let hint = if value.contains(',') {
            " (the decimal separator must be '.')"
        } else {
            ""
        };
        reject(
            at,
            name,
            Reason::Malformed,
            format_args!("value {} is not a number{hint}", Quoted(value)),
        )
    })?;
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
