//! Writes on the wire: one request per batch, each on its own task, so the driver reads (and
//! sends) the next batch while earlier ones are still answered. Only the oldest can move the
//! cursor, so the driver waits on the front of the queue ([`front`]).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::SystemTime;

use tokio::task::{JoinError, JoinHandle};

use super::classify::{classify, classify_transport, Outcome};
use super::client::{WriteApi, WriteError};
use super::events::{clip, AttemptFailed, HandshakeFailed};
use crate::metrics::Metrics;

/// A batch on the wire: its first attempt runs as its own task. Dropping it aborts the
/// request (the batch stays behind the cursor).
pub(super) struct Flight {
    pub batch: Arc<Vec<(u64, String)>>,
    pub last_id: u64,
    task: JoinHandle<(Outcome, String)>,
}

impl Flight {
    /// Sends `batch` as one request on its own task.
    pub fn send<W: WriteApi>(
        client: &Arc<W>,
        metrics: &Metrics,
        batch: Vec<(u64, String)>,
    ) -> Flight {
        let batch = Arc::new(batch);
        let last_id = batch.last().map_or(0, |&(id, _)| id);
        let task = tokio::spawn({
            let (client, metrics, batch) = (client.clone(), metrics.clone(), batch.clone());
            async move { attempt(&*client, &batch, &metrics).await }
        });
        Flight {
            batch,
            last_id,
            task,
        }
    }
}

impl Drop for Flight {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The answer to the oldest batch on the wire; never resolves when none is.
pub(super) async fn front(flights: &mut VecDeque<Flight>) -> Result<(Outcome, String), JoinError> {
    match flights.front_mut() {
        Some(f) => (&mut f.task).await,
        None => std::future::pending().await,
    }
}

/// One request for `part`: its outcome and a message for the logs. Every failed attempt is
/// counted here, whether or not the driver ends up using the answer.
pub(super) async fn attempt<W: WriteApi>(
    client: &W,
    part: &[(u64, String)],
    metrics: &Metrics,
) -> (Outcome, String) {
    let (outcome, message) = match client.write(join(part)).await {
        Ok(reply) => {
            let outcome = classify(
                reply.status,
                reply.retry_after.as_deref(),
                &reply.body,
                part.len(),
                SystemTime::now(),
            );
            let message = format!("HTTP {}: {}", reply.status, clip(&reply.body));
            (outcome, message)
        }
        Err(e) => {
            if let WriteError::Tls(h) = &e {
                HandshakeFailed(h).emit(metrics);
            }
            (classify_transport(e.kind()), e.to_string())
        }
    };
    if let Some(kind) = outcome.error_kind() {
        AttemptFailed {
            kind,
            points: part.len(),
            message: &message,
        }
        .emit(metrics);
    }
    (outcome, message)
}

/// The lines of `part` as one request body, built in one allocation.
fn join(part: &[(u64, String)]) -> String {
    let mut body = String::with_capacity(part.iter().map(|(_, l)| l.len() + 1).sum());
    for (i, (_, line)) in part.iter().enumerate() {
        if i > 0 {
            body.push('\n');
        }
        body.push_str(line);
    }
    body
}
