//! The stage against a store in memory and a server that cannot be reached: periods are
//! closed from the store's readings and committed before any upload; nothing is lost while
//! the server is away; every attempt is counted.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::*;
use crate::config::{Stations, UplinkSettings};
use crate::metrics::Metrics;
use crate::model::{Param, StationKey, Status};
use crate::shutdown::CancellationToken;

#[derive(Default)]
struct State {
    closed: Option<i64>,
    closes: Vec<(i64, usize)>,
    files: Vec<Pending>,
    readings_asked: usize,
}

#[derive(Clone, Default)]
struct MemoryStore(Arc<Mutex<State>>);

impl Store for MemoryStore {
    async fn closed_upto(&mut self) -> Result<Option<i64>, StoreError> {
        Ok(self.0.lock().unwrap().closed)
    }
    async fn readings(&mut self, start_ms: i64, end_ms: i64) -> Result<Vec<Reading>, StoreError> {
        self.0.lock().unwrap().readings_asked += 1;
        // One COD reading every 250 ms of the range.
        let key = StationKey::parse("p", "s", "outfall-1").unwrap();
        Ok((start_ms + 1..=end_ms)
            .step_by(250)
            .map(|ts_ms| Reading {
                key: key.clone(),
                param: Param::parse("COD").unwrap(),
                ts_ms,
                value: Some(40.0),
                status: Status::Normal,
            })
            .collect())
    }
    async fn close_period(&mut self, end_ms: i64, files: Vec<OutFile>) -> Result<(), StoreError> {
        let mut s = self.0.lock().unwrap();
        assert!(s.closed.is_none_or(|c| c < end_ms), "a period closed twice");
        s.closed = Some(end_ms);
        s.closes.push((end_ms, files.len()));
        for f in files {
            let id = s.files.len() as u64 + 1;
            s.files.push(Pending {
                id,
                station: f.station.to_string(),
                dir: f.dir,
                name: f.name,
                content: f.content,
                refused: None,
            });
        }
        Ok(())
    }
    async fn pending(&mut self, after_id: u64, limit: usize) -> Result<Vec<Pending>, StoreError> {
        let s = self.0.lock().unwrap();
        Ok(s.files
            .iter()
            .filter(|f| f.id > after_id)
            .take(limit)
            .cloned()
            .collect())
    }
    async fn backlog(&mut self) -> Result<usize, StoreError> {
        Ok(self.0.lock().unwrap().files.len())
    }
    async fn sent(&mut self, _id: u64) -> Result<(), StoreError> {
        panic!("nothing can be sent: the server is unreachable")
    }
    async fn refused(&mut self, _id: u64, _reason: String) -> Result<(), StoreError> {
        panic!("nothing can be refused: the server is unreachable")
    }
}

fn stations() -> Stations {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stations.toml");
    std::fs::write(
        &path,
        "[[station]]\npark = \"p\"\nsite = \"s\"\nstation = \"outfall-1\"\nkind = \"wastewater\"\n",
    )
    .unwrap();
    Stations::load_with(
        &path,
        &crate::config::ComplianceSettings::default().station_defaults(),
        crate::model::Params::builtin(),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn periods_are_committed_before_upload_and_wait_while_the_server_is_away() {
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let settings: UplinkSettings = toml::from_str(&format!(
        "url = \"ftp://127.0.0.1:{closed_port}/\"\nusername = \"u\"\nprovince = \"HP\"\n\
         facility = \"F\"\nperiod_s = 1\ndelay_s = 0\n"
    ))
    .unwrap();
    let plan = Plan::new(&settings, &stations(), chrono_tz::Asia::Ho_Chi_Minh);
    let store = MemoryStore::default();
    let metrics = Metrics::new();
    let stop = CancellationToken::new();
    let stage = tokio::spawn(run(
        store.clone(),
        Options { settings, plan },
        metrics.clone(),
        stop.clone(),
    ));
    tokio::time::sleep(Duration::from_millis(3500)).await;
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(5), stage)
        .await
        .expect("the stage stops when told")
        .unwrap()
        .unwrap();

    let s = store.0.lock().unwrap();
    // The first closing records where the uplink starts (no file), then one period a second.
    assert_eq!(s.closes[0].1, 0, "{:?}", s.closes);
    assert!(s.closes.len() >= 3, "{:?}", s.closes);
    for pair in s.closes.windows(2) {
        assert_eq!(pair[1].0 - pair[0].0, 1000, "{:?}", s.closes);
    }
    assert!(s.closes[1..].iter().all(|(_, files)| *files == 1));
    assert_eq!(s.files.len(), s.closes.len() - 1);
    assert!(s.files[0].name.starts_with("HP_F_outfall-1_"));
    assert!(String::from_utf8_lossy(&s.files[0].content).starts_with("COD\t40\tmg/L\t"));
    let unreachable = metrics
        .uplink_files
        .with_label_values(&["unreachable"])
        .get();
    assert!(unreachable >= 1, "{unreachable}");
    // Counted when the stage last looked (a backoff may hold the newest files back).
    let backlog = metrics.uplink_backlog.get() as usize;
    assert!((1..=s.files.len()).contains(&backlog), "{backlog}");
}
