//! The record hash of the journal's chain, as a pure function of the record's content.
//!
//! `hash_n = SHA-256(DOMAIN ‖ hash_{n-1} ‖ id ‖ received_at_ms ‖ topic ‖ payload ‖ station ‖
//! rejections ‖ points)`. Integers are fixed-width big-endian; every string or byte string is
//! preceded by its length (u64), optional values by a presence byte, and each list by its item
//! count, so two different records can never produce the same byte stream (no ambiguity between
//! where the topic ends and the payload begins, or between one point and two).
//!
//! Anyone can recompute the chain from an export of the tables with this description alone.

use sha2::{Digest, Sha256};

/// Separates this hash from any other use of SHA-256 over similar bytes; the version lets a
/// future layout coexist with records written under this one.
const DOMAIN: &[u8] = b"quantrac-journal-v1";

/// The previous hash of the very first record.
pub const GENESIS: [u8; 32] = [0; 32];

/// One rejection as hashed: its position in the message's list, the reading it refused
/// (`None` = the whole payload), the reason label and the human detail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectionRow {
    pub seq: u64,
    pub reading: Option<u64>,
    pub reason: String,
    pub detail: String,
}

/// Everything of one record that the hash covers.
#[derive(Debug, Clone, Copy)]
pub struct RecordRef<'a> {
    pub id: u64,
    pub received_at_ms: i64,
    pub topic: &'a str,
    pub payload: &'a [u8],
    pub station: Option<&'a str>,
}

/// Incremental builder, so the writer can hash without collecting rejections and points first.
/// Call order: [`RecordHasher::new`], `rejections(n)` then `n` × `rejection`, `points(m)` then
/// `m` × `point`, [`RecordHasher::finish`].
pub struct RecordHasher(Sha256);

impl RecordHasher {
    pub fn new(prev: &[u8; 32], r: RecordRef<'_>) -> RecordHasher {
        let mut h = Sha256::new();
        h.update(DOMAIN);
        h.update(prev);
        h.update(r.id.to_be_bytes());
        h.update(r.received_at_ms.to_be_bytes());
        bytes(&mut h, r.topic.as_bytes());
        bytes(&mut h, r.payload);
        opt_bytes(&mut h, r.station.map(str::as_bytes));
        RecordHasher(h)
    }

    pub fn rejections(&mut self, count: u64) {
        self.0.update(b"R");
        self.0.update(count.to_be_bytes());
    }

    pub fn rejection(&mut self, seq: u64, reading: Option<u64>, reason: &str, detail: &str) {
        self.0.update(seq.to_be_bytes());
        match reading {
            None => self.0.update([0u8]),
            Some(i) => {
                self.0.update([1u8]);
                self.0.update(i.to_be_bytes());
            }
        }
        bytes(&mut self.0, reason.as_bytes());
        bytes(&mut self.0, detail.as_bytes());
    }

    pub fn points(&mut self, count: u64) {
        self.0.update(b"P");
        self.0.update(count.to_be_bytes());
    }

    pub fn point(&mut self, id: u64, line: &str) {
        self.0.update(id.to_be_bytes());
        bytes(&mut self.0, line.as_bytes());
    }

    pub fn finish(self) -> [u8; 32] {
        self.0.finalize().into()
    }
}

/// The hash of a whole record in one call (used by `verify`).
pub fn record_hash(
    prev: &[u8; 32],
    r: RecordRef<'_>,
    rejections: &[RejectionRow],
    points: &[(u64, String)],
) -> [u8; 32] {
    let mut h = RecordHasher::new(prev, r);
    h.rejections(rejections.len() as u64);
    for j in rejections {
        h.rejection(j.seq, j.reading, &j.reason, &j.detail);
    }
    h.points(points.len() as u64);
    for (id, line) in points {
        h.point(*id, line);
    }
    h.finish()
}

fn bytes(h: &mut Sha256, b: &[u8]) {
    h.update((b.len() as u64).to_be_bytes());
    h.update(b);
}

fn opt_bytes(h: &mut Sha256, b: Option<&[u8]>) {
    match b {
        None => h.update([0u8]),
        Some(b) => {
            h.update([1u8]);
            bytes(h, b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec<'a>(topic: &'a str, payload: &'a [u8], station: Option<&'a str>) -> RecordRef<'a> {
        RecordRef {
            id: 7,
            received_at_ms: 1_795_935_900_000,
            topic,
            payload,
            station,
        }
    }

    #[test]
    fn length_prefixes_make_field_boundaries_unambiguous() {
        // Moving a byte from the topic to the payload must change the hash.
        let a = record_hash(&GENESIS, rec("env/a", b"bc", None), &[], &[]);
        let b = record_hash(&GENESIS, rec("env/ab", b"c", None), &[], &[]);
        assert_ne!(a, b);
        // No station and an empty station are different records.
        let c = record_hash(&GENESIS, rec("t", b"", None), &[], &[]);
        let d = record_hash(&GENESIS, rec("t", b"", Some("")), &[], &[]);
        assert_ne!(c, d);
        // One point "ab" is not two points "a", "b".
        let one = record_hash(&GENESIS, rec("t", b"", None), &[], &[(1, "ab".into())]);
        let two = record_hash(
            &GENESIS,
            rec("t", b"", None),
            &[],
            &[(1, "a".into()), (2, "b".into())],
        );
        assert_ne!(one, two);
    }

    #[test]
    fn hash_depends_on_previous_hash_id_and_every_part() {
        let base = record_hash(&GENESIS, rec("t", b"p", Some("a/b/c")), &[], &[]);
        assert_eq!(
            base,
            record_hash(&GENESIS, rec("t", b"p", Some("a/b/c")), &[], &[])
        );
        assert_ne!(
            base,
            record_hash(&[1; 32], rec("t", b"p", Some("a/b/c")), &[], &[])
        );
        let mut moved = rec("t", b"p", Some("a/b/c"));
        moved.id = 8;
        assert_ne!(base, record_hash(&GENESIS, moved, &[], &[]));
        let rej = RejectionRow {
            seq: 0,
            reading: Some(2),
            reason: "unit".into(),
            detail: "ppb".into(),
        };
        let with_rej = record_hash(
            &GENESIS,
            rec("t", b"p", Some("a/b/c")),
            std::slice::from_ref(&rej),
            &[],
        );
        assert_ne!(base, with_rej);
        let whole = RejectionRow {
            reading: None,
            ..rej
        };
        assert_ne!(
            with_rej,
            record_hash(&GENESIS, rec("t", b"p", Some("a/b/c")), &[whole], &[])
        );
    }

    #[test]
    fn incremental_and_one_shot_hashes_agree() {
        let r = rec("env/x/y/z", b"{\"ts\":1}", Some("x/y/z"));
        let rows = vec![RejectionRow {
            seq: 0,
            reading: None,
            reason: "malformed".into(),
            detail: "eof".into(),
        }];
        let pts = vec![(5, "reading,park=x value=1 1".to_string())];
        let mut h = RecordHasher::new(&GENESIS, r);
        h.rejections(1);
        h.rejection(0, None, "malformed", "eof");
        h.points(1);
        h.point(5, "reading,park=x value=1 1");
        assert_eq!(h.finish(), record_hash(&GENESIS, r, &rows, &pts));
    }
}
