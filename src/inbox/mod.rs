//! The inbox source: Circular 10/2021 files that dataloggers push over FTP, taken from the
//! folder an FTP server (run by the operator: vsftpd, pure-ftpd, …) drops them in.
//!
//! Most Vietnamese stations do not speak MQTT: every 5 minutes their datalogger uploads one
//! text file per station to the department, often to a second server too. Pointing that second
//! upload at quantrac's FTP server is all it takes; the file then travels like an MQTT message:
//!
//! 1. A file is taken once it is complete ([`watch`]: size and modification time unchanged for
//!    `inbox.settle_ms`; temporary upload names are left alone).
//! 2. It is read whole and sent on as one [`Envelope`] whose topic is `$inbox/` and its path in
//!    the inbox ([`pipeline::inbox_topic`]), with an [`Ack`]. `decode` names the station from
//!    the file name (`inbox.pattern`, the stations' `uplink_code`s) and reads the readings;
//!    compliance judges them as any others.
//! 3. The journal commits the file whole as evidence, with its name and SHA-256 in the same
//!    transaction, then resolves the `Ack`. Only then is the file moved: to `done_dir`, or to
//!    `rejected_dir` when nothing in it was accepted (an unknown station, not a Circular
//!    10/2021 file; it is a dead letter too).
//!
//! Exactly once per file, across restarts and `kill -9`: a crash before the commit leaves the
//! file in the inbox, and it is taken again; a crash after the commit but before the move
//! leaves it too, and the journal, which knows its name and SHA-256, does not record it a second
//! time (the file is then moved). A file whose message was dropped (shutdown) stays, and is
//! taken again at the next start.
//!
//! Never more than [`IN_FLIGHT`] files are between the inbox and the journal: each holds a slot
//! of the acknowledgement channel until the journal resolves it, as MQTT messages do.

mod events;
mod folder;
pub mod watch;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::sync::mpsc;

use crate::config::InboxSettings;
use crate::metrics::Metrics;
use crate::pipeline::{self, Ack, AckEvent, Envelope};
use crate::readiness::Readiness;
use crate::shutdown::CancellationToken;

pub use events::COMPONENT;
use events::{Events, Outcome};
use watch::{Listed, Watch};

/// Files between the inbox and the journal, at most.
pub const IN_FLIGHT: usize = 64;

/// A file sent into the pipeline, waiting for the journal.
#[derive(Debug)]
struct Taken {
    path: PathBuf,
    /// Size and modification time when it was taken: the content journaled.
    listed: Listed,
    relative: PathBuf,
    /// For the log: the path relative to the inbox.
    name: String,
}

/// The inbox's state between polls.
struct Inbox {
    settings: InboxSettings,
    max_bytes: usize,
    watch: Watch,
    events: Events,
    seq: u64,
    in_flight: HashMap<u64, Taken>,
    /// Journaled files that could not be moved yet, with where they go; retried every poll
    /// and never taken again meanwhile.
    unmoved: BTreeMap<PathBuf, (Taken, Outcome)>,
}

/// Runs the inbox until `stop` is cancelled and every file taken was journaled and moved (or
/// given back). `max_bytes` is the largest payload decode accepts (`mqtt.max_payload_bytes`).
/// Trouble with the folders (cannot list the inbox, cannot move a file out) is logged and
/// shown on `/readyz` while it lasts; the inbox keeps trying, it never stops the service.
pub async fn run(
    settings: InboxSettings,
    max_bytes: usize,
    out: mpsc::Sender<Envelope>,
    metrics: Metrics,
    readiness: Readiness,
    stop: CancellationToken,
) {
    let (ack_tx, mut acks) = mpsc::channel::<AckEvent>(IN_FLIGHT);
    let mut tick = tokio::time::interval(Duration::from_millis(settings.poll_ms));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tracing::info!(
        dir = %settings.dir.display(),
        pattern = %settings.pattern,
        "inbox: taking Circular 10/2021 files"
    );
    let mut inbox = Inbox {
        watch: Watch::new(settings.settle_ms),
        events: Events::new(&metrics, readiness),
        settings,
        max_bytes,
        seq: 0,
        in_flight: HashMap::new(),
        unmoved: BTreeMap::new(),
    };
    // `Some` while taking files; dropped when `stop` fires, so the acknowledgement channel
    // closes once the last file in flight is resolved.
    let mut intake = Some((out, ack_tx));
    loop {
        tokio::select! {
            biased;
            _ = stop.cancelled(), if intake.is_some() => intake = None,
            event = acks.recv() => match event {
                Some(event) => inbox.resolved(event).await,
                None => break,
            },
            _ = tick.tick(), if intake.is_some() => {
                if let Some((out, ack_tx)) = &intake {
                    inbox.poll(out, ack_tx, &stop).await;
                }
            }
        }
        if intake.is_none() && inbox.in_flight.is_empty() {
            break;
        }
    }
}

