//! The uplink's store ([`crate::uplink::Store`]) over the journal's uplink outbox, and what
//! `quantrac uplink preview` shows: a period's readings are the journal's records decoded
//! again, as the compliance windows are rebuilt at start.

use std::sync::{Arc, Mutex};

use anyhow::{bail, Context};

use crate::config::{Settings, Stations};
use crate::decode::Decoder;
use crate::journal::uplink::{AsyncUplinkOutbox, NewFile, UplinkOutbox};
use crate::journal::{self, StoredMessage};
use crate::model::Reading;
use crate::uplink::{self, OutFile, Pending, Plan, StoreError};

/// How long before a period's start its readings may have been received (a datalogger whose
/// clock runs behind, a reading sent ahead of its own time).
const RECEIVED_BEFORE: i64 = 10 * 60 * 1000;

/// The readings of one record whose own time is in `(start_ms, end_ms]`; quantrac's own
/// records (windows) are skipped, inbox files decoded like MQTT messages.
fn readings_of(
    decoder: &mut Decoder,
    m: &StoredMessage,
    start_ms: i64,
    end_ms: i64,
    out: &mut Vec<Reading>,
) {
    if m.topic.starts_with('$') && crate::pipeline::inbox_file_name(&m.topic).is_none() {
        return;
    }
    let decoded = decoder.decode(&m.topic, &m.payload, m.received_at_ms);
    out.extend(
        decoded
            .readings
            .into_iter()
            .filter(|r| r.ts_ms > start_ms && r.ts_ms <= end_ms),
    );
}

/// The journal as the uplink's store.
pub struct UplinkStore {
    outbox: AsyncUplinkOutbox,
    decoder: Arc<Mutex<Decoder>>,
    /// Delivered files are kept this long (`journal.retention_days`), then deleted.
    retention_ms: i64,
    /// When delivered files were last pruned (once a day).
    pruned_at_ms: i64,
}

/// How often delivered files past the retention are deleted.
const PRUNE_EVERY_MS: i64 = 24 * 3600 * 1000;

impl UplinkStore {
    /// Opens the outbox off the runtime's workers (SQLite).
    pub async fn open(settings: &Settings, stations: &Stations) -> anyhow::Result<UplinkStore> {
        let path = settings.journal.path.clone();
        let outbox = tokio::task::spawn_blocking(move || UplinkOutbox::open(&path))
            .await
            .context("opening the journal's uplink outbox")?
            .context("opening the journal's uplink outbox")?;
        Ok(UplinkStore {
            outbox: AsyncUplinkOutbox::new(outbox),
            decoder: Arc::new(Mutex::new(super::recovery::decoder(settings, stations)?)),
            retention_ms: i64::from(settings.journal.retention_days) * 24 * 3600 * 1000,
            pruned_at_ms: 0,
        })
    }
}

