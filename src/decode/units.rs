//! Units as written by dataloggers, converted to each parameter's canonical unit
//! (contract "Parameters and canonical units").
//!
//! Matching is case-insensitive and ignores surrounding spaces; the spellings accepted are the
//! ones seen in Vietnamese station files (`m³/h`, `oC`, `Pt/Co`, `mg/Nm3`), listed with each
//! parameter in the table (`model::param`). A unit that is not in the table is refused rather
//! than guessed: a wrong factor would silently turn a breach into compliance.

use crate::model::Param;

/// Converts `value` given in `unit` to `param`'s canonical unit; `None` when the unit does not
/// belong to the parameter. An empty unit means "not stated", i.e. already canonical. The
/// spellings and factors are the parameter table's ([`Param::unit_factor`]), so a parameter the
/// operator defines converts the same way as a built-in one.
pub(crate) fn to_canonical(param: Param, unit: &str, value: f64) -> Option<f64> {
    param.unit_factor(unit).map(|factor| value * factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: Option<f64>, b: f64) -> bool {
        a.is_some_and(|a| (a - b).abs() <= 1e-9 * b.abs().max(1.0))
    }

    #[test]
    fn flow_converts_to_cubic_metres_per_hour() {
        assert!(close(to_canonical(Param::Flow, "m3/h", 12.5), 12.5));
        assert!(close(to_canonical(Param::Flow, "m³/h", 12.5), 12.5));
        assert!(close(to_canonical(Param::Flow, "m3/s", 0.5), 1800.0));
        assert!(close(to_canonical(Param::Flow, "m3/day", 2400.0), 100.0));
        assert!(close(to_canonical(Param::Flow, "M3/D", 2400.0), 100.0));
        assert_eq!(to_canonical(Param::Flow, "L/s", 1.0), None);
    }

    #[test]
    fn temperature_spellings_are_celsius() {
        for u in ["°C", "C", "oC", "degC", "℃", " °c "] {
            assert!(close(to_canonical(Param::Temp, u, 31.0), 31.0), "{u}");
        }
        assert_eq!(to_canonical(Param::Temp, "K", 300.0), None);
        assert_eq!(to_canonical(Param::Temp, "°F", 90.0), None);
    }

    #[test]
    fn ph_is_unitless_and_color_is_pt_co() {
        for u in ["", "pH", "-"] {
            assert!(close(to_canonical(Param::PH, u, 7.1), 7.1), "{u:?}");
        }
        assert_eq!(to_canonical(Param::PH, "mg/L", 7.1), None);
        for u in ["Pt-Co", "Pt/Co", "PtCo", "pt-co"] {
            assert!(close(to_canonical(Param::Color, u, 50.0), 50.0), "{u}");
        }
        assert_eq!(to_canonical(Param::Color, "NTU", 50.0), None);
    }

    #[test]
    fn mass_concentrations_in_water() {
        // QCVN 40:2011 Table 1 states these in mg/L; g/m3 is the same quantity.
        assert!(close(to_canonical(Param::COD, "mg/L", 48.2), 48.2));
        assert!(close(to_canonical(Param::COD, "mg/l", 48.2), 48.2));
        assert!(close(to_canonical(Param::TSS, "g/m3", 20.0), 20.0));
        assert!(close(to_canonical(Param::NH4, "ug/L", 1500.0), 1.5));
        assert!(close(to_canonical(Param::NH4, "µg/L", 1500.0), 1.5));
        assert_eq!(to_canonical(Param::COD, "mg/Nm3", 1.0), None);
        assert_eq!(to_canonical(Param::COD, "ppm", 1.0), None);
    }

    #[test]
    fn oxygen_is_a_volume_percentage() {
        assert!(close(to_canonical(Param::O2, "%", 9.5), 9.5));
        assert!(close(to_canonical(Param::O2, "%vol", 9.5), 9.5));
        assert_eq!(to_canonical(Param::O2, "ppm", 9.5), None);
    }

    #[test]
    fn gases_in_ppm_use_qcvn_19_normal_conditions() {
        // QCVN 19:2009: Nm3 at 25 °C and 760 mmHg, molar volume 24.45 L.
        assert!(close(
            to_canonical(Param::SO2, "ppm", 120.0),
            120.0 * 64.066 / 24.45
        ));
        assert!(close(
            to_canonical(Param::NOx, "PPM", 10.0),
            10.0 * 46.006 / 24.45
        ));
        assert!(close(
            to_canonical(Param::CO, "ppm", 10.0),
            10.0 * 28.010 / 24.45
        ));
        assert!(close(to_canonical(Param::SO2, "mg/Nm3", 300.0), 300.0));
        assert!(close(to_canonical(Param::PM, "mg/Nm³", 80.0), 80.0));
        // Dust has no molar mass: ppm is meaningless for it.
        assert_eq!(to_canonical(Param::PM, "ppm", 1.0), None);
        assert_eq!(to_canonical(Param::SO2, "ppb", 1.0), None);
        // mg/m3 at actual conditions is not mg/Nm3.
        assert_eq!(to_canonical(Param::SO2, "mg/m3", 1.0), None);
    }

    /// The molar masses of the README's parameter table, gas by gas.
    const MOLAR_MASSES: [(Param, &str, f64); 9] = [
        (Param::SO2, "SO2", 64.066),
        (Param::NOx, "NOx (as NO2)", 46.006),
        (Param::NO, "NO", 30.006),
        (Param::NO2, "NO2", 46.006),
        (Param::CO, "CO", 28.010),
        (Param::H2S, "H2S", 34.081),
        (Param::NH3, "NH3", 17.031),
        (Param::HCl, "HCl", 36.461),
        (Param::HF, "HF", 20.006),
    ];

    // Every gas's ppm converts with the molar mass the README gives, and the README gives
    // these ones (mg/Nm3 = ppm × M / 24.45).
    #[test]
    fn every_gas_converts_ppm_with_the_molar_mass_the_readme_gives() {
        let readme =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
        let row = readme
            .lines()
            .find(|l| l.contains("mg/Nm3 = ppm × M / 24.45"))
            .expect("the README's ppm row");
        for (param, name, m) in MOLAR_MASSES {
            assert!(
                row.contains(&format!("{name} {m:.3}")),
                "the README does not give {name} {m:.3}: {row}"
            );
            assert_eq!(param.molar_mass(), Some(m), "{name}");
            assert!(close(to_canonical(param, "ppm", 24.45), m), "{name}");
        }
    }

    #[test]
    fn stack_pressure_converts_to_kilopascals() {
        assert!(close(to_canonical(Param::P, "kPa", 101.3), 101.3));
        assert!(close(to_canonical(Param::P, "Pa", 101_325.0), 101.325));
        assert!(close(to_canonical(Param::P, "hPa", 1013.25), 101.325));
        assert!(close(
            to_canonical(Param::P, "mmHg", 760.0),
            760.0 * 0.133322
        ));
        assert_eq!(to_canonical(Param::P, "bar", 1.0), None);
    }

    #[test]
    fn table_34_additions_and_turbidity_have_their_units() {
        // Circular 10/2021 Table 34: RH in %, mercury vapour in µg/Nm3, O3 and fine dust as
        // stack concentrations; turbidity in NTU.
        assert!(close(to_canonical(Param::RH, "%", 63.0), 63.0));
        assert!(close(to_canonical(Param::RH, "%RH", 63.0), 63.0));
        assert!(close(to_canonical(Param::VHg, "ug/Nm3", 4.0), 4.0));
        assert!(close(to_canonical(Param::VHg, "mg/Nm3", 0.004), 4.0));
        assert!(close(to_canonical(Param::PM25, "µg/Nm3", 25.0), 0.025));
        assert!(close(to_canonical(Param::PM10, "mg/Nm3", 0.05), 0.05));
        assert!(close(to_canonical(Param::O3, "ppm", 1.0), 47.997 / 24.45));
        assert!(close(to_canonical(Param::Turbidity, "NTU", 12.5), 12.5));
        assert!(close(to_canonical(Param::Turbidity, "ntu", 12.5), 12.5));
        assert_eq!(to_canonical(Param::Turbidity, "mg/L", 1.0), None);
        // Dust has no molar mass, and µg/m3 at actual conditions is not µg/Nm3.
        assert_eq!(to_canonical(Param::PM25, "ppm", 1.0), None);
        assert_eq!(to_canonical(Param::PM25, "ug/m3", 1.0), None);
    }

    #[test]
    fn over_long_units_are_not_known() {
        assert_eq!(to_canonical(Param::COD, &"m".repeat(100), 1.0), None);
    }
}
