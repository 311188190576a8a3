//! The parameter table of Circular 10/2021/TT-BTNMT (Annex 15, Table 34 symbols) with the
//! canonical unit quantrac stores each one in and the range a real value can take.

use std::fmt;

/// What a station watches: a chimney or a wastewater outfall.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Wastewater,
    Emission,
}

macro_rules! params {
    ($( $variant:ident => $symbol:literal, $unit:literal, $molar:expr, $min:expr, $max:expr; )*) => {
        /// A monitored parameter. Symbols follow Circular 10/2021 and are matched
        /// case-insensitively on input; [`Param::symbol`] gives the spelling stored.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Param { $( $variant, )* }

        impl Param {
            /// Every parameter, in table order.
            pub const ALL: &'static [Param] = &[ $( Param::$variant, )* ];

            /// The symbol as stored and shown (`"COD"`, `"pH"`, `"Flow"`).
            pub fn symbol(self) -> &'static str {
                match self { $( Param::$variant => $symbol, )* }
            }

            /// The canonical unit readings are stored in (`""` for pH).
            pub fn canonical_unit(self) -> &'static str {
                match self { $( Param::$variant => $unit, )* }
            }

            /// Molar mass in g/mol for gases that may be reported in ppm; `None` otherwise.
            pub fn molar_mass(self) -> Option<f64> {
                match self { $( Param::$variant => $molar, )* }
            }

            /// Physically possible range in the canonical unit (inclusive).
            /// A value outside it is rejected with reason `value`.
            pub fn physical_range(self) -> (f64, f64) {
                match self { $( Param::$variant => ($min, $max), )* }
            }
        }
    };
}

/// Upper plausibility bounds, in the canonical unit. A value above one is not a measurement
/// (a stuck converter, a unit mix-up, a hostile publisher): it is rejected with reason `value`
/// before it can set an exceedance. Each bound is far above anything a real outfall or stack
/// can produce, and says why:
mod bound {
    /// 10 million m3/h: above the flue-gas flow of the largest power-plant stacks (~4 M m3/h)
    /// and any wastewater outfall.
    pub const FLOW: f64 = 10_000_000.0;
    /// 100,000 mg/L = 10 % by mass: beyond the strongest industrial wastewaters (COD, BOD5,
    /// TOC, TSS of a sludge slurry) measured at an outfall.
    pub const STRONG_WASTE: f64 = 100_000.0;
    /// 10,000 mg/L: twice the strongest landfill leachates for nitrogen and phosphorus.
    pub const NUTRIENT: f64 = 10_000.0;
    /// 250,000 mg/L: chloride of saturated brine (~218 g/L).
    pub const CHLORIDE: f64 = 250_000.0;
    /// 100,000 Pt-Co: ten times raw dye-house effluent.
    pub const COLOR: f64 = 100_000.0;
    /// 1,000,000 mg/Nm3 = 1 kg of dust per cubic metre: about 100 times raw flue gas before
    /// any filter.
    pub const DUST: f64 = 1_000_000.0;
    /// 10,000 kPa = 100 bar: no stack runs at that pressure.
    pub const PRESSURE: f64 = 10_000.0;
    /// A gas cannot be more concentrated than the pure gas: at 0 °C and 101.325 kPa a mole
    /// fills 22.414 L, so the pure gas holds molar mass / 22.414 × 10^6 mg/Nm3.
    pub const fn pure_gas(molar_mass: f64) -> f64 {
        molar_mass / 22.414 * 1_000_000.0
    }
}

use bound::*;

