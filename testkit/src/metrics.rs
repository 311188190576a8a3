//! Reading quantrac's `/metrics` (Prometheus text exposition).

use std::collections::HashMap;

/// Finds `sample` (e.g. `quantrac_readings_rejected_total{reason="unit"}`) in a scrape. Labels
/// given in `sample` must all be present in the line, in any order.
pub fn parse_metric(text: &str, sample: &str) -> Option<f64> {
    let (name, labels) = match sample.find('{') {
        Some(i) => (
            &sample[..i],
            sample[i + 1..sample.len() - 1]
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>(),
        ),
        None => (sample, vec![]),
    };
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            let n = l.split(['{', ' ']).next().unwrap_or("");
            n == name && labels.iter().all(|lab| l.contains(lab))
        })
        .find_map(|l| l.rsplit(' ').next().and_then(|v| v.parse().ok()))
}

/// Every metric of a scrape, summed over its label sets.
pub fn sum_by_name(text: &str) -> HashMap<String, f64> {
    let mut out = HashMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let name_end = line.find(['{', ' ']).unwrap_or(line.len());
        let value = line.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok());
        if let Some(v) = value {
            *out.entry(line[..name_end].to_owned()).or_insert(0.0) += v;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCRAPE: &str = "# HELP quantrac_readings_rejected_total Readings refused.\n\
        quantrac_readings_rejected_total{reason=\"unit\",park=\"p\"} 2\n\
        quantrac_readings_rejected_total{reason=\"value\",park=\"p\"} 3\n\
        quantrac_mqtt_connected 1\n";

    #[test]
    fn a_sample_is_found_by_name_and_any_subset_of_its_labels() {
        assert_eq!(
            parse_metric(
                SCRAPE,
                r#"quantrac_readings_rejected_total{park="p",reason="value"}"#
            ),
            Some(3.0)
        );
        assert_eq!(parse_metric(SCRAPE, "quantrac_mqtt_connected"), Some(1.0));
        assert_eq!(parse_metric(SCRAPE, "quantrac_mqtt"), None);
    }

    #[test]
    fn sums_add_every_label_set() {
        let m = sum_by_name(SCRAPE);
        assert_eq!(m["quantrac_readings_rejected_total"], 5.0);
        assert_eq!(m["quantrac_mqtt_connected"], 1.0);
    }
}
