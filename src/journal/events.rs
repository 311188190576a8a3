//! What the journal stage tells the outside world, one method per event: each writes its log
//! line, its metrics and, where the event changes whether quantrac can take messages, its
//! `/readyz` reason, together (see [`crate::metrics`] for the pattern).
//!
//! | event | log | metrics | readiness |
//! |---|---|---|---|
//! | [`Events::committed`] | — | `quantrac_journal_commits_total`, `…_chain_head`, `…_backlog_readings` | — |
//! | [`Events::full`] | warn, once | `quantrac_journal_full` 1 | `journal: full …` |
//! | [`Events::has_room`] | info, once after full | `quantrac_journal_full` 0 | cleared |
//! | [`Events::sealed`] | info | — | — |
//! | [`Events::pruned`] | debug; info once after failures | — | — |
//! | [`Events::prune_failed`] | error, once per run of failures | — | — |
//! | [`Events::stopped`] | error | — | `journal: journal failed: …` |
//! | [`Events::duplicates`] | debug | `quantrac_journal_duplicates_total` | — |
//! | [`Events::disk_full`] | error, once | `quantrac_journal_full` 1 | `journal: disk full, cannot commit …` |
//! | [`Events::disk_has_room`] | info, once after disk full | `quantrac_journal_full` 0 | cleared |
//! | [`Events::file_gone`] | error | — | `journal: journal file … deleted/replaced …` |
//! | [`Events::chain_head`] | info (for anchoring) | — | — |
//!
//! `full`, `has_room`, `pruned` and `prune_failed` are called on every turn of the loop; they
//! log only when the state changes, so a journal that stays full logs once, not every second.

use prometheus::{IntCounter, IntGauge, IntGaugeVec};

use super::Error;
use crate::metrics::Metrics;
use crate::readiness::Readiness;

/// This stage's key in [`Readiness`].
pub const COMPONENT: &str = "journal";

/// The journal stage's events, with the metric handles resolved once.
pub struct Events {
    bytes: IntGauge,
    full: IntGauge,
    commits: IntCounter,
    backlog: IntGauge,
    chain_head: IntGaugeVec,
    readiness: Readiness,
    /// The hash label currently set on `quantrac_journal_chain_head`.
    head_label: Option<String>,
    /// Whether the journal is full (intake paused) as last reported.
    is_full: bool,
    /// Whether the last prune failed.
    prune_failing: bool,
    /// Whether the disk had no room for the last commit.
    disk_full: bool,
    duplicates: IntCounter,
}

impl Events {
    pub fn new(m: &Metrics, readiness: Readiness) -> Events {
        Events {
            bytes: m.journal_bytes.clone(),
            full: m.journal_full.clone(),
            commits: m.journal_commits.clone(),
            backlog: m.journal_backlog.clone(),
            chain_head: m.journal_chain_head.clone(),
            readiness,
            head_label: None,
            is_full: false,
            prune_failing: false,
            disk_full: false,
            duplicates: m.journal_duplicates.clone(),
        }
    }

    /// The journal's size on disk, measured.
    pub fn size(&self, bytes: u64) {
        self.bytes.set(i64::try_from(bytes).unwrap_or(i64::MAX));
    }

    /// Points committed and not yet accepted by InfluxDB.
    pub fn backlog(&self, points: u64) {
        self.backlog.set(i64::try_from(points).unwrap_or(i64::MAX));
    }

    /// A batch was committed: the chain now ends at record `head_id` with `head_hash`.
    pub fn committed(&mut self, head_id: u64, head_hash: &[u8; 32], backlog: u64) {
        self.commits.inc();
        self.head(head_id, head_hash);
        self.backlog(backlog);
    }

    /// `quantrac_journal_chain_head{hash}` = head record id, one label value at a time.
    pub fn head(&mut self, id: u64, hash: &[u8; 32]) {
        let label = hex::encode(hash);
        if let Some(old) = self.head_label.take() {
            if old != label {
                let _ = self.chain_head.remove_label_values(&[&old]);
            }
        }
        self.chain_head
            .with_label_values(&[&label])
            .set(i64::try_from(id).unwrap_or(i64::MAX));
        self.head_label = Some(label);
    }

