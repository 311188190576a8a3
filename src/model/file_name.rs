//! File-name patterns (`inbox.pattern`): how a Circular 10/2021 file names its station, e.g.
//! `{province}_{facility}_{station}_{yyyyMMddHHmmss}.txt` (the long form dataloggers write) or
//! `{station}_{yyyyMMddHHmmss}.txt` (the short form). Part of the vocabulary: the configuration
//! checks a pattern with it, `decode` matches file names with it.
//!
//! `{province}`, `{facility}` and `{station}` each match one or more characters; the time
//! `{yyyyMMddHHmmss}` matches exactly 14 digits; everything else is literal. Matching ignores
//! ASCII case (`.TXT` is `.txt`, station codes are compared likewise). Codes may themselves
//! contain the separator (`_`): every way of splitting the name is tried, and the caller keeps
//! the first split whose station it knows.

/// One piece of a pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    /// Lower-cased literal text.
    Literal(String),
    Field(Field),
    /// `{yyyyMMddHHmmss}`: 14 digits.
    Time,
}

/// The named parts of a file name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    Province,
    Facility,
    Station,
}

/// What one way of reading a file name captured.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Captures<'n> {
    pub province: Option<&'n str>,
    pub facility: Option<&'n str>,
    pub station: &'n str,
    pub time: Option<&'n str>,
}

/// A checked file-name pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FilePattern {
    source: String,
    tokens: Vec<Token>,
}

/// The longest file name matched: longer ones are not datalogger files (and bound the work).
const NAME_LIMIT: usize = 255;
/// At most this many ways of reading one name are considered.
const SPLIT_LIMIT: usize = 64;

impl FilePattern {
    /// The default: the long form of Circular 10/2021 file names.
    pub const DEFAULT: &'static str = "{province}_{facility}_{station}_{yyyyMMddHHmmss}.txt";

