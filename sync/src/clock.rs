//! Where "now" comes from, for the edge node and the hub alike.
//!
//! Every use case reads the business time (sale times, deadlines, expiries,
//! business days) from a [`Clock`] it was given, never from the system
//! directly, so tests and a deterministic simulation can drive it by hand
//! with a [`ManualClock`]. [`system_clock`] is the one place that reads the
//! system time. Durations and timeouts of the machinery itself (tokio
//! intervals, `Instant`) are not business time and stay where they are.

use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Utc};

/// Where "now" comes from; tests substitute a [`ManualClock`].
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// The system clock.
pub fn system_clock() -> Clock {
    Arc::new(Utc::now)
}

/// A clock that moves only when told to. Cheap to clone: clones share one
/// time, so a test keeps a handle and gives [`ManualClock::clock`] to the
/// code under test.
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: Arc<Mutex<DateTime<Utc>>>,
}

impl ManualClock {
    /// A clock standing at `start`.
    pub fn new(start: DateTime<Utc>) -> ManualClock {
        ManualClock {
            now: Arc::new(Mutex::new(start)),
        }
    }

    /// The time it shows.
    pub fn now(&self) -> DateTime<Utc> {
        *self.now.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sets it to `t` (backwards too: a test may replay a time).
    pub fn set(&self, t: DateTime<Utc>) {
        *self.now.lock().unwrap_or_else(PoisonError::into_inner) = t;
    }

    /// Moves it on by `d`; returns the new time.
    pub fn advance(&self, d: chrono::Duration) -> DateTime<Utc> {
        let mut g = self.now.lock().unwrap_or_else(PoisonError::into_inner);
        *g += d;
        *g
    }

    /// A [`Clock`] that reads this one.
    pub fn clock(&self) -> Clock {
        let now = self.now.clone();
        Arc::new(move || *now.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let start = DateTime::parse_from_rfc3339("2026-12-03T10:00:00+08:00")
            .unwrap()
            .with_timezone(&Utc);
        let m = ManualClock::new(start);
        let clock = m.clock();
        assert_eq!(clock(), start);
        assert_eq!(m.now(), start);
        let later = m.advance(chrono::Duration::minutes(16));
        assert_eq!(later, start + chrono::Duration::minutes(16));
        assert_eq!(clock(), later);
        let copy = m.clone();
        copy.set(start);
        assert_eq!(clock(), start);
        assert_eq!(m.now(), start);
    }

    #[test]
    fn system_clock_reads_the_system_time() {
        let before = Utc::now();
        let t = system_clock()();
        assert!(before <= t && t <= Utc::now());
    }
}
