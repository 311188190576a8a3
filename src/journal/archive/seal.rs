//! Sealing: the journal's records of every local day that is over, written as segments.

use std::io::Write as _;

use base64::Engine as _;
use rusqlite::{Connection, OptionalExtension};
use sha2::{Digest, Sha256};

use super::{
    day_start_ms, local_day, manifest_file, rfc3339_ms, segment_file, segment_name, write_once,
    Archive, Line, LinePoint, LineRejection, Manifest, Sealed, SegmentSignature, FORMAT,
};
use crate::journal::schema::{self, key, to_i64};
use crate::journal::Error;

/// The most records one segment holds. Sealing runs on the journal's thread between commits
/// and writes a few thousand records a second, so a part of a day takes seconds, where a whole
/// day of 10,000 stations (14.4 million records) would hold commits for most of an hour.
pub(crate) const SEGMENT_MAX_RECORDS: u64 = 10_000;

/// Seals, oldest first, up to `max` segments of local days that ended at or before `now_ms`
/// (a day in segments of at most [`SEGMENT_MAX_RECORDS`]), continuing
/// from the archive's end (or the chain base, when the archive ends before it). Returns how
/// many segments were written.
pub(crate) fn seal_finished_days(
    conn: &Connection,
    archive: &mut Archive,
    now_ms: i64,
    max: usize,
) -> Result<usize, Error> {
    let base_id = schema::get_u64(conn, key::BASE_ID)?;
    let base_hash = schema::get_hash(conn, key::BASE_HASH)?;
    let recorded_from = schema::get_u64_opt(conn, key::ARCHIVE_FROM)?;
    let mut written = 0;
    while written < max {
        let (start, prev) = match archive.end() {
            Some((id, hash)) if id >= base_id => (id + 1, hash),
            // Records up to the base were pruned, so sealed: segments went missing. The
            // archive is not continued over the hole (pruning stops; `verify` names it).
            Some((id, _)) => return Err(lost(archive, id + 1, base_id)),
            None => match recorded_from {
                Some(from) if from <= base_id => return Err(lost(archive, from, base_id)),
                _ => (base_id + 1, base_hash),
            },
        };
        let first_at: Option<i64> = conn
            .prepare_cached("SELECT received_at_ms FROM messages WHERE id = ?1")?
            .query_row([to_i64(start)?], |r| r.get(0))
            .optional()?;
        let Some(first_at) = first_at else {
            return Ok(written);
        };
        let day = local_day(first_at, archive.tz);
        let Some(next_day) = day.succ_opt() else {
            return Ok(written);
        };
        let day_end = day_start_ms(next_day, archive.tz);
        if day_end > now_ms {
            return Ok(written);
        }
        let next: Option<i64> = conn
            .prepare_cached(
                "SELECT id FROM messages WHERE id > ?1 AND received_at_ms >= ?2 ORDER BY id LIMIT 1",
            )?
            .query_row((to_i64(start)?, day_end), |r| r.get(0))
            .optional()?;
        let last = match next {
            Some(n) => n as u64 - 1,
            None => conn
                .prepare_cached("SELECT max(id) FROM messages")?
                .query_row([], |r| r.get::<_, i64>(0))? as u64,
        };
        // A day of a province is millions of records: sealed in parts, so the journal's
        // thread (which also commits) is never held for long.
        let last = last.min(start + SEGMENT_MAX_RECORDS - 1);
        let from = archive.from.or(recorded_from).unwrap_or(start);
        if recorded_from.is_none() {
            schema::put_u64(conn, key::ARCHIVE_FROM, from)?;
        }
        archive.from = Some(from);
        let name = segment_name(day, start);
        let sealed = write_segment(conn, archive, &name, day, start, last, prev, now_ms)?;
        archive.segments.push(sealed);
        written += 1;
    }
    Ok(written)
}

/// Records `from..=to` were sealed (they were pruned) but no segment holds them now.
fn lost(archive: &Archive, from: u64, to: u64) -> Error {
    Error::Corrupt(format!(
        "the archive in {} lacks records {from} to {to}, which were sealed and pruned: restore \
         its missing segments; nothing more is sealed or pruned until then",
        archive.dir.display()
    ))
}

