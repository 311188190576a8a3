//! Signed checkpoints: the chain head (and base), signed with the operator's Ed25519 key.
//!
//! The hash chain alone proves only that the file is self-consistent: whoever can write the
//! file can delete a record and recompute every hash after it. A checkpoint is a statement
//! "at time T the chain ended at record H with hash X, and began after record B with hash Y",
//! signed by a key that only the running service reads (`journal.signing_key_file`). Someone
//! holding only the public key can then check, with `quantrac verify --public-key`, that the
//! chain in a copy is the chain the service signed: a recomputed chain disagrees with every
//! checkpoint after the change, and a signature cannot be made without the private key.
//!
//! The journal stage writes one at start, at shutdown, after every pruning that moved the
//! base, and every `journal.checkpoint_interval_s` while records arrive ([`Checkpointer`]).
//!
//! # What is signed
//! `"quantrac-checkpoint-v1" ‖ at_ms ‖ base_id ‖ base_hash ‖ base_received_at_ms ‖ head_id ‖
//! head_hash`, integers as 8-byte big-endian (times signed, ids unsigned), hashes as 32 raw
//! bytes; the signature is plain Ed25519 (RFC 8032) over those bytes, so any Ed25519
//! implementation can check it from a table export.
//!
//! # What it does not do
//! The service signs the journal as it finds it. Whoever can stop the service, change the
//! file and delete the later checkpoints gets the changed file signed at the next start
//! (unless it contradicts a checkpoint left in the file, which [`Checkpointer`] refuses to
//! sign over). Anchors published to a third party ([`super::verify`]) close that gap.

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension};

use super::schema::{self, key, to_i64};
use super::{Error, Journal};
use crate::config::SigningKey;

/// Separates checkpoint signatures from any other use of the same key.
const DOMAIN: &[u8] = b"quantrac-checkpoint-v1";

/// DER prefix of an Ed25519 `SubjectPublicKeyInfo` (RFC 8410): the 32 key bytes follow.
const SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// What a checkpoint vouches for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkpoint {
    /// When it was written, Unix epoch milliseconds.
    pub at_ms: i64,
    /// The chain base then: the last pruned record (0 and zeros before any pruning), and
    /// that record's receive time (0 before any pruning).
    pub base_id: u64,
    pub base_hash: [u8; 32],
    pub base_received_at_ms: i64,
    /// The chain head then: the last committed record and its hash.
    pub head_id: u64,
    pub head_hash: [u8; 32],
}

impl Checkpoint {
    /// The bytes that are signed (see the module documentation).
    pub fn message(&self) -> Vec<u8> {
        let mut m = Vec::with_capacity(DOMAIN.len() + 8 * 4 + 32 * 2);
        m.extend_from_slice(DOMAIN);
        m.extend_from_slice(&self.at_ms.to_be_bytes());
        m.extend_from_slice(&self.base_id.to_be_bytes());
        m.extend_from_slice(&self.base_hash);
        m.extend_from_slice(&self.base_received_at_ms.to_be_bytes());
        m.extend_from_slice(&self.head_id.to_be_bytes());
        m.extend_from_slice(&self.head_hash);
        m
    }
}

/// A checkpoint as stored, with the public key that signed it and the signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    /// Row id in the `checkpoints` table: the order they were written in.
    pub row: u64,
    pub checkpoint: Checkpoint,
    pub public_key: Vec<u8>,
    pub signature: Vec<u8>,
}

/// A public key that checks checkpoint signatures, from `quantrac keygen`'s `.pub` file or
/// OpenSSL's `-pubout` (SPKI PEM), or the 64 hex digits `keygen` prints.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(pub [u8; 32]);

/// Why a public key file was refused.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read public key {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{0} is not an Ed25519 public key (a -----BEGIN PUBLIC KEY----- PEM file, or 64 hex digits)"
    )]
    Format(String),
}

impl PublicKey {
    pub fn load(path: &Path) -> Result<PublicKey, KeyError> {
        let text = std::fs::read_to_string(path).map_err(|source| KeyError::Read {
            path: path.display().to_string(),
            source,
        })?;
        PublicKey::parse(&text).ok_or_else(|| KeyError::Format(path.display().to_string()))
    }

