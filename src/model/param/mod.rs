//! The parameter table: the symbols of Circular 10/2021/TT-BTNMT (Annex 15, Table 34), the
//! spellings dataloggers use for the same parameters in the field, the canonical unit quantrac
//! stores each one in with the units it converts from, and the range a real value can take.
//!
//! The table is data. Each row is a [`Spec`]; a [`Param`] is a cheap, copyable handle to one
//! row. The built-in rows are below ([`Param::ALL`]); a park can add its own parameters without
//! a new release ([`Definition`], `[[param]]` entries of the parameters file), and [`Params`]
//! is the table a running quantrac uses: the built-in rows, then the defined ones.

use std::fmt;
use std::sync::Arc;

/// What a station watches: a chimney or a wastewater outfall.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Wastewater,
    Emission,
}

/// Volume of one mole of ideal gas at QCVN 19:2009 normal conditions (25 °C, 760 mmHg), in
/// litres: mg/Nm3 = ppm × M / 24.45.
pub const MOLAR_VOLUME_L: f64 = 24.45;

/// 1 mmHg in kPa (101.325 kPa / 760).
const KPA_PER_MMHG: f64 = 0.133_322;

/// One row of the parameter table.
#[derive(Debug)]
struct Spec {
    /// Position in the table: built-in rows first, in [`Param::ALL`] order, then the defined
    /// ones. Dense, so per-parameter state can live in a vector indexed by it.
    index: u16,
    symbol: &'static str,
    /// Other spellings accepted on input (case-insensitive), e.g. `PM2,5` for `PM2.5`.
    aliases: &'static [&'static str],
    kinds: &'static [Kind],
    /// The canonical unit (`""` for pH).
    unit: &'static str,
    /// Units converted from, with the factor to the canonical unit. Matched ignoring ASCII
    /// case and surrounding spaces; the canonical unit and the empty unit need no entry.
    units: &'static [(&'static str, f64)],
    /// For gases that may be reported in ppm.
    molar_mass: Option<f64>,
    min: f64,
    max: f64,
    /// A gas or dust concentration, corrected to the reference O2 where a station has one.
    o2_correctable: bool,
}

