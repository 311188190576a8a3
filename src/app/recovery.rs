//! Work on the journal outside the running pipeline: rebuilding compliance windows at
//! start-up, and `dead-letters replay`. Both block on SQLite, so both are plain functions that
//! the caller runs on a thread of its own (`spawn_blocking`, or the CLI's main thread), never
//! on a runtime worker.

use anyhow::Context;

use crate::compliance::{self, Catalogue, Engine};
use crate::config::{Settings, Stations};
use crate::decode::{Decoder, FileNames, StationFilter, TRUNCATED};
use crate::journal::{self, Journal};
use crate::pipeline::{Envelope, Processed};
use crate::sink;

use super::lock::JournalLock;

/// The compliance engine for these settings and stations.
pub fn engine(settings: &Settings, stations: Stations) -> Engine {
    Engine::new(stations, &Catalogue::builtin(), settings.stations.timezone)
}

/// The decoder for these settings: the topic templates, the stations' parameter table,
/// taking the readings of `stations` and of unknown stations as `[stations] unknown` says,
/// and, with `[inbox]`, how file names name the stations.
pub fn decoder(settings: &Settings, stations: &Stations) -> anyhow::Result<Decoder> {
    let filter = StationFilter::new(
        stations.iter().map(|s| s.key.clone()),
        settings.stations.unknown,
        settings.stations.max_unknown_stations,
    );
    let mut decoder = Decoder::new(
        &settings.mqtt.topics,
        settings.stations.timezone,
        settings.mqtt.max_payload_bytes,
    )
    .context("mqtt.topics")?
    .with_params(stations.params.clone())
    .with_stations(filter);
    if let Some(inbox) = &settings.inbox {
        let codes = stations
            .iter()
            .map(|s| (s.uplink_code.clone(), s.key.clone()));
        let files = FileNames::new(
            &inbox.pattern,
            inbox.province.as_deref(),
            inbox.facility.as_deref(),
            codes,
        )
        .map_err(anyhow::Error::msg)
        .context("[inbox]")?;
        decoder = decoder.with_files(files);
    }
    Ok(decoder)
}

/// Lines for the journal's outbox: one `reading` point per judged reading, one `average` point
/// per window the message changed. The renderers refuse only non-finite values, which cannot get
/// this far: `decode` rejects them (reason `value`) and O2 correction is not applied at O2 ≥ 20.
pub fn render_points(p: &Processed) -> Vec<String> {
    p.readings
        .iter()
        .filter_map(sink::line::reading_line)
        .chain(p.averages.iter().filter_map(sink::line::average_line))
        .collect()
}

/// Rebuilds compliance windows from the journal, so a restart in the middle of a window loses
/// no sample: the messages of the late-data horizon are decoded again and fed to the engine.
/// Messages are read one at a time; only their readings are kept.
///
/// Window points are journaled once per tick (see `compliance::run`), so readings committed
/// after the last windows record may have changed windows whose points never reached the
/// journal. Those readings are judged again here, and the windows they touch are committed now.
pub fn rebuild_windows(
    journal: &mut Journal,
    decoder: &mut Decoder,
    engine: &mut Engine,
) -> anyhow::Result<()> {
    let now = chrono::Utc::now().timestamp_millis();
    let since = now - engine.late_horizon_ms();
    let last_windows_record = journal
        .last_message_with_topic(compliance::WINDOWS_TOPIC, since)?
        .unwrap_or(0);
    let started = std::time::Instant::now();
    let covered = load_engine_state(journal, engine, since, now)?;
    let mut after = Vec::new();
    let (mut messages, mut n) = (0usize, 0usize);
    journal.each_message_after(covered, since, |m| {
        messages += 1;
        // quantrac's own records (windows); inbox files (`$inbox/…`) are decoded like MQTT
        // messages.
        if m.topic.starts_with('$') && crate::pipeline::inbox_file_name(&m.topic).is_none() {
            return;
        }
        let readings = decoder
            .decode(&m.topic, &m.payload, m.received_at_ms)
            .readings;
        if m.id <= last_windows_record {
            // Message by message, in journal order (the order they arrived in): only one
            // message's readings are held at a time.
            n += readings.len();
            engine.restore_part(readings, now);
        } else {
            after.push(readings);
        }
    })?;
    let rejudged = after.len();
    engine.restore_done(now);
    let mut pending = compliance::PendingWindows::default();
    for readings in after {
        let (_, averages) = engine.judge(readings, now);
        pending.add(averages);
    }
    if let Some(record) = pending.take_record(now) {
        journal.append(&[journal::Entry::of(&record, render_points(&record))])?;
    }
    if messages > 0 || covered > 0 {
        tracing::info!(
            from_saved_state = covered > 0,
            messages,
            readings = n,
            rejudged,
            ms = started.elapsed().as_millis() as u64,
            "compliance windows rebuilt from the journal"
        );
    }
    Ok(())
}

