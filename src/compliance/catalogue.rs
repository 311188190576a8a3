//! The regulation tables (QCVN 40:2011, QCVN 19:2009, …) as data.
//!
//! Each regulation is a TOML file in `regulations/` at the crate root, embedded in the binary.
//! Keeping the numbers in data files rather than code lets a reviewer check them against the
//! official text line by line, and every value carries its confidence tag (verified,
//! corroborated, unverified) so the service can warn when a limit rests on a value nobody has
//! read in the regulation itself.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::model::{Kind, Param};

/// The files shipped in the binary: (file name, contents).
const BUILTIN: &[(&str, &str)] = &[
    (
        "qcvn-40-2011.toml",
        include_str!("../../regulations/qcvn-40-2011.toml"),
    ),
    (
        "qcvn-19-2009.toml",
        include_str!("../../regulations/qcvn-19-2009.toml"),
    ),
];

/// A regulation file that cannot be used.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CatalogueError {
    #[error("{file}: {reason}")]
    Syntax { file: String, reason: String },
    #[error("{file}: {key}: {reason}")]
    Invalid {
        file: String,
        key: String,
        reason: String,
    },
}

/// How sure the research is of a value (docs/regulations.md legend).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub enum Tag {
    /// Verified: read in the regulation or a verbatim quotation of it.
    V,
    /// Corroborated by secondary sources only.
    C,
    /// Unverified: recalled or inferred; must be checked against the official text.
    U,
}

/// A coefficient a regulation multiplies its table values by. The values themselves come from
/// each station's permit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub enum Coefficient {
    /// QCVN 40:2011 receiving-water coefficient.
    Kq,
    /// QCVN 40:2011 discharge-flow coefficient.
    Kf,
    /// QCVN 19:2009 exhaust flow-rate coefficient.
    Kp,
    /// QCVN 19:2009 area coefficient.
    Kv,
}

impl Coefficient {
    pub fn name(self) -> &'static str {
        match self {
            Coefficient::Kq => "Kq",
            Coefficient::Kf => "Kf",
            Coefficient::Kp => "Kp",
            Coefficient::Kv => "Kv",
        }
    }
}

/// One column value of a table row: `C` (the regulation's base value), or a range for pH.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cell {
    pub max: Option<f64>,
    pub min: Option<f64>,
    pub tag: Tag,
}

impl Cell {
    pub fn unverified(&self) -> bool {
        self.tag == Tag::U
    }
}

/// One parameter of a regulation table.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub param: Param,
    /// False for the parameters a regulation exempts from its coefficients
    /// (QCVN 40:2011 clause 2.2: temperature, colour, pH → `Cmax = C`).
    pub coefficients: bool,
    /// Column name (`"A"`, `"B"`) → value.
    pub columns: BTreeMap<String, Cell>,
}

/// One regulation: its table and the coefficients that scale it.
#[derive(Clone, Debug, PartialEq)]
pub struct Regulation {
    /// As written in permits, e.g. `QCVN 40:2011/BTNMT`.
    pub id: String,
    pub title: String,
    pub kind: Kind,
    /// E.g. `Table 1`, shown in limit sources.
    pub table: String,
    pub coefficients: Vec<Coefficient>,
    pub rows: BTreeMap<Param, Row>,
}

impl Regulation {
    /// Column names present in any row, sorted.
    pub fn columns(&self) -> Vec<String> {
        let mut all: Vec<String> = self
            .rows
            .values()
            .flat_map(|r| r.columns.keys().cloned())
            .collect();
        all.sort();
        all.dedup();
        all
    }

    /// The row's cell of `column` (matched case-insensitively).
    pub fn cell(&self, param: Param, column: &str) -> Option<(&Row, &Cell)> {
        let row = self.rows.get(&param)?;
        let cell = row
            .columns
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(column.trim()))
            .map(|(_, c)| c)?;
        Some((row, cell))
    }

    pub fn has_column(&self, column: &str) -> bool {
        self.columns()
            .iter()
            .any(|c| c.eq_ignore_ascii_case(column.trim()))
    }
}

/// The regulation tables, parsed from the embedded data files.
#[derive(Clone, Debug, PartialEq)]
pub struct Catalogue {
    regulations: Vec<Regulation>,
}

impl Catalogue {
    /// The regulations shipped in the binary.
    pub fn builtin() -> Catalogue {
        Catalogue::parse(BUILTIN).expect("the embedded regulation files are checked by unit tests")
    }

    /// Parses regulation files given as (file name, TOML text).
    pub fn parse(files: &[(&str, &str)]) -> Result<Catalogue, CatalogueError> {
        let mut regulations: Vec<Regulation> = Vec::new();
        for (file, text) in files {
            let reg = parse_file(file, text)?;
            if regulations
                .iter()
                .any(|r| normalise_id(&r.id) == normalise_id(&reg.id))
            {
                return Err(CatalogueError::Invalid {
                    file: (*file).to_owned(),
                    key: "id".into(),
                    reason: format!("{} is defined twice", reg.id),
                });
            }
            regulations.push(reg);
        }
        Ok(Catalogue { regulations })
    }