/// A monitored parameter: a handle to its row of the table. Symbols follow Circular 10/2021
/// and are matched case-insensitively on input; [`Param::symbol`] gives the spelling stored.
///
/// Built-in parameters are associated constants (`Param::COD`); parameters defined by the
/// operator come from [`Params::parse`]. Equality, order and hash follow the table position
/// (and the symbol), so a `Param` is as cheap to compare as an enum.
#[derive(Clone, Copy)]
pub struct Param(&'static Spec);

const INF: f64 = f64::INFINITY;

const BOTH: &[Kind] = &[Kind::Wastewater, Kind::Emission];
const WASTEWATER: &[Kind] = &[Kind::Wastewater];
const EMISSION: &[Kind] = &[Kind::Emission];

// Unit spellings seen in Vietnamese station files. A unit that is not listed is refused rather
// than guessed: a wrong factor would silently turn a breach into compliance.
const FLOW_UNITS: &[(&str, f64)] = &[
    ("m³/h", 1.0),
    ("m3/hr", 1.0),
    ("m3/s", 3600.0),
    ("m³/s", 3600.0),
    ("m3/day", 1.0 / 24.0),
    ("m³/day", 1.0 / 24.0),
    ("m3/d", 1.0 / 24.0),
    ("m³/d", 1.0 / 24.0),
];
// "ºC": the ordinal sign that keyboards offer in place of the degree sign.
const TEMP_UNITS: &[(&str, f64)] = &[
    ("C", 1.0),
    ("oC", 1.0),
    ("degC", 1.0),
    ("℃", 1.0),
    ("ºC", 1.0),
];
const PH_UNITS: &[(&str, f64)] = &[("pH", 1.0), ("-", 1.0)];
const COLOR_UNITS: &[(&str, f64)] = &[("Pt/Co", 1.0), ("PtCo", 1.0)];
/// mg/L: suspended solids, organics, nutrients, chloride.
const WATER_UNITS: &[(&str, f64)] = &[
    ("g/m3", 1.0),
    ("g/m³", 1.0),
    ("ug/L", 1.0e-3),
    ("µg/L", 1.0e-3),
    ("μg/L", 1.0e-3),
];
const O2_UNITS: &[(&str, f64)] = &[("%vol", 1.0), ("vol%", 1.0)];
/// mg/Nm3: dust and gases (ppm through the molar mass, for gases).
const STACK_UNITS: &[(&str, f64)] = &[
    ("mg/Nm³", 1.0),
    ("ug/Nm3", 1.0e-3),
    ("µg/Nm3", 1.0e-3),
    ("μg/Nm3", 1.0e-3),
    ("µg/Nm³", 1.0e-3),
];
const PRESSURE_UNITS: &[(&str, f64)] = &[
    ("Pa", 1.0e-3),
    ("hPa", 0.1),
    ("mbar", 0.1),
    ("mmHg", KPA_PER_MMHG),
];
const RH_UNITS: &[(&str, f64)] = &[("%RH", 1.0)];
/// µg/Nm3: mercury vapour.
const MERCURY_UNITS: &[(&str, f64)] = &[
    ("ug/Nm3", 1.0),
    ("μg/Nm3", 1.0),
    ("µg/Nm³", 1.0),
    ("mg/Nm3", 1.0e3),
];
const NO_UNITS: &[(&str, f64)] = &[];

macro_rules! params {
    ($( $variant:ident => $symbol:literal, $unit:literal, $molar:expr, $min:expr, $max:expr; )*) => {
        /// Positions of the built-in rows.
        #[allow(clippy::upper_case_acronyms)]
        #[derive(Clone, Copy)]
        enum Row { $( $variant, )* }

        /// The built-in rows, in table order.
        static BUILTIN: [Spec; [$( Row::$variant, )*].len()] = [
            $( Spec {
                index: Row::$variant as u16,
                symbol: $symbol,
                aliases: aliases(Row::$variant),
                kinds: kinds(Row::$variant),
                unit: $unit,
                units: units(Row::$variant),
                molar_mass: $molar,
                min: $min,
                max: $max,
                o2_correctable: o2_correctable(Row::$variant),
            }, )*
        ];

        #[allow(non_upper_case_globals)]
        impl Param {
            $( pub const $variant: Param = Param(&BUILTIN[Row::$variant as usize]); )*

            /// Every built-in parameter, in table order.
            pub const ALL: &'static [Param] = &[ $( Param::$variant, )* ];
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
    /// Pure mercury vapour (200.59 g/mol), in µg/Nm3 (the unit VHg is kept in).
    pub const MERCURY: f64 = pure_gas(200.59) * 1_000.0;
    /// 100,000 NTU: 25 times the top of a process turbidimeter's range (4,000 NTU).
    pub const TURBIDITY: f64 = 100_000.0;
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
    // The rest of Circular 10/2021 Table 34 (stack humidity, mercury vapour, ozone, fine
    // dust), then turbidity, which outfall stations report though the table does not list it.
    RH    => "RH",    "%",      None,          0.0, 100.0;
    VHg   => "VHg",   "µg/Nm3", None,          0.0, MERCURY;
    O3    => "O3",    "mg/Nm3", Some(47.997),  0.0, pure_gas(47.997);
    PM10  => "PM10",  "mg/Nm3", None,          0.0, DUST;
    PM25  => "PM2.5", "mg/Nm3", None,          0.0, DUST;
    Turbidity => "Turbidity", "NTU", None,     0.0, TURBIDITY;
}

/// Spellings of the built-in parameters seen in datalogger files, besides the symbol.
const fn aliases(row: Row) -> &'static [&'static str] {
    use Row::*;
    match row {
        Temp => &["Temperature"],
        Color => &["Colour"],
        BOD5 => &["BOD"],
        NH4 => &[
            "NH4+", "NH4-N", "N-NH4", "NH4_N", "N_NH4", "NH4+-N", "Ammonium", "Amoni",
        ],
        TN => &["T-N"],
        TP => &["T-P"],
        Cl => &["Cl-", "Chloride"],
        PM => &["Dust", "TSP"],
        P => &["Pressure"],
        RH => &["Humidity"],
        VHg => &["Hg"],
        // Table 34 writes PM2,5 (a Vietnamese decimal comma); quantrac stores PM2.5.
        PM25 => &["PM2,5", "PM25", "PM2_5"],
        Turbidity => &["TURB", "NTU"],
        _ => &[],
    }
}

/// The station kinds a built-in parameter belongs to. Flow and Temp belong to both.
const fn kinds(row: Row) -> &'static [Kind] {
    use Row::*;
    match row {
        Flow | Temp => BOTH,
        PH | Color | TSS | COD | BOD5 | NH4 | TN | TP | TOC | Cl | Turbidity => WASTEWATER,
        O2 | PM | SO2 | NOx | NO | NO2 | CO | H2S | NH3 | HCl | HF | P | RH | VHg | O3 | PM10
        | PM25 => EMISSION,
    }
}

const fn units(row: Row) -> &'static [(&'static str, f64)] {
    use Row::*;
    match row {
        Flow => FLOW_UNITS,
        Temp => TEMP_UNITS,
        PH => PH_UNITS,
        Color => COLOR_UNITS,
        TSS | COD | BOD5 | NH4 | TN | TP | TOC | Cl => WATER_UNITS,
        O2 => O2_UNITS,
        PM | SO2 | NOx | NO | NO2 | CO | H2S | NH3 | HCl | HF | O3 | PM10 | PM25 => STACK_UNITS,
        P => PRESSURE_UNITS,
        RH => RH_UNITS,
        VHg => MERCURY_UNITS,
        Turbidity => NO_UNITS,
    }
}