    /// SPKI PEM or hex; `None` for anything else.
    pub fn parse(text: &str) -> Option<PublicKey> {
        use rustls_pki_types::pem::PemObject as _;
        let text = text.trim();
        if let Ok(bytes) = hex::decode(text) {
            return bytes.try_into().ok().map(PublicKey);
        }
        let der =
            rustls_pki_types::SubjectPublicKeyInfoDer::from_pem_slice(text.as_bytes()).ok()?;
        let key = der.as_ref().strip_prefix(&SPKI_PREFIX[..])?;
        key.try_into().ok().map(PublicKey)
    }

    /// SPKI PEM (`-----BEGIN PUBLIC KEY-----`), as OpenSSL writes it.
    pub fn to_pem(&self) -> String {
        let mut der = SPKI_PREFIX.to_vec();
        der.extend_from_slice(&self.0);
        crate::config::pem("PUBLIC KEY", &der)
    }

    /// Whether `signature` is this key's signature of `c`.
    pub fn verifies(&self, c: &Checkpoint, signature: &[u8]) -> bool {
        ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, &self.0)
            .verify(&c.message(), signature)
            .is_ok()
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({self})")
    }
}

/// Every checkpoint in the journal, oldest first (none in a journal older than version 2).
pub fn read_all(conn: &Connection) -> Result<Vec<Signed>, Error> {
    if !schema::has_table(conn, "checkpoints")? {
        return Ok(Vec::new());
    }
    let mut stmt = conn.prepare(&format!("{SELECT} ORDER BY id"))?;
    let mut rows = stmt.query([])?;
    let mut all = Vec::new();
    while let Some(r) = rows.next()? {
        all.push(signed(r)?);
    }
    Ok(all)
}

const SELECT: &str = "SELECT id, at_ms, base_id, base_hash, base_received_at_ms, head_id, \
                      head_hash, public_key, signature FROM checkpoints";

fn signed(r: &rusqlite::Row<'_>) -> Result<Signed, Error> {
    let row = r.get::<_, i64>(0)? as u64;
    let hash = |i: usize| -> Result<[u8; 32], Error> {
        let v: Vec<u8> = r.get(i)?;
        schema::to_hash(&v)
            .ok_or_else(|| Error::Corrupt(format!("checkpoint {row} has no 32-byte hash")))
    };
    Ok(Signed {
        row,
        checkpoint: Checkpoint {
            at_ms: r.get(1)?,
            base_id: r.get::<_, i64>(2)?.max(0) as u64,
            base_hash: hash(3)?,
            base_received_at_ms: r.get(4)?,
            head_id: r.get::<_, i64>(5)?.max(0) as u64,
            head_hash: hash(6)?,
        },
        public_key: r.get(7)?,
        signature: r.get(8)?,
    })
}

/// The chain's base and head as `meta` records them now, as a checkpoint at `at_ms`.
fn current(conn: &Connection, at_ms: i64) -> Result<Checkpoint, Error> {
    Ok(Checkpoint {
        at_ms,
        base_id: schema::get_u64(conn, key::BASE_ID)?,
        base_hash: schema::get_hash(conn, key::BASE_HASH)?,
        base_received_at_ms: schema::get_u64(conn, key::BASE_RECEIVED_AT)? as i64,
        head_id: schema::get_u64(conn, key::HEAD_ID)?,
        head_hash: schema::get_hash(conn, key::HEAD_HASH)?,
    })
}

/// Why the journal contradicts its newest checkpoint, if it does: checked before signing
/// at start, so a file changed while the service was stopped is not signed over.
pub(super) fn contradiction(
    conn: &Connection,
    newest: &Checkpoint,
) -> Result<Option<String>, Error> {
    let now = current(conn, newest.at_ms)?;
    let (id, hash) = (newest.head_id, newest.head_hash);
    if id > now.head_id {
        return Ok(Some(format!(
            "the last checkpoint covers record {id}, but the journal ends at record {}",
            now.head_id
        )));
    }
    let stored: Option<[u8; 32]> = if id == now.base_id {
        Some(now.base_hash)
    } else if id > now.base_id {
        let v: Option<Vec<u8>> = conn
            .prepare_cached("SELECT hash FROM messages WHERE id = ?1")?
            .query_row([to_i64(id)?], |r| r.get(0))
            .optional()?;
        match v {
            None => {
                return Ok(Some(format!(
                    "record {id}, covered by the last checkpoint, is missing"
                )))
            }
            v => v.as_deref().and_then(schema::to_hash),
        }
    } else {
        None // pruned since: nothing to compare
    };
    Ok(match stored {
        Some(h) if h != hash => Some(format!(
            "record {id} has hash {}, the last checkpoint signed {}",
            hex::encode(h),
            hex::encode(hash)
        )),
        _ => None,
    })
}

