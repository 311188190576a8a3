//! Issue: a live status page. Headless Chromium loads `/` from a test instance fed a
//! hand-written scenario and from the running demo, as a person's browser would: the
//! exceeding station comes first with its value, limit and ratio; a calibrating station says
//! so; a hostile station id and payload show as text; the screenshot is not blank. The JSON
//! behind the page is checked against the same scenario.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use chrono::Utc;
use quantrac_testkit::chromium::assert_not_blank;
use quantrac_testkit::*;

use crate::QUANTRAC;

const TEXTILE: &str = "env/nam-dinh-vu/nd-textile/outfall-1";
const CHEMICAL: &str = "env/dinh-vu/dv-chem/outfall-1";
const FOOD: &str = "env/dinh-vu/dv-food/outfall-1";

/// Three outfalls under QCVN 40:2011 column B with Kq 0.9, Kf 1.0: COD limit 135 mg/L.
const STATIONS: &str = r#"
[[station]]
park = "nam-dinh-vu"
site = "nd-textile"
station = "outfall-1"
kind = "wastewater"
regulation = "QCVN 40:2011/BTNMT"
column = "B"
kq = 0.9
kf = 1.0

[[station]]
park = "dinh-vu"
site = "dv-chem"
station = "outfall-1"
kind = "wastewater"
regulation = "QCVN 40:2011/BTNMT"
column = "B"
kq = 0.9
kf = 1.0

[[station]]
park = "dinh-vu"
site = "dv-food"
station = "outfall-1"
kind = "wastewater"
regulation = "QCVN 40:2011/BTNMT"
column = "B"
kq = 0.9
kf = 1.0
"#;