/// Gas and dust concentrations: corrected to a stack's reference O2.
const fn o2_correctable(row: Row) -> bool {
    use Row::*;
    matches!(
        row,
        PM | SO2 | NOx | NO | NO2 | CO | H2S | NH3 | HCl | HF | VHg | O3 | PM10 | PM25
    )
}

impl Param {
    /// Parses a built-in symbol or one of its field spellings, case-insensitively (`"cod"`,
    /// `"PH"`, `"NH4+"`, `"PM2,5"`). Parameters the operator defined are parsed by
    /// [`Params::parse`].
    pub fn parse(s: &str) -> Option<Param> {
        let s = s.trim();
        // Symbols first: nearly every line of a file uses one, so the aliases are rarely read.
        let by_symbol = Param::ALL
            .iter()
            .find(|p| p.0.symbol.eq_ignore_ascii_case(s));
        by_symbol
            .or_else(|| Param::ALL.iter().find(|p| p.is_named(s)))
            .copied()
    }

    /// Whether `s` (trimmed) is this parameter's symbol or one of its aliases.
    fn is_named(self, s: &str) -> bool {
        self.0.symbol.eq_ignore_ascii_case(s)
            || self.0.aliases.iter().any(|a| a.eq_ignore_ascii_case(s))
    }

    /// The symbol as stored and shown (`"COD"`, `"pH"`, `"Flow"`).
    pub fn symbol(self) -> &'static str {
        self.0.symbol
    }

    /// Other spellings accepted on input.
    pub fn aliases(self) -> &'static [&'static str] {
        self.0.aliases
    }

    /// The canonical unit readings are stored in (`""` for pH).
    pub fn canonical_unit(self) -> &'static str {
        self.0.unit
    }

    /// Units converted from (besides the canonical one), with their factor to it.
    pub fn units(self) -> &'static [(&'static str, f64)] {
        self.0.units
    }

    /// Molar mass in g/mol for gases that may be reported in ppm; `None` otherwise.
    pub fn molar_mass(self) -> Option<f64> {
        self.0.molar_mass
    }

    /// Physically possible range in the canonical unit (inclusive).
    /// A value outside it is rejected with reason `value`.
    pub fn physical_range(self) -> (f64, f64) {
        (self.0.min, self.0.max)
    }

    /// The station kinds this parameter belongs to.
    pub fn kinds(self) -> &'static [Kind] {
        self.0.kinds
    }

    /// Whether O2 correction applies to this parameter (gas and dust concentrations).
    pub fn o2_correctable(self) -> bool {
        self.0.o2_correctable
    }

    /// Position in the table: built-in parameters first, then the defined ones; dense.
    pub fn index(self) -> usize {
        usize::from(self.0.index)
    }

    /// Whether this parameter was defined by the operator rather than shipped.
    pub fn is_defined(self) -> bool {
        self.index() >= Param::ALL.len()
    }

    /// The factor that converts a value given in `unit` to the canonical unit; `None` when the
    /// unit does not belong to this parameter. An empty unit means "not stated", i.e. already
    /// canonical. `ppm` converts for gases with a molar mass, at QCVN 19:2009 normal
    /// conditions (25 °C, 760 mmHg).
    pub fn unit_factor(self, unit: &str) -> Option<f64> {
        let u = unit.trim();
        if u.is_empty() || u.eq_ignore_ascii_case(self.0.unit) {
            return Some(1.0);
        }
        if let Some(&(_, factor)) = self.0.units.iter().find(|(s, _)| s.eq_ignore_ascii_case(u)) {
            return Some(factor);
        }
        if u.eq_ignore_ascii_case("ppm") {
            return self.0.molar_mass.map(|m| m / MOLAR_VOLUME_L);
        }
        None
    }
}

