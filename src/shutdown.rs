//! The stop signal. `app` owns a [`Stop`]; every task that must notice shutdown holds a
//! [`StopListener`] (a `watch` receiver), so a loop can `select!` on it every turn and a listener
//! created after the signal still sees it. Completion is learnt from the tasks' join handles.

use tokio::sync::watch;

/// The sending side: fire once, everybody hears it.
pub struct Stop {
    tx: watch::Sender<bool>,
}

/// The listening side. Cheap to clone.
#[derive(Clone)]
pub struct StopListener {
    rx: watch::Receiver<bool>,
}

impl Stop {
    pub fn new() -> (Stop, StopListener) {
        let (tx, rx) = watch::channel(false);
        (Stop { tx }, StopListener { rx })
    }

    pub fn fire(&self) {
        let _ = self.tx.send(true);
    }

    pub fn listener(&self) -> StopListener {
        StopListener {
            rx: self.tx.subscribe(),
        }
    }
}

impl StopListener {
    /// Whether the stop signal has fired.
    pub fn is_stopped(&self) -> bool {
        *self.rx.borrow()
    }

    /// Resolves once the signal fires (at once if it already has). Also resolves when the
    /// [`Stop`] was dropped, which only happens when the app is going away anyway.
    pub async fn stopped(&mut self) {
        let _ = self.rx.wait_for(|stopped| *stopped).await;
    }

    /// The underlying receiver, for stages that take a `watch::Receiver<bool>`.
    pub fn receiver(&self) -> watch::Receiver<bool> {
        self.rx.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn listeners_hear_the_signal_even_when_created_after_it() {
        let (stop, mut early) = Stop::new();
        assert!(!early.is_stopped());
        stop.fire();
        early.stopped().await;
        let mut late = stop.listener();
        assert!(late.is_stopped());
        late.stopped().await;
    }
}
