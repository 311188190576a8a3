//! The compliance engine's state kept beside the journal at a clean stop, marked with the
//! last record it covers, so the next start replays only the records after it (see
//! `compliance::state`).
//!
//! One file, `compliance-state.bin` in the journal's folder, replaced atomically (written to a
//! temporary name, fsynced, renamed, the folder fsynced): a stop killed halfway leaves the
//! previous file or none, never half of one. It is not evidence and is not in the hash chain:
//! it is a cache of what the records already say. So it is used only when everything checks:
//! its own SHA-256, the record it covers still in the journal with the same hash (a journal
//! restored from a backup or replaced is not the one it was made from), and the fingerprint
//! of the configuration (checked by the caller). Otherwise the start-up rebuilds from the
//! records, as it always could.
//!
//! It stays after it is loaded: a later crash (no clean stop, so no newer file) still starts
//! from it and replays the records after it, which the journal holds for its whole retention.
//!
//! Layout: `QTRCENG1`, the covered record's id (u64 LE) and hash (32 bytes), the time it was
//! made (i64 LE, epoch ms), the configuration's fingerprint (32 bytes), the state's length
//! (u64 LE) and SHA-256 (32 bytes), then the state.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use sha2::Digest;

use crate::pipeline::EngineState;

/// The file's name in the journal's folder.
pub const FILE: &str = "compliance-state.bin";

const MAGIC: &[u8; 8] = b"QTRCENG1";
const HEADER: usize = 8 + 8 + 32 + 8 + 32 + 8 + 32;

/// A state read back, with the record it covers.
#[derive(Debug, Clone, PartialEq)]
pub struct Saved {
    pub covers_id: u64,
    pub covers_hash: [u8; 32],
    pub made_at_ms: i64,
    pub state: EngineState,
}

pub fn path(dir: &Path) -> PathBuf {
    dir.join(FILE)
}

/// Writes `state` as covering the journal up to record `covers_id` (whose hash is
/// `covers_hash`), replacing any earlier file. Returns the bytes written.
pub fn write(
    dir: &Path,
    covers_id: u64,
    covers_hash: [u8; 32],
    made_at_ms: i64,
    state: &EngineState,
) -> std::io::Result<u64> {
    let path = path(dir);
    let tmp = dir.join(format!(".{FILE}.tmp"));
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
        f.write_all(MAGIC)?;
        f.write_all(&covers_id.to_le_bytes())?;
        f.write_all(&covers_hash)?;
        f.write_all(&made_at_ms.to_le_bytes())?;
        f.write_all(&state.fingerprint)?;
        f.write_all(&(state.bytes.len() as u64).to_le_bytes())?;
        f.write_all(&sha2::Sha256::digest(&state.bytes))?;
        f.write_all(&state.bytes)?;
        f.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    }
    std::fs::rename(&tmp, &path)?;
    std::fs::File::open(dir)?.sync_all()?;
    Ok((HEADER + state.bytes.len()) as u64)
}

/// The saved state, `Ok(None)` when there is none, `Err` with why when the file is not a
/// whole, intact state of this layout.
pub fn read(dir: &Path) -> Result<Option<Saved>, String> {
    let bytes = match std::fs::read(path(dir)) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: {e}", path(dir).display())),
    };
    if bytes.len() < HEADER || &bytes[..8] != MAGIC {
        return Err(format!(
            "{} is not a saved compliance state of this layout",
            path(dir).display()
        ));
    }
    let (header, body) = bytes.split_at(HEADER);
    let u64_at = |at: usize| u64::from_le_bytes(header[at..at + 8].try_into().expect("8 bytes"));
    let hash_at = |at: usize| -> [u8; 32] { header[at..at + 32].try_into().expect("32 bytes") };
    let len = u64_at(88);
    if len != body.len() as u64 || sha2::Sha256::digest(body).as_slice() != hash_at(96) {
        return Err(format!(
            "{} is damaged (its length or SHA-256 does not match)",
            path(dir).display()
        ));
    }
    Ok(Some(Saved {
        covers_id: u64_at(8),
        covers_hash: hash_at(16),
        made_at_ms: u64_at(48) as i64,
        state: EngineState {
            fingerprint: hash_at(56),
            bytes: body.to_vec(),
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> EngineState {
        EngineState {
            fingerprint: [7; 32],
            bytes: (0..=255u8).cycle().take(1000).collect(),
        }
    }

    #[test]
    fn a_state_comes_back_with_the_record_it_covers() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path()).unwrap(), None);
        let n = write(dir.path(), 42, [9; 32], 1_700_000_000_000, &state()).unwrap();
        assert_eq!(n, std::fs::metadata(path(dir.path())).unwrap().len());
        let saved = read(dir.path()).unwrap().unwrap();
        assert_eq!(
            saved,
            Saved {
                covers_id: 42,
                covers_hash: [9; 32],
                made_at_ms: 1_700_000_000_000,
                state: state(),
            }
        );
        // A newer stop replaces it whole; no temporary file is left behind.
        write(dir.path(), 43, [1; 32], 1_700_000_000_001, &state()).unwrap();
        assert_eq!(read(dir.path()).unwrap().unwrap().covers_id, 43);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, [FILE]);
    }

    #[test]
    fn a_damaged_or_cut_file_is_refused_with_why() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), 42, [9; 32], 0, &state()).unwrap();
        let p = path(dir.path());
        let mut bytes = std::fs::read(&p).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&p, &bytes).unwrap();
        assert!(read(dir.path()).unwrap_err().contains("damaged"));
        std::fs::write(&p, &bytes[..HEADER + 10]).unwrap();
        assert!(read(dir.path()).unwrap_err().contains("damaged"));
        std::fs::write(&p, b"QTRCENG0").unwrap();
        assert!(read(dir.path()).unwrap_err().contains("not a saved"));
        std::fs::write(&p, [MAGIC.as_slice(), &[0; 10]].concat()).unwrap();
        assert!(
            read(dir.path()).unwrap_err().contains("not a saved"),
            "shorter than a header"
        );
        // Unreadable is not the same as absent: the start says why it rebuilds.
        std::fs::remove_file(&p).unwrap();
        std::fs::create_dir(&p).unwrap();
        assert!(read(dir.path()).unwrap_err().contains(FILE));
    }
}