impl PartialEq for Param {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self.0, other.0)
            || (self.0.index == other.0.index && self.0.symbol == other.0.symbol)
    }
}

impl Eq for Param {}

impl std::hash::Hash for Param {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.index.hash(state);
    }
}

impl PartialOrd for Param {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// Table order.
impl Ord for Param {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0
            .index
            .cmp(&other.0.index)
            .then_with(|| self.0.symbol.cmp(other.0.symbol))
    }
}

impl fmt::Display for Param {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.symbol())
    }
}

impl fmt::Debug for Param {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.symbol())
    }
}

/// A parameter the operator defines (`[[param]]` in the parameters file), so a park can
/// accept a parameter quantrac does not ship without a new release.
#[derive(Clone, Debug, PartialEq)]
pub struct Definition {
    /// Stored and shown as written: `[A-Za-z0-9_.+-]{1,32}`.
    pub symbol: String,
    /// Other spellings accepted on input (case-insensitive).
    pub aliases: Vec<String>,
    pub kinds: Vec<Kind>,
    /// The canonical unit (may be empty: unitless).
    pub unit: String,
    /// Other units accepted, with the factor that converts a value in them to `unit`.
    pub units: Vec<(String, f64)>,
    /// Enables `ppm` (gases), as for the built-in gases.
    pub molar_mass: Option<f64>,
    /// Plausibility bounds in the canonical unit: a value outside is rejected (`value`).
    pub min: f64,
    pub max: f64,
}

/// Why a [`Definition`] was refused: which one (0-based), which field, why.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct DefinitionError {
    pub index: usize,
    pub field: &'static str,
    pub reason: String,
}

/// The parameter table a running quantrac uses: the built-in rows, then those the operator
/// defined. Cheap to clone. The default holds the built-in rows only.
#[derive(Clone, Debug, Default)]
pub struct Params {
    defined: Arc<[Param]>,
}

/// The longest symbol, alias or unit spelling a definition may use.
const NAME_LIMIT: usize = 32;

impl Params {
    /// The built-in parameters only.
    pub fn builtin() -> Params {
        Params::default()
    }

