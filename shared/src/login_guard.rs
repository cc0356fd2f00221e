//! Who may try a password or PIN now: a lockout per name and a token bucket
//! per client address, shared by the store's PIN login and the hub's
//! password login (and the hub's customer sessions, by address only).
//!
//! The invariant: at most `max_failures` secret checks per name between two
//! successes, whatever the concurrency. [`LoginGuard::begin`] reserves an
//! attempt in the same step as it checks the lockout, before the slow hash
//! check runs; [`LoginGuard::settle`] turns the reservation into a failure
//! or a success afterwards. A reservation counts as a failure until it is
//! settled, so a burst of simultaneous guesses gets `max_failures` checks and
//! the rest are refused without one. Pure: the caller passes `now` and keeps
//! the guard behind a lock.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};

/// The rules of a guard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginLimits {
    /// Wrong secrets in a row before the name is locked.
    pub max_failures: u32,
    /// How long a name stays locked.
    pub lockout: Duration,
    /// Attempts a client address may make at once (bucket size).
    pub per_addr_burst: u32,
    /// Attempts a client address regains per minute.
    pub per_addr_per_minute: u32,
}

impl Default for LoginLimits {
    /// 5 wrong secrets lock a name for 15 minutes; an address may try 10
    /// times at once and 10 times a minute after that.
    fn default() -> Self {
        LoginLimits {
            max_failures: 5,
            lockout: Duration::minutes(15),
            per_addr_burst: 10,
            per_addr_per_minute: 10,
        }
    }
}

/// Why an attempt is refused before any check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The name is locked (or has as many attempts running as it may fail).
    LockedOut { retry_after_secs: i64 },
    /// The address has used up its attempts for now.
    RateLimited { retry_after_secs: i64 },
}

impl Refusal {
    pub fn retry_after_secs(self) -> i64 {
        match self {
            Refusal::LockedOut { retry_after_secs } | Refusal::RateLimited { retry_after_secs } => {
                retry_after_secs
            }
        }
    }
}

#[derive(Debug, Clone, Default)]
struct NameState {
    failures: u32,
    in_flight: u32,
    locked_until: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone)]
struct Bucket {
    tokens: f64,
    at: DateTime<Utc>,
}

/// Tables beyond this many entries are pruned of what no longer matters.
const PRUNE_AT: usize = 10_000;

/// Lockouts per name and buckets per address.
#[derive(Debug, Clone, Default)]
pub struct LoginGuard {
    limits: LoginLimits,
    names: HashMap<String, NameState>,
    addrs: HashMap<String, Bucket>,
}

impl LoginGuard {
    pub fn new(limits: LoginLimits) -> LoginGuard {
        LoginGuard {
            limits,
            names: HashMap::new(),
            addrs: HashMap::new(),
        }
    }

    pub fn limits(&self) -> LoginLimits {
        self.limits
    }

    /// Takes one attempt from the address's bucket (no name involved: e.g.
    /// opening a customer session).
    pub fn take_addr(&mut self, addr: &str, now: DateTime<Utc>) -> Result<(), Refusal> {
        if self.addrs.len() > PRUNE_AT {
            let burst = f64::from(self.limits.per_addr_burst);
            let rate = self.rate_per_sec();
            self.addrs
                .retain(|_, b| b.tokens + secs(now - b.at) * rate < burst);
        }
        let burst = f64::from(self.limits.per_addr_burst);
        let rate = self.rate_per_sec();
        let b = self.addrs.entry(addr.to_owned()).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        b.tokens = (b.tokens + secs(now - b.at).max(0.0) * rate).min(burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            let wait = if rate > 0.0 {
                ((1.0 - b.tokens) / rate).ceil()
            } else {
                60.0
            };
            // bounded by the bucket's refill time, so the cast is exact
            #[allow(clippy::cast_possible_truncation)]
            let retry_after_secs = (wait as i64).max(1);
            Err(Refusal::RateLimited { retry_after_secs })
        }
    }

