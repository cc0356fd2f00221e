//! Fresh identifiers and the random numbers the applications draw (ULIDs,
//! pickup codes, automerge actor ids): from the operating system's
//! randomness and clock, or, on a thread that holds [`SeededIds`], from a
//! seed and the run's clock, so a deterministic simulation draws the same
//! ones on every run of a seed.
//!
//! Secrets (password salts, session tokens, signing keys) never come from
//! here: they are drawn from the operating system wherever they are made.

use std::cell::RefCell;

use rand::distributions::{Distribution, Standard};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use ulid::Ulid;

use crate::clock::Clock;

struct Seeded {
    rng: StdRng,
    clock: Clock,
}

thread_local! {
    static SEEDED: RefCell<Option<Seeded>> = const { RefCell::new(None) };
}

/// While held, [`ulid`] and [`random`] on this thread draw from `seed`,
/// and a ULID's time is `clock`'s (the simulation's virtual clock).
#[must_use = "ids are seeded only while the guard is held"]
pub struct SeededIds {
    _not_send: std::marker::PhantomData<*const ()>,
}

impl std::fmt::Debug for SeededIds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SeededIds")
    }
}

impl SeededIds {
    pub fn enter(seed: u64, clock: Clock) -> SeededIds {
        SEEDED.with(|s| {
            *s.borrow_mut() = Some(Seeded {
                rng: StdRng::seed_from_u64(seed),
                clock,
            })
        });
        SeededIds {
            _not_send: std::marker::PhantomData,
        }
    }
}

impl Drop for SeededIds {
    fn drop(&mut self) {
        SEEDED.with(|s| *s.borrow_mut() = None);
    }
}

/// A new ULID: the time now and 80 random bits.
pub fn ulid() -> Ulid {
    SEEDED.with(|s| match s.borrow_mut().as_mut() {
        Some(s) => {
            let ms = (s.clock)().timestamp_millis().max(0) as u64;
            Ulid::from_parts(ms, s.rng.r#gen())
        }
        None => Ulid::new(),
    })
}

/// A random value (not a secret: see the module's docs).
pub fn random<T>() -> T
where
    Standard: Distribution<T>,
{
    SEEDED.with(|s| match s.borrow_mut().as_mut() {
        Some(s) => s.rng.r#gen(),
        None => rand::random(),
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use chrono::{TimeZone, Utc};

    use super::*;

    fn draw(seed: u64) -> (Vec<Ulid>, Vec<u32>) {
        let at = Utc.with_ymd_and_hms(2026, 12, 4, 9, 0, 0).unwrap();
        let _g = SeededIds::enter(seed, Arc::new(move || at));
        let ids = (0..3).map(|_| ulid()).collect();
        let codes = (0..3).map(|_| random::<u32>()).collect();
        (ids, codes)
    }

    #[test]
    fn a_seed_draws_the_same_ids_and_numbers_each_time() {
        let (a, b) = (draw(7), draw(7));
        assert_eq!(a, b);
        assert_ne!(a, draw(8));
        let at = Utc.with_ymd_and_hms(2026, 12, 4, 9, 0, 0).unwrap();
        assert!(
            a.0.iter()
                .all(|u| u.timestamp_ms() == at.timestamp_millis() as u64)
        );
    }

    #[test]
    fn without_a_seed_ids_come_from_the_system() {
        // no guard on this thread
        let (x, y) = (ulid(), ulid());
        assert_ne!(x, y);
        let since = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        assert!(x.timestamp_ms().abs_diff(since) < 60_000);
    }
}
