//! Writing HTML safely and showing numbers and times the way a person reads them.
//!
//! Every piece of text that reaches a page goes through [`esc`] (or [`Html::text`]): topic
//! levels, rejection details, limits' sources, even identifiers that decode already checked.
//! Markup is only ever written from string literals in this module's callers.

use std::fmt::Write;

use chrono::{DateTime, Offset, SecondsFormat, TimeZone};
use chrono_tz::Tz;

/// A page being written.
pub struct Html {
    pub out: String,
}

impl Html {
    pub fn with_capacity(n: usize) -> Html {
        Html {
            out: String::with_capacity(n),
        }
    }

    /// Markup, written as is: only ever a literal of the caller's.
    pub fn raw(&mut self, markup: &str) -> &mut Html {
        self.out.push_str(markup);
        self
    }

    /// Text, escaped for both element content and quoted attribute values.
    pub fn text(&mut self, text: &str) -> &mut Html {
        esc(&mut self.out, text);
        self
    }

    /// A number as [`num`] writes it.
    pub fn num(&mut self, v: f64) -> &mut Html {
        num(&mut self.out, v);
        self
    }
}

/// Appends `text` with `& < > " '` replaced by entities: safe inside elements and inside
/// single- or double-quoted attribute values.
pub fn esc(out: &mut String, text: &str) {
    let mut last = 0;
    for (i, b) in text.bytes().enumerate() {
        let entity = match b {
            b'&' => "&amp;",
            b'<' => "&lt;",
            b'>' => "&gt;",
            b'"' => "&quot;",
            b'\'' => "&#39;",
            _ => continue,
        };
        out.push_str(&text[last..i]);
        out.push_str(entity);
        last = i + 1;
    }
    out.push_str(&text[last..]);
}

/// A measured value with the precision a reader needs: one decimal from 10 on, two from 1,
/// three below, whole numbers from 1,000 on, trailing zeros dropped (`135`, `148.2`, `7.05`,
/// `0.012`).
pub fn num(out: &mut String, v: f64) {
    if !v.is_finite() {
        out.push('–');
        return;
    }
    let a = v.abs();
    let decimals = if a >= 1000.0 || a == 0.0 {
        0
    } else if a >= 10.0 {
        1
    } else if a >= 1.0 {
        2
    } else {
        3
    };
    // Integer arithmetic: a page writes tens of thousands of these, and formatting a float
    // with a precision costs several times more than formatting an integer.
    if a >= 1e15 {
        let _ = write!(out, "{v:.0}");
        return;
    }
    let scale = 10_u64.pow(decimals);
    let n = (a * scale as f64).round() as u64;
    if n == 0 {
        out.push('0');
        return;
    }
    if v < 0.0 {
        out.push('-');
    }
    let _ = write!(out, "{}", n / scale);
    let mut frac = n % scale;
    if frac == 0 {
        return;
    }
    out.push('.');
    let mut digits = decimals;
    while frac.is_multiple_of(10) {
        frac /= 10;
        digits -= 1;
    }
    let _ = write!(out, "{frac:0width$}", width = digits as usize);
}

/// A ratio to the limit as a percentage (`124 %`).
pub fn percent(out: &mut String, ratio: f64) {
    if ratio.is_finite() {
        let _ = write!(out, "{} %", (ratio * 100.0).round() as i64);
    } else {
        out.push('–');
    }
}

/// A time of day in the park's zone, with the date when it is not the day of `now_ms`.
pub fn time(out: &mut String, ms: i64, now_ms: i64, tz: Tz) {
    let (Some(t), Some(now)) = (
        DateTime::from_timestamp_millis(ms),
        DateTime::from_timestamp_millis(now_ms),
    ) else {
        out.push('–');
        return;
    };
    let (t, now) = (t.with_timezone(&tz), now.with_timezone(&tz));
    if t.date_naive() == now.date_naive() {
        let _ = write!(out, "{}", t.format("%H:%M:%S"));
    } else {
        let _ = write!(out, "{}", t.format("%Y-%m-%d %H:%M"));
    }
}

const DAY_MS: i64 = 86_400_000;

/// Times of one page in the park's zone. A page shows thousands of times, nearly all within a
/// day of "now": when the zone's offset does not change from two days before to a day after
/// (no daylight-saving jump; Vietnam has none), those are written with integer arithmetic,
/// the rest through chrono.
pub struct Clock {
    tz: Tz,
    now_ms: i64,
    /// The zone's offset, when it holds over the whole span.
    offset_ms: Option<i64>,
    /// Local midnight starting today, in local milliseconds.
    today_local_ms: i64,
}

impl Clock {
    pub fn new(now_ms: i64, tz: Tz) -> Clock {
        let offset = |ms: i64| {
            DateTime::from_timestamp_millis(ms).map(|t| {
                i64::from(
                    tz.offset_from_utc_datetime(&t.naive_utc())
                        .fix()
                        .local_minus_utc(),
                ) * 1000
            })
        };
        let now = offset(now_ms);
        let steady = now.filter(|o| {
            offset(now_ms - 2 * DAY_MS) == Some(*o) && offset(now_ms + DAY_MS) == Some(*o)
        });
        Clock {
            tz,
            now_ms,
            offset_ms: steady,
            today_local_ms: (now_ms + now.unwrap_or(0)).div_euclid(DAY_MS) * DAY_MS,
        }
    }

