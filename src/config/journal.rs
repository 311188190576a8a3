//! `[journal]`: where the journal lives, how long it keeps what, and what it keeps beside it.

use std::path::PathBuf;
use std::sync::Arc;

use serde::Deserialize;

use super::signing_key::SigningKey;
use super::{at_least_one, empty_path_as_none};

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JournalSettings {
    pub path: PathBuf,
    /// Above this size the journal stops accepting (and quantrac stops acknowledging).
    pub max_bytes: u64,
    /// Readings already written to InfluxDB are pruned after this many days; at least 1.
    #[serde(deserialize_with = "at_least_one")]
    pub retention_days: u32,
    /// `true`: every commit reaches the disk before its messages are acknowledged.
    pub durable: bool,
    /// How often the chain head is logged for third-party anchoring.
    pub chain_log_interval_s: u64,
    /// Ed25519 private key (PKCS#8 PEM) that signs checkpoints of the chain; none: no
    /// checkpoints are written (`""` too).
    #[serde(deserialize_with = "empty_path_as_none")]
    pub signing_key_file: Option<PathBuf>,
    /// The key read from `signing_key_file` at load.
    #[serde(skip)]
    pub signing_key: Option<Arc<SigningKey>>,
    /// How often a signed checkpoint is written while records arrive (also at start, at
    /// shutdown and after pruning); at least 1.
    #[serde(deserialize_with = "at_least_one")]
    pub checkpoint_interval_s: u64,
    /// Where records are sealed before they are pruned; none (`""`): `archive/` in `path`.
    #[serde(deserialize_with = "empty_path_as_none")]
    pub archive_dir: Option<PathBuf>,
    /// How often the compliance state is kept beside the journal while running, so a start
    /// after a crash replays only what came after it; at least 1.
    #[serde(deserialize_with = "at_least_one")]
    pub state_interval_s: u64,
}

impl Default for JournalSettings {
    fn default() -> Self {
        JournalSettings {
            path: "data/journal".into(),
            max_bytes: 20 * 1024 * 1024 * 1024,
            retention_days: 60,
            durable: true,
            chain_log_interval_s: 3600,
            signing_key_file: None,
            signing_key: None,
            checkpoint_interval_s: 300,
            archive_dir: None,
            state_interval_s: 600,
        }
    }
}
