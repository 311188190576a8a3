//! The lifecycle: one kind of stop signal, and every task's end reported.
//!
//! - **Stopping** is a [`CancellationToken`] (tokio-util): a loop `select!`s on
//!   `token.cancelled()` every turn, a token cancelled before anyone listened is still seen, and
//!   no sender can be dropped by accident (which used to be read as "stop" by some listeners and
//!   "never" by others). `app` holds one token per phase of shutdown (intake, flush, HTTP); they
//!   are the same primitive, cancelled in order.
//! - **Ending** is reported, not polled. [`Tasks`] spawns each stage under a name and sends one
//!   [`Exit`] when it ends — returned, failed or panicked — so `app` learns at once that a stage
//!   died (and which), and during shutdown can name any stage still running when the budget is
//!   spent. A task spawned here never ends silently: a panic becomes [`Outcome::Panicked`].
//!
//! This module knows no stage; `app` gives the names.

use std::collections::BTreeMap;
use std::fmt::Display;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};

use tokio::sync::mpsc;
use tokio::task::AbortHandle;

pub use tokio_util::sync::CancellationToken;

/// How a task ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// It returned `Ok`.
    Finished,
    /// It returned an error (its message).
    Failed(String),
    /// It panicked (the panic message).
    Panicked(String),
}

impl Outcome {
    /// Whether the task ended well. An early but clean end is still judged by the caller: a
    /// stage that finishes before it was asked to stop is a failure of the service.
    pub fn is_ok(&self) -> bool {
        matches!(self, Outcome::Finished)
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Finished => f.write_str("finished"),
            Outcome::Failed(e) => write!(f, "failed: {e}"),
            Outcome::Panicked(e) => write!(f, "panicked: {e}"),
        }
    }
}

/// One task's end.
#[derive(Debug)]
pub struct Exit {
    pub task: &'static str,
    pub outcome: Outcome,
}

/// Named tasks, each reporting its [`Exit`] once.
pub struct Tasks {
    exits_tx: mpsc::UnboundedSender<Exit>,
    exits: mpsc::UnboundedReceiver<Exit>,
    /// Tasks not yet reported, with a way to abort the async ones.
    running: BTreeMap<&'static str, Option<AbortHandle>>,
}

impl Default for Tasks {
    fn default() -> Self {
        let (exits_tx, exits) = mpsc::unbounded_channel();
        Tasks {
            exits_tx,
            exits,
            running: BTreeMap::new(),
        }
    }
}

impl Tasks {
    /// Spawns `task` on the runtime under `name`.
    pub fn spawn<F, E>(&mut self, name: &'static str, task: F)
    where
        F: Future<Output = Result<(), E>> + Send + 'static,
        E: Display + Send + 'static,
    {
        let inner = tokio::spawn(task);
        let abort = inner.abort_handle();
        let exits = self.exits_tx.clone();
        // A second task awaits the first: a panic ends `inner`, never this one.
        tokio::spawn(async move {
            let outcome = match inner.await {
                Ok(Ok(())) => Outcome::Finished,
                Ok(Err(e)) => Outcome::Failed(e.to_string()),
                Err(e) if e.is_panic() => Outcome::Panicked(panic_message(e.into_panic())),
                Err(_) => Outcome::Failed("aborted".into()),
            };
            let _ = exits.send(Exit {
                task: name,
                outcome,
            });
        });
        self.running.insert(name, Some(abort));
    }

    /// Runs `task` on an OS thread of its own under `name`, for work that blocks (SQLite).
    pub fn spawn_thread<F, E>(&mut self, name: &'static str, task: F) -> std::io::Result<()>
    where
        F: FnOnce() -> Result<(), E> + Send + 'static,
        E: Display,
    {
        let exits = self.exits_tx.clone();
        std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                let outcome = match catch_unwind(AssertUnwindSafe(task)) {
                    Ok(Ok(())) => Outcome::Finished,
                    Ok(Err(e)) => Outcome::Failed(e.to_string()),
                    Err(panic) => Outcome::Panicked(panic_message(panic)),
                };
                let _ = exits.send(Exit {
                    task: name,
                    outcome,
                });
            })?;
        self.running.insert(name, None);
        Ok(())
    }

    /// The next task to end; `None` once none is left.
    pub async fn next_exit(&mut self) -> Option<Exit> {
        if self.running.is_empty() {
            return None;
        }
        let exit = self
            .exits
            .recv()
            .await
            .expect("this struct holds a sender, so the channel stays open");
        self.running.remove(exit.task);
        Some(exit)
    }

    /// Names of the tasks that have not ended.
    pub fn running(&self) -> Vec<&'static str> {
        self.running.keys().copied().collect()
    }

    /// Aborts every async task still running (threads cannot be aborted; they end with the
    /// process). Their exits are not waited for.
    pub fn abort_all(&mut self) {
        for abort in self.running.values().flatten() {
            abort.abort();
        }
        self.running.clear();
    }
}

fn panic_message(panic: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_end_is_reported_with_its_name() {
        let mut tasks = Tasks::default();
        tasks.spawn("ok", async { Ok::<(), String>(()) });
        tasks.spawn("err", async { Err::<(), _>("disk on fire") });
        tasks.spawn("panics", async {
            if true {
                panic!("index out of bounds");
            }
            Ok::<(), String>(())
        });
        tasks
            .spawn_thread("thread-panics", || -> Result<(), String> {
                panic!("thread {}", "boom")
            })
            .unwrap();
        let mut exits = BTreeMap::new();
        while let Some(e) = tasks.next_exit().await {
            exits.insert(e.task, e.outcome);
        }
        assert_eq!(exits["ok"], Outcome::Finished);
        assert_eq!(exits["err"], Outcome::Failed("disk on fire".into()));
        assert_eq!(
            exits["panics"],
            Outcome::Panicked("index out of bounds".into())
        );
        assert_eq!(
            exits["thread-panics"],
            Outcome::Panicked("thread boom".into())
        );
        assert!(tasks.running().is_empty());
    }

    #[tokio::test]
    async fn stragglers_are_named_and_can_be_aborted() {
        let mut tasks = Tasks::default();
        let token = CancellationToken::new();
        let t = token.clone();
        tasks.spawn("obedient", async move {
            t.cancelled().await;
            Ok::<(), String>(())
        });
        tasks.spawn("deaf", std::future::pending::<Result<(), String>>());
        token.cancel();
        let first = tasks.next_exit().await.unwrap();
        assert_eq!(first.task, "obedient");
        let waited =
            tokio::time::timeout(std::time::Duration::from_millis(50), tasks.next_exit()).await;
        assert!(waited.is_err(), "the deaf task never ends by itself");
        assert_eq!(tasks.running(), ["deaf"]);
        tasks.abort_all();
        assert!(tasks.next_exit().await.is_none());
    }
}