fn store_error(e: journal::Error) -> StoreError {
    if e.is_transient() {
        StoreError::Transient(e.to_string())
    } else {
        StoreError::Fatal(e.to_string())
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl uplink::Store for UplinkStore {
    async fn closed_upto(&mut self) -> Result<Option<i64>, StoreError> {
        self.outbox
            .call(|o| o.closed_upto())
            .await
            .map_err(store_error)
    }

    async fn readings(&mut self, start_ms: i64, end_ms: i64) -> Result<Vec<Reading>, StoreError> {
        let decoder = self.decoder.clone();
        self.outbox
            .call(move |o| {
                let mut decoder = decoder
                    .lock()
                    .map_err(|_| journal::Error::Worker("the uplink's decoder panicked".into()))?;
                let mut out = Vec::new();
                o.messages_between(start_ms - RECEIVED_BEFORE, i64::MAX, |m| {
                    readings_of(&mut decoder, &m, start_ms, end_ms, &mut out)
                })?;
                Ok(out)
            })
            .await
            .map_err(store_error)
    }

    async fn close_period(&mut self, end_ms: i64, files: Vec<OutFile>) -> Result<(), StoreError> {
        let files: Vec<NewFile> = files
            .into_iter()
            .map(|f| NewFile {
                station: f.station.to_string(),
                dir: f.dir,
                name: f.name,
                content: f.content,
            })
            .collect();
        let now = now_ms();
        let prune_before =
            (now - self.pruned_at_ms >= PRUNE_EVERY_MS).then(|| now - self.retention_ms);
        self.outbox
            .call(move |o| {
                o.close_period(end_ms, now, &files)?;
                if let Some(before) = prune_before {
                    o.prune_sent(before)?;
                }
                Ok(())
            })
            .await
            .map_err(store_error)?;
        if prune_before.is_some() {
            self.pruned_at_ms = now;
        }
        Ok(())
    }

    async fn backlog(&mut self) -> Result<usize, StoreError> {
        let n = self
            .outbox
            .call(|o| o.backlog())
            .await
            .map_err(store_error)?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }

    async fn pending(&mut self, after_id: u64, limit: usize) -> Result<Vec<Pending>, StoreError> {
        let files = self
            .outbox
            .call(move |o| o.pending(after_id, limit))
            .await
            .map_err(store_error)?;
        Ok(files
            .into_iter()
            .map(|f| Pending {
                id: f.id,
                station: f.station,
                dir: f.dir,
                name: f.name,
                content: f.content,
                refused: f.refused,
            })
            .collect())
    }

    async fn sent(&mut self, id: u64) -> Result<(), StoreError> {
        self.outbox
            .call(move |o| o.sent(id, now_ms()))
            .await
            .map_err(store_error)
    }

    async fn refused(&mut self, id: u64, reason: String) -> Result<(), StoreError> {
        self.outbox
            .call(move |o| o.refused(id, &reason))
            .await
            .map_err(store_error)
    }
}

/// `quantrac uplink preview`: the file the uplink makes for `station` (its `park/site/station`,
/// its id or its `uplink_code`) for the period holding `at` (default: the last period that
/// ended), from the journal, read-only. Returns its path below the URL's base and its content,
/// or `None` when the period has no reading of the station (and `send_empty` is off).
pub fn preview(
    settings: &Settings,
    station: &str,
    at_ms: Option<i64>,
) -> anyhow::Result<(String, Option<Vec<u8>>)> {
    let Some(up) = &settings.uplink else {
        bail!("no [uplink] section in the configuration: the uplink is off");
    };
    let stations = settings.load_stations()?;
    let matches: Vec<_> = stations
        .iter()
        .filter(|s| {
            s.key.to_string() == station || s.key.station() == station || s.uplink_code == station
        })
        .collect();
    let chosen = match matches.as_slice() {
        [one] => *one,
        [] => bail!(
            "no station {station:?} (give park/site/station, the station id or its uplink_code)"
        ),
        _ => bail!("{station:?} names several stations: give park/site/station"),
    };
    if !chosen.uplink {
        bail!(
            "station {} has uplink = false: no file is sent for it",
            chosen.key
        );
    }
    let tz = settings.stations.timezone;
    let plan = Plan::new(up, &stations, tz);
    let p = plan.period_ms;
    let end = match at_ms {
        Some(t) => uplink::period::end_of(t, p, tz),
        None => uplink::period::end_of(now_ms(), p, tz) - p,
    };
    let mut decoder = super::recovery::decoder(settings, &stations)?;
    let mut readings = Vec::new();
    journal::uplink::messages_between(
        &settings.journal.path,
        end - p - RECEIVED_BEFORE,
        i64::MAX,
        &mut |m| readings_of(&mut decoder, &m, end - p, end, &mut readings),
    )
    .with_context(|| format!("reading the journal in {}", settings.journal.path.display()))?;
    let plan = plan.only(chosen.key.clone(), chosen.uplink_code.clone());
    let file = plan.files(end, &readings).into_iter().next();
    let (name, dir) = up.templates();
    let parts = crate::model::file_template::NameParts {
        province: &up.province,
        facility: &up.facility,
        station: &chosen.uplink_code,
        time: uplink::period::local(end, tz),
    };
    let path = uplink::ftp::join(&[&dir.render(&parts), &name.render(&parts)]);
    Ok((path, file.map(|f| f.content)))
}
