//! Templates of the names quantrac gives the Circular 10/2021 files it sends to the provincial
//! department (`uplink.file_name`, `uplink.dir`): `{province}_{facility}_{station}_{yyyyMMddHHmmss}.txt`
//! in folders `{station}/{yyyy}/{MM}/{dd}`, the layout departments set. Part of the vocabulary:
//! the configuration checks a template with it, the uplink renders names with it.
//!
//! Placeholders: `{province}`, `{facility}`, `{station}` (the station's `uplink_code`) and the
//! file's time, local to `stations.timezone`: `{yyyyMMddHHmmss}`, `{yyyyMMdd}`, `{yyyy}`,
//! `{MM}`, `{dd}`, `{HH}`, `{mm}`, `{ss}`. Everything else is literal.

/// One piece of a template.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    Literal(String),
    Province,
    Facility,
    Station,
    /// A `chrono` format string for a part of the time.
    Time(&'static str),
}

/// What a name is made of.
#[derive(Clone, Copy, Debug)]
pub struct NameParts<'a> {
    pub province: &'a str,
    pub facility: &'a str,
    pub station: &'a str,
    /// The file's time in local time.
    pub time: chrono::NaiveDateTime,
}

/// A checked template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileTemplate {
    tokens: Vec<Token>,
}

const TIMES: [(&str, &str); 8] = [
    ("yyyyMMddHHmmss", "%Y%m%d%H%M%S"),
    ("yyyyMMdd", "%Y%m%d"),
    ("yyyy", "%Y"),
    ("MM", "%m"),
    ("dd", "%d"),
    ("HH", "%H"),
    ("mm", "%M"),
    ("ss", "%S"),
];

impl FileTemplate {
    /// The default file name: the long form of Circular 10/2021 file names.
    pub const DEFAULT_NAME: &'static str = "{province}_{facility}_{station}_{yyyyMMddHHmmss}.txt";
    /// The default folder, as departments lay out what dataloggers send.
    pub const DEFAULT_DIR: &'static str = "{station}/{yyyy}/{MM}/{dd}";

    /// Parses a template; an unknown placeholder or a lone brace is an error naming it.
    pub fn parse(template: &str) -> Result<FileTemplate, String> {
        let mut tokens = Vec::new();
        let mut rest = template;
        while !rest.is_empty() {
            match rest.find(['{', '}']) {
                Some(0) if rest.starts_with('{') => {
                    let end = rest
                        .find('}')
                        .ok_or_else(|| format!("{template:?}: '{{' without its '}}'"))?;
                    let name = &rest[1..end];
                    let token = match name {
                        "province" => Token::Province,
                        "facility" => Token::Facility,
                        "station" => Token::Station,
                        other => match TIMES.iter().find(|(n, _)| *n == other) {
                            Some((_, f)) => Token::Time(f),
                            None => {
                                return Err(format!(
                                "{template:?}: unknown placeholder {{{other}}} (use {{province}}, \
                                     {{facility}}, {{station}}, {{yyyyMMddHHmmss}}, {{yyyyMMdd}}, \
                                     {{yyyy}}, {{MM}}, {{dd}}, {{HH}}, {{mm}}, {{ss}})"
                            ))
                            }
                        },
                    };
                    tokens.push(token);
                    rest = &rest[end + 1..];
                }
                Some(0) => return Err(format!("{template:?}: '}}' without its '{{'")),
                Some(i) => {
                    tokens.push(Token::Literal(rest[..i].to_owned()));
                    rest = &rest[i..];
                }
                None => {
                    tokens.push(Token::Literal(rest.to_owned()));
                    rest = "";
                }
            }
        }
        Ok(FileTemplate { tokens })
    }

    /// Checks a file-name template: no folder in it, and the station and the full time in it,
    /// so two files never get one name.
    pub fn parse_file_name(template: &str) -> Result<FileTemplate, String> {
        let t = FileTemplate::parse(template)?;
        if template.contains('/') {
            return Err(format!(
                "{template:?}: a file name has no '/' (folders go in uplink.dir)"
            ));
        }
        if !t.tokens.contains(&Token::Station) {
            return Err(format!(
                "{template:?}: {{station}} is missing (it names the station by its uplink_code)"
            ));
        }
        if !t.tokens.contains(&Token::Time("%Y%m%d%H%M%S")) {
            return Err(format!(
                "{template:?}: {{yyyyMMddHHmmss}} is missing (one file per station and period)"
            ));
        }
        Ok(t)
    }

