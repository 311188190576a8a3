//! Why quantrac is not ready, if it is not. Each component sets or clears its own reason
//! (`mqtt`: not connected, not subscribed; `journal`: full, failed; `app`: shutting down);
//! `/readyz` answers 503 with the first reason, 200 when there is none.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

#[derive(Clone, Default)]
pub struct Readiness {
    reasons: Arc<Mutex<BTreeMap<&'static str, String>>>,
}

impl Readiness {
    /// Marks `component` not ready, with a one-line reason.
    pub fn not_ready(&self, component: &'static str, reason: impl Into<String>) {
        self.lock().insert(component, reason.into());
    }

    /// Marks `component` ready.
    pub fn ready(&self, component: &'static str) {
        self.lock().remove(component);
    }

    /// `None` when ready, else `component: reason` for every component that is not.
    pub fn reason(&self) -> Option<String> {
        let reasons = self.lock();
        if reasons.is_empty() {
            return None;
        }
        Some(
            reasons
                .iter()
                .map(|(c, r)| format!("{c}: {r}"))
                .collect::<Vec<_>>()
                .join("; "),
        )
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<&'static str, String>> {
        // A panic while holding this lock cannot leave the map inconsistent; keep serving.
        self.reasons.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_accumulate_and_clear_per_component() {
        let r = Readiness::default();
        assert_eq!(r.reason(), None);
        r.not_ready("mqtt", "not connected to mqtt://127.0.0.1:1883");
        r.not_ready("journal", "full (20 GiB)");
        let reason = r.reason().unwrap();
        assert!(reason.contains("mqtt: not connected") && reason.contains("journal: full"));
        r.ready("mqtt");
        r.ready("journal");
        assert_eq!(r.reason(), None);
    }
}