    /// As [`time`].
    pub fn time(&self, out: &mut String, ms: i64) {
        let fast = self
            .offset_ms
            .filter(|_| (self.now_ms - 2 * DAY_MS..=self.now_ms + DAY_MS).contains(&ms));
        match fast {
            Some(offset) if (ms + offset).div_euclid(DAY_MS) * DAY_MS == self.today_local_ms => {
                let s = (ms + offset).rem_euclid(DAY_MS) / 1000;
                two_digits(out, s / 3600);
                out.push(':');
                two_digits(out, s / 60 % 60);
                out.push(':');
                two_digits(out, s % 60);
            }
            _ => time(out, ms, self.now_ms, self.tz),
        }
    }

    /// As [`ago`], from this page's "now".
    pub fn ago(&self, out: &mut String, ms: i64) {
        ago(out, ms, self.now_ms);
    }
}

fn two_digits(out: &mut String, n: i64) {
    out.push(char::from(b'0' + (n / 10 % 10) as u8));
    out.push(char::from(b'0' + (n % 10) as u8));
}

/// How long ago `ms` was, roughly (`8 s ago`, `12 min ago`, `3 h ago`, `2 days ago`).
pub fn ago(out: &mut String, ms: i64, now_ms: i64) {
    let s = (now_ms - ms).max(0) / 1000;
    let _ = match s {
        0..=59 => write!(out, "{s} s ago"),
        60..=3599 => write!(out, "{} min ago", s / 60),
        3600..=172_799 => write!(out, "{} h ago", s / 3600),
        _ => write!(out, "{} days ago", s / 86_400),
    };
}

/// RFC 3339 in the park's zone (`2026-11-29T14:05:00+07:00`), for JSON.
pub fn rfc3339(ms: i64, tz: Tz) -> Option<String> {
    DateTime::from_timestamp_millis(ms).map(|t| {
        t.with_timezone(&tz)
            .to_rfc3339_opts(SecondsFormat::AutoSi, false)
    })
}

/// The zone's offset at `ms`, as `UTC+07:00`.
pub fn utc_offset(out: &mut String, ms: i64, tz: Tz) {
    if let Some(t) = DateTime::from_timestamp_millis(ms) {
        let _ = write!(out, "UTC{}", t.with_timezone(&tz).format("%:z"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(v: f64) -> String {
        let mut s = String::new();
        num(&mut s, v);
        s
    }

    #[test]
    fn escaping_leaves_no_markup_and_keeps_every_other_character() {
        let mut s = String::new();
        esc(&mut s, r#"<script>alert("x")</script> & 'Đình Vũ'"#);
        assert_eq!(
            s,
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;Đình Vũ&#39;"
        );
    }

    #[test]
    fn numbers_show_the_precision_a_reader_needs() {
        assert_eq!(n(135.0), "135");
        assert_eq!(n(148.2), "148.2");
        assert_eq!(n(168.04), "168");
        assert_eq!(n(7.054), "7.05");
        assert_eq!(n(0.0123), "0.012");
        assert_eq!(n(12_345.6), "12346");
        assert_eq!(n(10.05), "10.1");
        assert_eq!(n(1.005), "1");
        assert_eq!(n(0.5), "0.5");
        assert_eq!(n(-3.25), "-3.25");
        assert_eq!(n(1e20), "100000000000000000000");
        assert_eq!(n(0.0), "0");
        assert_eq!(n(-0.0001), "0");
        assert_eq!(n(f64::NAN), "–");
    }

    #[test]
    fn times_are_local_with_the_date_when_not_today() {
        // 2026-11-29T07:05:00Z is 14:05 in Hải Phòng (UTC+7).
        let t = 1_795_935_900_000;
        let tz = chrono_tz::Asia::Ho_Chi_Minh;
        let mut s = String::new();
        time(&mut s, t, t + 60_000, tz);
        assert_eq!(s, "14:05:00");
        s.clear();
        time(&mut s, t - 86_400_000, t, tz);
        assert_eq!(s, "2026-11-28 14:05");
        assert_eq!(rfc3339(t, tz).unwrap(), "2026-11-29T14:05:00+07:00");
        s.clear();
        ago(&mut s, t - 125_000, t);
        assert_eq!(s, "2 min ago");
    }

    #[test]
    fn the_page_clock_writes_what_chrono_writes() {
        // Hải Phòng (no daylight saving: the integer path) and Berlin across its October
        // jump (chrono's path near it), each time of two days around "now".
        let cases = [
            (chrono_tz::Asia::Ho_Chi_Minh, 1_795_935_900_000),
            (chrono_tz::Europe::Berlin, 1_792_976_400_000),
        ];
        for (tz, now) in cases {
            let clock = Clock::new(now, tz);
            let mut ms = now - 2 * DAY_MS - 7;
            while ms < now + DAY_MS {
                let (mut a, mut b) = (String::new(), String::new());
                clock.time(&mut a, ms);
                time(&mut b, ms, now, tz);
                assert_eq!(a, b, "{tz} at {ms}");
                ms += 997_003;
            }
        }
    }
}
