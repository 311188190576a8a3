//! The whole chain as one sequence of records: the archive's segments, then the journal's
//! records after them, in id order, each as an archive [`Line`]. What `quantrac report` and
//! `quantrac export` read (after `verify`).

use std::path::Path;

use rusqlite::OptionalExtension;

use super::seal::{read_line, SELECT_POINTS, SELECT_RECORDS, SELECT_REJECTIONS};
use super::{list, read_lines, segment_file, Line};
use crate::journal::schema::{self, key, to_i64, Mode};
use crate::journal::Error;

/// Calls `each` for every record of the archive in `archive_dir` and of the journal in
/// `journal_dir` (opened read-only), oldest first, each record once: the journal's records
/// start after the archive's last. One segment is held in memory at a time.
pub fn each_record(
    journal_dir: &Path,
    archive_dir: &Path,
    each: impl FnMut(Line),
) -> Result<(), Error> {
    each_record_since(journal_dir, archive_dir, i64::MIN, each)
}

/// [`each_record`], for the records received at or after `since_ms` only; segments of days
/// that ended before it are not read.
pub fn each_record_since(
    journal_dir: &Path,
    archive_dir: &Path,
    since_ms: i64,
    mut each: impl FnMut(Line),
) -> Result<(), Error> {
    let mut last = 0u64;
    for (name, has_file) in list(archive_dir)? {
        if !has_file {
            continue;
        }
        // A segment holds records received before the end of its local day, which is before
        // the next day's midnight UTC plus the largest zone offset (14 h).
        let day_ended_by = name
            .split_once('_')
            .and_then(|(d, _)| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
            .and_then(|d| d.checked_add_days(chrono::Days::new(2)))
            .map(|d| {
                d.and_hms_opt(0, 0, 0)
                    .expect("midnight")
                    .and_utc()
                    .timestamp_millis()
            });
        if day_ended_by.is_some_and(|end| end <= since_ms) {
            continue;
        }
        let lines = read_lines(&archive_dir.join(segment_file(&name)))
            .map_err(|e| Error::Corrupt(format!("archive segment {name}: {e}")))?;
        for l in lines {
            if l.id > last {
                last = l.id;
                if l.received_at_ms >= since_ms {
                    each(l);
                }
            }
        }
    }
    let conn = schema::open(journal_dir, Mode::ReadOnly)?;
    let stored: Option<Vec<u8>> = conn
        .prepare_cached("SELECT hash FROM messages WHERE id = ?1")?
        .query_row([to_i64(last)?], |r| r.get(0))
        .optional()?;
    let mut prev = match stored.as_deref().and_then(schema::to_hash) {
        Some(h) => h,
        None => schema::get_hash(&conn, key::BASE_HASH)?,
    };
    let mut stmt = conn.prepare_cached(SELECT_RECORDS)?;
    let mut pts = conn.prepare_cached(SELECT_POINTS)?;
    let mut rej = conn.prepare_cached(SELECT_REJECTIONS)?;
    let mut rows = stmt.query((to_i64(last + 1)?, i64::MAX))?;
    while let Some(r) = rows.next()? {
        let (line, hash) = read_line(r, &mut pts, &mut rej, &prev)?;
        prev = hash;
        if line.received_at_ms >= since_ms {
            each(line);
        }
    }
    Ok(())
}
