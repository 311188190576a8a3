//! What the inbox tells the outside world, one method per event: each writes its log line, its
//! metrics and, where the event changes whether files can be taken, its `/readyz` reason,
//! together (see [`crate::metrics`] for the pattern).
//!
//! | event | log | metrics | readiness |
//! |---|---|---|---|
//! | [`Events::taken`] | debug | `quantrac_messages_received_total` | — |
//! | [`Events::moved`] | info (done) / warn (rejected) | `quantrac_inbox_files_total{outcome}` | — |
//! | [`Events::dropped`] | warn | — | — |
//! | [`Events::changed`] | warn | — | — |
//! | [`Events::unreadable_file`] | warn | — | — |
//! | [`Events::folder_trouble`] | error, once per kind of trouble | — | `inbox: …` |
//! | [`Events::folders_ok`] | info after trouble | — | cleared |

use std::path::Path;

use prometheus::IntCounter;

use crate::metrics::Metrics;
use crate::readiness::Readiness;

/// This stage's key in [`Readiness`].
pub const COMPONENT: &str = "inbox";

/// Where a journaled file went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Journaled with something accepted: moved to `done_dir`.
    Done,
    /// Journaled as a dead letter only: moved to `rejected_dir`.
    Rejected,
}

impl Outcome {
    /// The `outcome` label (`metrics::INBOX_OUTCOMES`).
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Done => "done",
            Outcome::Rejected => "rejected",
        }
    }
}

/// The inbox's events, with the metric handles resolved once.
pub struct Events {
    received: IntCounter,
    done: IntCounter,
    rejected: IntCounter,
    readiness: Readiness,
    /// The trouble last reported on `/readyz`, if any.
    trouble: Option<String>,
}

impl Events {
    pub fn new(m: &Metrics, readiness: Readiness) -> Events {
        Events {
            received: m.messages_received.clone(),
            done: m.inbox_files.with_label_values(&[Outcome::Done.label()]),
            rejected: m
                .inbox_files
                .with_label_values(&[Outcome::Rejected.label()]),
            readiness,
            trouble: None,
        }
    }

    /// A complete file was read and sent into the pipeline.
    pub fn taken(&self, file: &str, bytes: usize) {
        self.received.inc();
        tracing::debug!(file, bytes, "inbox file taken");
    }

    /// A journaled file was moved out of the inbox.
    pub fn moved(&self, file: &str, outcome: Outcome, to: &Path) {
        match outcome {
            Outcome::Done => {
                self.done.inc();
                tracing::info!(file, to = %to.display(), "inbox file journaled");
            }
            Outcome::Rejected => {
                self.rejected.inc();
                tracing::warn!(
                    file,
                    to = %to.display(),
                    "inbox file rejected: nothing in it was accepted (see dead-letters)"
                );
            }
        }
    }

    /// A file's message was dropped before the journal made it durable (shutdown, or a stage
    /// failed): it stays in the inbox and is taken again.
    pub fn dropped(&self, file: &str) {
        tracing::warn!(
            file,
            "inbox file not journaled (stopping); it stays in the inbox"
        );
    }

    /// A journaled file was written again before it could be moved: the new content stays
    /// in the inbox and is taken again.
    pub fn changed(&self, file: &str) {
        tracing::warn!(
            file,
            "inbox file changed after it was journaled; the new content is taken again"
        );
    }

    /// A complete file could not be read; it is tried again.
    pub fn unreadable_file(&self, file: &str, error: &std::io::Error) {
        tracing::warn!(file, error.message = %error, "cannot read inbox file; trying again");
    }

    /// The inbox cannot do its work: the folder cannot be listed, or journaled files cannot be
    /// moved out of it. Logged when it starts or changes, shown on `/readyz` until it ends.
    pub fn folder_trouble(&mut self, what: String) {
        if self.trouble.as_deref() != Some(what.as_str()) {
            tracing::error!(problem = %what, "inbox trouble");
            self.readiness.not_ready(COMPONENT, what.clone());
            self.trouble = Some(what);
        }
    }

    /// Nothing wrong with the folders (any more).
    pub fn folders_ok(&mut self) {
        if self.trouble.take().is_some() {
            tracing::info!("inbox folders usable again");
            self.readiness.ready(COMPONENT);
        }
    }
}