    /// The periodic log line of the chain head, for third-party anchoring.
    pub fn chain_head(&self, id: u64, hash: &[u8; 32]) {
        tracing::info!(
            chain_head_id = id,
            chain_head_hash = %hex::encode(hash),
            "journal chain head"
        );
    }

    /// The journal is at `max_bytes`: intake pauses until pruning makes room.
    pub fn full(&mut self, bytes: u64, max_bytes: u64) {
        if self.is_full {
            return;
        }
        self.is_full = true;
        tracing::warn!(
            bytes,
            max_bytes,
            "journal full: intake paused until records delivered to InfluxDB expire"
        );
        self.full.set(1);
        self.readiness
            .not_ready(COMPONENT, Error::Full { bytes, max_bytes }.to_string());
    }

    /// The journal is below `max_bytes`: intake runs (again, if it was full).
    pub fn has_room(&mut self) {
        if !self.is_full {
            return;
        }
        self.is_full = false;
        tracing::info!("journal has room again: intake resumed");
        if !self.disk_full {
            self.full.set(0);
            self.readiness.ready(COMPONENT);
        }
    }

    /// `n` messages of a batch were already in the journal (redelivered) and were not
    /// journaled again; their acks are resolved all the same.
    pub fn duplicates(&self, n: u64) {
        if n > 0 {
            self.duplicates.inc_by(n);
            tracing::debug!(
                messages = n,
                "redelivered messages recognised; journaled once"
            );
        }
    }

    /// The disk has no room for a commit: the batch is held, nothing more is acknowledged, and
    /// the commit is tried again every second (the broker keeps the messages meanwhile).
    pub fn disk_full(&mut self, e: &Error) {
        if self.disk_full {
            return;
        }
        self.disk_full = true;
        tracing::error!(error.message = %e, "journal: the disk is full; acknowledgements paused until space returns (the broker keeps the messages)");
        self.full.set(1);
        self.readiness.not_ready(
            COMPONENT,
            format!("disk full, cannot commit ({e}); acknowledgements paused until space returns"),
        );
    }

    /// A commit went through after the disk was full.
    pub fn disk_has_room(&mut self) {
        if !self.disk_full {
            return;
        }
        self.disk_full = false;
        tracing::info!("journal: the disk has room again; intake resumed");
        if !self.is_full {
            self.full.set(0);
            self.readiness.ready(COMPONENT);
        }
    }

    /// The journal file was deleted or replaced under the running service: what is committed
    /// now goes nowhere anyone can read, so nothing more is taken or acknowledged.
    pub fn file_gone(&self, why: &str) {
        tracing::error!(why, "journal file is gone from under the service; nothing more is acknowledged: restore it, or stop quantrac, move the folder aside and start afresh");
        self.readiness.not_ready(
            COMPONENT,
            format!("{why}; nothing more is acknowledged until restarted"),
        );
    }

    /// Records `from` to `end` were sealed into the archive (one or more local days), which now
    /// ends at `end`.
    pub fn sealed(&self, from: u64, end: u64) {
        tracing::info!(
            from,
            archive_end = end,
            "journal days sealed into the archive"
        );
    }

    /// Pruning deleted `messages` expired, delivered records (maybe none).
    pub fn pruned(&mut self, messages: u64) {
        if self.prune_failing {
            tracing::info!("journal pruning works again");
            self.prune_failing = false;
        }
        if messages > 0 {
            tracing::debug!(messages, "journal pruned expired records");
        }
    }

    /// Pruning failed. Intake continues, since a failed prune loses nothing; logged when the
    /// failures start, and [`Events::pruned`] says when they end.
    pub fn prune_failed(&mut self, e: &Error) {
        if !self.prune_failing {
            tracing::error!(error.message = %e, error.cause_chain = ?e, "journal pruning failed");
            self.prune_failing = true;
        }
    }

