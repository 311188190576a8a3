//! Capped exponential backoff with full jitter, for reconnects. rumqttc reconnects on the next
//! `poll()` at once; without this a broker outage becomes a busy loop of connection attempts.

use std::time::Duration;

use rand::Rng;

pub struct Backoff {
    min: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Backoff {
        Backoff {
            min,
            max: max.max(min),
            attempt: 0,
        }
    }

    /// The ceiling for the current attempt: `min × 2^attempt`, capped at `max`.
    pub fn ceiling(&self) -> Duration {
        let factor = 1u32 << self.attempt.min(20);
        self.min.saturating_mul(factor).min(self.max)
    }

    /// The next delay: uniform in `[min, ceiling]`, then the ceiling doubles.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self.ceiling();
        self.attempt = self.attempt.saturating_add(1);
        let lo = self.min.as_millis() as u64;
        let hi = ceiling.as_millis() as u64;
        Duration::from_millis(rand::thread_rng().gen_range(lo..=hi.max(lo)))
    }

    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_stay_capped_and_reset() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(1000));
        for _ in 0..20 {
            let d = b.next_delay();
            assert!(
                d >= Duration::from_millis(100) && d <= Duration::from_millis(1000),
                "{d:?}"
            );
        }
        assert_eq!(b.ceiling(), Duration::from_millis(1000));
        b.reset();
        assert_eq!(b.ceiling(), Duration::from_millis(100));
    }
}