fn reading(param: &str, value: f64, unit: &str, status: &str) -> String {
    format!(r#"{{"param":"{param}","value":{value},"unit":"{unit}","status":"{status}"}}"#)
}

fn message(readings: &[String]) -> String {
    let ts = (Utc::now() - chrono::Duration::seconds(5))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    format!(r#"{{"ts":"{ts}","readings":[{}]}}"#, readings.join(","))
}

/// The JSON of `/api/stations`, once `ready` says it shows what was published.
async fn api_when(
    http: &str,
    what: &str,
    ready: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let url = format!("{http}/api/stations");
    eventually(what, Duration::from_secs(30), || {
        let url = url.clone();
        let ready = &ready;
        async move {
            let text = reqwest::get(&url).await.ok()?.text().await.ok()?;
            let v: serde_json::Value = serde_json::from_str(&text).ok()?;
            ready(&v).then_some(v)
        }
    })
    .await
}

fn station<'a>(v: &'a serde_json::Value, site: &str) -> &'a serde_json::Value {
    v["stations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["site"] == site)
        .unwrap_or_else(|| panic!("no station at {site}: {v}"))
}

/// The first row of the "Over a limit now" table.
fn first_over_row(dom: &str) -> &str {
    let table = dom
        .split("<h2>Over a limit now</h2>")
        .nth(1)
        .unwrap_or_else(|| panic!("no 'Over a limit now' section:\n{dom}"));
    let row = table
        .split("<tr class=\"is-over\">")
        .nth(1)
        .unwrap_or_else(|| {
            panic!("nothing over a limit:\n{table}");
        });
    row.split("</tr>").next().unwrap()
}

/// The page's markup holds one script element (its own) and no element a publisher wrote.
fn assert_no_injection(dom: &str) {
    assert_eq!(dom.matches("<script").count(), 1, "{dom}");
    assert!(!dom.contains("<img"), "{dom}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_sees_the_polluter_first_and_hostile_text_as_text() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path());
    let cfg = Quantrac::config_text(dir.path(), &broker.url(), "url = \"\"", "");
    let q = Quantrac::start(QUANTRAC, dir.path(), &cfg, STATIONS);
    q.wait_ready().await;
    let p = Publisher::connect(broker.port).await;
    p.publish(
        TEXTILE,
        message(&[
            reading("COD", 200.0, "mg/L", "00"),
            reading("pH", 7.2, "", "00"),
        ]),
    )
    .await;
    p.publish(CHEMICAL, message(&[reading("COD", 4.0, "mg/L", "01")]))
        .await;
    p.publish(
        FOOD,
        message(&[
            reading("COD", 60.0, "mg/L", "00"),
            reading("<img src=x onerror=alert(1)>", 1.0, "mg/L", "00"),
        ]),
    )
    .await;
    // A hostile station id, and a park named in Vietnamese (not an identifier either).
    p.publish(
        "env/nam-dinh-vu/nd-textile/<script>",
        message(&[reading("COD", 1.0, "mg/L", "00")]),
    )
    .await;
    p.publish(
        "env/Đình-Vũ/Tràng-Duệ/trạm-1",
        message(&[reading("COD", 1.0, "mg/L", "00")]),
    )
    .await;
    p.wait_acked(5).await;

    let v = api_when(&q.http, "the scenario in /api/stations", |v| {
        v["stations"][0]["over_limit"] == true
            && v["stations"]
                .as_array()
                .is_some_and(|s| s.iter().any(|s| s["state"] == "calibrating"))
            && v["rejections"].as_array().is_some_and(|r| r.len() >= 3)
    })
    .await;
    // The JSON: the textile outfall first, its COD first, with value, limit and ratio.
    let first = &v["stations"][0];
    assert_eq!(first["site"], "nd-textile", "{v}");
    let cod = &first["params"][0];
    assert_eq!(cod["param"], "COD");
    assert_eq!(cod["latest"]["value"], 200.0);
    assert_eq!(cod["limit"]["max"], 135.0);
    assert!((cod["latest"]["ratio"].as_f64().unwrap() - 200.0 / 135.0).abs() < 1e-9);
    assert_eq!(cod["over_limit"]["basis"], "reading");
    assert_eq!(station(&v, "dv-chem")["state"], "calibrating");
    let chem_cod = station(&v, "dv-chem")["params"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["param"] == "COD")
        .unwrap();
    assert_eq!(chem_cod["latest"]["status"], "01");
    assert_eq!(
        chem_cod["latest"]["ratio"],
        serde_json::Value::Null,
        "no ratio while calibrating"
    );
    assert_eq!(station(&v, "dv-food")["over_limit"], false);
    let topics: Vec<&str> = v["rejections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["topic"].as_str().unwrap())
        .collect();
    assert!(
        topics.contains(&"env/nam-dinh-vu/nd-textile/<script>"),
        "{topics:?}"
    );
    assert!(
        topics.contains(&"env/Đình-Vũ/Tràng-Duệ/trạm-1"),
        "{topics:?}"
    );
    assert_eq!(v["summary"]["over_limit"], 1);

    // Without JavaScript (a plain request, as a reload gives it): everything is there.
    let plain = reqwest::get(format!("{}/", q.http))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(first_over_row(&plain).contains("148 %"), "{plain}");

    // The page, in a browser.
    let chromium = Chromium::find();
    let dom = chromium.dump_dom(&format!("{}/", q.http));
    let row = first_over_row(&dom);
    assert!(row.contains("nd-textile"), "{row}");
    assert!(row.contains("<b>COD</b>"), "{row}");
    assert!(row.contains("200 mg/L"), "value: {row}");
    assert!(row.contains("≤ 135 mg/L"), "limit: {row}");
    assert!(row.contains("148 %"), "ratio: {row}");
    let chem = dom.split_once("dv-chem").unwrap().1;
    let chem = chem.split("</article>").next().unwrap();
    assert!(
        chem.contains("<span class=\"badge st-calibrating\">⚙ calibrating</span>"),
        "{chem}"
    );
    assert!(
        dom.contains("env/nam-dinh-vu/nd-textile/&lt;script&gt;"),
        "{dom}"
    );
    assert!(dom.contains("env/Đình-Vũ/Tràng-Duệ/trạm-1"), "{dom}");
    assert_no_injection(&dom);

    // The food outfall's own page lists its rejection, escaped.
    let food = chromium.dump_dom(&format!("{}/station/dinh-vu/dv-food/outfall-1", q.http));
    assert!(
        food.contains("&lt;img src=x onerror=alert(1)&gt;"),
        "{food}"
    );
    assert!(food.contains("<svg class=\"chart\""), "{food}");
    assert_no_injection(&food);

    // Left open, the page updates itself (its script fetches it again every 5 s).
    let later = chromium.dump_dom_after(&format!("{}/", q.http), 12_000);
    assert!(
        later.contains("<body data-updates=\""),
        "no live update:\n{later}"
    );
    assert!(first_over_row(&later).contains("148 %"), "{later}");
    assert_no_injection(&later);

    for (name, w, h) in [("desktop", 1280, 1400), ("phone", 412, 915)] {
        let png = dir.path().join(format!("status-{name}.png"));
        chromium.screenshot(&format!("{}/", q.http), &png, w, h);
        assert_not_blank(&chromium, &png, w, h);
    }
}

/// The demo, killed when the test ends.
struct Demo(Child);

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_prints_the_page_first_and_the_page_shows_the_polluter() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(QUANTRAC)
        .args([
            "demo",
            "--mqtt-port",
            "0",
            "--listen",
            "127.0.0.1:0",
            "--dir",
        ])
        .arg(dir.path().join("demo"))
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let _demo = Demo(child);
    // The first line with text on stdout is the page's address.
    let first = tokio::task::spawn_blocking(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .find(|l| !l.trim().is_empty())
    });
    let first = tokio::time::timeout(Duration::from_secs(30), first)
        .await
        .expect("the demo prints within 30 s")
        .unwrap()
        .expect("the demo prints its banner");
    assert!(first.contains("status page"), "{first}");
    let http = first
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no address in {first:?}"));
    let http = format!("http://{}", http.trim_end_matches('/'));

    let v = api_when(&http, "the demo's exceedance and calibration", |v| {
        v["stations"][0]["over_limit"] == true
            && v["stations"]
                .as_array()
                .is_some_and(|s| s.iter().any(|s| s["state"] == "calibrating"))
    })
    .await;
    assert_eq!(v["stations"][0]["site"], "nd-textile", "{v}");

    let chromium = Chromium::find();
    let dom = chromium.dump_dom(&format!("{http}/"));
    let row = first_over_row(&dom);
    assert!(
        row.contains("nd-textile") && row.contains("<b>COD</b>"),
        "{row}"
    );
    assert!(row.contains("≤ 135 mg/L"), "{row}");
    assert!(dom.contains("⚙ calibrating"), "{dom}");
    assert_no_injection(&dom);
    let png = dir.path().join("demo.png");
    chromium.screenshot(&format!("{http}/"), &png, 1280, 1400);
    assert_not_blank(&chromium, &png, 1280, 1400);
}
