//! Staff, PINs, sessions and roles.
//!
//! PINs are hashed with argon2 (never stored in clear). A login yields a
//! random bearer token; only its SHA-256 is stored, so a copied database
//! does not hand out sessions. Five wrong PINs in a row lock a name (15
//! minutes by default), and each client address has a token bucket of
//! attempts ([`linli_shared::login_guard`]): an attempt is reserved before
//! the slow argon2 check, so no burst of simultaneous guesses gets more
//! checks than the lockout allows. Argon2 checks run on two fixed threads,
//! each with one kept ~19 MiB buffer: a login flood queues instead of
//! growing memory.
//! An unknown name is checked against a dummy hash, so the answer takes as
//! long as for a known one.
//! Cashiers sell, receive goods and hand over pickups; stock corrections,
//! refunds and cancellations need a manager.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, SaltString};
use chrono::{DateTime, Utc};
use rand::RngCore;
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use linli_shared::login_guard::{CheckWorkers, LoginGuard, LoginLimits, Refusal};

use super::{App, AppError, invalid, parse_ts, ts};
use crate::store::{Store, StoreError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Cashier,
    Manager,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Cashier => "cashier",
            Role::Manager => "manager",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "cashier" => Some(Role::Cashier),
            "manager" => Some(Role::Manager),
            _ => None,
        }
    }
}

/// Who is doing something: recorded with every write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub name: String,
    pub role: Role,
}

impl Actor {
    /// Refuses unless the actor is a manager.
    pub fn require_manager(&self, action: &'static str) -> Result<(), AppError> {
        match self.role {
            Role::Manager => Ok(()),
            Role::Cashier => Err(AppError::Forbidden { action }),
        }
    }
}

/// How many argon2 checks may run at once (each holds ~19 MiB of memory).
pub const MAX_CONCURRENT_PIN_CHECKS: usize = 2;

/// In-memory view of sessions (the table is the truth) and of login attempts.
#[derive(Debug)]
pub(crate) struct Sessions {
    by_hash: Mutex<HashMap<String, (Actor, DateTime<Utc>)>>,
    guard: Mutex<LoginGuard>,
    checks: CheckWorkers,
    checked: AtomicU64,
}

impl Sessions {
    pub(crate) fn new(limits: LoginLimits) -> Sessions {
        Sessions {
            by_hash: Mutex::new(HashMap::new()),
            guard: Mutex::new(LoginGuard::new(limits)),
            checks: CheckWorkers::new("pin-check", MAX_CONCURRENT_PIN_CHECKS),
            checked: AtomicU64::new(0),
        }
    }

    fn guard(&self) -> std::sync::MutexGuard<'_, LoginGuard> {
        match self.guard.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }
}

/// A reserved login attempt; one dropped unsettled (the client went away
/// during the check) counts as a failure.
struct Attempt<'a> {
    app: &'a App,
    name: &'a str,
    settled: bool,
}

impl Attempt<'_> {
    fn settle(mut self, ok: bool) {
        self.settled = true;
        let now = self.app.now();
        self.app.sessions.guard().settle(self.name, ok, now);
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if !self.settled {
            let now = self.app.now();
            self.app.sessions.guard().settle(self.name, false, now);
        }
    }
}

/// The hash an unknown name's PIN is checked against, so that a wrong name
/// costs as long as a wrong PIN.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        let salt = SaltString::generate(&mut rand::rngs::OsRng);
        Argon2::default()
            .hash_password(b"not-a-pin", &salt)
            .map(|h| h.to_string())
            .unwrap_or_default()
    })
}

fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn valid_pin(pin: &str) -> Result<(), AppError> {
    if (4..=8).contains(&pin.len()) && pin.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(invalid("pin", "must be 4-8 digits"))
    }
}