    pub fn regulations(&self) -> &[Regulation] {
        &self.regulations
    }

    /// Finds a regulation by the name a permit gives it: case-insensitive, spaces ignored, with
    /// or without the issuing ministry suffix (`QCVN 40:2011/BTNMT`, `qcvn 40:2011`).
    pub fn find(&self, name: &str) -> Option<&Regulation> {
        let wanted = normalise_id(name);
        self.regulations
            .iter()
            .find(|r| normalise_id(&r.id) == wanted)
    }
}

/// `QCVN 40:2011/BTNMT` → `QCVN40:2011`. The suffix names the issuing ministry, which was
/// renamed in 2025 (BTNMT → BNNMT), so it is not part of a regulation's identity.
fn normalise_id(name: &str) -> String {
    let upper: String = name
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_uppercase();
    match upper.split_once('/') {
        Some((head, _ministry)) => head.to_owned(),
        None => upper,
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    id: String,
    title: String,
    kind: Kind,
    table: String,
    coefficients: Vec<Coefficient>,
    #[serde(default)]
    row: Vec<RawRow>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRow {
    param: String,
    unit: String,
    #[serde(default = "yes")]
    coefficients: bool,
    #[serde(rename = "A")]
    a: Option<Cell>,
    #[serde(rename = "B")]
    b: Option<Cell>,
    #[serde(rename = "C")]
    c: Option<Cell>,
}

fn yes() -> bool {
    true
}

fn parse_file(file: &str, text: &str) -> Result<Regulation, CatalogueError> {
    let raw: RawFile = toml::from_str(text).map_err(|e| CatalogueError::Syntax {
        file: file.to_owned(),
        reason: e.message().to_owned(),
    })?;
    let bad = |key: String, reason: String| CatalogueError::Invalid {
        file: file.to_owned(),
        key,
        reason,
    };
    let mut rows = BTreeMap::new();
    for (i, r) in raw.row.into_iter().enumerate() {
        let key = |k: &str| format!("row[{i}].{k}");
        let param = Param::parse(&r.param)
            .ok_or_else(|| bad(key("param"), format!("unknown parameter {:?}", r.param)))?;
        if !param.kinds().contains(&raw.kind) {
            return Err(bad(
                key("param"),
                format!("{param} is not measured at a {:?} station", raw.kind),
            ));
        }
        // Table values must already be in quantrac's canonical unit: a limit compared in the
        // wrong unit is the worst error this module could make, so it is refused at load time.
        if r.unit != param.canonical_unit() {
            return Err(bad(
                key("unit"),
                format!(
                    "{:?} is not the canonical unit of {param} ({:?})",
                    r.unit,
                    param.canonical_unit()
                ),
            ));
        }
        let mut columns = BTreeMap::new();
        for (name, cell) in [("A", r.a), ("B", r.b), ("C", r.c)] {
            let Some(cell) = cell else { continue };
            if cell.max.is_none() && cell.min.is_none() {
                return Err(bad(key(name), "needs max, min or both".into()));
            }
            for v in [cell.max, cell.min].into_iter().flatten() {
                if !v.is_finite() || v < 0.0 {
                    return Err(bad(
                        key(name),
                        format!("{v} is not a finite, non-negative value"),
                    ));
                }
            }
            if let (Some(lo), Some(hi)) = (cell.min, cell.max) {
                if lo > hi {
                    return Err(bad(key(name), format!("min {lo} is above max {hi}")));
                }
            }
            columns.insert(name.to_owned(), cell);
        }
        if columns.is_empty() {
            return Err(bad(key("param"), "row has no column value".into()));
        }
        let row = Row {
            param,
            coefficients: r.coefficients,
            columns,
        };
        if rows.insert(param, row).is_some() {
            return Err(bad(key("param"), format!("{param} appears twice")));
        }
    }
    Ok(Regulation {
        id: raw.id,
        title: raw.title,
        kind: raw.kind,
        table: raw.table,
        coefficients: raw.coefficients,
        rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_files_load() {
        let c = Catalogue::builtin();
        assert_eq!(c.regulations().len(), 2);
        let q40 = c.find("QCVN 40:2011/BTNMT").unwrap();
        assert_eq!(q40.kind, Kind::Wastewater);
        assert_eq!(q40.coefficients, [Coefficient::Kq, Coefficient::Kf]);
        assert_eq!(q40.columns(), ["A", "B"]);
        let q19 = c.find("QCVN 19:2009/BTNMT").unwrap();
        assert_eq!(q19.coefficients, [Coefficient::Kp, Coefficient::Kv]);
    }

    #[test]
    fn regulation_names_match_with_or_without_ministry_suffix() {
        let c = Catalogue::builtin();
        for name in [
            "QCVN 40:2011/BTNMT",
            "qcvn 40:2011",
            "QCVN40:2011",
            " QCVN 40:2011/bnnmt ",
        ] {
            assert_eq!(
                c.find(name).map(|r| r.id.as_str()),
                Some("QCVN 40:2011/BTNMT"),
                "{name}"
            );
        }
        assert!(c.find("QCVN 40:2025/BTNMT").is_none());
        assert!(c.find("QCVN 14:2008").is_none());
    }

    #[test]
    fn qcvn_40_2011_table_1_values_regulations_md_1_1() {
        let c = Catalogue::builtin();
        let q40 = c.find("QCVN 40:2011").unwrap();
        let max = |p, col| q40.cell(p, col).unwrap().1.max.unwrap();
        assert_eq!(max(Param::COD, "B"), 150.0);
        assert_eq!(max(Param::COD, "A"), 75.0);
        assert_eq!(max(Param::BOD5, "B"), 50.0);
        assert_eq!(max(Param::TSS, "A"), 50.0);
        assert_eq!(max(Param::NH4, "B"), 10.0);
        assert_eq!(max(Param::TN, "B"), 40.0);
        assert_eq!(max(Param::TP, "A"), 4.0);
        assert_eq!(max(Param::Color, "b"), 150.0);
        // pH is a range; clause 2.2 exempts it (and Temp, Color) from Kq × Kf.
        let (row, ph_b) = q40.cell(Param::PH, "B").unwrap();
        assert_eq!((ph_b.min, ph_b.max), (Some(5.5), Some(9.0)));
        assert!(!row.coefficients);
        assert!(!q40.rows[&Param::Temp].coefficients);
        assert!(!q40.rows[&Param::Color].coefficients);
        assert!(q40.rows[&Param::COD].coefficients);
        // Chloride: column B read in the source [V], column A recalled [U].
        assert!(q40.cell(Param::Cl, "A").unwrap().1.unverified());
        assert!(!q40.cell(Param::Cl, "B").unwrap().1.unverified());
        // TOC is not in QCVN 40:2011 (S26).
        assert!(!q40.rows.contains_key(&Param::TOC));
    }

    #[test]
    fn every_qcvn_19_2009_value_is_unverified_regulations_md_2_1() {
        let c = Catalogue::builtin();
        let q19 = c.find("QCVN 19:2009").unwrap();
        assert_eq!(q19.rows.len(), 4);
        for row in q19.rows.values() {
            for cell in row.columns.values() {
                assert!(cell.unverified(), "{:?}", row.param);
            }
        }
        assert_eq!(q19.cell(Param::SO2, "B").unwrap().1.max, Some(500.0));
        assert_eq!(q19.cell(Param::PM, "B").unwrap().1.max, Some(200.0));
        assert_eq!(q19.cell(Param::NOx, "B").unwrap().1.max, Some(850.0));
        assert_eq!(q19.cell(Param::CO, "B").unwrap().1.max, Some(1000.0));
    }

    const MINIMAL: &str = r#"
id = "QCVN 99:2030/BTNMT"
title = "test"
kind = "wastewater"
table = "Table 1"
coefficients = ["Kq"]
[[row]]
param = "COD"
unit = "mg/L"
A = { max = 10, tag = "V" }
"#;

    #[test]
    fn a_value_in_a_non_canonical_unit_is_refused() {
        assert!(Catalogue::parse(&[("t.toml", MINIMAL)]).is_ok());
        let e = Catalogue::parse(&[("t.toml", &MINIMAL.replace("mg/L", "g/L"))]).unwrap_err();
        assert!(e.to_string().contains("row[0].unit"), "{e}");
    }

    #[test]
    fn malformed_files_name_the_file_and_key() {
        let e = Catalogue::parse(&[("t.toml", &MINIMAL.replace("COD", "SO2"))]).unwrap_err();
        assert!(e.to_string().starts_with("t.toml: row[0].param"), "{e}");
        let e = Catalogue::parse(&[("t.toml", &MINIMAL.replace("tag = \"V\"", "tag = \"X\""))])
            .unwrap_err();
        assert!(matches!(e, CatalogueError::Syntax { .. }), "{e}");
        let e =
            Catalogue::parse(&[("t.toml", &MINIMAL.replace("max = 10", "max = -1"))]).unwrap_err();
        assert!(e.to_string().contains("row[0].A"), "{e}");
        let e = Catalogue::parse(&[("a.toml", MINIMAL), ("b.toml", MINIMAL)]).unwrap_err();
        assert!(e.to_string().contains("defined twice"), "{e}");
    }

    #[test]
    fn a_range_may_be_a_single_value_from_zero_but_never_upside_down() {
        // pH-like ranges: a bound of 0 and a min equal to its max are values a table can hold.
        for cell in [
            "{ min = 0, max = 10, tag = \"V\" }",
            "{ min = 10, max = 10, tag = \"V\" }",
        ] {
            let text = MINIMAL.replace("{ max = 10, tag = \"V\" }", cell);
            assert!(Catalogue::parse(&[("t.toml", &text)]).is_ok(), "{cell}");
        }
        let text = MINIMAL.replace(
            "{ max = 10, tag = \"V\" }",
            "{ min = 11, max = 10, tag = \"V\" }",
        );
        let e = Catalogue::parse(&[("t.toml", &text)]).unwrap_err();
        assert!(e.to_string().contains("min 11 is above max 10"), "{e}");
    }
}