/// Loads the state kept last (while running or at a clean stop; see `journal::engine_state`)
/// when it fits this journal and configuration. Returns the last record it covers (0: none
/// loaded, every record of the horizon is replayed).
fn load_engine_state(
    journal: &Journal,
    engine: &mut Engine,
    since: i64,
    now: i64,
) -> anyhow::Result<u64> {
    let saved = match journal::engine_state::read(journal.dir()) {
        Ok(Some(saved)) => saved,
        Ok(None) => return Ok(0),
        Err(why) => {
            tracing::warn!(
                why,
                "saved compliance state not used; rebuilding from the journal"
            );
            return Ok(0);
        }
    };
    let why = if saved.state.fingerprint != engine.fingerprint() {
        "it was made under another configuration or version".to_string()
    } else if saved.made_at_ms < since {
        "it is older than the late-data horizon".to_string()
    } else if journal.message_hash(saved.covers_id)? != Some(saved.covers_hash) {
        format!(
            "the journal does not hold the record it covers (#{}) as it was",
            saved.covers_id
        )
    } else {
        match engine.load_state(&saved.state.bytes, now) {
            Ok(()) => return Ok(saved.covers_id),
            Err(e) => e.to_string(),
        }
    };
    tracing::info!(
        why,
        "saved compliance state not used; rebuilding from the journal"
    );
    Ok(0)
}

/// `quantrac dead-letters replay`: decodes and judges every dead letter not yet replayed with
/// the current configuration, and commits the outcome as new journal records (the original
/// records stay, as evidence). The service ships the new points to InfluxDB when it runs.
/// Blocks (SQLite); holds the journal's lock, so it cannot run beside the service.
pub fn replay_dead_letters(settings: &Settings) -> anyhow::Result<usize> {
    let _lock = JournalLock::acquire(&settings.journal.path)?;
    let stations = settings.load_stations()?;
    let mut decoder = decoder(settings, &stations)?;
    let mut engine = engine(settings, stations);
    let mut journal = Journal::open(&settings.journal.path, settings.journal.durable)?;
    rebuild_windows(&mut journal, &mut decoder, &mut engine)?;
    let (letters, excerpts): (Vec<_>, Vec<_>) =
        journal::dead_letters(&settings.journal.path, usize::MAX)?
            .into_iter()
            .filter(|d| !d.replayed)
            .partition(|d| {
                !d.reasons
                    .iter()
                    .any(|(reason, detail)| reason == "too_large" && detail.contains(TRUNCATED))
            });
    // Only an excerpt of an oversized payload was kept: there is nothing whole to replay.
    for d in &excerpts {
        println!(
            "#{} {}: too large when received; only an excerpt was kept, not replayed",
            d.id, d.topic
        );
    }
    let now = chrono::Utc::now().timestamp_millis();
    let mut processed = Vec::new();
    for d in &letters {
        let decoded = decoder.decode(&d.topic, &d.payload, d.received_at_ms);
        let (readings, averages) = engine.judge(decoded.readings, now);
        println!(
            "#{} {}: {} readings accepted, {} still rejected",
            d.id,
            d.topic,
            readings.len(),
            decoded.rejections.len()
        );
        for r in &decoded.rejections {
            println!("  {}: {}", r.reason.as_label(), r.detail);
        }
        processed.push(Processed {
            envelope: Envelope::internal(d.topic.clone(), d.payload.clone(), now),
            key: decoded.key,
            readings,
            rejections: decoded.rejections,
            averages,
            engine_state: None,
        });
    }
    let entries: Vec<journal::Entry> = processed
        .iter()
        .map(|p| journal::Entry::of(p, render_points(p)))
        .collect();
    if !entries.is_empty() {
        // Replays are never skipped as duplicates (`Envelope::internal`), so the batch's
        // records are numbered in the order of `letters`.
        let committed = journal.append(&entries)?;
        let replays: Vec<(u64, u64)> = letters
            .iter()
            .zip(committed.first_id..)
            .map(|(d, new)| (d.id, new))
            .collect();
        for &(original, new) in &replays {
            println!("#{original} is now record #{new}");
        }
        journal::mark_replayed(&settings.journal.path, &replays, now)?;
    }
    Ok(letters.len())
}