fn valid_name(name: &str) -> Result<String, AppError> {
    let n = name.trim();
    if n.is_empty() || n.chars().count() > 64 || n.chars().any(char::is_control) {
        return Err(invalid("name", "must be 1-64 printable characters"));
    }
    Ok(n.to_owned())
}

/// Adds a staff member directly to a database connection (used by the
/// `staff add` command, which runs without a server).
pub fn add_staff(conn: &Connection, name: &str, role: Role, pin: &str) -> Result<(), AppError> {
    let name = valid_name(name)?;
    valid_pin(pin)?;
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    let hash = Argon2::default()
        .hash_password(pin.as_bytes(), &salt)
        .map_err(|e| invalid("pin", e.to_string()))?
        .to_string();
    let inserted = conn.execute(
        "INSERT OR IGNORE INTO staff(name, role, pin_hash, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![name, role.as_str(), hash, ts(Utc::now())],
    )?;
    if inserted == 0 {
        return Err(AppError::StaffExists(name));
    }
    Ok(())
}

/// The key member phones are hashed under: the chain's when the identity
/// brought one (kept in `meta`, so it stays when a later start lacks the
/// file), else the one kept before, else a fresh one of this store's own.
/// Hashes taken under an earlier key stay as they were: a member's earlier
/// group-buy commitments at this counter are not counted against the limit
/// under the new key (a store enrolled before the chain key existed).
pub(crate) async fn load_or_create_member_key(
    store: &Store,
    chain: Option<[u8; 32]>,
) -> Result<[u8; 32], AppError> {
    store
        .write(move |c| {
            if let Some(key) = chain {
                c.execute(
                    "INSERT OR REPLACE INTO meta(key, value) VALUES ('member_key', ?1)",
                    [hex::encode(key)],
                )?;
                return Ok::<_, AppError>(key);
            }
            let existing: Option<String> = c
                .query_row("SELECT value FROM meta WHERE key = 'member_key'", [], |r| {
                    r.get(0)
                })
                .optional()?;
            let mut key = [0u8; 32];
            match existing.and_then(|h| hex::decode(h).ok()) {
                Some(bytes) if bytes.len() == 32 => key.copy_from_slice(&bytes),
                _ => {
                    rand::rngs::OsRng.fill_bytes(&mut key);
                    c.execute(
                        "INSERT OR REPLACE INTO meta(key, value) VALUES ('member_key', ?1)",
                        [hex::encode(key)],
                    )?;
                }
            }
            Ok::<_, AppError>(key)
        })
        .await
}

impl App {
    /// Checks a PIN and opens a session; returns the bearer token.
    pub async fn login(&self, name: &str, pin: &str) -> Result<(String, Actor), AppError> {
        self.login_from(name, pin, None).await
    }