/// Writes signed checkpoints for the journal stage.
#[derive(Clone)]
pub struct Checkpointer {
    key: Arc<SigningKey>,
    interval: Duration,
    /// When the last checkpoint was written (or found current) by this process.
    last: Option<Instant>,
    /// Set when the journal contradicts its newest checkpoint at start: nothing is signed in
    /// this run, so `verify` keeps showing the contradiction instead of a fresh signature.
    refused: bool,
    /// Whether the last attempt failed (logged once per run of failures).
    failing: bool,
}

impl fmt::Debug for Checkpointer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Checkpointer")
            .field("key", &self.key)
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

impl Checkpointer {
    pub fn new(key: Arc<SigningKey>, interval: Duration) -> Checkpointer {
        Checkpointer {
            key,
            interval,
            last: None,
            refused: false,
            failing: false,
        }
    }

    /// Called by the journal stage on its turns. Writes a checkpoint when `now` (start,
    /// shutdown, after pruning moved the base) or once the interval has passed since the
    /// last one; writes nothing when the newest checkpoint of this key already says the
    /// same. A failure is logged and the stage goes on: a missing checkpoint loses no
    /// record, and `verify` names the records no checkpoint covers.
    pub fn tick(&mut self, journal: &Journal, now: bool) {
        self.tick_at(journal, now, now_ms());
    }

    /// [`Checkpointer::tick`] with the wall-clock time given (`at_ms`, Unix epoch ms).
    pub(super) fn tick_at(&mut self, journal: &Journal, now: bool, at_ms: i64) {
        let due = now || self.last.is_none_or(|t| t.elapsed() >= self.interval);
        if !due || self.refused {
            return;
        }
        let first = self.last.is_none();
        self.last = Some(Instant::now());
        match self.write(journal.connection(), at_ms, first) {
            Ok(written) => {
                if self.failing {
                    tracing::info!("journal checkpoints are written again");
                    self.failing = false;
                }
                if let Some(c) = written {
                    tracing::debug!(
                        head_id = c.head_id,
                        head_hash = %hex::encode(c.head_hash),
                        base_id = c.base_id,
                        "journal checkpoint signed"
                    );
                }
            }
            Err(Refusal::Contradiction(why)) => {
                self.refused = true;
                tracing::error!(
                    reason = %why,
                    "the journal contradicts its last signed checkpoint: it was changed while \
                     quantrac was stopped; no checkpoint is signed until this is resolved \
                     (run `quantrac verify --public-key`)"
                );
            }
            Err(Refusal::Failed(e)) => {
                if !self.failing {
                    tracing::error!(error.message = %e, error.cause_chain = ?e, "writing a journal checkpoint failed");
                    self.failing = true;
                }
            }
        }
    }

    /// Signs and stores the current head and base at `at_ms` unless the newest checkpoint
    /// of this key already covers them; `check`: refuse when the journal contradicts the
    /// newest checkpoint (done once, at start).
    fn write(
        &self,
        conn: &Connection,
        at_ms: i64,
        check: bool,
    ) -> Result<Option<Checkpoint>, Refusal> {
        let public = self.key.public_key();
        let newest: Option<Signed> = conn
            .prepare_cached(&format!(
                "{SELECT} WHERE public_key = ?1 ORDER BY id DESC LIMIT 1"
            ))?
            .query_row([&public[..]], |r| Ok(signed(r)))
            .optional()?
            .transpose()?;
        if let (true, Some(n)) = (check, &newest) {
            if let Some(why) = contradiction(conn, &n.checkpoint)? {
                return Err(Refusal::Contradiction(why));
            }
        }
        let c = current(conn, at_ms)?;
        if let Some(n) = newest {
            let was = n.checkpoint;
            if (was.base_id, was.base_hash, was.head_id, was.head_hash)
                == (c.base_id, c.base_hash, c.head_id, c.head_hash)
            {
                return Ok(None);
            }
        }
        let signature = self.key.sign(&c.message());
        conn.prepare_cached(
            "INSERT INTO checkpoints (at_ms, base_id, base_hash, base_received_at_ms, head_id,
             head_hash, public_key, signature) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?
        .execute((
            c.at_ms,
            to_i64(c.base_id)?,
            &c.base_hash[..],
            c.base_received_at_ms,
            to_i64(c.head_id)?,
            &c.head_hash[..],
            &public[..],
            &signature[..],
        ))?;
        Ok(Some(c))
    }
}