    /// The stage ended on an error (a failed commit, an unreadable size): nothing more is
    /// acknowledged, and `/readyz` says why.
    /// The compliance state was kept at a clean stop (or could not be: the next start then
    /// rebuilds it from the records, as after a crash).
    pub fn engine_state_kept(
        &self,
        covers_id: u64,
        kept: std::io::Result<u64>,
        took: std::time::Duration,
    ) {
        match kept {
            Ok(bytes) => tracing::info!(
                covers_id,
                bytes,
                ms = took.as_millis() as u64,
                "compliance state kept for the next start"
            ),
            Err(e) => tracing::warn!(
                error.message = %e,
                "compliance state not kept; the next start replays the journal from the one kept before, if any"
            ),
        }
    }

    pub fn stopped(&self, e: &Error) {
        tracing::error!(error.message = %e, error.cause_chain = ?e, "journal stage stopped; messages are no longer acknowledged");
        self.readiness
            .not_ready(COMPONENT, format!("journal failed: {e}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_and_room_set_the_gauge_and_readiness_together_once_per_change() {
        let m = Metrics::new();
        let readiness = Readiness::default();
        let mut events = Events::new(&m, readiness.clone());
        events.has_room();
        assert_eq!((m.journal_full.get(), readiness.reason()), (0, None));
        events.full(2_000, 1_000);
        events.full(2_100, 1_000);
        assert_eq!(m.journal_full.get(), 1);
        let reason = readiness.reason().unwrap();
        assert!(
            reason.starts_with("journal: ") && reason.contains("2000"),
            "{reason}"
        );
        events.has_room();
        assert_eq!((m.journal_full.get(), readiness.reason()), (0, None));
    }

    #[test]
    fn the_chain_head_gauge_keeps_one_label_value() {
        let m = Metrics::new();
        let mut events = Events::new(&m, Readiness::default());
        events.committed(1, &[1; 32], 5);
        events.committed(2, &[2; 32], 7);
        assert_eq!(m.journal_commits.get(), 2);
        assert_eq!(m.journal_backlog.get(), 7);
        let text = m.render();
        assert!(!text.contains(&hex::encode([1u8; 32])), "old head removed");
        assert!(text.contains(&format!(
            "quantrac_journal_chain_head{{hash=\"{}\"}} 2",
            hex::encode([2u8; 32])
        )));
    }

    #[test]
    fn a_pruning_failure_is_said_when_it_starts_and_when_it_ends() {
        let m = Metrics::new();
        let mut events = Events::new(&m, Readiness::default());
        let e = Error::Corrupt("database disk image is malformed".into());
        let log = crate::telemetry::logged(|| {
            events.pruned(0);
            events.prune_failed(&e);
            events.prune_failed(&e);
            events.pruned(0);
            events.pruned(2);
        });
        assert_eq!(log.matches("journal pruning failed").count(), 1, "{log}");
        assert_eq!(
            log.matches("journal pruning works again").count(),
            1,
            "{log}"
        );
        assert!(
            log.find("pruning failed") < log.find("works again"),
            "{log}"
        );
    }

    #[test]
    fn keeping_the_compliance_state_is_said_with_what_it_covers_or_why_not() {
        let events = Events::new(&Metrics::new(), Readiness::default());
        let log = crate::telemetry::logged(|| {
            events.engine_state_kept(42, Ok(1_000), std::time::Duration::from_millis(3));
            events.engine_state_kept(
                43,
                Err(std::io::Error::from_raw_os_error(28)),
                std::time::Duration::ZERO,
            );
        });
        assert!(
            log.contains("compliance state kept for the next start")
                && log.contains("covers_id=42")
                && log.contains("bytes=1000"),
            "{log}"
        );
        assert!(log.contains("compliance state not kept"), "{log}");
    }

    #[test]
    fn redelivered_messages_are_counted() {
        let m = Metrics::new();
        let events = Events::new(&m, Readiness::default());
        events.duplicates(0);
        events.duplicates(3);
        assert_eq!(m.journal_duplicates.get(), 3);
    }
}