    /// Checks a folder template: relative (below the URL's base), no `..` and no empty part.
    pub fn parse_dir(template: &str) -> Result<FileTemplate, String> {
        let t = FileTemplate::parse(template)?;
        if template.starts_with('/') {
            return Err(format!(
                "{template:?}: the folder is relative to the URL's path (no leading '/')"
            ));
        }
        if !template.is_empty() && template.split('/').any(|p| p.is_empty() || p == "..") {
            return Err(format!(
                "{template:?}: no empty folder name and no '..' in the folder"
            ));
        }
        Ok(t)
    }

    /// Whether the template uses `{province}` / `{facility}`.
    pub fn uses_province(&self) -> bool {
        self.tokens.contains(&Token::Province)
    }
    pub fn uses_facility(&self) -> bool {
        self.tokens.contains(&Token::Facility)
    }

    /// The name for these parts.
    pub fn render(&self, parts: &NameParts<'_>) -> String {
        let mut out = String::new();
        for t in &self.tokens {
            match t {
                Token::Literal(s) => out.push_str(s),
                Token::Province => out.push_str(parts.province),
                Token::Facility => out.push_str(parts.facility),
                Token::Station => out.push_str(parts.station),
                Token::Time(f) => out.push_str(&parts.time.format(f).to_string()),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(station: &str) -> NameParts<'_> {
        NameParts {
            province: "HP",
            facility: "DVSTEEL",
            station,
            time: chrono::NaiveDate::from_ymd_opt(2026, 11, 29)
                .unwrap()
                .and_hms_opt(14, 5, 0)
                .unwrap(),
        }
    }

    // Circular 10/2021 files as dataloggers name them (the long form
    // `TenTinh_TenCoSo_TenTram_yyyyMMddhhmmss.txt`), in the department's `station/yyyy/MM/dd`.
    #[test]
    fn the_defaults_render_the_long_form_in_dated_folders() {
        let name = FileTemplate::parse_file_name(FileTemplate::DEFAULT_NAME).unwrap();
        let dir = FileTemplate::parse_dir(FileTemplate::DEFAULT_DIR).unwrap();
        assert_eq!(
            name.render(&parts("DVSTEEL_K1")),
            "HP_DVSTEEL_DVSTEEL_K1_20261129140500.txt"
        );
        assert_eq!(dir.render(&parts("DVSTEEL_K1")), "DVSTEEL_K1/2026/11/29");
        assert!(name.uses_province() && name.uses_facility());
        let short = FileTemplate::parse_file_name("{station}_{yyyyMMddHHmmss}.txt").unwrap();
        assert!(!short.uses_province());
        assert_eq!(
            FileTemplate::parse_dir("{yyyyMMdd}")
                .unwrap()
                .render(&parts("K1")),
            "20261129"
        );
        assert_eq!(
            FileTemplate::parse_dir("").unwrap().render(&parts("K1")),
            ""
        );
    }

    #[test]
    fn bad_templates_say_what_is_wrong() {
        let e = FileTemplate::parse_file_name("{station}_{date}.txt").unwrap_err();
        assert!(e.contains("unknown placeholder {date}"), "{e}");
        let e = FileTemplate::parse_file_name("{station}.txt").unwrap_err();
        assert!(e.contains("{yyyyMMddHHmmss} is missing"), "{e}");
        let e = FileTemplate::parse_file_name("{yyyyMMddHHmmss}.txt").unwrap_err();
        assert!(e.contains("{station} is missing"), "{e}");
        let e = FileTemplate::parse_file_name("a/{station}_{yyyyMMddHHmmss}").unwrap_err();
        assert!(e.contains("no '/'"), "{e}");
        assert!(FileTemplate::parse("{station").is_err());
        assert!(FileTemplate::parse("station}").is_err());
        assert!(FileTemplate::parse_dir("/abs/{station}").is_err());
        assert!(FileTemplate::parse_dir("{station}/../x").is_err());
        assert!(FileTemplate::parse_dir("{station}//x").is_err());
    }
}