    /// [`App::login`] from a client address, which is limited by its own
    /// bucket of attempts.
    pub async fn login_from(
        &self,
        name: &str,
        pin: &str,
        addr: Option<&str>,
    ) -> Result<(String, Actor), AppError> {
        let name = name.trim().to_owned();
        // the lockout check and the reservation are one step: no burst of
        // guesses gets past it while others are being checked
        self.sessions
            .guard()
            .begin(&name, addr, self.now())
            .map_err(|r| match r {
                Refusal::LockedOut { retry_after_secs } => AppError::LockedOut {
                    name: name.clone(),
                    retry_after_secs,
                },
                Refusal::RateLimited { retry_after_secs } => {
                    AppError::RateLimited { retry_after_secs }
                }
            })?;
        let attempt = Attempt {
            app: self,
            name: &name,
            settled: false,
        };
        let verified = self.check_pin(&name, pin).await;
        attempt.settle(matches!(verified, Ok(Some(_))));
        let Some(role) = verified? else {
            return Err(AppError::BadCredentials);
        };
        let now = self.now();
        let mut raw = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut raw);
        let token = hex::encode(raw);
        let hash = token_hash(&token);
        let expires = now + self.settings.session_ttl;
        let actor = Actor { name, role };
        let (n, h) = (actor.name.clone(), hash.clone());
        self.store
            .write(move |c| {
                c.execute(
                    "INSERT INTO sessions(token_hash, staff, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)",
                    params![h, n, ts(now), ts(expires)],
                )?;
                Ok::<_, AppError>(())
            })
            .await?;
        if let Ok(mut s) = self.sessions.by_hash.lock() {
            s.insert(hash, (actor.clone(), expires));
        }
        Ok((token, actor))
    }

    /// Checks `name`'s PIN (a dummy hash for an unknown name), at most
    /// [`MAX_CONCURRENT_PIN_CHECKS`] at a time. `Some(role)` if it matches.
    async fn check_pin(&self, name: &str, pin: &str) -> Result<Option<Role>, AppError> {
        let lookup = name.to_owned();
        let row: Option<(String, String)> = self
            .store
            .read(move |c| {
                c.query_row(
                    "SELECT role, pin_hash FROM staff WHERE name = ?1",
                    [lookup],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .map_err(StoreError::from)
            })
            .await?;
        self.sessions.checked.fetch_add(1, Ordering::SeqCst);
        // on the check threads only: argon2 is deliberately slow and big
        let pin = pin.to_owned();
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.sessions.checks.submit(move || {
            let (role, hash) = match row {
                Some((role, hash)) => (Some(role), hash),
                None => (None, dummy_hash().to_owned()),
            };
            let ok = linli_shared::login_guard::verify_argon2(pin.as_bytes(), &hash);
            let _ = tx.send(if ok {
                role.as_deref().and_then(Role::parse)
            } else {
                None
            });
        });
        let verified = rx.await.map_err(|_| StoreError::Panicked)?;
        Ok(verified)
    }

    /// How many PIN checks (argon2 verifications) this node has run.
    pub fn pin_checks(&self) -> u64 {
        self.sessions.checked.load(Ordering::SeqCst)
    }

    /// Ends the session of `token` at once.
    pub async fn logout(&self, token: &str) -> Result<(), AppError> {
        let hash = token_hash(token);
        if let Ok(mut s) = self.sessions.by_hash.lock() {
            s.remove(&hash);
        }
        self.store
            .write(move |c| {
                c.execute("DELETE FROM sessions WHERE token_hash = ?1", [hash])?;
                Ok::<_, AppError>(())
            })
            .await
    }

    /// Resolves a bearer token to the staff member it was issued to.
    pub async fn authenticate(&self, token: &str) -> Result<Actor, AppError> {
        let now = self.now();
        let hash = token_hash(token);
        if let Ok(s) = self.sessions.by_hash.lock()
            && let Some((actor, expires)) = s.get(&hash)
        {
            return if now < *expires {
                Ok(actor.clone())
            } else {
                Err(AppError::Unauthenticated)
            };
        }
        // a session from before a restart: the table is the truth
        let h = hash.clone();
        let row: Option<(String, String, String)> = self
            .store
            .read(move |c| {
                c.query_row(
                    "SELECT s.staff, st.role, s.expires_at FROM sessions s JOIN staff st ON st.name = s.staff WHERE s.token_hash = ?1",
                    [h],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()
                .map_err(StoreError::from)
            })
            .await?;
        let (name, role, expires) = row.ok_or(AppError::Unauthenticated)?;
        let role = Role::parse(&role).ok_or(AppError::Unauthenticated)?;
        let expires = parse_ts(&expires);
        if now >= expires {
            return Err(AppError::Unauthenticated);
        }
        let actor = Actor { name, role };
        if let Ok(mut s) = self.sessions.by_hash.lock() {
            s.insert(hash, (actor.clone(), expires));
        }
        Ok(actor)
    }

    /// The keyed hash under which a member's phone is kept at the store.
    pub(crate) fn member_hash(&self, phone: &str) -> String {
        linli_shared::member::member_hash(&self.member_key, phone)
    }
}
