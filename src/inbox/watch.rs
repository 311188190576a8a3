//! The inbox's pure core: which names are uploads in progress, and when a file is complete.
//!
//! An FTP upload writes a file over seconds (minutes on a datalogger's 3G modem). quantrac
//! never reads a file half-written: a file is taken only once its size and modification time
//! have stayed the same for `settle_ms`, by quantrac's own observations (so a clock that is off,
//! or a client that sets the time, does not matter). A datalogger that uploads to a temporary
//! name and renames the file when the upload is complete (the safe way, [`is_upload_name`]
//! covers the usual temporary names) makes the file complete as it appears; it is taken
//! `settle_ms` later.
//!
//! Times are parameters (epoch milliseconds), so the rules are tested without a clock.

use std::collections::HashMap;
use std::path::PathBuf;

/// A file as listed in one scan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    pub path: PathBuf,
    pub size: u64,
    /// Modification time, nanoseconds since the epoch (as precise as the file system keeps).
    pub mtime_ns: i128,
}

/// What was last observed of a file not taken yet.
#[derive(Clone, Debug)]
struct Observed {
    size: u64,
    mtime_ns: i128,
    /// When this size and time were first observed.
    since_ms: i64,
}

/// Files seen and not taken yet.
#[derive(Debug)]
pub struct Watch {
    settle_ms: i64,
    seen: HashMap<PathBuf, Observed>,
}

impl Watch {
    pub fn new(settle_ms: u64) -> Watch {
        Watch {
            settle_ms: i64::try_from(settle_ms).unwrap_or(i64::MAX),
            seen: HashMap::new(),
        }
    }

    /// Records a scan made at `now_ms` and returns the files that are complete: listed with the
    /// same size and modification time for at least `settle_ms`. Files no longer listed are
    /// forgotten. A file returned is forgotten too (the caller takes it): should it come back
    /// (the caller could not take it), it settles again.
    pub fn scan(&mut self, listed: Vec<Listed>, now_ms: i64) -> Vec<Listed> {
        let mut next = HashMap::with_capacity(listed.len());
        let mut ready = Vec::new();
        for f in listed {
            let observed = match self.seen.remove(&f.path) {
                Some(o) if o.size == f.size && o.mtime_ns == f.mtime_ns => o,
                _ => Observed {
                    size: f.size,
                    mtime_ns: f.mtime_ns,
                    since_ms: now_ms,
                },
            };
            if now_ms.saturating_sub(observed.since_ms) >= self.settle_ms
                && observed.since_ms < now_ms
            {
                ready.push(f);
            } else {
                next.insert(f.path, observed);
            }
        }
        self.seen = next;
        ready.sort_by(|a, b| a.path.cmp(&b.path));
        ready
    }
}

/// Lower-cased endings of names FTP clients and dataloggers give a file while it is uploaded.
const UPLOAD_SUFFIXES: [&str; 9] = [
    ".tmp",
    ".temp",
    ".part",
    ".partial",
    ".filepart",
    ".upload",
    ".uploading",
    ".crdownload",
    "~",
];

/// Whether `name` is a file being uploaded (a temporary name) or hidden, rather than a file
/// that was delivered: such names are left alone, not taken and not rejected.
pub fn is_upload_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    name.starts_with('.') || UPLOAD_SUFFIXES.iter().any(|s| lower.ends_with(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, size: u64, mtime_ns: i128) -> Listed {
        Listed {
            path: PathBuf::from(name),
            size,
            mtime_ns,
        }
    }

    #[test]
    fn a_file_is_taken_once_unchanged_for_the_settle_time() {
        let mut w = Watch::new(2_000);
        assert!(
            w.scan(vec![file("a.txt", 10, 1)], 0).is_empty(),
            "just seen"
        );
        assert!(w.scan(vec![file("a.txt", 10, 1)], 1_000).is_empty());
        assert_eq!(
            w.scan(vec![file("a.txt", 10, 1)], 2_000),
            [file("a.txt", 10, 1)]
        );
        assert!(w.scan(vec![], 3_000).is_empty());
    }

    #[test]
    fn an_upload_in_progress_keeps_the_file_waiting() {
        let mut w = Watch::new(2_000);
        w.scan(vec![file("a.txt", 10, 1)], 0);
        // It grew: the clock starts again.
        assert!(w.scan(vec![file("a.txt", 20, 2)], 1_500).is_empty());
        assert!(w.scan(vec![file("a.txt", 20, 2)], 3_000).is_empty());
        // The same size, but written again (a new modification time): again.
        assert!(w.scan(vec![file("a.txt", 20, 3)], 3_400).is_empty());
        assert_eq!(w.scan(vec![file("a.txt", 20, 3)], 5_400).len(), 1);
    }

    #[test]
    fn a_file_that_disappears_is_forgotten_and_settles_again_when_back() {
        let mut w = Watch::new(1_000);
        w.scan(vec![file("a.txt", 10, 1)], 0);
        w.scan(vec![], 500);
        assert!(w.scan(vec![file("a.txt", 10, 1)], 1_000).is_empty());
        assert_eq!(w.scan(vec![file("a.txt", 10, 1)], 2_000).len(), 1);
    }

    #[test]
    fn no_settle_time_still_needs_two_looks() {
        let mut w = Watch::new(0);
        assert!(w.scan(vec![file("a.txt", 10, 1)], 0).is_empty());
        assert_eq!(w.scan(vec![file("a.txt", 10, 1)], 1).len(), 1);
    }

    #[test]
    fn temporary_and_hidden_names_are_uploads() {
        for name in [
            "HP_DV_K1_20261129140500.txt.tmp",
            "HP_DV_K1_20261129140500.TXT.PART",
            ".HP_DV_K1_20261129140500.txt",
            "x.filepart",
            "x.txt~",
        ] {
            assert!(is_upload_name(name), "{name}");
        }
        for name in ["HP_DV_K1_20261129140500.txt", "notes.txt", "temp.txt"] {
            assert!(!is_upload_name(name), "{name}");
        }
    }
}
