//! Writing HTML safely and showing numbers and times the way a person reads them.
//!
//! Every piece of text that reaches a page goes through [`esc`] (or [`Html::text`]): topic
//! levels, rejection details, limits' sources, even identifiers that decode already checked.
//! Markup is only ever written from string literals in this module's callers.

use std::fmt::Write;

use chrono::{DateTime, SecondsFormat};
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
    let start = out.len();
    let _ = write!(out, "{v:.decimals$}");
    if decimals > 0 {
        while out.ends_with('0') {
            out.pop();
        }
        if out.ends_with('.') {
            out.pop();
        }
    }
    if &out[start..] == "-0" {
        out.truncate(start);
        out.push('0');
    }
}

/// A ratio to the limit as a percentage (`124 %`).
pub fn percent(out: &mut String, ratio: f64) {
    if ratio.is_finite() {
        let _ = write!(out, "{:.0} %", ratio * 100.0);
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
}
