//! The journal's cost, measured (ignored by default: it prints figures).

use super::*;

/// Measures the cost of the journal for realistic messages: JSON ~400 bytes with 8 readings,
/// 8 line-protocol points of ~200 bytes. `cargo test --release --lib journal::tests::measure
/// -- --ignored --nocapture`.
#[test]
#[ignore]
fn measure_commit_time_and_bytes_per_reading() {
    const PARAMS: [&str; 8] = ["PM", "SO2", "NOx", "CO", "O2", "Temp", "Flow", "P"];
    let dir = tempfile::tempdir().unwrap();
    let json = {
        let mut s = String::from(r#"{"ts":"2026-11-29T14:05:00+07:00","readings":["#);
        for (k, p) in PARAMS.iter().enumerate() {
            if k > 0 {
                s.push(',');
            }
            s.push_str(&format!(
                r#"{{"param":"{p}","value":{}.25,"unit":"mg/Nm3"}}"#,
                100 + k
            ));
        }
        s.push_str("]}");
        s
    };
    let line = |m: u64, k: usize| {
        format!("reading,park=dinh-vu,site=dv-steel,station=stack-{},param={} value={m}.25,value_ref={m}.75,unit=\"mg/Nm3\",status=\"00\",limit_max=500,ratio=0.2{k},exceeded=false {}", m % 50, PARAMS[k], T0 + m as i64)
    };
    println!(
        "payload {} bytes, point line {} bytes",
        json.len(),
        line(12345, 3).len()
    );
    // The hashing share of a commit.
    let pts: Vec<(u64, String)> = (0..8).map(|k| (k as u64, line(1, k))).collect();
    let t = std::time::Instant::now();
    let mut h = chain::GENESIS;
    for m in 0..1000u64 {
        let r = chain::RecordRef {
            id: m,
            received_at_ms: T0,
            topic: "env/dinh-vu/dv-steel/stack-1",
            payload: json.as_bytes(),
            station: Some("dinh-vu/dv-steel/stack-1"),
        };
        h = chain::record_hash(&h, r, &[], &pts);
    }
    println!("hashing 1000 records: {:?}", t.elapsed());
    for durable in [false, true] {
        let sub = dir.path().join(if durable { "durable" } else { "fast" });
        let mut j = Journal::open(&sub, durable).unwrap();
        let batches = 20u64;
        let mut times = vec![];
        for b in 0..batches {
            let batch: Vec<Entry> = (0..1000u64)
                .map(|i| {
                    let m = b * 1000 + i;
                    Entry {
                        received_at_ms: T0 + m as i64,
                        topic: "env/dinh-vu/dv-steel/stack-1",
                        payload: json.as_bytes(),
                        station: Some("dinh-vu/dv-steel/stack-1".into()),
                        rejections: &[],
                        points: (0..8).map(|k| line(m, k)).collect(),
                        once: false,
                    }
                })
                .collect();
            let t = std::time::Instant::now();
            j.append(&batch).unwrap();
            times.push(t.elapsed());
        }
        times.sort();
        let size = j.size_bytes().unwrap();
        raw(&sub)
            .execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
            .unwrap();
        let file = std::fs::metadata(db_path(&sub)).unwrap().len();
        println!(
            "durable={durable}: 1000 msgs x 8 points per commit: median {:?}, max {:?}; \
             {} bytes used before checkpoint, db file {} bytes = {:.0} bytes/reading",
            times[times.len() / 2],
            times[times.len() - 1],
            size,
            file,
            file as f64 / (batches * 8000) as f64
        );
    }
}