    /// The built-in parameters and `definitions`, checked: a symbol or alias may not repeat
    /// (case-insensitively) any other symbol or alias, units need a positive finite factor,
    /// bounds must be ordered. Definitions live for the rest of the process (they are read
    /// once, at start-up).
    pub fn define(definitions: Vec<Definition>) -> Result<Params, DefinitionError> {
        let mut defined: Vec<Param> = Vec::with_capacity(definitions.len());
        for (i, d) in definitions.into_iter().enumerate() {
            let bad = |field: &'static str, reason: String| DefinitionError {
                index: i,
                field,
                reason,
            };
            if !(1..=NAME_LIMIT).contains(&d.symbol.len())
                || !d
                    .symbol
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'+' | b'-'))
            {
                return Err(bad(
                    "symbol",
                    format!(
                        "{:?} must match [A-Za-z0-9_.+-]{{1,{NAME_LIMIT}}}",
                        d.symbol
                    ),
                ));
            }
            let known = |name: &str| {
                Param::parse(name)
                    .or_else(|| defined.iter().copied().find(|p| p.is_named(name.trim())))
            };
            if let Some(p) = known(&d.symbol) {
                return Err(bad("symbol", format!("{:?} already names {p}", d.symbol)));
            }
            for a in &d.aliases {
                if !printable(a) {
                    return Err(bad(
                        "aliases",
                        format!("{a:?} must be 1 to {NAME_LIMIT} printable characters"),
                    ));
                }
                if let Some(p) = known(a) {
                    return Err(bad("aliases", format!("{a:?} already names {p}")));
                }
                if a.trim().eq_ignore_ascii_case(&d.symbol)
                    || d.aliases
                        .iter()
                        .filter(|b| b.trim().eq_ignore_ascii_case(a.trim()))
                        .count()
                        > 1
                {
                    return Err(bad("aliases", format!("{a:?} is given twice")));
                }
            }
            if d.kinds.is_empty() {
                return Err(bad(
                    "kind",
                    "a parameter belongs to at least one kind".into(),
                ));
            }
            if d.unit.len() > NAME_LIMIT || (!d.unit.is_empty() && !printable(&d.unit)) {
                return Err(bad("unit", format!("{:?} is not a unit spelling", d.unit)));
            }
            for (u, factor) in &d.units {
                if !printable(u) {
                    return Err(bad("units", format!("{u:?} is not a unit spelling")));
                }
                if u.trim().eq_ignore_ascii_case(d.unit.trim()) {
                    return Err(bad("units", format!("{u:?} is the canonical unit itself")));
                }
                if !(factor.is_finite() && *factor > 0.0) {
                    return Err(bad(
                        "units",
                        format!("the factor of {u:?} must be a positive number, not {factor}"),
                    ));
                }
                if d.units
                    .iter()
                    .filter(|(v, _)| v.trim().eq_ignore_ascii_case(u.trim()))
                    .count()
                    > 1
                {
                    return Err(bad("units", format!("{u:?} is given twice")));
                }
            }
            if let Some(m) = d.molar_mass {
                if !(m.is_finite() && m > 0.0) {
                    return Err(bad("molar_mass", format!("{m} must be a positive number")));
                }
            }
            if d.min.is_nan() || d.max.is_nan() || d.min == INF || d.max == -INF || d.min > d.max {
                return Err(bad(
                    "min",
                    format!(
                        "min {} and max {} must be numbers with min ≤ max",
                        d.min, d.max
                    ),
                ));
            }
            let index = Param::ALL.len() + defined.len();
            let index =
                u16::try_from(index).map_err(|_| bad("symbol", "too many parameters".into()))?;
            let o2_correctable = d.kinds == [Kind::Emission] && {
                let u = d.unit.trim().to_ascii_lowercase();
                u.ends_with("/nm3") || u.ends_with("/nm³")
            };
            let spec: &'static Spec = Box::leak(Box::new(Spec {
                index,
                symbol: leak(d.symbol),
                aliases: Box::leak(
                    d.aliases
                        .into_iter()
                        .map(|a| leak(a.trim().to_owned()))
                        .collect::<Vec<_>>()
                        .into_boxed_slice(),
                ),
                kinds: Box::leak(d.kinds.into_boxed_slice()),
                unit: leak(d.unit.trim().to_owned()),
                units: Box::leak(
                    d.units
                        .into_iter()
                        .map(|(u, f)| (leak(u.trim().to_owned()), f))
                        .collect::<Vec<_>>()
                        .into_boxed_slice(),
                ),
                molar_mass: d.molar_mass,
                min: d.min,
                max: d.max,
                o2_correctable,
            }));
            defined.push(Param(spec));
        }
        Ok(Params {
            defined: defined.into(),
        })
    }

    /// A symbol or alias, built-in or defined, case-insensitively.
    pub fn parse(&self, s: &str) -> Option<Param> {
        Param::parse(s).or_else(|| {
            let s = s.trim();
            self.defined.iter().copied().find(|p| p.is_named(s))
        })
    }

    /// Every parameter: the built-in ones in table order, then the defined ones.
    pub fn all(&self) -> impl Iterator<Item = Param> + '_ {
        Param::ALL
            .iter()
            .copied()
            .chain(self.defined.iter().copied())
    }

    /// The parameters the operator defined.
    pub fn defined(&self) -> &[Param] {
        &self.defined
    }

    /// How many parameters there are: every [`Param::index`] is below this.
    pub fn count(&self) -> usize {
        Param::ALL.len() + self.defined.len()
    }
}

/// 1 to [`NAME_LIMIT`] characters, none of them a control character (TAB and line ends
/// separate fields in the text format).
fn printable(s: &str) -> bool {
    let s = s.trim();
    (1..=NAME_LIMIT).contains(&s.len()) && !s.chars().any(char::is_control)
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

#[cfg(test)]
mod tests;
