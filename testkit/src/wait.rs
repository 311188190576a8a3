//! Waiting for something to become true: poll against a deadline, never `sleep` then assert.

use std::future::Future;
use std::time::{Duration, Instant};

/// Polls `f` every 100 ms until it returns `Some`, at most `limit`; panics with `what` on
/// time-out.
pub async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out after {limit:?} waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