    /// Reserves one check of `name`'s secret from `addr` (if known), or says
    /// why not. Every `Ok` must be followed by one [`LoginGuard::settle`].
    pub fn begin(
        &mut self,
        name: &str,
        addr: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), Refusal> {
        if let Some(s) = self.names.get_mut(name)
            && let Some(until) = s.locked_until
        {
            if now < until {
                return Err(Refusal::LockedOut {
                    retry_after_secs: (until - now).num_seconds().max(1),
                });
            }
            s.locked_until = None;
            s.failures = 0;
        }
        if let Some(a) = addr {
            self.take_addr(a, now)?;
        }
        if self.names.len() > PRUNE_AT {
            self.names.retain(|_, s| {
                s.in_flight > 0 || s.locked_until.is_some_and(|u| now < u) || s.failures > 0
            });
        }
        let max = self.limits.max_failures;
        let s = self.names.entry(name.to_owned()).or_default();
        if s.failures + s.in_flight >= max {
            return Err(Refusal::LockedOut {
                retry_after_secs: self.limits.lockout.num_seconds().max(1),
            });
        }
        s.in_flight += 1;
        Ok(())
    }

    /// Records how a reserved check ended.
    pub fn settle(&mut self, name: &str, ok: bool, now: DateTime<Utc>) {
        let Some(s) = self.names.get_mut(name) else {
            return;
        };
        s.in_flight = s.in_flight.saturating_sub(1);
        if ok {
            s.failures = 0;
            s.locked_until = None;
        } else {
            s.failures += 1;
            if s.failures >= self.limits.max_failures {
                s.locked_until = Some(now + self.limits.lockout);
            }
        }
        if s.failures == 0 && s.in_flight == 0 && s.locked_until.is_none() {
            self.names.remove(name);
        }
    }

    fn rate_per_sec(&self) -> f64 {
        f64::from(self.limits.per_addr_per_minute) / 60.0
    }
}

fn secs(d: Duration) -> f64 {
    // milliseconds fit an f64 exactly for any realistic gap
    #[allow(clippy::cast_precision_loss)]
    let ms = d.num_milliseconds() as f64;
    ms / 1000.0
}

/// A fixed set of threads for slow secret checks (argon2), and nothing else.
///
/// Each argon2 check holds ~19 MiB, and glibc keeps freed memory in the
/// arena of the thread that used it. On a blocking pool a burst of checks
/// lands on ever new threads (a finished thread is not idle yet when the next
/// check is handed out), so 100 logins pinned ~1.8 GB; on two fixed threads it
/// is two arenas, whatever the burst. Jobs wait in order; dropping the pool
/// ends its threads once the queue is empty.
#[derive(Debug)]
pub struct CheckWorkers {
    tx: std::sync::Mutex<std::sync::mpsc::Sender<Job>>,
}

type Job = Box<dyn FnOnce() + Send>;

impl CheckWorkers {
    /// Starts `n` (at least one) worker threads named `name`.
    pub fn new(name: &str, n: usize) -> CheckWorkers {
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        let rx = std::sync::Arc::new(std::sync::Mutex::new(rx));
        for i in 0..n.max(1) {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("{name}-{i}"))
                .spawn(move || {
                    loop {
                        let job = {
                            let g = match rx.lock() {
                                Ok(g) => g,
                                Err(p) => p.into_inner(),
                            };
                            match g.recv() {
                                Ok(job) => job,
                                Err(_) => return,
                            }
                        };
                        job();
                    }
                });
            // without a thread the job's answer channel is dropped: the
            // caller sees the check fail, never hang
            drop(spawned);
        }
        CheckWorkers {
            tx: std::sync::Mutex::new(tx),
        }
    }

    /// Queues `job`; false if the workers are gone.
    pub fn submit(&self, job: impl FnOnce() + Send + 'static) -> bool {
        let tx = match self.tx.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        tx.send(Box::new(job)).is_ok()
    }
}