    /// Checks a pattern: `{station}` exactly once, other placeholders at most once, no `/`,
    /// and no two placeholders side by side (nothing would tell where one ends).
    pub fn parse(pattern: &str) -> Result<FilePattern, String> {
        if pattern.contains('/') {
            return Err(format!(
                "{pattern:?}: a pattern names a file, not a folder (no '/')"
            ));
        }
        let mut tokens = Vec::new();
        let mut rest = pattern;
        while !rest.is_empty() {
            match rest.find('{') {
                Some(0) => {
                    let end = rest
                        .find('}')
                        .ok_or_else(|| format!("{pattern:?}: '{{' without its '}}'"))?;
                    let token = match &rest[1..end] {
                        "province" => Token::Field(Field::Province),
                        "facility" => Token::Field(Field::Facility),
                        "station" => Token::Field(Field::Station),
                        "yyyyMMddHHmmss" => Token::Time,
                        other => {
                            return Err(format!(
                                "{pattern:?}: unknown placeholder {{{other}}} (use {{province}}, \
                                 {{facility}}, {{station}}, {{yyyyMMddHHmmss}})"
                            ))
                        }
                    };
                    if tokens.contains(&token) {
                        return Err(format!("{pattern:?}: {{{}}} appears twice", &rest[1..end]));
                    }
                    if matches!(tokens.last(), Some(Token::Field(_)))
                        && matches!(token, Token::Field(_))
                    {
                        return Err(format!(
                            "{pattern:?}: two placeholders side by side need a separator"
                        ));
                    }
                    tokens.push(token);
                    rest = &rest[end + 1..];
                }
                found => {
                    let end = found.unwrap_or(rest.len());
                    let literal = &rest[..end];
                    if literal.contains('}') {
                        return Err(format!("{pattern:?}: '}}' without its '{{'"));
                    }
                    tokens.push(Token::Literal(literal.to_ascii_lowercase()));
                    rest = &rest[end..];
                }
            }
        }
        if !tokens.contains(&Token::Field(Field::Station)) {
            return Err(format!(
                "{pattern:?}: {{station}} is missing (it names the station by its uplink_code)"
            ));
        }
        Ok(FilePattern {
            source: pattern.to_owned(),
            tokens,
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// The ways `name` reads under this pattern, most natural first (earlier fields as short
    /// as possible), at most a few dozen. Empty when the name does not have the pattern's shape.
    pub fn splits<'n>(&self, name: &'n str) -> Vec<Captures<'n>> {
        let mut out = Vec::new();
        if name.len() <= NAME_LIMIT && !name.contains('/') {
            walk(&self.tokens, name, 0, Captures::default(), &mut out);
        }
        out
    }
}

/// Matches `tokens` against `name[at..]`, pushing every complete match onto `out`.
fn walk<'n>(
    tokens: &[Token],
    name: &'n str,
    at: usize,
    caps: Captures<'n>,
    out: &mut Vec<Captures<'n>>,
) {
    if out.len() >= SPLIT_LIMIT {
        return;
    }
    let rest = &name[at..];
    let Some((token, tail)) = tokens.split_first() else {
        if rest.is_empty() {
            out.push(caps);
        }
        return;
    };
    match token {
        Token::Literal(lit) => {
            if rest.len() >= lit.len()
                && rest.is_char_boundary(lit.len())
                && rest[..lit.len()].eq_ignore_ascii_case(lit)
            {
                walk(tail, name, at + lit.len(), caps, out);
            }
        }
        Token::Time => {
            if rest.len() >= 14 && rest.as_bytes()[..14].iter().all(u8::is_ascii_digit) {
                let mut c = caps;
                c.time = Some(&rest[..14]);
                walk(tail, name, at + 14, c, out);
            }
        }
        Token::Field(field) => {
            for end in (1..=rest.len()).filter(|&e| rest.is_char_boundary(e)) {
                let value = &rest[..end];
                let mut c = caps;
                match field {
                    Field::Province => c.province = Some(value),
                    Field::Facility => c.facility = Some(value),
                    Field::Station => c.station = value,
                }
                walk(tail, name, at + end, c, out);
                if out.len() >= SPLIT_LIMIT {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> FilePattern {
        FilePattern::parse(s).unwrap()
    }

    #[test]
    fn the_long_form_of_circular_10_2021_names_reads_each_part() {
        // regulations.md §3: `TenTinh_TenCoSo_TenTram_yyyyMMddHHmmss.txt` (S47, S48).
        let splits = p(FilePattern::DEFAULT).splits("HP_DINHVU_STACK01_20261129140500.txt");
        assert_eq!(
            splits,
            [Captures {
                province: Some("HP"),
                facility: Some("DINHVU"),
                station: "STACK01",
                time: Some("20261129140500"),
            }]
        );
    }

    #[test]
    fn the_short_form_and_upper_case_extensions_match() {
        let splits = p("{station}_{yyyyMMddHHmmss}.txt").splits("NUO001_20261129140500.TXT");
        assert_eq!(splits.len(), 1);
        assert_eq!(splits[0].station, "NUO001");
        assert_eq!(splits[0].province, None);
    }

    #[test]
    fn codes_holding_the_separator_give_every_reading() {
        let splits = p(FilePattern::DEFAULT).splits("HP_CTY_A_KHI_01_20261129140500.txt");
        let stations: Vec<&str> = splits.iter().map(|c| c.station).collect();
        assert!(stations.contains(&"KHI_01"), "{splits:?}");
        assert!(stations.contains(&"01"), "{splits:?}");
        assert!(splits.len() > 2);
    }

    #[test]
    fn names_of_another_shape_do_not_match() {
        let pat = p(FilePattern::DEFAULT);
        for name in [
            "HP_DINHVU_STACK01_2026112914050.txt",
            "HP_DINHVU_STACK01_20261129140500.csv",
            "HP_DINHVU_20261129140500.txt",
            "readme.txt",
            "",
            "HP_DINHVU_STACK01_20261129140500.txt.part",
        ] {
            assert!(pat.splits(name).is_empty(), "{name}");
        }
        assert!(pat
            .splits(&format!("{}_a_b_20261129140500.txt", "x".repeat(300)))
            .is_empty());
    }

    #[test]
    fn bad_patterns_say_why() {
        for (pattern, why) in [
            ("{province}_{yyyyMMddHHmmss}.txt", "{station} is missing"),
            ("{station}_{date}.txt", "unknown placeholder"),
            ("{station}_{station}.txt", "appears twice"),
            ("{facility}{station}.txt", "side by side"),
            ("in/{station}.txt", "no '/'"),
            ("{station.txt", "without its"),
            ("station}.txt", "without its"),
        ] {
            let e = FilePattern::parse(pattern).unwrap_err();
            assert!(e.contains(why), "{pattern}: {e}");
        }
        // A time beside a field is fine: the time is always 14 digits.
        assert!(FilePattern::parse("{station}{yyyyMMddHHmmss}.txt").is_ok());
    }
}