impl Inbox {
    /// One scan: retry pending moves, list the folder, take what is complete.
    async fn poll(
        &mut self,
        out: &mpsc::Sender<Envelope>,
        ack_tx: &mpsc::Sender<AckEvent>,
        stop: &CancellationToken,
    ) {
        self.retry_moves().await;
        let dir = self.settings.dir.clone();
        let skip = vec![
            self.settings.done_dir.clone(),
            self.settings.rejected_dir.clone(),
        ];
        let listed = match blocking(move || folder::list(&dir, &skip)).await {
            Ok(listed) => listed,
            Err(e) => {
                self.events.folder_trouble(format!(
                    "cannot list inbox.dir {}: {e}",
                    self.settings.dir.display()
                ));
                return;
            }
        };
        if self.unmoved.is_empty() {
            self.events.folders_ok();
        }
        let busy: HashSet<&Path> = self
            .in_flight
            .values()
            .map(|t| t.path.as_path())
            .chain(self.unmoved.keys().map(PathBuf::as_path))
            .collect();
        let listed = listed
            .into_iter()
            .filter(|l| !busy.contains(l.path.as_path()))
            .collect();
        let now = chrono::Utc::now().timestamp_millis();
        for listed in self.watch.scan(listed, now) {
            let Ok(permit) = ack_tx.clone().try_reserve_owned() else {
                break; // enough in flight; the rest settles again and comes later
            };
            let path = listed.path.clone();
            let (relative, name) = folder::relative(&self.settings.dir, &path);
            let limit = self.max_bytes;
            let read_path = path.clone();
            let (payload, oversize) = match blocking(move || folder::read(&read_path, limit)).await
            {
                Ok(read) => read,
                Err(e) => {
                    self.events.unreadable_file(&name, &e);
                    continue;
                }
            };
            self.seq += 1;
            let envelope = Envelope {
                topic: pipeline::inbox_topic(&name),
                received_at_ms: chrono::Utc::now().timestamp_millis(),
                ack: Ack::new(self.seq, permit),
                payload,
                oversize,
            };
            self.events.taken(&name, envelope.payload.len());
            self.in_flight.insert(
                self.seq,
                Taken {
                    path,
                    listed,
                    relative,
                    name,
                },
            );
            tokio::select! {
                sent = out.send(envelope) => if sent.is_err() {
                    // The pipeline is gone (the service is stopping): the envelope and its ack
                    // were dropped, which is reported as such.
                    return;
                },
                // Stopping while the pipeline is full: the envelope is dropped unsent, its
                // ack reports it dropped, and the file stays for the next start.
                _ = stop.cancelled() => return,
            }
        }
    }

    /// The journal resolved (or dropped) file `seq`.
    async fn resolved(&mut self, event: AckEvent) {
        let (seq, outcome) = match event {
            AckEvent::Durable(seq) => (seq, Outcome::Done),
            AckEvent::Refused(seq) => (seq, Outcome::Rejected),
            AckEvent::Dropped(seq) => {
                if let Some(t) = self.in_flight.remove(&seq) {
                    self.events.dropped(&t.name);
                }
                return;
            }
        };
        if let Some(t) = self.in_flight.remove(&seq) {
            self.move_out(t, outcome).await;
        }
    }

    /// Moves a journaled file to the folder its outcome says; on failure it waits in
    /// `unmoved` for the next poll. A file written again since it was taken (a datalogger
    /// uploading it anew under the same name) is not what was journaled: it stays, and is
    /// taken again.
    async fn move_out(&mut self, t: Taken, outcome: Outcome) {
        let to_dir = match outcome {
            Outcome::Done => self.settings.done_dir.clone(),
            Outcome::Rejected => self.settings.rejected_dir.clone(),
        };
        let (listed, relative) = (t.listed.clone(), t.relative.clone());
        let moved = blocking(move || {
            if !folder::unchanged(&listed) {
                return Ok(None);
            }
            folder::move_out(&listed.path, &to_dir, &relative).map(Some)
        })
        .await;
        match moved {
            Ok(Some(to)) => self.events.moved(&t.name, outcome, &to),
            Ok(None) => self.events.changed(&t.name),
            Err(e) => {
                self.events
                    .folder_trouble(format!("cannot move {} out of the inbox: {e}", t.name));
                self.unmoved.insert(t.path.clone(), (t, outcome));
            }
        }
    }

    async fn retry_moves(&mut self) {
        for (_, (t, outcome)) in std::mem::take(&mut self.unmoved) {
            if t.path.exists() {
                self.move_out(t, outcome).await;
            }
        }
    }
}

/// Runs blocking file-system work off the runtime's workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e)))
}

#[cfg(test)]
mod tests;