/// A `messages` row (`SELECT {COLUMNS}`) as an archive line, with its points and rejections,
/// and its stored hash. `prev` is the hash of the record before it.
pub(crate) fn read_line(
    r: &rusqlite::Row<'_>,
    pts: &mut rusqlite::CachedStatement<'_>,
    rej: &mut rusqlite::CachedStatement<'_>,
    prev: &[u8; 32],
) -> Result<(Line, [u8; 32]), Error> {
    let id = r.get::<_, i64>(0)? as u64;
    let payload: Vec<u8> = r.get(3)?;
    let first_point: i64 = r.get(5)?;
    let n_points: i64 = r.get(6)?;
    let hash: Vec<u8> = r.get(8)?;
    let hash = schema::to_hash(&hash)
        .ok_or_else(|| Error::Corrupt(format!("record {id} has no 32-byte hash")))?;
    let mut points = Vec::new();
    let mut p = pts.query((first_point, first_point.saturating_add(n_points)))?;
    while let Some(p) = p.next()? {
        points.push(LinePoint {
            id: p.get::<_, i64>(0)? as u64,
            line: p.get(1)?,
        });
    }
    let mut rejections = Vec::new();
    let mut j = rej.query([to_i64(id)?])?;
    while let Some(j) = j.next()? {
        rejections.push(LineRejection {
            seq: j.get::<_, i64>(0)? as u64,
            reading: j.get::<_, Option<i64>>(1)?.map(|i| i as u64),
            reason: j.get(2)?,
            detail: j.get(3)?,
        });
    }
    let received_at_ms: i64 = r.get(1)?;
    let line = Line {
        id,
        received_at: rfc3339_ms(received_at_ms),
        received_at_ms,
        topic: r.get(2)?,
        station: r.get(4)?,
        payload: std::str::from_utf8(&payload).ok().map(str::to_string),
        payload_base64: base64::engine::general_purpose::STANDARD.encode(&payload),
        rejections,
        readings: super::readings::readings(points.iter().map(|p| p.line.as_str())),
        points,
        prev_hash: hex::encode(prev),
        hash: hex::encode(hash),
    };
    Ok((line, hash))
}

/// The statements [`read_line`] needs: the records, their points, their rejections.
pub(crate) const SELECT_RECORDS: &str =
    "SELECT id, received_at_ms, topic, payload, station, first_point, n_points, n_rejected,
     hash FROM messages WHERE id >= ?1 AND id <= ?2 ORDER BY id";
pub(crate) const SELECT_POINTS: &str =
    "SELECT id, line FROM points WHERE id >= ?1 AND id < ?2 ORDER BY id";
pub(crate) const SELECT_REJECTIONS: &str =
    "SELECT seq, reading, reason, detail FROM rejections WHERE msg_id = ?1 ORDER BY seq";

/// Writes records `first..=last` as segment `name`, then its manifest.
#[allow(clippy::too_many_arguments)]
fn write_segment(
    conn: &Connection,
    archive: &Archive,
    name: &str,
    day: chrono::NaiveDate,
    first: u64,
    last: u64,
    prev: [u8; 32],
    now_ms: i64,
) -> Result<Sealed, Error> {
    let mut gz = flate2::GzBuilder::new().write(Vec::new(), flate2::Compression::default());
    let mut stmt = conn.prepare_cached(SELECT_RECORDS)?;
    let mut pts = conn.prepare_cached(SELECT_POINTS)?;
    let mut rej = conn.prepare_cached(SELECT_REJECTIONS)?;
    let mut rows = stmt.query((to_i64(first)?, to_i64(last)?))?;
    let mut prev_hash = prev;
    let mut first_hash = None;
    let mut count = 0u64;
    let mut expect = first;
    while let Some(r) = rows.next()? {
        let id = r.get::<_, i64>(0)? as u64;
        if id != expect {
            return Err(Error::Corrupt(format!(
                "record {expect} is missing; the day cannot be sealed (run `quantrac verify`)"
            )));
        }
        expect += 1;
        let (line, hash) = read_line(r, &mut pts, &mut rej, &prev_hash)?;
        let mut json = serde_json::to_vec(&line).expect("a record serialises");
        json.push(b'\n');
        gz.write_all(&json).map_err(|source| Error::Io {
            path: archive.dir.join(segment_file(name)),
            source,
        })?;
        first_hash.get_or_insert(hash);
        prev_hash = hash;
        count += 1;
    }
    if expect != last + 1 {
        return Err(Error::Corrupt(format!(
            "record {expect} is missing; the day cannot be sealed (run `quantrac verify`)"
        )));
    }
    let bytes = gz.finish().map_err(|source| Error::Io {
        path: archive.dir.join(segment_file(name)),
        source,
    })?;
    let sha256 = hex::encode(Sha256::digest(&bytes));
    write_once(&archive.dir.join(segment_file(name)), &bytes)?;
    let mut manifest = Manifest {
        format: FORMAT.into(),
        day: day.format("%Y-%m-%d").to_string(),
        timezone: archive.tz.name().to_string(),
        file: segment_file(name),
        first_id: first,
        last_id: last,
        prev_hash: hex::encode(prev),
        first_hash: hex::encode(first_hash.unwrap_or(prev)),
        last_hash: hex::encode(prev_hash),
        records: count,
        archive_from: archive.from.unwrap_or(first),
        sha256,
        sealed_at: rfc3339_ms(now_ms),
        signature: None,
    };
    if let Some(key) = &archive.key {
        let message = manifest
            .signed_message(now_ms)
            .expect("hashes written as hex just above");
        manifest.signature = Some(SegmentSignature {
            at_ms: now_ms,
            public_key: hex::encode(key.public_key()),
            signature: hex::encode(key.sign(&message)),
        });
    }
    let path = archive.dir.join(manifest_file(name));
    if !path.exists() {
        let mut text = serde_json::to_vec_pretty(&manifest).expect("a manifest serialises");
        text.push(b'\n');
        write_once(&path, &text)?;
    }
    Ok(Sealed {
        name: name.to_string(),
        first_id: first,
        last_id: last,
        last_hash: prev_hash,
    })
}