/// Why [`Checkpointer::write`] wrote nothing.
enum Refusal {
    Contradiction(String),
    Failed(Error),
}

impl From<Error> for Refusal {
    fn from(e: Error) -> Refusal {
        Refusal::Failed(e)
    }
}

impl From<rusqlite::Error> for Refusal {
    fn from(e: rusqlite::Error) -> Refusal {
        Refusal::Failed(e.into())
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Checkpoint {
        Checkpoint {
            at_ms: 1_795_935_900_000,
            base_id: 4,
            base_hash: [4; 32],
            base_received_at_ms: 1_790_000_000_000,
            head_id: 10,
            head_hash: [10; 32],
        }
    }

    #[test]
    fn a_signature_covers_every_field() {
        let (key, _) = SigningKey::generate().unwrap();
        let public = PublicKey(key.public_key());
        let c = sample();
        let sig = key.sign(&c.message());
        assert!(public.verifies(&c, &sig));
        let changed = [
            Checkpoint {
                at_ms: c.at_ms + 1,
                ..c
            },
            Checkpoint { base_id: 5, ..c },
            Checkpoint {
                base_hash: [5; 32],
                ..c
            },
            Checkpoint {
                base_received_at_ms: c.base_received_at_ms - 1,
                ..c
            },
            Checkpoint { head_id: 11, ..c },
            Checkpoint {
                head_hash: [11; 32],
                ..c
            },
        ];
        for other in changed {
            assert!(!public.verifies(&other, &sig), "{other:?}");
        }
        let (stranger, _) = SigningKey::generate().unwrap();
        assert!(!PublicKey(stranger.public_key()).verifies(&c, &sig));
        assert!(!public.verifies(&c, &sig[..63]));
    }

    #[test]
    fn the_signed_bytes_are_the_documented_layout() {
        let m = sample().message();
        assert_eq!(m.len(), DOMAIN.len() + 8 + 8 + 32 + 8 + 8 + 32);
        assert!(m.starts_with(b"quantrac-checkpoint-v1"));
        let rest = &m[DOMAIN.len()..];
        assert_eq!(rest[..8], 1_795_935_900_000i64.to_be_bytes());
        assert_eq!(rest[8..16], 4u64.to_be_bytes());
        assert_eq!(rest[16..48], [4; 32]);
        assert_eq!(rest[56..64], 10u64.to_be_bytes());
    }

    #[test]
    fn public_keys_read_as_pem_or_hex_and_nothing_else() {
        // RFC 8032 §7.1 test 1's public key, as OpenSSL's -pubout writes it.
        let pem = "-----BEGIN PUBLIC KEY-----\n\
                   MCowBQYDK2VwAyEA11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\n\
                   -----END PUBLIC KEY-----\n";
        let hex_text = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
        let k = PublicKey::parse(pem).unwrap();
        assert_eq!(k.to_string(), hex_text);
        assert_eq!(PublicKey::parse(&format!("{hex_text}\n")), Some(k));
        assert_eq!(k.to_pem(), pem.replace("                   ", ""));
        assert_eq!(PublicKey::parse(&k.to_pem()), Some(k));
        assert_eq!(PublicKey::parse(&hex_text[2..]), None);
        assert_eq!(
            PublicKey::parse("-----BEGIN PUBLIC KEY-----\nMAA=\n-----END PUBLIC KEY-----\n"),
            None
        );
    }
}
