//! The parameter table: symbols, aliases, units, bounds, and operator-defined parameters.

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
fn the_table_is_dense_and_every_spelling_names_one_parameter() {
    for (i, p) in Param::ALL.iter().enumerate() {
        assert_eq!(p.index(), i, "{p}");
        assert!(!p.is_defined());
    }
    let mut names: Vec<String> = Vec::new();
    for p in Param::ALL {
        for name in std::iter::once(&p.symbol()).chain(p.aliases()) {
            let lower = name.to_ascii_lowercase();
            assert!(!names.contains(&lower), "{name} names two parameters");
            names.push(lower);
            assert_eq!(Param::parse(name), Some(*p), "{name}");
        }
    }
}

#[test]
fn circular_10_2021_table_34_symbols_are_all_known() {
    // Annex 15, Table 34 of Circular 10/2021/TT-BTNMT, as dataloggers write it (PM2,5 with
    // a decimal comma); regulations.md §3 (S41).
    for s in [
        "Flow", "Temp", "Color", "pH", "TSS", "COD", "NH4", "TP", "TN", "TOC", "Cl", "RH", "P",
        "NO", "NO2", "CO", "SO2", "O2", "H2S", "NH3", "VHg", "PM", "O3", "PM10", "PM2,5",
    ] {
        assert!(Param::parse(s).is_some(), "{s}");
    }
}

#[test]
fn field_spellings_name_the_same_parameters() {
    assert_eq!(Param::parse("PM2,5"), Some(Param::PM25));
    assert_eq!(Param::parse("PM2.5"), Some(Param::PM25));
    assert_eq!(Param::PM25.symbol(), "PM2.5");
    assert_eq!(Param::parse("NH4+"), Some(Param::NH4));
    assert_eq!(Param::parse("N-NH4"), Some(Param::NH4));
    assert_eq!(Param::parse("TURB"), Some(Param::Turbidity));
    assert_eq!(Param::parse(" Turbidity "), Some(Param::Turbidity));
    assert_eq!(Param::Turbidity.canonical_unit(), "NTU");
    assert_eq!(Param::parse("temperature"), Some(Param::Temp));
    assert_eq!(Param::parse("Dust"), Some(Param::PM));
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
    assert!(Param::PM25.o2_correctable());
    assert!(!Param::O2.o2_correctable());
    assert!(!Param::RH.o2_correctable());
    assert!(!Param::COD.o2_correctable());
}

fn benzene() -> Definition {
    Definition {
        symbol: "Benzene".into(),
        aliases: vec!["C6H6".into()],
        kinds: vec![Kind::Emission],
        unit: "mg/Nm3".into(),
        units: vec![("ug/Nm3".into(), 1.0e-3)],
        molar_mass: Some(78.11),
        min: 0.0,
        max: 1000.0,
    }
}

#[test]
fn a_defined_parameter_parses_converts_and_follows_the_built_in_ones() {
    let params = Params::define(vec![benzene()]).unwrap();
    let b = params.parse("c6h6").unwrap();
    assert_eq!(b.symbol(), "Benzene");
    assert_eq!(params.parse("BENZENE"), Some(b));
    assert_eq!(b.index(), Param::ALL.len());
    assert!(b.is_defined());
    assert_eq!(params.count(), Param::ALL.len() + 1);
    assert_eq!(params.all().last(), Some(b));
    assert_eq!(b.unit_factor("ug/Nm3"), Some(1.0e-3));
    assert_eq!(b.unit_factor("mg/Nm3"), Some(1.0));
    assert_eq!(b.unit_factor(""), Some(1.0));
    assert_eq!(b.unit_factor("ppm"), Some(78.11 / MOLAR_VOLUME_L));
    assert_eq!(b.unit_factor("mg/L"), None);
    assert_eq!(b.physical_range(), (0.0, 1000.0));
    assert!(b.o2_correctable(), "an emission concentration in mg/Nm3");
    assert!(b > Param::Turbidity && b != Param::COD);
    // The built-in table alone does not know it.
    assert_eq!(Param::parse("Benzene"), None);
    assert_eq!(Params::builtin().parse("Benzene"), None);
    assert_eq!(params.parse("COD"), Some(Param::COD));
}

#[test]
fn a_definition_that_clashes_or_is_malformed_is_refused() {
    let cases: Vec<(Definition, &str)> = vec![
        (
            Definition {
                symbol: "cod".into(),
                ..benzene()
            },
            "symbol",
        ),
        (
            Definition {
                symbol: "Ben zene".into(),
                ..benzene()
            },
            "symbol",
        ),
        (
            Definition {
                aliases: vec!["PM2,5".into()],
                ..benzene()
            },
            "aliases",
        ),
        (
            Definition {
                aliases: vec!["a\tb".into()],
                ..benzene()
            },
            "aliases",
        ),
        (
            Definition {
                kinds: vec![],
                ..benzene()
            },
            "kind",
        ),
        (
            Definition {
                units: vec![("ppb".into(), 0.0)],
                ..benzene()
            },
            "units",
        ),
        (
            Definition {
                units: vec![("mg/nm3".into(), 2.0)],
                ..benzene()
            },
            "units",
        ),
        (
            Definition {
                molar_mass: Some(-1.0),
                ..benzene()
            },
            "molar_mass",
        ),
        (
            Definition {
                min: 5.0,
                max: 1.0,
                ..benzene()
            },
            "min",
        ),
    ];
    for (d, field) in cases {
        let e = Params::define(vec![d.clone()]).unwrap_err();
        assert_eq!(e.field, field, "{d:?}: {e}");
    }
    let twice = Params::define(vec![
        benzene(),
        Definition {
            aliases: vec![],
            ..benzene()
        },
    ]);
    assert_eq!(twice.unwrap_err().index, 1);
}
