//! Which station an inbox file comes from: its name read with `inbox.pattern`
//! ([`FilePattern`]), the `{station}` part looked up among the stations' `uplink_code`s (their
//! codes in the department's system), `{province}` and `{facility}` compared with
//! `inbox.province` / `inbox.facility` when those are set. Matching ignores ASCII case.
//!
//! It lives in `decode`, not in the inbox, because the journal keeps only the file name (as the
//! topic): rebuilding windows after a restart and replaying dead letters name the station again
//! from it, with the configuration of the day.

use std::collections::HashMap;

use super::Quoted;
use crate::model::file_name::FilePattern;
use crate::model::StationKey;

/// File names to stations.
#[derive(Debug, Clone)]
pub struct FileNames {
    pattern: FilePattern,
    /// Lower-cased; `None`: any.
    province: Option<String>,
    facility: Option<String>,
    /// Lower-cased uplink code → station.
    codes: HashMap<String, StationKey>,
}

impl FileNames {
    /// `codes` pairs each station with its uplink code. Two stations with the same code
    /// (ignoring case) could not be told apart by their files: refused, naming both.
    pub fn new(
        pattern: &str,
        province: Option<&str>,
        facility: Option<&str>,
        codes: impl IntoIterator<Item = (String, StationKey)>,
    ) -> Result<FileNames, String> {
        let pattern = FilePattern::parse(pattern)?;
        let mut map: HashMap<String, StationKey> = HashMap::new();
        for (code, key) in codes {
            if let Some(other) = map.insert(code.to_ascii_lowercase(), key.clone()) {
                return Err(format!(
                    "stations {other} and {key} have the same uplink_code {code:?}: their files \
                     cannot be told apart"
                ));
            }
        }
        let lower = |s: Option<&str>| {
            s.map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_ascii_lowercase)
        };
        Ok(FileNames {
            pattern,
            province: lower(province),
            facility: lower(facility),
            codes: map,
        })
    }

    /// The station a file name names, or why none.
    pub fn station(&self, name: &str) -> Result<StationKey, String> {
        let splits = self.pattern.splits(name);
        let Some(first) = splits.first() else {
            return Err(format!(
                "file name {} does not match inbox.pattern {:?}",
                Quoted(name),
                self.pattern.source()
            ));
        };
        let mut why = None;
        for c in &splits {
            let Some(key) = self.codes.get(&c.station.to_ascii_lowercase()) else {
                continue;
            };
            let mut agrees = true;
            for (what, want, got) in [
                ("province", &self.province, c.province),
                ("facility", &self.facility, c.facility),
            ] {
                if let (Some(want), Some(got)) = (want, got) {
                    if !got.eq_ignore_ascii_case(want) {
                        agrees = false;
                        why.get_or_insert_with(|| {
                            format!(
                                "file name {}: {what} {} is not inbox.{what} {want:?}",
                                Quoted(name),
                                Quoted(got)
                            )
                        });
                    }
                }
            }
            if agrees {
                return Ok(key.clone());
            }
        }
        Err(why.unwrap_or_else(|| {
            format!(
                "file name {}: no station has uplink_code {}",
                Quoted(name),
                Quoted(first.station)
            )
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(station: &str) -> StationKey {
        StationKey::parse("dinh-vu", "dv-steel", station).unwrap()
    }

    fn names(province: Option<&str>) -> FileNames {
        FileNames::new(
            FilePattern::DEFAULT,
            province,
            None,
            [
                ("STACK01".to_owned(), key("stack-1")),
                ("KHI_02".to_owned(), key("stack-2")),
            ],
        )
        .unwrap()
    }

    #[test]
    fn the_station_code_in_the_name_is_an_uplink_code() {
        let n = names(None);
        assert_eq!(
            n.station("HP_DINHVU_STACK01_20261129140500.txt"),
            Ok(key("stack-1"))
        );
        assert_eq!(
            n.station("hp_dinhvu_stack01_20261129140500.TXT"),
            Ok(key("stack-1")),
            "case is ignored"
        );
        assert_eq!(
            n.station("HP_CTY_A_KHI_02_20261129140500.txt"),
            Ok(key("stack-2")),
            "a code holding the separator"
        );
    }

    #[test]
    fn an_unmatched_name_says_why() {
        let n = names(Some("HP"));
        let e = n.station("notes.txt").unwrap_err();
        assert!(e.contains("does not match inbox.pattern"), "{e}");
        let e = n
            .station("HP_DINHVU_NUO009_20261129140500.txt")
            .unwrap_err();
        assert!(e.contains("no station has uplink_code \"NUO009\""), "{e}");
        let e = n
            .station("HN_DINHVU_STACK01_20261129140500.txt")
            .unwrap_err();
        assert!(e.contains("province \"HN\" is not inbox.province"), "{e}");
        assert!(n.station("hp_DINHVU_STACK01_20261129140500.txt").is_ok());
    }

    #[test]
    fn two_stations_with_one_code_are_refused() {
        let e = FileNames::new(
            FilePattern::DEFAULT,
            None,
            None,
            [("K1".to_owned(), key("a")), ("k1".to_owned(), key("b"))],
        )
        .unwrap_err();
        assert!(e.contains("same uplink_code"), "{e}");
    }
}
