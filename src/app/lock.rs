//! One writer per journal: the running service and `dead-letters replay` both hold
//! `journal/LOCK`, so they can never interleave their commits.

use std::path::Path;

use anyhow::{bail, Context};

/// Holds `journal/LOCK` for as long as it lives.
pub struct JournalLock(#[allow(dead_code)] std::fs::File);

impl JournalLock {
    pub fn acquire(dir: &Path) -> anyhow::Result<JournalLock> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join("LOCK");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => Ok(JournalLock(file)),
            Err(std::fs::TryLockError::WouldBlock) => bail!(
                "the journal in {} is in use by a running quantrac; stop it first",
                dir.display()
            ),
            Err(std::fs::TryLockError::Error(e)) => {
                Err(e).with_context(|| format!("locking {}", path.display()))
            }
        }
    }
}