params! {
    Flow  => "Flow",  "m3/h",   None,          0.0, FLOW;
    Temp  => "Temp",  "°C",     None,        -50.0, 1500.0;
    PH    => "pH",    "",       None,          0.0, 14.0;
    Color => "Color", "Pt-Co",  None,          0.0, COLOR;
    TSS   => "TSS",   "mg/L",   None,          0.0, STRONG_WASTE;
    COD   => "COD",   "mg/L",   None,          0.0, STRONG_WASTE;
    BOD5  => "BOD5",  "mg/L",   None,          0.0, STRONG_WASTE;
    NH4   => "NH4",   "mg/L",   None,          0.0, NUTRIENT;
    TN    => "TN",    "mg/L",   None,          0.0, NUTRIENT;
    TP    => "TP",    "mg/L",   None,          0.0, NUTRIENT;
    TOC   => "TOC",   "mg/L",   None,          0.0, STRONG_WASTE;
    Cl    => "Cl",    "mg/L",   None,          0.0, CHLORIDE;
    O2    => "O2",    "%",      None,          0.0, 25.0;
    PM    => "PM",    "mg/Nm3", None,          0.0, DUST;
    SO2   => "SO2",   "mg/Nm3", Some(64.066),  0.0, pure_gas(64.066);
    NOx   => "NOx",   "mg/Nm3", Some(46.006),  0.0, pure_gas(46.006);
    NO    => "NO",    "mg/Nm3", Some(30.006),  0.0, pure_gas(30.006);
    NO2   => "NO2",   "mg/Nm3", Some(46.006),  0.0, pure_gas(46.006);
    CO    => "CO",    "mg/Nm3", Some(28.010),  0.0, pure_gas(28.010);
    H2S   => "H2S",   "mg/Nm3", Some(34.081),  0.0, pure_gas(34.081);
    NH3   => "NH3",   "mg/Nm3", Some(17.031),  0.0, pure_gas(17.031);
    HCl   => "HCl",   "mg/Nm3", Some(36.461),  0.0, pure_gas(36.461);
    HF    => "HF",    "mg/Nm3", Some(20.006),  0.0, pure_gas(20.006);
    P     => "P",     "kPa",    None,          0.0, PRESSURE;
}

impl Param {
    /// Parses a symbol case-insensitively (`"cod"`, `"PH"`, `"nh4"`). A few spellings seen in
    /// datalogger files are accepted too (`"NH4+"`, `"Dust"`).
    pub fn parse(s: &str) -> Option<Param> {
        let s = s.trim();
        if let Some(p) = Param::ALL
            .iter()
            .find(|p| p.symbol().eq_ignore_ascii_case(s))
        {
            return Some(*p);
        }
        match s.to_ascii_lowercase().as_str() {
            "nh4+" | "nh4-n" => Some(Param::NH4),
            "dust" | "tsp" => Some(Param::PM),
            "colour" => Some(Param::Color),
            "temperature" => Some(Param::Temp),
            _ => None,
        }
    }

    /// The station kinds this parameter belongs to. Flow and Temp belong to both.
    pub fn kinds(self) -> &'static [Kind] {
        use Param::*;
        match self {
            Flow | Temp => &[Kind::Wastewater, Kind::Emission],
            PH | Color | TSS | COD | BOD5 | NH4 | TN | TP | TOC | Cl => &[Kind::Wastewater],
            _ => &[Kind::Emission],
        }
    }

    /// Whether O2 correction applies to this parameter (gas and dust concentrations).
    pub fn o2_correctable(self) -> bool {
        self.kinds() == [Kind::Emission] && !matches!(self, Param::O2 | Param::P)
    }
}

impl fmt::Display for Param {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.symbol())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symbols_parse_case_insensitively_and_round_trip() {
        for p in Param::ALL {
            assert_eq!(Param::parse(p.symbol()), Some(*p));
            assert_eq!(Param::parse(&p.symbol().to_ascii_uppercase()), Some(*p));
            assert_eq!(Param::parse(&p.symbol().to_ascii_lowercase()), Some(*p));
        }
        assert_eq!(Param::parse("nox"), Some(Param::NOx));
        assert_eq!(Param::parse("Benzene"), None);
    }

    #[test]
    fn every_parameter_has_a_finite_upper_bound() {
        for p in Param::ALL {
            let (min, max) = p.physical_range();
            assert!(max.is_finite() && max > min, "{p}: {min}..{max}");
        }
        // The hostile reading of the issue: COD = 1e308 mg/L is not a measurement.
        assert!(1e308 > Param::COD.physical_range().1);
        // Pure SO2 at normal conditions: 64.066 g/mol / 22.414 L/mol = 2.858 kg/Nm3.
        let so2 = Param::SO2.physical_range().1;
        assert!((so2 - 2_858_302.8).abs() < 1.0, "{so2}");
    }

    #[test]
    fn gases_carry_the_contract_molar_masses() {
        assert_eq!(Param::SO2.molar_mass(), Some(64.066));
        assert_eq!(Param::NOx.molar_mass(), Some(46.006));
        assert_eq!(Param::PM.molar_mass(), None);
        assert!(Param::SO2.o2_correctable());
        assert!(!Param::O2.o2_correctable());
        assert!(!Param::COD.o2_correctable());
    }
}
