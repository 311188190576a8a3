//! The parameters file (`stations.params_file`): parameters quantrac does not ship, defined by
//! the operator so a park can accept them without a new release.
//!
//! ```toml
//! [[param]]
//! symbol = "Benzene"            # stored and shown as written; [A-Za-z0-9_.+-]{1,32}
//! aliases = ["C6H6"]            # other spellings accepted on input (case-insensitive)
//! kind = "emission"             # "wastewater", "emission" or "both"
//! unit = "mg/Nm3"               # canonical unit (may be "" for a unitless parameter)
//! units = { "ug/Nm3" = 0.001 }  # other units accepted: value in it × factor = canonical
//! molar_mass = 78.11            # optional: accept ppm (mg/Nm3 = ppm × M / 24.45)
//! min = 0                       # plausibility bounds in the canonical unit (default 0 …
//! max = 500                     # unbounded); a value outside is rejected (`value`)
//! ```
//!
//! Parsed into [`Params`], the table decode and the stations' limits use. A symbol or alias
//! that names a built-in or another defined parameter is an error, so a definition can never
//! change what an existing symbol means.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::model::{Definition, Kind, Params};

use super::Error;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ParamsFile {
    #[serde(default)]
    param: Vec<RawParam>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawParam {
    symbol: String,
    #[serde(default)]
    aliases: Vec<String>,
    kind: RawKind,
    unit: String,
    #[serde(default)]
    units: BTreeMap<String, f64>,
    #[serde(default)]
    molar_mass: Option<f64>,
    #[serde(default)]
    min: Option<f64>,
    #[serde(default)]
    max: Option<f64>,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum RawKind {
    Wastewater,
    Emission,
    Both,
}

/// Reads a parameters file.
pub fn load(path: &Path) -> Result<Params, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::File {
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    parse(&text, &path.display().to_string())
}

/// Parses parameter definitions from TOML text; `origin` names the file in errors, which name
/// the entry and the key (`param[2].units`).
pub fn parse(text: &str, origin: &str) -> Result<Params, Error> {
    let file: ParamsFile = toml::from_str(text).map_err(|e| Error::Invalid {
        file: origin.to_owned(),
        key: e
            .span()
            .map(|s| {
                let line = text[..s.start.min(text.len())].matches('\n').count() + 1;
                format!("line {line}")
            })
            .unwrap_or_default(),
        reason: e.message().to_owned(),
    })?;
    let definitions = file
        .param
        .into_iter()
        .map(|p| Definition {
            symbol: p.symbol,
            aliases: p.aliases,
            kinds: match p.kind {
                RawKind::Wastewater => vec![Kind::Wastewater],
                RawKind::Emission => vec![Kind::Emission],
                RawKind::Both => vec![Kind::Wastewater, Kind::Emission],
            },
            unit: p.unit,
            units: p.units.into_iter().collect(),
            molar_mass: p.molar_mass,
            min: p.min.unwrap_or(0.0),
            max: p.max.unwrap_or(f64::INFINITY),
        })
        .collect();
    Params::define(definitions).map_err(|e| Error::Invalid {
        file: origin.to_owned(),
        key: format!("param[{}].{}", e.index, e.field),
        reason: e.reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
[[param]]
symbol = "Benzene"
aliases = ["C6H6"]
kind = "emission"
unit = "mg/Nm3"
units = { "ug/Nm3" = 0.001 }
molar_mass = 78.11
max = 500

[[param]]
symbol = "ORP"
kind = "wastewater"
unit = "mV"
min = -2000
max = 2000
"#;

    #[test]
    fn definitions_become_parameters_after_the_built_in_ones() {
        let params = parse(FILE, "params.toml").unwrap();
        assert_eq!(params.defined().len(), 2);
        let b = params.parse("c6h6").unwrap();
        assert_eq!(b.symbol(), "Benzene");
        assert_eq!(b.kinds(), [Kind::Emission]);
        assert_eq!(b.unit_factor("ug/Nm3"), Some(0.001));
        assert_eq!(b.physical_range(), (0.0, 500.0));
        let orp = params.parse("ORP").unwrap();
        assert_eq!(orp.physical_range(), (-2000.0, 2000.0));
        assert_eq!(orp.canonical_unit(), "mV");
        assert!(!orp.o2_correctable());
    }

    #[test]
    fn the_shipped_file_is_valid_and_its_example_too() {
        let shipped =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/params.toml"))
                .unwrap();
        let shipped = shipped.as_str();
        assert!(parse(shipped, "config/params.toml")
            .unwrap()
            .defined()
            .is_empty());
        let example: String = shipped
            .lines()
            .map(|l| l.strip_prefix("# ").unwrap_or(l))
            .filter(|l| {
                l.starts_with("[[param]]")
                    || l.split_once(" = ").is_some_and(|(k, _)| {
                        !k.is_empty() && k.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                    })
            })
            .map(|l| format!("{l}\n"))
            .collect();
        let params = parse(&example, "example").unwrap();
        assert_eq!(params.defined().len(), 1, "{example}");
    }

    #[test]
    fn errors_name_the_file_the_entry_and_the_key() {
        let e = parse(&FILE.replace("\"ORP\"", "\"pH\""), "params.toml").unwrap_err();
        assert_eq!(e.key(), Some("param[1].symbol"), "{e}");
        assert!(e.to_string().starts_with("params.toml"), "{e}");
        let e = parse(&FILE.replace("0.001", "-1"), "params.toml").unwrap_err();
        assert_eq!(e.key(), Some("param[0].units"), "{e}");
        let e = parse(
            &FILE.replace("kind = \"wastewater\"", "kind = \"air\""),
            "p.toml",
        )
        .unwrap_err();
        assert!(e.to_string().contains("air"), "{e}");
        let e = parse(
            &FILE.replace("max = 500", "max = 500\nmaximum = 1"),
            "p.toml",
        )
        .unwrap_err();
        assert!(e.to_string().contains("maximum"), "{e}");
    }
}
