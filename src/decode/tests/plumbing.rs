//! Decoder plumbing: topic templates and their filters, the topic cache, quoting of hostile
//! text in rejection details.

use super::*;

#[test]
fn filters_come_from_templates_without_duplicates() {
    let dec = Decoder::new(
        &[
            "env/{park}/{site}/{station}".to_owned(),
            "env/{site}/{park}/{station}".to_owned(),
            "dl/{park}/{site}/{station}/txt".to_owned(),
        ],
        HCM,
        1024,
    )
    .unwrap();
    assert_eq!(dec.filters(), ["env/+/+/+", "dl/+/+/+/txt"]);
}

#[test]
fn multiple_templates_each_name_their_station() {
    let mut dec = Decoder::new(
        &[
            "env/{park}/{site}/{station}".to_owned(),
            "dl/{park}/{site}/{station}/txt".to_owned(),
        ],
        HCM,
        1024,
    )
    .unwrap();
    let d = dec.decode(
        "dl/nam-dinh-vu/nd-textile/outfall-1/txt",
        b"COD\t1\tmg/L\t20261129140500\t00",
        RECV,
    );
    assert_eq!(d.key, Some(key()));
    assert_eq!(d.readings[0].key, key());
    let d = dec.decode("dl/a/b/c", b"", RECV);
    only_rejection(&d, Reason::Topic);
}

#[test]
fn bad_templates_fail_construction() {
    for t in [
        "env/+/{site}/{station}",
        "env/{park}/{site}",
        "env/{park}/x{site}/{station}",
    ] {
        assert!(Decoder::new(&[t.to_owned()], HCM, 1024).is_err(), "{t}");
    }
    assert!(matches!(
        Decoder::new(&[], HCM, 1024),
        Err(TemplateError::NoTemplates)
    ));
}

#[test]
fn topic_cache_is_bounded() {
    let mut dec = decoder();
    for i in 0..KEY_CACHE_LIMIT + 5 {
        let d = dec.decode(&format!("env/p/s/st{i}"), b"", RECV);
        assert_eq!(
            d.key.as_ref().map(|k| k.station().to_owned()),
            Some(format!("st{i}"))
        );
    }
    assert!(dec.keys.len() <= KEY_CACHE_LIMIT);
    assert_eq!(dec.keys.len(), 5);
    // A cached topic gives the same key as a fresh match.
    let a = dec.decode("env/p/s/st0", b"", RECV).key;
    let b = dec.decode("env/p/s/st0", b"", RECV).key;
    assert_eq!(a, b);
}

#[test]
fn hostile_text_in_details_is_quoted_and_cut_short() {
    let long = "x\"".repeat(200);
    let d = one(&format!(
        r#"{{"param": "{}", "value": 1}}"#,
        long.replace('"', "\\\"")
    ));
    let r = only_rejection(&d, Reason::UnknownParam);
    assert!(r.detail.len() < 250, "{}", r.detail);
    assert!(r.detail.contains('…'));
}