/// Checks `secret` against an argon2 PHC string, in a memory buffer kept
/// per thread: run on [`CheckWorkers`] threads only, it allocates the
/// ~19 MiB of an argon2 check once per worker instead of once per check, so
/// malloc has nothing to keep between checks.
pub fn verify_argon2(secret: &[u8], phc: &str) -> bool {
    use argon2::password_hash::PasswordHash;
    use argon2::{Algorithm, Argon2, Block, Params, Version};
    thread_local! {
        static BLOCKS: std::cell::RefCell<Vec<Block>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    let Ok(hash) = PasswordHash::new(phc) else {
        return false;
    };
    let (Ok(alg), Ok(params)) = (Algorithm::try_from(hash.algorithm), Params::try_from(&hash))
    else {
        return false;
    };
    let version = hash
        .version
        .map_or(Ok(Version::default()), Version::try_from)
        .unwrap_or_default();
    let (Some(salt), Some(expected)) = (hash.salt, hash.hash) else {
        return false;
    };
    let mut salt_buf = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_buf) else {
        return false;
    };
    let expected = expected.as_bytes();
    let mut out = vec![0u8; expected.len()];
    let argon = Argon2::new(alg, version, params.clone());
    let ok = BLOCKS.with(|b| {
        let mut blocks = b.borrow_mut();
        let need = params.block_count();
        if blocks.len() < need {
            blocks.resize(need, Block::default());
        }
        argon
            .hash_password_into_with_memory(secret, salt, &mut out, &mut blocks[..need])
            .is_ok()
    });
    // constant time: every byte is compared
    ok && out.len() == expected.len()
        && out
            .iter()
            .zip(expected)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// Checks a name or identifier a person or a system gives: trimmed, 1 to
/// `max_chars` characters, no control characters (a NUL or an ESC/POS
/// command in a name would reach receipts and printers). Returns it trimmed.
pub fn clean_text(field: &str, value: &str, max_chars: usize) -> Result<String, String> {
    let v = value.trim();
    if v.is_empty() {
        return Err(format!("{field} must not be empty"));
    }
    if v.chars().count() > max_chars {
        return Err(format!("{field} must be at most {max_chars} characters"));
    }
    if v.chars().any(|c| c.is_control() || is_invisible_format(c)) {
        return Err(format!(
            "{field} must not contain control characters (such as NUL or ESC)"
        ));
    }
    Ok(v.to_owned())
}

/// Characters that change how text prints without being visible (bidi
/// overrides, line/paragraph separators).
fn is_invisible_format(c: char) -> bool {
    matches!(c, '\u{2028}' | '\u{2029}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t0() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default()
    }

    #[test]
    fn a_burst_gets_max_failures_checks_then_the_name_is_locked() {
        let mut g = LoginGuard::new(LoginLimits {
            per_addr_burst: 1000,
            ..LoginLimits::default()
        });
        let now = t0();
        let admitted = (0..100)
            .filter(|_| g.begin("ann", None, now).is_ok())
            .count();
        assert_eq!(admitted, 5);
        for _ in 0..5 {
            g.settle("ann", false, now);
        }
        assert!(matches!(
            g.begin("ann", None, now + Duration::minutes(14)),
            Err(Refusal::LockedOut { .. })
        ));
        assert!(g.begin("ann", None, now + Duration::minutes(15)).is_ok());
        g.settle("ann", true, now + Duration::minutes(15));
        assert!(g.names.is_empty());
    }

    #[test]
    fn an_address_refills_at_its_rate() {
        let mut g = LoginGuard::new(LoginLimits {
            per_addr_burst: 2,
            per_addr_per_minute: 6,
            ..LoginLimits::default()
        });
        let now = t0();
        assert!(g.take_addr("1.2.3.4", now).is_ok());
        assert!(g.take_addr("1.2.3.4", now).is_ok());
        assert_eq!(
            g.take_addr("1.2.3.4", now),
            Err(Refusal::RateLimited {
                retry_after_secs: 10
            })
        );
        assert!(g.take_addr("5.6.7.8", now).is_ok());
        assert!(g.take_addr("1.2.3.4", now + Duration::seconds(10)).is_ok());
    }

    #[test]
    fn argon2_checks_in_a_kept_buffer_agree_with_the_crate() {
        use argon2::password_hash::{PasswordHasher, SaltString};
        let salt = SaltString::encode_b64(b"0123456789abcdef").unwrap();
        let phc = argon2::Argon2::default()
            .hash_password(b"1234", &salt)
            .unwrap()
            .to_string();
        assert!(verify_argon2(b"1234", &phc));
        assert!(!verify_argon2(b"1235", &phc));
        assert!(verify_argon2(b"1234", &phc), "the kept buffer is reused");
        assert!(!verify_argon2(b"1234", "not a hash"));
    }

    #[test]
    fn text_without_controls_is_accepted_trimmed() {
        assert_eq!(clean_text("name", " 王芳 ", 64).as_deref(), Ok("王芳"));
        assert!(clean_text("name", "a\u{0}b", 64).is_err());
        assert!(clean_text("name", "milk\u{1b}p\u{0}", 64).is_err());
        assert!(clean_text("name", "", 64).is_err());
        assert!(clean_text("name", &"x".repeat(65), 64).is_err());
    }
}
