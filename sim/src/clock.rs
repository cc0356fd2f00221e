//! The simulation's manual clock: wall time for the applications, a
//! monotonic instant for the sessions' timers, both moved only by the
//! simulation.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

#[derive(Debug, Clone)]
pub(crate) struct ManualClock {
    start: DateTime<Utc>,
    base: Instant,
    elapsed: Arc<Mutex<Duration>>,
}

impl ManualClock {
    pub(crate) fn new(start: DateTime<Utc>) -> ManualClock {
        ManualClock {
            start,
            base: Instant::now(),
            elapsed: Arc::new(Mutex::new(Duration::ZERO)),
        }
    }

    /// Virtual time since the run began.
    pub(crate) fn elapsed(&self) -> Duration {
        *self.elapsed.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn set(&self, elapsed: Duration) {
        *self.elapsed.lock().unwrap_or_else(PoisonError::into_inner) = elapsed;
    }

    /// The wall time now.
    pub(crate) fn now(&self) -> DateTime<Utc> {
        self.start + chrono::Duration::from_std(self.elapsed()).unwrap_or_default()
    }

    /// The session timers' instant for virtual time `at`.
    pub(crate) fn instant(&self, at: Duration) -> Instant {
        self.base + at
    }

    /// A clock function for an application whose clock is off this one
    /// by `skew` milliseconds (read at each call: a store PC's clock set
    /// back while it runs).
    pub(crate) fn skewed(&self, skew: &Arc<AtomicI64>) -> linli_sync::clock::Clock {
        let (c, skew) = (self.clone(), skew.clone());
        Arc::new(move || c.now() + chrono::Duration::milliseconds(skew.load(Ordering::Relaxed)))
    }

    /// A clock function for an application.
    pub(crate) fn clock(&self) -> linli_sync::clock::Clock {
        let c = self.clone();
        Arc::new(move || c.now())
    }
}
