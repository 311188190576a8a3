//! Fixtures shared by quantrac's unit tests, integration tests and benchmark: one text of each,
//! variants built from it here.

/// The contract's example outfall: QCVN 40:2011 column B, Kq 0.9, Kf 1.0, every 5 minutes.
macro_rules! outfall {
    () => {
        r#"
[[station]]
park = "nam-dinh-vu"
site = "nd-textile"
station = "outfall-1"
kind = "wastewater"
regulation = "QCVN 40:2011/BTNMT"
column = "B"
kq = 0.9
kf = 1.0
expected_interval_s = 300
"#
    };
}

/// The contract's example stack (QCVN 19:2009 column B, Kp 0.9, Kv 1.0, 7 % O2), up to its
/// expected interval.
macro_rules! stack {
    () => {
        r#"
[[station]]
park = "dinh-vu"
site = "dv-steel"
station = "stack-1"
kind = "emission"
regulation = "QCVN 19:2009/BTNMT"
column = "B"
kp = 0.9
kv = 1.0
o2_ref = 7.0
"#
    };
}

/// The stack's permit values, stricter than the table.
macro_rules! stack_limits {
    () => {
        r#"[station.limits]
PM = 100
SO2 = { max = 300 }
"#
    };
}

/// The contract's example `stations.toml`: a textile outfall in Nam Đình Vũ and a steel mill's
/// stack in Đình Vũ (expected every 300 s, the default), with its permit limits.
pub const CONTRACT_STATIONS: &str = concat!(outfall!(), stack!(), stack_limits!());

/// The integration tests' `stations.toml`: [`CONTRACT_STATIONS`] with the stack expected every
/// minute.
pub const STATIONS: &str = concat!(
    outfall!(),
    stack!(),
    "expected_interval_s = 60\n",
    stack_limits!()
);

/// A JSON payload in the contract's format: `ts` and `(param, value, unit)` readings, the
/// unit left out when empty.
pub fn json_message(ts: &str, readings: &[(&str, f64, &str)]) -> String {
    let rs: Vec<String> = readings
        .iter()
        .map(|(p, v, u)| {
            if u.is_empty() {
                format!(r#"{{"param":"{p}","value":{v}}}"#)
            } else {
                format!(r#"{{"param":"{p}","value":{v},"unit":"{u}"}}"#)
            }
        })
        .collect();
    format!(r#"{{"ts":"{ts}","readings":[{}]}}"#, rs.join(","))
}

/// `stations.toml` for a province of `n` wastewater stations (QCVN 40:2011 column B, Kq 0.9,
/// Kf 1.0) reporting every minute, spread over 10 parks and 100 sites: station `i` is
/// `p{i % 10}/s{i % 100}/outfall-{i}` (the province-scale benchmarks).
pub fn province_stations_toml(n: usize) -> String {
    let mut s = String::with_capacity(n * 220);
    for i in 0..n {
        s.push_str(&format!(
            "[[station]]\npark = \"p{}\"\nsite = \"s{}\"\nstation = \"outfall-{i}\"\nkind = \"wastewater\"\n\
             regulation = \"QCVN 40:2011/BTNMT\"\ncolumn = \"B\"\nkq = 0.9\nkf = 1.0\nexpected_interval_s = 60\n\n",
            i % 10,
            i % 100
        ));
    }
    s
}
